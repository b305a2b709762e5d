"""From trained weights on disk to networks in memory: find BasicSR experiments, read the option file BasicSR copied
next to their checkpoints (``experiments/<name>/<option>.yml``, ``network_g``), build the registered arch and load
its weights safely (``smfd_models.checkpoint.load_weights``), assemble the cascade.
"""
import glob
import os
import sys

import torch

from smfd_basicsr import register
from smfd_data.option_file import read_option
from smfd_inference.cascade import SMFDCascade
from smfd_models.checkpoint import load_weights

DEFAULT_SIZE = 256  # the paper's input size (§3.4.2)


class InferenceError(RuntimeError):
    """A problem the user must fix (missing weights, unusable option file); the CLI prints it and exits 2."""


def log(message):
    print(message, file=sys.stderr, flush=True)


def experiment_option(checkpoint):
    """The option YAML BasicSR copied into ``experiments/<name>/`` for ``experiments/<name>/models/X.pth``, or None."""
    models_dir = os.path.dirname(os.path.abspath(checkpoint))
    for folder in (os.path.dirname(models_dir), models_dir):
        ymls = sorted(glob.glob(os.path.join(folder, '*.yml')) + glob.glob(os.path.join(folder, '*.yaml')))
        if ymls:
            return max(ymls, key=os.path.getmtime)
    return None


def pick_checkpoint(models_dir, prefix='net_g'):
    """Best → latest → highest-iteration ``<prefix>_*.pth`` of a BasicSR ``models/`` folder, or None."""
    for name in (f'{prefix}_best.pth', f'{prefix}_latest.pth'):
        if os.path.isfile(os.path.join(models_dir, name)):
            return os.path.join(models_dir, name)
    iters = []
    for path in glob.glob(os.path.join(models_dir, f'{prefix}_*.pth')):
        tail = os.path.basename(path)[len(prefix) + 1:-len('.pth')]
        if tail.isdigit():
            iters.append((int(tail), path))
    return max(iters)[1] if iters else None


def _experiment_kind(opt):
    net = opt.get('network_g') or {}
    if net.get('type') == 'MaskGenerator':
        return 'mask'
    if net.get('type') == 'SMFDUNet':
        return 'smfd' if net.get('use_mask', True) else 'smfd_nomask'
    return None


def find_trained_checkpoints(experiments_dir='experiments'):
    """Newest trained SMFD-UNet (with mask branch; image-only if none) and MaskGenerator under ``experiments_dir``.

    Returns ``{'smfd': (checkpoint, option), 'mask': (checkpoint, option)}`` with the entries that exist.
    Archived runs (``*_archived_*``, BasicSR's rename on re-runs) are skipped.
    """
    found = {}
    if not os.path.isdir(experiments_dir):
        return found
    for name in sorted(os.listdir(experiments_dir)):
        folder = os.path.join(experiments_dir, name)
        if '_archived_' in name or not os.path.isdir(os.path.join(folder, 'models')):
            continue
        ckpt = pick_checkpoint(os.path.join(folder, 'models'))
        opt_path = experiment_option(ckpt) if ckpt else None
        if ckpt is None or opt_path is None:
            continue
        try:
            kind = _experiment_kind(read_option(opt_path))
        except (OSError, ValueError):
            continue
        if kind is not None:
            found.setdefault(kind, []).append((os.path.getmtime(ckpt), ckpt, opt_path))
    result = {}
    for kind in ('smfd', 'mask'):
        if found.get(kind):
            result[kind] = max(found[kind])[1:]
    if 'smfd' not in result and found.get('smfd_nomask'):
        result['smfd'] = max(found['smfd_nomask'])[1:]
    return result


def network_option(opt, key='network_g', source='options'):
    net = opt.get(key)
    if not isinstance(net, dict) or 'type' not in net:
        raise InferenceError(f'{source}: no `{key}` with a `type` in the option file')
    return dict(net)


def model_size(opt, default=DEFAULT_SIZE):
    """The face size a model was trained at: ``datasets.train.gt_size`` (else any phase's), else ``default``."""
    datasets = opt.get('datasets') or {}
    phases = sorted(datasets, key=lambda phase: phase != 'train')
    for phase in phases:
        if isinstance(datasets[phase], dict) and datasets[phase].get('gt_size'):
            return int(datasets[phase]['gt_size'])
    return default


