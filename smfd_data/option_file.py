"""The one reader of YAML option files (BasicSR's format): every error names the file.

PyYAML implements YAML 1.1, whose float needs a dot and a signed exponent: ``1e-4`` and ``1e6`` come back as
*strings*, and a learning rate read that way fails deep inside torch. Option files (BasicSR's own included)
write floats like that, so ``OptionLoader`` also reads ``1e6``, ``1e-4``, ``.5e3`` and ``-2E+3`` as floats
(what YAML 1.2 does). Every option in the project (files, ``--force_yml`` values) goes through this loader.
"""
import os
import re

import yaml


class OptionLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` plus YAML 1.2 floats without a dot (``1e-4``)."""


OptionLoader.add_implicit_resolver(
    'tag:yaml.org,2002:float',
    re.compile(r'^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$'),
    list('-+0123456789.'))


def parse_value(text):
    """One option value written as YAML text (``1e6`` → 1e6, ``[1, 2]`` → a list, ``~`` → None); ValueError if
    ``text`` is not YAML."""
    try:
        return yaml.load(text, Loader=OptionLoader)
    except yaml.YAMLError as err:
        raise ValueError(f'{text!r} is not a valid YAML value ({" ".join(str(err).split())})') from err


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
            opt = yaml.load(f, Loader=OptionLoader)
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ValueError(f'{path}: not a valid YAML file: {" ".join(str(err).split())}') from err
    except OSError as err:
        raise ValueError(f'{path}: cannot read the option file: {err.strerror or err}') from err
    if not isinstance(opt, dict):
        what = 'nothing (empty or only comments)' if opt is None else f'a {type(opt).__name__}'
        raise ValueError(f'{path}: expected a mapping of options, the file holds {what}')
    return opt
