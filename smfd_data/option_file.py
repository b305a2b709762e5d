"""The one reader of YAML option files (BasicSR's format): every error names the file."""
import os

import yaml


def read_option(path):
    """A BasicSR option YAML as a dict.

    Raises FileNotFoundError (no such file) or ValueError (not YAML, or not a mapping: e.g. an empty or
    comment-only file), each naming the file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path}: option file not found')
    try:
        with open(path, 'r', encoding='utf-8') as f:
            opt = yaml.safe_load(f)
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ValueError(f'{path}: not a valid YAML file: {err}') from err
    if not isinstance(opt, dict):
        what = 'nothing (empty or only comments)' if opt is None else f'a {type(opt).__name__}'
        raise ValueError(f'{path}: expected a mapping of options, the file holds {what}')
    return opt