def build_network(net_opt, weights=None, param_key='auto', device='cpu'):
    """Build a registered arch from ``{'type': ..., **kwargs}`` and load BasicSR-format weights safely.

    ``param_key`` 'auto' takes ``params_ema`` when the file has it (BasicSR's EMA copy), else ``params``, else the
    file as a bare state dict. Strict loading; errors name the file.
    """
    register()
    from basicsr.utils.registry import ARCH_REGISTRY

    net_opt = dict(net_opt)
    arch = net_opt.pop('type')
    try:
        net = ARCH_REGISTRY.get(arch)(**net_opt)
    except KeyError as err:
        raise InferenceError(f'unknown arch {arch!r}: {err}') from err
    except (TypeError, ValueError) as err:
        raise InferenceError(f'network options of {arch}: {err}') from err
    if weights is not None:
        try:
            load_weights(net, weights, param_key)
        except (KeyError, ValueError, FileNotFoundError) as err:
            raise InferenceError(str(err).strip('"')) from err
    return net.to(device).eval()


def resolve_device(name='auto'):
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if name.startswith('cuda') and not torch.cuda.is_available():
        raise InferenceError(f'--device {name}: CUDA is not available on this machine (use --device cpu)')
    return torch.device(name)


def load_cascade(weights=None, mask_weights=None, opt_path=None, mask_opt_path=None, device='cpu',
                 experiments_dir='experiments', need_generator=True):
    """Build the cascade from explicit files or from the newest ``make demo`` experiments.

    Returns ``(cascade, info)`` where ``info`` has ``smfd_weights``, ``mask_weights``, ``smfd_option``, ``size``.
    Raises InferenceError (with how to get/pass weights) when nothing usable is found.
    """
    found = find_trained_checkpoints(experiments_dir) if weights is None or (need_generator and
                                                                             mask_weights is None) else {}
    if weights is None:
        if 'smfd' not in found:
            raise InferenceError(
                f'no SMFD-UNet weights given and none found under {os.path.abspath(experiments_dir)}/*/models. '
                'Pass --weights NET_G.pth (a BasicSR checkpoint of SMFDUNet, with --opt OPTION.yml when it does '
                'not sit in experiments/<name>/models/), or train the demo models with `make demo`.')
        weights, found_opt = found['smfd']
        opt_path = opt_path or found_opt
        log(f'smfd: using the newest trained SMFD-UNet {weights} (options {opt_path})')
    opt_path = opt_path or experiment_option(weights)
    if opt_path is None:
        raise InferenceError(f'{weights}: no option file next to the checkpoint (experiments/<name>/*.yml); pass '
                             '--opt OPTION.yml whose network_g describes the SMFDUNet')
    opt = read_option(opt_path)
    smfd = build_network(network_option(opt, 'network_g', opt_path), weights, device=device)
    mask_generator = None
    if getattr(smfd, 'use_mask', True) and need_generator:
        mask_weights, mask_net_opt = _mask_generator_source(weights, opt, opt_path, mask_weights, mask_opt_path,
                                                            found, experiments_dir)
        mask_generator = build_network(mask_net_opt, mask_weights, device=device)
    info = {'smfd_weights': weights, 'smfd_option': opt_path, 'mask_weights': mask_weights,
            'size': model_size(opt), 'option': opt}
    return SMFDCascade(smfd, mask_generator).to(device).eval(), info


def _mask_generator_source(smfd_weights, opt, opt_path, mask_weights, mask_opt_path, found, experiments_dir):
    """(checkpoint, network option) of the MaskGenerator: --mask-weights, else the SMFD option's
    ``path.pretrain_network_mask`` + ``network_mask``, else the newest trained MaskGenerator."""
    if mask_weights is None:
        pretrained = (opt.get('path') or {}).get('pretrain_network_mask')
        if pretrained and os.path.isfile(pretrained) and opt.get('network_mask'):
            log(f'smfd: using the MaskGenerator {pretrained} (path.pretrain_network_mask of {opt_path})')
            return pretrained, network_option(opt, 'network_mask', opt_path)
        if 'mask' not in found:
            raise InferenceError(
                f'{smfd_weights}: this SMFD-UNet needs masks but no MaskGenerator weights were given or found under '
                f'{os.path.abspath(experiments_dir)}/*/models. Pass --mask-weights MASK_G.pth (with --mask-opt '
                'when it is not in experiments/<name>/models/), or run `make demo`.')
        mask_weights, mask_opt_path = found['mask'][0], mask_opt_path or found['mask'][1]
        log(f'smfd: using the newest trained MaskGenerator {mask_weights} (options {mask_opt_path})')
    mask_opt_path = mask_opt_path or experiment_option(mask_weights)
    if mask_opt_path is not None:
        return mask_weights, network_option(read_option(mask_opt_path), 'network_g', mask_opt_path)
    if opt.get('network_mask'):
        return mask_weights, network_option(opt, 'network_mask', opt_path)
    raise InferenceError(f'{mask_weights}: no option file next to the checkpoint; pass --mask-opt OPTION.yml '
                         'whose network_g describes the MaskGenerator')
