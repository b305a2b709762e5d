"""Every patch of BasicSR: what its 1.4.2 stock entries get wrong for a plugin user, fixed without forking BasicSR.

Applied once by ``smfd_basicsr.registration.after_basicsr`` right after basicsr is imported, so both
``python -m basicsr.train`` and ``python <site-packages>/basicsr/train.py`` pick the fixes up (their
``from basicsr.utils.options import parse_options`` runs after the patch). Everything hangs off
``parse_options``, the first call of both pipelines:

* root: the stock entries pass the installed package's parent (site-packages) as root, so ``experiments/``,
  ``tb_logger/`` and ``results/`` would land inside site-packages; they now go under the current directory.
* resume on CPU: the stock ``load_resume_state`` maps storages with ``torch.cuda.current_device()``; it is
  replaced by one that maps to the CPU when there is no GPU and loads safely. ``python -m basicsr.train`` and
  ``python .../basicsr/train.py`` run the file as ``__main__``, a second copy whose ``def load_resume_state``
  executes only after its imports (when this module is applied), so that copy is replaced when the pipeline
  calls ``parse_options``, its first call.
* atomic saves: the stock ``BaseModel.save_network`` / ``save_training_state`` (used by SRModel and every stock
  model) ``torch.save`` in place, so a SIGKILL mid-save leaves a truncated ``.pth``/``.state`` that
  ``--auto_resume`` then picks; they now write a temporary file and rename it (``smfd_models.checkpoint``).
  ``--auto_resume`` also steps back past a training state it cannot read (a file left by an older run), saying so.
* DDP on CPU: the stock ``init_dist`` divides by the CUDA device count and ``BaseModel.model_to_device``
  passes CUDA device ids to DistributedDataParallel; without CUDA they now use gloo and plain CPU DDP.
* options: ``parse_options`` itself is the plugin's (``smfd_basicsr.options``): one YAML reader with YAML 1.2
  floats (``lr: 1e-4``, ``--force_yml train:optim_g:lr=1e6``), and every mistake (empty file, missing
  ``dataroot_gt``, ``total_iter: 0``, unknown names, missing paths) is one line before anything is built.

Why replace module attributes instead of editing a caller's globals: the entries bind ``parse_options`` and
``load_resume_state`` by name at import (``from ... import``), so the patch sets those names on the modules that
hold them (``basicsr.utils.options``, ``basicsr.train``/``basicsr.test`` and the ``__main__`` copy found through
``sys.modules``); no stack frame is inspected.

Each patch has its own test in tests/test_basicsr_patches.py.
"""
import collections
import functools
import os
import sys
from os import path as osp

_PATCHED = '_smfd_patched'


def project_root(root_path):
    """The folder BasicSR should write under: the current directory when BasicSR hands us site-packages."""
    parts = osp.normpath(osp.abspath(root_path)).split(os.sep)
    if 'site-packages' in parts or 'dist-packages' in parts:
        return os.getcwd()
    return root_path


class _Options(collections.OrderedDict):
    """BasicSR's option dict; ``train_pipeline`` re-sets ``opt['root_path']`` after parsing: keep it fixed."""

    def __setitem__(self, key, value):
        if key == 'root_path' and isinstance(value, str):
            value = project_root(value)
        super().__setitem__(key, value)


def training_states(state_dir):
    """Paths of the ``<iter>.state`` files in ``state_dir``, newest (highest iteration) first."""
    if not osp.isdir(state_dir):
        return []
    iters = [int(name[:-len('.state')]) for name in os.listdir(state_dir)
             if name.endswith('.state') and name[:-len('.state')].isdigit()]
    return [osp.join(state_dir, f'{it}.state') for it in sorted(iters, reverse=True)]


def load_training_state(path):
    """Load a BasicSR training state on whatever device exists, without executing code from the file."""
    import torch
    device = f'cuda:{torch.cuda.current_device()}' if torch.cuda.is_available() else 'cpu'
    # BasicSR's MultiStepRestartLR keeps its milestones in a Counter: allow just that class.
    with torch.serialization.safe_globals([collections.Counter]):
        try:
            return torch.load(path, map_location=device, weights_only=True)
        except Exception as error:
            raise RuntimeError(f'cannot load training state {path}: {error}') from error


def load_resume_state(opt):
    """Drop-in for ``basicsr.train.load_resume_state`` that works on CPU-only machines."""
    from basicsr.utils.misc import check_resume

    if opt['auto_resume']:
        path, state = _newest_readable_state(osp.join('experiments', opt['name'], 'training_states'))
        if path is not None:
            opt['path']['resume_state'] = path
    else:
        path = opt['path'].get('resume_state')
        state = load_training_state(path) if path else None
    if state is None:
        return None
    check_resume(opt, state['iter'])
    return state


