"""Checkpoint files that survive a crash and never run code when read.

BasicSR 1.4.2 writes `.pth`/`.state` files in place (a SIGKILL mid-write leaves a truncated file that
`--auto_resume` then picks up) and reads them with `torch.load` without `weights_only`, which unpickles
arbitrary objects. Both helpers here are used by every SMFD model (see `smfd_models/protocol.py`).

File format (BasicSR's): `{'params': state_dict, 'params_ema': state_dict}` for networks; training states
are `{'epoch', 'iter', 'optimizers', 'schedulers', ...}` of plain tensors / numbers / lists / dicts.
"""
import os
import pickle
from collections import OrderedDict

import torch

from smfd_data.atomic_io import atomic_write

__all__ = ['atomic_torch_save', 'load_state_dict_safely', 'load_checkpoint_safely']


def atomic_torch_save(obj, path):
    """`torch.save(obj, path)` that leaves either the old file or the complete new one, never a partial one."""
    atomic_write(path, lambda f: torch.save(obj, f))


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
    ckpt = load_checkpoint_safely(path)
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
        state_dict[key[len('module.'):] if key.startswith('module.') else key] = value
    return state_dict
