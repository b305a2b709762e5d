"""Option loading for BasicSR's entries, owned by the plugin: fail before anything is built or written.

BasicSR 1.4.2's ``parse_options`` reads the file with PyYAML's YAML 1.1 rules (``lr: 1e-4`` is a string),
applies ``--force_yml`` through ``exec`` (``lr=1e6`` a string too), and discovers most mistakes only later as a
bare ``KeyError``/``TypeError`` (an empty file, a missing ``dataroot_gt``) or never (``total_iter: 0`` trains
nothing and saves the untrained net as ``net_g_latest``). ``parse_options`` below replaces it (installed by
``smfd_basicsr.patches``): the file is read by ``smfd_data.option_file`` (one reader, floats like ``1e-4``),
``--force_yml`` values are YAML too, and every mistake ends the run with one line naming the file and the
option key, exit status 1, before any experiment folder exists.
"""
import argparse
import difflib
import numbers
import random
import sys
from os import path as osp

from smfd_data.option_file import parse_value, read_option
from smfd_models.mask_source import check_mask_source


class OptionError(ValueError):
    """A wrong value in a BasicSR option file."""


def _check_name(source, key, value, registry, kind):
    names = sorted(registry.keys())
    if value not in names:
        close = difflib.get_close_matches(str(value), names, n=3)
        hint = f' Did you mean {", ".join(close)}?' if close else ''
        raise OptionError(f"{source}: option '{key}': unknown {kind} '{value}'.{hint} Valid: {', '.join(names)}")


def _check_path(source, key, value):
    if isinstance(value, str) and not osp.exists(osp.expanduser(value)):
        raise OptionError(f"{source}: option '{key}': path '{value}' does not exist")


# The keys each dataset class indexes without a default (read from their __init__), so a missing one is named
# here instead of surfacing as a bare KeyError while the dataset is built.
REQUIRED_DATASET_KEYS = {
    'SMFDFaceDataset': ('dataroot_gt',),
    'SMFDDegradedFolderDataset': ('dataroot',),
    'PairedImageDataset': ('dataroot_gt', 'dataroot_lq'),
    'SingleImageDataset': ('dataroot_lq',),
}


# Top-level keys read by BasicSR 1.4.2 or SMFD (plus ``network_*``). Other keys are allowed (a custom model may
# read its own), unless they look like a misspelt known one: ``vall:`` would silently turn validation off.
KNOWN_TOP_LEVEL = ('name', 'model_type', 'scale', 'num_gpu', 'manual_seed', 'datasets', 'path', 'train', 'val',
                   'logger', 'dist_params', 'mask_source', 'find_unused_parameters', 'dist', 'rank', 'world_size',
                   'auto_resume', 'is_train', 'root_path')


def _check_top_level_keys(source, opt):
    for key in opt:
        if not isinstance(key, str):
            raise OptionError(f'{source}: option {key!r}: option names must be text')
        if key in KNOWN_TOP_LEVEL or key.startswith('network_'):
            continue
        close = difflib.get_close_matches(key, KNOWN_TOP_LEVEL, n=1, cutoff=0.75)
        if close:
            raise OptionError(f"{source}: option {key}: unknown option; did you mean '{close[0]}'?")


def _section(source, opt, key, required=True):
    value = opt.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        problem = 'missing' if value is None else f'expected a mapping, got {type(value).__name__} {value!r}'
        raise OptionError(f'{source}: option {key}: {problem}')
    return value


def _check_number(source, key, value, integer=False, minimum=None, above=None):
    kind = numbers.Integral if integer else numbers.Real
    if value is None:
        raise OptionError(f'{source}: option {key}: missing')
    if isinstance(value, bool) or not isinstance(value, kind) or value != value:
        want = 'an integer' if integer else 'a number'
        raise OptionError(f'{source}: option {key}: expected {want}, got {type(value).__name__} {value!r}')
    if minimum is not None and value < minimum:
        raise OptionError(f'{source}: option {key}: must be >= {minimum}, got {value}')
    if above is not None and not value > above:
        raise OptionError(f'{source}: option {key}: must be > {above}, got {value}')