def _newest_readable_state(state_dir):
    """(path, state) of the newest training state that loads, skipping unreadable newer ones with one line each;
    (None, None) when there is none; the newest one's error when none loads."""
    states = training_states(state_dir)
    first_error = None
    for path in states:
        try:
            return path, load_training_state(path)
        except RuntimeError as error:
            first_error = first_error or error
            print(f'auto_resume: skipping {path}: {error.__cause__ or error}', file=sys.stderr)
    if first_error is not None:
        raise first_error
    return None, None


def init_dist(launcher, backend='nccl', **kwargs):
    """``basicsr.utils.dist_util.init_dist`` that falls back to gloo when there is no CUDA device."""
    import torch
    from basicsr.utils import dist_util
    if launcher == 'pytorch' and not torch.cuda.is_available():
        import torch.distributed as dist
        dist.init_process_group(backend='gloo', **kwargs)
        return
    dist_util.init_dist(launcher, backend, **kwargs)


def _atomic_saves():
    """BaseModel's ``save_network`` and ``save_training_state``, same files and format, written atomically; the
    state's dict comes from ``training_state_dict``, which a model extends (SMFD's adds its protocol counters)."""
    from basicsr.utils import get_root_logger
    from basicsr.utils.dist_util import master_only

    from smfd_models.checkpoint import cpu_state_dict, save_with_retry

    @master_only
    def save_network(self, net, net_label, current_iter, param_key='params'):
        nets = net if isinstance(net, list) else [net]
        keys = param_key if isinstance(param_key, list) else [param_key]
        if len(nets) != len(keys):
            raise ValueError(f'save_network: {len(nets)} networks but {len(keys)} param keys')
        label = 'latest' if current_iter == -1 else current_iter
        save_dict = {key: cpu_state_dict(self.get_bare_model(n)) for n, key in zip(nets, keys)}
        save_with_retry(save_dict, osp.join(self.opt['path']['models'], f'{net_label}_{label}.pth'),
                        warn=get_root_logger().warning)

    def training_state_dict(self, epoch, current_iter):
        return {'epoch': epoch, 'iter': current_iter, 'optimizers': [o.state_dict() for o in self.optimizers],
                'schedulers': [s.state_dict() for s in self.schedulers]}

    @master_only
    def save_training_state(self, epoch, current_iter):
        if current_iter == -1:
            return
        save_with_retry(self.training_state_dict(epoch, current_iter),
                        osp.join(self.opt['path']['training_states'], f'{current_iter}.state'),
                        warn=get_root_logger().warning)

    return save_network, save_training_state, training_state_dict


def _model_to_device(stock_model_to_device):

    @functools.wraps(stock_model_to_device)
    def model_to_device(self, net):
        if self.opt.get('dist') and self.device.type == 'cpu':
            from torch.nn.parallel import DistributedDataParallel
            return DistributedDataParallel(
                net.to(self.device), find_unused_parameters=self.opt.get('find_unused_parameters', False))
        return stock_model_to_device(self, net)

    return model_to_device


def _train_pipeline_modules():
    """The loaded copies of basicsr/train.py: ``basicsr.train`` and, when the file runs as the program, ``__main__``."""
    package = sys.modules.get('basicsr.train')
    copies = [package] if package is not None else []
    main = sys.modules.get('__main__')
    main_file = getattr(main, '__file__', None)
    if package is not None and main_file and osp.abspath(main_file) == osp.abspath(package.__file__):
        copies.append(main)
    return copies


def _make_pipelines_cpu_safe():
    for module in _train_pipeline_modules():
        stock = getattr(module, 'load_resume_state', None)
        if callable(stock) and stock is not load_resume_state:
            module.load_resume_state = load_resume_state


def _wrap_parse_options(plugin_parse_options):
    """The plugin's ``parse_options`` (smfd_basicsr/options.py, which replaces the stock one whole) plus the two
    fixes that must run at that moment: the CPU-safe resume loader in both copies of the pipeline, the root."""

    @functools.wraps(plugin_parse_options)
    def parse_options(root_path, is_train=True):
        _make_pipelines_cpu_safe()
        opt, args = plugin_parse_options(project_root(root_path), is_train=is_train)
        return _Options(opt), args

    setattr(parse_options, _PATCHED, True)
    return parse_options


def apply():
    """Patch basicsr in place; idempotent."""
    from basicsr.utils import options
    if getattr(options.parse_options, _PATCHED, False):
        return
    from smfd_basicsr.options import parse_options
    stock = options.parse_options
    patched = _wrap_parse_options(parse_options)
    options.parse_options = patched
    options.init_dist = init_dist
    from basicsr.models.base_model import BaseModel
    BaseModel.model_to_device = _model_to_device(BaseModel.model_to_device)
    BaseModel.save_network, BaseModel.save_training_state, BaseModel.training_state_dict = _atomic_saves()
    # basicsr/__init__ already imported its train/test modules, which bound the stock function by name.
    for name in ('basicsr.train', 'basicsr.test'):
        module = sys.modules.get(name)
        if module is not None and getattr(module, 'parse_options', None) is stock:
            module.parse_options = patched
