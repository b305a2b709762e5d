"""Checkpoint and weight files: written so that they survive a crash, read without ever running code from
them, and (for pretrained third-party weights) downloaded once into a cache folder with a clear error offline.
This is the one weight loader of the project (training models, inference, ONNX export, benchmarks).

BasicSR 1.4.2 writes `.pth`/`.state` files in place (a SIGKILL mid-write leaves a truncated file that
`--auto_resume` then picks up) and reads them with `torch.load` without `weights_only`, which unpickles
arbitrary objects. Both helpers here are used by every SMFD model (see `smfd_models/protocol.py`).

File format (BasicSR's): `{'params': state_dict, 'params_ema': state_dict}` for networks; training states
are `{'epoch', 'iter', 'optimizers', 'schedulers', ...}` of plain tensors / numbers / lists / dicts.
"""
import os
import pickle
import time
from collections import OrderedDict

import torch

from smfd_data.atomic_io import atomic_write

__all__ = ['atomic_torch_save', 'save_with_retry', 'cpu_state_dict', 'load_state_dict_safely',
           'load_checkpoint_safely', 'load_weights', 'cached_weights',
           'WeightsUnavailable', 'CACHE_DIR']

# Pretrained third-party weights (face detection/parsing, identity) go here, never into the current directory or
# site-packages; SMFD_CACHE overrides it.
CACHE_DIR = os.environ.get('SMFD_CACHE') or os.path.join('~', '.cache', 'smfd')


class WeightsUnavailable(FileNotFoundError):
    """Pretrained weights are not in the cache and could not be downloaded (offline machine)."""


def atomic_torch_save(obj, path):
    """`torch.save(obj, path)` that leaves either the old file or the complete new one, never a partial one."""
    atomic_write(path, lambda f: torch.save(obj, f))


def save_with_retry(obj, path, retries=3, warn=print):
    """`atomic_torch_save`, retried (a network file system may fail once; BasicSR retries too). The last failure
    raises OSError naming the file; the file is never left half-written."""
    for attempt in range(retries):
        try:
            atomic_torch_save(obj, path)
            return
        except OSError as err:
            if attempt == retries - 1:
                raise OSError(f'Cannot save {path}: {err}') from err
            warn(f'Saving {path} failed ({err}); retrying.')
            time.sleep(1)


def _without_module_prefix(key):
    """The parameter name without DataParallel/DDP's ``module.`` prefix."""
    return key[len('module.'):] if key.startswith('module.') else key


def cpu_state_dict(net):
    """``net.state_dict()`` on the CPU without DataParallel/DDP ``module.`` prefixes (BasicSR's saved format)."""
    return OrderedDict((_without_module_prefix(k), v.cpu()) for k, v in net.state_dict().items())