def check_structure(opt, source='options', is_train=True):
    """Raise OptionError for the sections and values BasicSR's pipelines index without a default."""
    _check_top_level_keys(source, opt)
    name = opt.get('name')
    if not isinstance(name, str) or not name.strip():
        problem = 'missing' if name is None else f'expected a text, got {name!r}'
        raise OptionError(f'{source}: option name: {problem}')
    num_gpu = opt.get('num_gpu')
    if num_gpu != 'auto':
        _check_number(source, 'num_gpu', num_gpu, integer=True, minimum=0)
    datasets = _section(source, opt, 'datasets')
    if not datasets:
        raise OptionError(f'{source}: option datasets: empty (no dataset to {"train on" if is_train else "test"})')
    for phase, dataset in datasets.items():
        where = f'datasets.{phase}'
        if not isinstance(dataset, dict):
            raise OptionError(f'{source}: option {where}: expected a mapping, got {type(dataset).__name__}')
        if is_train and phase != 'train' and phase.split('_')[0] != 'val':
            raise OptionError(f"{source}: option {where}: training reads only 'train' and 'val*' phases")
        for key in REQUIRED_DATASET_KEYS.get(dataset.get('type'), ()):
            if dataset.get(key) in (None, ''):
                raise OptionError(f'{source}: option {where}.{key}: missing')
        if dataset.get('type') == 'PairedImageDataset' and 'scale' not in opt and 'scale' not in dataset:
            raise OptionError(f'{source}: option scale: missing (PairedImageDataset of {where} reads it; 1 for '
                              'deblurring)')
    _section(source, opt, 'path', required=False)
    if is_train:
        if 'train' not in datasets:
            raise OptionError(f'{source}: option datasets.train: missing (training needs a train phase)')
        _check_number(source, 'datasets.train.batch_size_per_gpu', datasets['train'].get('batch_size_per_gpu'),
                      integer=True, minimum=1)
        train = _section(source, opt, 'train')
        if isinstance(train.get('total_iter'), float) and train['total_iter'].is_integer():
            train['total_iter'] = int(train['total_iter'])  # total_iter: 4e3
        # total_iter 0 would "train" nothing and save the initial weights as net_g_latest (issue 14 item 5).
        _check_number(source, 'train.total_iter', train.get('total_iter'), integer=True, minimum=1)
        for key, value in train.items():
            if key.startswith('optim_') and isinstance(value, dict):
                _check_number(source, f'train.{key}.lr', value.get('lr'), above=0)
        logger = _section(source, opt, 'logger')
        for key in ('print_freq', 'save_checkpoint_freq'):
            _check_number(source, f'logger.{key}', logger.get(key), integer=True, minimum=1)
        if opt.get('val') is not None:
            _check_number(source, 'val.val_freq', _section(source, opt, 'val').get('val_freq'), integer=True,
                          minimum=1)
    else:
        val = _section(source, opt, 'val')
        if 'save_img' not in val:
            raise OptionError(f'{source}: option val.save_img: missing')


def validate_options(opt, source='options', is_train=None):
    """Raise OptionError for missing or mistyped sections, unknown registry names, bad ``mask_source`` values
    and missing input paths. ``is_train=None`` skips the structure check (a partial dict)."""
    from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY

    if is_train is not None:
        check_structure(opt, source, is_train)
    _check_name(source, 'model_type', opt.get('model_type', 'SRModel'), MODEL_REGISTRY, 'model')
    for key, value in opt.items():
        if key.startswith('network_') and isinstance(value, dict):
            _check_name(source, f'{key}.type', value.get('type'), ARCH_REGISTRY, 'arch')
    if opt.get('model_type') == 'SMFDModel' or 'mask_source' in opt:
        try:
            check_mask_source(opt)
        except ValueError as err:
            raise OptionError(f'{source}: {err}') from err
    for phase, dataset in (opt.get('datasets') or {}).items():
        _check_name(source, f'datasets.{phase}.type', dataset.get('type'), DATASET_REGISTRY, 'dataset')
        for key, value in dataset.items():
            if key.startswith('dataroot') or key in ('meta_info_file', 'mask_root_pred'):
                _check_path(source, f'datasets.{phase}.{key}', value)
    for key, value in (opt.get('path') or {}).items():
        if key.startswith('pretrain_network') or key == 'resume_state':
            _check_path(source, f'path.{key}', value)
    for key, value in (opt.get('train') or {}).items():
        if key.endswith('_opt') and isinstance(value, dict) and 'type' in value:
            _check_name(source, f'train.{key}.type', value['type'], LOSS_REGISTRY, 'loss')
    for name, metric in ((opt.get('val') or {}).get('metrics') or {}).items():
        _check_name(source, f'val.metrics.{name}.type', metric.get('type'), METRIC_REGISTRY, 'metric')


