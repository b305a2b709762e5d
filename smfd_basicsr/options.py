"""Fail before training starts when an option file names something that does not exist.

BasicSR discovers most mistakes only after building datasets and networks (or never: a missing pretrained path
surfaces mid-run). Every message names the option key and lists the valid values.
"""
import difflib
from os import path as osp

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
    if isinstance(value, str) and not osp.exists(value):
        raise OptionError(f"{source}: option '{key}': path '{value}' does not exist")


def validate_options(opt, source='options'):
    """Raise OptionError for unknown registry names, bad ``mask_source`` values and missing input paths."""
    from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY

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


def fill_plugin_defaults(opt):
    """Defaults that follow from other options. A frozen mask generator is never saved, so resuming must not
    look for ``net_mask_<iter>.pth`` (BasicSR's check_resume would)."""
    if opt.get('mask_source') == 'generator' and 'network_mask' in opt:
        ignored = opt.setdefault('path', {}).get('ignore_resume_networks') or []
        if 'network_mask' not in ignored:
            opt['path']['ignore_resume_networks'] = [*ignored, 'network_mask']
    return opt