def load_checkpoint_safely(path):
    """`torch.load(path, weights_only=True)` on CPU with errors that name the file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file holds pickled code/objects (refused), or is not a readable torch file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'Checkpoint file not found: {path}')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:
        reason = str(err).strip().splitlines()
        detail = next((line for line in reversed(reason) if 'GLOBAL' in line or 'global' in line), '')
        raise ValueError(f'{path}: refusing to load this checkpoint because it contains pickled code or objects '
                         'other than tensors/numbers/containers, and SMFD refuses to execute code from '
                         'checkpoints (torch.load weights_only=True). Re-save only the state dicts, e.g. '
                         '`torch.save({"params": net.state_dict()}, path)`. '
                         f'{detail}'.strip()) from err
    except (RuntimeError, EOFError, OSError) as err:
        raise ValueError(f'{path}: not a readable PyTorch checkpoint (truncated or corrupt?): {err}') from err


def load_state_dict_safely(path, param_key='params'):
    """Read a network state dict from a BasicSR-format checkpoint without executing code.

    Args:
        path (str): `.pth` file, `{'params': ..., 'params_ema': ...}` (BasicSR) or a bare state dict when
            `param_key` is None.
        param_key (str | None): which entry to return; None returns the whole (bare) state dict.

    Returns:
        OrderedDict[str, Tensor]: on CPU, with DataParallel/DDP `module.` prefixes stripped.

    Raises:
        KeyError: `param_key` missing; the message lists the keys the file has.
        ValueError / FileNotFoundError: see `load_checkpoint_safely`.
    """
    return _state_dict_of(load_checkpoint_safely(path), path, param_key)


def _state_dict_of(ckpt, path, param_key):
    """``load_state_dict_safely`` on the already loaded ``ckpt`` of ``path``."""
    if not isinstance(ckpt, dict):
        raise ValueError(f'{path}: expected a dict of state dicts, got {type(ckpt).__name__}')
    if param_key is not None:
        if param_key not in ckpt:
            keys = list(ckpt.keys())
            shown = ', '.join(repr(k) for k in keys[:10]) + (f', ... ({len(keys)} keys)' if len(keys) > 10 else '')
            raise KeyError(f'{path}: no entry {param_key!r} in the checkpoint; available keys: [{shown}]. '
                           'Set path.param_key_* to one of them (null for a bare state dict).')
        ckpt = ckpt[param_key]
        if not isinstance(ckpt, dict):
            raise ValueError(f'{path}: entry {param_key!r} is a {type(ckpt).__name__}, not a state dict')
    state_dict = OrderedDict()
    for key, value in ckpt.items():
        if not isinstance(key, str) or not torch.is_tensor(value):
            raise ValueError(f'{path}: not a state dict (entry {key!r} holds a {type(value).__name__}, not a tensor)')
        state_dict[_without_module_prefix(key)] = value
    return state_dict


def load_weights(net, path, param_key='auto', strict=True):
    """Load a checkpoint into ``net`` (in place, returns it); errors name the file.

    ``param_key``: 'auto' takes ``params_ema`` when the file has it (BasicSR's EMA copy), else ``params``, else
    the file as a bare state dict; a string takes that entry; None the bare state dict. Non-finite weights are
    refused (a network that blew up in training writes NaN images).
    """
    ckpt = load_checkpoint_safely(path)  # read once, whatever param_key says
    if param_key == 'auto':
        keys = ckpt.keys() if isinstance(ckpt, dict) else ()
        param_key = next((k for k in ('params_ema', 'params') if k in keys), None)
    state = _state_dict_of(ckpt, path, param_key)
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise ValueError(f'{path}: the weights hold NaN or infinite values (e.g. {bad[0]}); the training that '
                         'wrote them diverged')
    try:
        net.load_state_dict(state, strict=strict)
    except RuntimeError as err:
        raise ValueError(f'{path}: the weights do not fit {type(net).__name__} as configured (pass the option file '
                         f'it was trained with): {str(err)[:800]}') from err
    return net


def cached_weights(url, cache_dir=None, subdir='', download=True):
    """Local path of the file at ``url`` in the cache (``CACHE_DIR``/``subdir``), downloaded on first use.

    Offline without the file (or ``download=False``): WeightsUnavailable naming the URL and the path to copy the
    file to.
    """
    folder = os.path.join(os.path.expanduser(cache_dir or CACHE_DIR), subdir)
    path = os.path.join(folder, os.path.basename(url))
    if os.path.isfile(path):
        return path
    if not download:
        raise WeightsUnavailable(f'{path} does not exist and downloads are off; download {url} and copy it there')
    os.makedirs(folder, exist_ok=True)
    tmp = path + '.part'
    try:
        torch.hub.download_url_to_file(url, tmp, progress=False)
        os.replace(tmp, path)
    except Exception as err:  # URLError, HTTPError, timeouts, SSL errors, ...
        if os.path.exists(tmp):
            os.remove(tmp)
        raise WeightsUnavailable(f'{path} does not exist and the download from {url} failed '
                                 f'({type(err).__name__}: {err}). On a machine with internet, download that file and '
                                 f'copy it to {path}.') from err
    return path
