"""From trained weights on disk to networks in memory: find BasicSR experiments, read the option file BasicSR copied
next to their checkpoints (``experiments/<name>/<option>.yml``, ``network_g``), build the registered arch and load
its weights safely (``smfd_models.checkpoint.load_weights``), assemble the cascade.

Two steps, so that every front end (the deblur command, the web page) shows the same warnings:
``resolve_weights`` picks the files and says what to warn about (demo weights trained on synthetic faces, a run
that never trained), ``load_cascade`` builds the networks from that choice.
"""
import glob
import json
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


def _iteration_of(name, prefix):
    """``N`` of ``<prefix>_N.pth`` / ``N.state``, else None."""
    stem = os.path.splitext(name)[0]
    tail = stem[len(prefix) + 1:] if prefix and stem.startswith(prefix + '_') else stem
    return int(tail) if tail.isdigit() else None


def training_iterations(checkpoint, opt=None):
    """How many training iterations the run that wrote ``checkpoint`` recorded: 0 when it never trained, None when
    nothing on disk tells.

    Evidence, from BasicSR's layout ``experiments/<name>/{models,training_states}``: ``train.total_iter`` ≤ 0 in
    the option file means the loop never ran (BasicSR still saves ``net_g_latest``); otherwise the largest of
    the numbered checkpoints ``net_g_N.pth``, the training states ``N.state``, the ``iter`` of
    ``net_g_best.json`` (save-best) and, for ``net_g_latest``/``net_g_best`` (written when the loop ends),
    ``train.total_iter``.
    """
    models_dir = os.path.dirname(os.path.abspath(checkpoint))
    total = ((opt or {}).get('train') or {}).get('total_iter')
    try:
        total = None if total is None else int(float(total))
    except (TypeError, ValueError):
        total = None
    if total is not None and total <= 0:
        return 0
    prefix = os.path.basename(checkpoint).rsplit('_', 1)[0] if '_' in os.path.basename(checkpoint) else 'net_g'
    found = [n for n in (_iteration_of(os.path.basename(p), prefix)
                         for p in glob.glob(os.path.join(models_dir, f'{prefix}_*.pth'))) if n is not None]
    states = os.path.join(os.path.dirname(models_dir), 'training_states')
    if os.path.isdir(states):
        found += [n for n in (_iteration_of(name, '') for name in os.listdir(states) if name.endswith('.state'))
                  if n is not None]
    try:
        with open(os.path.join(models_dir, f'{prefix}_best.json')) as f:
            found.append(int(json.load(f)['iter']))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if total is not None and os.path.basename(checkpoint) in (f'{prefix}_latest.pth', f'{prefix}_best.pth'):
        found.append(total)
    return max(found) if found else None


def trained_on_demo_data(opt):
    """True when the option file trained on ``make demo``'s procedural faces (a dataroot under datasets/demo/)."""
    for phase in ((opt or {}).get('datasets') or {}).values():
        if not isinstance(phase, dict):
            continue
        for key, value in phase.items():
            if key.startswith('dataroot') and isinstance(value, str):
                parts = os.path.normpath(value).split(os.sep)
                if any(a == 'datasets' and b == 'demo' for a, b in zip(parts, parts[1:])):
                    return True
    return False


def demo_warning(what, checkpoint, size):
    return (f'{checkpoint}: these {what} weights were trained by `make demo` on procedural synthetic faces '
            f'({size}² cartoons), not on photos. They are good for checking that the pipeline runs end to end; '
            'they do not restore real faces (expect blurry, checkered outputs). For photos, train on '
            'CelebAMask-HQ (docs/training.md) and pass --weights/--mask-weights.')


def _experiment_kind(opt):
    net = opt.get('network_g') or {}
    if net.get('type') == 'MaskGenerator':
        return 'mask'
    if net.get('type') == 'SMFDUNet':
        return 'smfd' if net.get('use_mask', True) else 'smfd_nomask'
    return None