def drop_unavailable_metrics(opt, source='options', is_train=True):
    """Metrics that cannot run on this machine (LPIPS offline without its backbone weights), found before any
    work instead of at the first image. Testing goes on without them: they are removed from ``val.metrics`` and
    each gets a note "unavailable (reason)" (returned), as the benchmark reports them. Training refuses
    (OptionError): its protocol and best-checkpoint choice may depend on the metric."""
    from smfd_models.metrics import lpips_unavailable

    notes = []
    metrics = (opt.get('val') or {}).get('metrics') or {}
    for name, metric in list(metrics.items()):
        if metric.get('type') != 'smfd_lpips':
            continue
        reason = lpips_unavailable(metric.get('net', 'alex'), metric.get('pretrained_backbone', True))
        if not reason:
            continue
        if is_train:
            raise OptionError(f'{source}: option val.metrics.{name}: LPIPS unavailable ({reason}); provide the '
                              f'weights or remove val.metrics.{name}')
        del metrics[name]
        notes.append(f'{source}: val.metrics.{name}: unavailable ({reason}); the other metrics go on without it')
    return notes


def fill_plugin_defaults(opt):
    """Defaults that follow from other options. A frozen mask generator is never saved, so resuming must not
    look for ``net_mask_<iter>.pth`` (BasicSR's check_resume would)."""
    if opt.get('mask_source') == 'generator' and 'network_mask' in opt:
        ignored = opt.setdefault('path', {}).get('ignore_resume_networks') or []
        if 'network_mask' not in ignored:
            opt['path']['ignore_resume_networks'] = [*ignored, 'network_mask']
    return opt


def force_options(opt, entries, source='options'):
    """Apply ``--force_yml a:b:c=value`` entries in place: the value is YAML (``1e6`` a float), the key must exist.

    BasicSR's version builds ``opt["a"]["b"]["c"]=value`` for ``exec`` and turns ``1e6`` into a string.
    """
    for entry in entries or ():
        keys, sep, text = entry.partition('=')
        path = [key.strip() for key in keys.split(':')]
        if not sep or not all(path):
            raise OptionError(f"--force_yml {entry}: expected KEY:SUBKEY=VALUE, e.g. train:optim_g:lr=1e-4")
        node = opt
        for depth, key in enumerate(path):
            if not isinstance(node, dict) or key not in node:
                raise OptionError(f"--force_yml {entry}: option '{'.'.join(path[:depth + 1])}' is not in {source} "
                                  '(--force_yml changes existing options only)')
            if depth == len(path) - 1:
                try:
                    node[key] = parse_value(text.strip())
                except ValueError as err:
                    raise OptionError(f'--force_yml {entry}: {err}') from err
            node = node[key]
    return opt


def build_parser():
    """BasicSR 1.4.2's command line (basicsr/utils/options.py), unchanged."""
    parser = argparse.ArgumentParser()
    parser.add_argument('-opt', type=str, required=True, help='Path to option YAML file.')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none', help='job launcher')
    parser.add_argument('--auto_resume', action='store_true')
    parser.add_argument('--debug', action='store_true')
    parser.add_argument('--local_rank', type=int, default=0)
    parser.add_argument(
        '--force_yml', nargs='+', default=None, help='Force to update yml files. Examples: train:ema_decay=0.999')
    return parser