def find_trained_checkpoints(experiments_dir='experiments', skipped=None):
    """Newest trained SMFD-UNet (with mask branch; image-only if none) and MaskGenerator under ``experiments_dir``.

    Returns ``{'smfd': (checkpoint, option), 'mask': (checkpoint, option)}`` with the entries that exist.
    Archived runs (``*_archived_*``, BasicSR's rename on re-runs) are skipped, and so are runs that never trained
    (``training_iterations`` 0 or unknown: an untrained network is no default); ``skipped``, a list, receives one
    line for each of those.
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
            opt = read_option(opt_path)
        except (OSError, ValueError):
            continue
        kind = _experiment_kind(opt)
        if kind is None:
            continue
        iterations = training_iterations(ckpt, opt)
        if not iterations:
            if skipped is not None:
                skipped.append(f'{ckpt}: not used as a default: ' + (
                    'its run never trained (train.total_iter <= 0)' if iterations == 0 else
                    'no training iterations recorded (no train.total_iter, numbered checkpoint or training state)'))
            continue
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
    """Build a registered arch from ``{'type': ..., **kwargs}`` and load its weights with the project's one weight
    loader, ``smfd_models.checkpoint.load_weights`` (``param_key`` as there; strict); errors become InferenceError
    naming the file."""
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
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``; InferenceError for
    anything else or a device this machine lacks (instead of a torch traceback)."""
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in ('cpu', 'cuda', 'mps'):
        raise InferenceError(f'--device {name}: unknown device; use cpu, cuda, cuda:N, mps or auto')
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            raise InferenceError(f'--device {name}: CUDA is not available on this machine (use --device cpu)')
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InferenceError(f'--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)')
    if device.type == 'mps' and not torch.backends.mps.is_available():
        raise InferenceError(f'--device {name}: MPS is not available on this machine (use --device cpu)')
    return device


def resolve_weights(weights=None, mask_weights=None, opt_path=None, mask_opt_path=None, experiments_dir='experiments',
                    need_generator=True):
    """Which files the cascade is built from, and what to tell the user about them; nothing is built or loaded.

    Explicit files win; missing ones come from the newest *trained* experiments under ``experiments_dir``
    (``find_trained_checkpoints``). Returns a dict: ``smfd_weights``, ``smfd_option`` (path), ``option`` (the
    parsed SMFD option), ``mask_weights``, ``mask_net_opt`` (None without generator), ``size`` (training face
    size), ``notes`` (which files, lines for stderr) and ``warnings`` (lines every front end must show: demo
    weights trained on synthetic faces, an explicitly given checkpoint whose run never trained, defaults skipped
    because they never trained). Raises InferenceError (with how to get/pass weights) when nothing usable is found.
    """
    notes, warnings, skipped = [], [], []
    found = (find_trained_checkpoints(experiments_dir, skipped)
             if weights is None or (need_generator and mask_weights is None) else {})
    if weights is None:
        if 'smfd' not in found:
            raise InferenceError(
                f'no SMFD-UNet weights given and no trained one found under {os.path.abspath(experiments_dir)}/*/'
                'models' + ''.join(f'; {line}' for line in skipped) + '. Pass --weights NET_G.pth (a BasicSR '
                'checkpoint of SMFDUNet, with --opt OPTION.yml when it does not sit in experiments/<name>/models/), '
                'or train the demo models with `make demo`.')
        weights, found_opt = found['smfd']
        opt_path = opt_path or found_opt
        notes.append(f'smfd: using the newest trained SMFD-UNet {weights} (options {opt_path})')
    opt_path = opt_path or experiment_option(weights)
    if opt_path is None:
        raise InferenceError(f'{weights}: no option file next to the checkpoint (experiments/<name>/*.yml); pass '
                             '--opt OPTION.yml whose network_g describes the SMFDUNet')
    opt = read_option(opt_path)
    net_opt = network_option(opt, 'network_g', opt_path)
    choice = {'smfd_weights': weights, 'smfd_option': opt_path, 'option': opt, 'smfd_net_opt': net_opt,
              'mask_weights': None, 'mask_net_opt': None, 'size': model_size(opt), 'notes': notes, 'warnings': warnings}
    _warn_about(choice, 'SMFD-UNet', weights, opt)
    if net_opt.get('use_mask', True) and need_generator:
        mask_weights, mask_opt, mask_net_opt, note = _mask_generator_source(
            weights, opt, opt_path, mask_weights, mask_opt_path, found, experiments_dir, skipped)
        if note:
            notes.append(note)
        choice.update(mask_weights=mask_weights, mask_net_opt=mask_net_opt)
        _warn_about(choice, 'MaskGenerator', mask_weights, mask_opt)
    warnings.extend(f'smfd: {line}' for line in skipped)
    return choice


def _warn_about(choice, what, checkpoint, opt):
    """Append the warnings about one checkpoint (and its option file, None when unknown) to ``choice``."""
    if opt is not None and trained_on_demo_data(opt):
        choice['warnings'].append('smfd: warning: ' + demo_warning(what, checkpoint, model_size(opt)))
    if opt is not None and training_iterations(checkpoint, opt) == 0:
        choice['warnings'].append(f'smfd: warning: {checkpoint}: its run never trained (train.total_iter <= 0): '
                                  f'this {what} is randomly initialised')


def load_cascade(weights=None, mask_weights=None, opt_path=None, mask_opt_path=None, device='cpu',
                 experiments_dir='experiments', need_generator=True, report=log, mask_handoff=None):
    """Build the cascade from explicit files or from the newest ``make demo`` experiments (``resolve_weights``).

    ``mask_handoff`` (``onehot`` | ``soft``): default, the SMFD option's ``mask_handoff`` (``onehot`` when unset:
    what a net trained on ground-truth masks saw).

    ``report`` receives the notes and warnings (stderr by default; None to stay quiet and read them from
    ``info``). Returns ``(cascade, info)``, ``info`` as ``resolve_weights`` returns it. Raises InferenceError.
    """
    info = resolve_weights(weights, mask_weights, opt_path, mask_opt_path, experiments_dir, need_generator)
    if report is not None:
        for line in info['notes'] + info['warnings']:
            report(line)
    smfd = build_network(info['smfd_net_opt'], info['smfd_weights'], device=device)
    mask_generator = None
    if info['mask_net_opt'] is not None:
        mask_generator = build_network(info['mask_net_opt'], info['mask_weights'], device=device)
    handoff = mask_handoff or (info['option'] or {}).get('mask_handoff', 'onehot')
    info['mask_handoff'] = handoff
    return SMFDCascade(smfd, mask_generator, handoff).to(device).eval(), info


def _mask_generator_source(smfd_weights, opt, opt_path, mask_weights, mask_opt_path, found, experiments_dir,
                           skipped=()):
    """(checkpoint, its option or None, network option, note) of the MaskGenerator: --mask-weights, else the SMFD
    option's ``path.pretrain_network_mask`` + ``network_mask``, else the newest trained MaskGenerator."""
    note = None
    if mask_weights is None:
        pretrained = (opt.get('path') or {}).get('pretrain_network_mask')
        if pretrained and os.path.isfile(pretrained) and opt.get('network_mask'):
            note = f'smfd: using the MaskGenerator {pretrained} (path.pretrain_network_mask of {opt_path})'
            return pretrained, opt, network_option(opt, 'network_mask', opt_path), note
        if 'mask' not in found:
            raise InferenceError(
                f'{smfd_weights}: this SMFD-UNet needs masks but no MaskGenerator weights were given or trained ones '
                f'found under {os.path.abspath(experiments_dir)}/*/models' + ''.join(f'; {line}' for line in skipped)
                + '. Pass --mask-weights MASK_G.pth (with --mask-opt when it is not in experiments/<name>/models/), '
                '--mask DIR with your own label maps, or run `make demo`.')
        mask_weights, mask_opt_path = found['mask'][0], mask_opt_path or found['mask'][1]
        note = f'smfd: using the newest trained MaskGenerator {mask_weights} (options {mask_opt_path})'
    mask_opt_path = mask_opt_path or experiment_option(mask_weights)
    if mask_opt_path is not None:
        mask_opt = read_option(mask_opt_path)
        return mask_weights, mask_opt, network_option(mask_opt, 'network_g', mask_opt_path), note
    if opt.get('network_mask'):
        return mask_weights, None, network_option(opt, 'network_mask', opt_path), note
    raise InferenceError(f'{mask_weights}: no option file next to the checkpoint; pass --mask-opt OPTION.yml '
                         'whose network_g describes the MaskGenerator')