def load_options(source, force_yml=None, is_train=True):
    """The option file ``source`` read, forced and checked: ``(opt, notes)`` or OptionError (file and key named);
    ``notes``: metrics left out because they cannot run here (``drop_unavailable_metrics``)."""
    try:
        opt = read_option(source)
    except (OSError, ValueError) as err:
        raise OptionError(str(err)) from err
    force_options(opt, force_yml, source)
    validate_options(opt, source=source, is_train=is_train)
    return opt, drop_unavailable_metrics(opt, source, is_train)


def parse_options(root_path, is_train=True):
    """Drop-in for ``basicsr.utils.options.parse_options`` (1.4.2): same arguments, same result, checked first.

    An option mistake exits with one line ``<prog>: error: <file>: option <key>: <problem>`` (status 1); a metric
    that cannot run here is one ``<prog>: warning:`` line and the test goes on without it.
    """
    import torch
    from basicsr.utils import options as stock  # its init_dist is the CPU-safe one of smfd_basicsr.patches
    from basicsr.utils import set_random_seed
    from basicsr.utils.dist_util import get_dist_info

    args = build_parser().parse_args()
    prog = osp.basename(sys.argv[0]) or 'basicsr'
    try:
        opt, notes = load_options(args.opt, args.force_yml, is_train=is_train)
    except OptionError as err:
        raise SystemExit(f'{prog}: error: {err}') from None
    for note in notes:
        print(f'{prog}: warning: {note}', file=sys.stderr, flush=True)

    # From here on BasicSR 1.4.2's parse_options, minus the parts done above.
    opt['dist'] = args.launcher != 'none'
    if args.launcher == 'none':
        print('Disable distributed.', flush=True)
    elif args.launcher == 'slurm' and 'dist_params' in opt:
        stock.init_dist(args.launcher, **opt['dist_params'])
    else:
        stock.init_dist(args.launcher)
    opt['rank'], opt['world_size'] = get_dist_info()
    if opt.get('manual_seed') is None:
        opt['manual_seed'] = random.randint(1, 10000)
    set_random_seed(opt['manual_seed'] + opt['rank'])
    opt['auto_resume'] = args.auto_resume
    opt['is_train'] = is_train
    if args.debug and not opt['name'].startswith('debug'):
        opt['name'] = 'debug_' + opt['name']
    if opt['num_gpu'] == 'auto':
        opt['num_gpu'] = torch.cuda.device_count()
    for phase, dataset in opt['datasets'].items():
        dataset['phase'] = phase.split('_')[0]  # val_1, val_2, test_1, ...
        if 'scale' in opt:
            dataset['scale'] = opt['scale']
        for key in ('dataroot_gt', 'dataroot_lq'):
            if dataset.get(key) is not None:
                dataset[key] = osp.expanduser(dataset[key])
    opt['path'] = opt.get('path') or {}
    for key, val in opt['path'].items():
        if val is not None and ('resume_state' in key or 'pretrain_network' in key):
            opt['path'][key] = osp.expanduser(val)
    paths = opt['path']
    if is_train:
        paths['experiments_root'] = osp.join(root_path, 'experiments', opt['name'])
        paths['models'] = osp.join(paths['experiments_root'], 'models')
        paths['training_states'] = osp.join(paths['experiments_root'], 'training_states')
        paths['log'] = paths['experiments_root']
        paths['visualization'] = osp.join(paths['experiments_root'], 'visualization')
        if 'debug' in opt['name']:
            if 'val' in opt:
                opt['val']['val_freq'] = 8
            opt['logger']['print_freq'] = 1
            opt['logger']['save_checkpoint_freq'] = 8
    else:
        paths['results_root'] = osp.join(root_path, 'results', opt['name'])
        paths['log'] = paths['results_root']
        paths['visualization'] = osp.join(paths['results_root'], 'visualization')
    fill_plugin_defaults(opt)
    return opt, args
