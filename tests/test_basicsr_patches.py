"""Every patch of BasicSR in smfd_basicsr/patches.py, one test each (end-to-end runs through BasicSR's stock entries
are in tests/test_basicsr_entries.py: outputs under the cwd, SIGKILL + auto-resume on CPU, 2-process CPU DDP)."""
import collections
import os
import sys
import sysconfig
import types

import cv2
import numpy as np
import pytest
import torch

from smfd_basicsr import register
from tests.helpers import REPO

register()

from smfd_basicsr import patches  # noqa: E402


def test_apply_is_idempotent_and_reaches_every_target():
    import basicsr.test
    import basicsr.train
    from basicsr.models.base_model import BaseModel
    from basicsr.utils import options
    before = (options.parse_options, BaseModel.model_to_device, BaseModel.save_network, BaseModel.save_training_state)
    patches.apply()  # a second time: nothing is wrapped twice
    assert (options.parse_options, BaseModel.model_to_device, BaseModel.save_network,
            BaseModel.save_training_state) == before
    assert getattr(options.parse_options, patches._PATCHED)
    assert basicsr.train.parse_options is options.parse_options is basicsr.test.parse_options
    assert options.init_dist is patches.init_dist


def test_project_root_redirects_only_site_packages(tmp_path, monkeypatch):
    from smfd_basicsr.patches import _Options, project_root
    monkeypatch.chdir(tmp_path)
    assert project_root('/usr/lib/python3/dist-packages') == str(tmp_path)
    assert project_root(os.path.join(sysconfig.get_paths()['purelib'])) == str(tmp_path)
    assert project_root(REPO) == REPO
    opt = _Options()
    opt['root_path'] = sysconfig.get_paths()['purelib']
    assert opt['root_path'] == str(tmp_path)


def test_training_states_newest_first_ignoring_foreign_files(tmp_path):
    from smfd_basicsr.patches import training_states
    assert training_states(tmp_path / 'missing') == []
    for name in ('10.state', '200.state', '30.state', '999.state.tmp', 'notes.txt'):
        (tmp_path / name).write_bytes(b'x')
    assert training_states(tmp_path) == [str(tmp_path / f'{i}.state') for i in (200, 30, 10)]


@pytest.mark.parametrize('key, value, expected', [
    ('network_g', {'type': 'SMFDUNett'}, "option 'network_g.type': unknown arch 'SMFDUNett'. Did you mean SMFDUNet"),
    ('mask_source', 'dataset', "option 'mask_source': 'dataset' is not valid. Valid: gt, generator, none"),
    ('model_type', 'SMFDModle', "option 'model_type': unknown model 'SMFDModle'. Did you mean SMFDModel"),
])
def test_option_check_names_key_and_valid_values(key, value, expected):
    from smfd_basicsr.options import OptionError, validate_options
    opt = {'model_type': 'SMFDModel', 'network_g': {'type': 'SMFDUNet'}, 'datasets': {}}
    opt[key] = value
    with pytest.raises(OptionError) as info:
        validate_options(opt, source='x.yml')
    assert str(info.value).startswith('x.yml: ') and expected in str(info.value)


def test_option_check_missing_dataset_path(tmp_path):
    from smfd_basicsr.options import OptionError, validate_options
    missing = str(tmp_path / 'nowhere')
    opt = {'model_type': 'SMFDModel', 'datasets': {'train': {'type': 'SMFDFaceDataset', 'dataroot_gt': missing}}}
    with pytest.raises(OptionError, match=f"option 'datasets.train.dataroot_gt': path '{missing}' does not exist"):
        validate_options(opt)


def test_resume_loader_replaced_in_both_copies_of_the_pipeline(monkeypatch):
    """`python -m basicsr.train` runs basicsr/train.py as __main__, a second copy of the module: both copies get
    the CPU-safe load_resume_state when the pipeline calls parse_options."""
    import basicsr.train
    fake_main = types.ModuleType('__main__')
    fake_main.__file__ = basicsr.train.__file__
    fake_main.load_resume_state = lambda opt: 'stock'
    monkeypatch.setitem(sys.modules, '__main__', fake_main)
    monkeypatch.setattr(basicsr.train, 'load_resume_state', lambda opt: 'stock')
    assert patches._train_pipeline_modules() == [basicsr.train, fake_main]
    patches._make_pipelines_cpu_safe()
    assert basicsr.train.load_resume_state is patches.load_resume_state
    assert fake_main.load_resume_state is patches.load_resume_state
    other = types.ModuleType('__main__')
    other.__file__ = os.path.join(REPO, 'some_script.py')
    other.load_resume_state = 'untouched'
    monkeypatch.setitem(sys.modules, '__main__', other)
    assert patches._train_pipeline_modules() == [basicsr.train]


def test_training_state_loads_on_cpu_without_running_code(tmp_path):
    good = tmp_path / '4.state'
    torch.save({'iter': 4, 'optimizers': [{'state': {0: {'exp_avg': torch.ones(2)}}}],
                'schedulers': [{'milestones': collections.Counter({10: 1})}]}, good)
    state = patches.load_training_state(str(good))
    assert state['iter'] == 4 and state['optimizers'][0]['state'][0]['exp_avg'].device.type == 'cpu'

    class Payload:
        def __reduce__(self):
            return (os.system, ('echo pwned',))

    bad = tmp_path / '5.state'
    torch.save({'iter': 5, 'x': Payload()}, bad)
    with pytest.raises(RuntimeError, match=r'cannot load training state .*5\.state'):
        patches.load_training_state(str(bad))


def test_auto_resume_steps_back_past_an_unreadable_newest_state(tmp_path, monkeypatch, capsys):
    """A truncated newest state (left by a SIGKILL under an unpatched BasicSR) is skipped with one line; the run
    resumes from the newest state that loads; an explicit resume_state that cannot be read is an error."""
    monkeypatch.chdir(tmp_path)
    states = tmp_path / 'experiments' / 'run' / 'training_states'
    states.mkdir(parents=True)
    torch.save({'epoch': 0, 'iter': 4, 'optimizers': [], 'schedulers': []}, states / '4.state')
    (states / '6.state').write_bytes(b'')
    opt = {'auto_resume': True, 'name': 'run', 'network_g': {}, 'path': {'resume_state': None, 'models': 'models'}}
    state = patches.load_resume_state(opt)
    assert state['iter'] == 4 and opt['path']['resume_state'].endswith('4.state')
    assert opt['path']['pretrain_network_g'] == os.path.join('models', 'net_g_4.pth')
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('auto_resume: skipping ') and '6.state' in err[0]

    (states / '4.state').write_bytes(b'PK\x03\x04 not a zip')
    with pytest.raises(RuntimeError, match=r'cannot load training state .*6\.state'):
        patches.load_resume_state(dict(opt, path={'resume_state': None, 'models': 'models'}))
    with pytest.raises(RuntimeError, match=r'cannot load training state .*4\.state'):
        patches.load_resume_state(dict(opt, auto_resume=False, path={'resume_state': str(states / '4.state')}))


def test_stock_models_save_atomically(tmp_path, monkeypatch):
    """SRModel (any stock BasicSR model) writes .pth/.state through a temporary file: a save killed mid-write
    leaves the previous file whole and nothing else in the folder."""
    from basicsr.models.sr_model import SRModel
    net = torch.nn.Conv2d(1, 2, 3)
    model = object.__new__(SRModel)
    model.opt = {'dist': False, 'rank': 0,
                 'path': {'models': str(tmp_path / 'models'), 'training_states': str(tmp_path / 'states')}}
    model.optimizers = [torch.optim.Adam(net.parameters())]
    model.schedulers = []
    model.save_network(torch.nn.DataParallel(net), 'net_g', 2)
    model.save_training_state(0, 2)
    saved = torch.load(tmp_path / 'models' / 'net_g_2.pth', weights_only=True)
    assert set(saved) == {'params'} and torch.equal(saved['params']['weight'], net.weight.detach())
    assert torch.load(tmp_path / 'states' / '2.state', weights_only=True)['iter'] == 2
    before = (tmp_path / 'states' / '2.state').read_bytes()

    def killed_mid_write(obj, f):
        f.write(b'PK\x03\x04 half')
        raise KeyboardInterrupt  # stands for the kill: the write never completes

    monkeypatch.setattr(torch, 'save', killed_mid_write)
    for save in (lambda: model.save_training_state(0, 2), lambda: model.save_network(net, 'net_g', 2)):
        with pytest.raises(KeyboardInterrupt):
            save()
    assert (tmp_path / 'states' / '2.state').read_bytes() == before
    assert os.listdir(tmp_path / 'states') == ['2.state'] and os.listdir(tmp_path / 'models') == ['net_g_2.pth']


def test_init_dist_falls_back_to_gloo_without_cuda(monkeypatch):
    import torch.distributed as dist
    calls = []
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(dist, 'init_process_group', lambda backend, **kw: calls.append(backend))
    patches.init_dist('pytorch', backend='nccl')
    assert calls == ['gloo']


def test_model_to_device_wraps_cpu_models_in_ddp_without_device_ids(monkeypatch):
    from torch.nn.parallel import DistributedDataParallel
    built = []
    monkeypatch.setattr(DistributedDataParallel, '__init__',
                        lambda self, module, **kw: built.append((module, kw)) or torch.nn.Module.__init__(self))
    model = types.SimpleNamespace(opt={'dist': True, 'num_gpu': 0}, device=torch.device('cpu'))
    net = torch.nn.Linear(2, 2)
    from basicsr.models.base_model import BaseModel
    wrapped = BaseModel.model_to_device(model, net)
    assert isinstance(wrapped, DistributedDataParallel)
    assert built[0][0] is net and 'device_ids' not in built[0][1]
    model.opt['dist'] = False
    assert BaseModel.model_to_device(model, net) is net  # the stock path: no DDP without dist


def _parse(monkeypatch, tmp_path, text, *extra, is_train=True):
    """parse_options as the stock entries call it, on an option file holding ``text``."""
    from basicsr.utils import options
    opt_file = tmp_path / 'opt.yml'
    opt_file.write_text(text)
    monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', str(opt_file), *extra])
    monkeypatch.chdir(tmp_path)
    return options.parse_options(sysconfig.get_paths()['purelib'], is_train=is_train)


def _refused(monkeypatch, tmp_path, text, *extra, is_train=True):
    with pytest.raises(SystemExit) as info:
        _parse(monkeypatch, tmp_path, text, *extra, is_train=is_train)
    message = str(info.value.code)
    assert '\n' not in message and message.startswith('train.py: error: ')
    assert not (tmp_path / 'experiments').exists() and not (tmp_path / 'results').exists()
    return message


TRAIN_OPT = f"""name: x
model_type: SRModel
scale: 1
num_gpu: 0
datasets:
  train: {{type: PairedImageDataset, dataroot_gt: {REPO}, dataroot_lq: {REPO}, batch_size_per_gpu: 2}}
network_g: {{type: SMFDUNet}}
path: {{}}
train:
  optim_g: {{type: Adam, lr: 1e-4}}
  total_iter: 4
logger: {{print_freq: 1, save_checkpoint_freq: 2}}
"""


def test_parse_options_checks_the_file_before_anything_is_built(tmp_path, monkeypatch):
    message = _refused(monkeypatch, tmp_path, TRAIN_OPT.replace('SRModel', 'SMFDModle'))
    assert "option 'model_type': unknown model 'SMFDModle'" in message


@pytest.mark.parametrize('text', ['', '\n\n', '# only a comment\n# and another\n'])
def test_empty_option_file_is_one_line_naming_the_file(tmp_path, monkeypatch, text):
    """Issue 14 item 8 (stock: TypeError: 'NoneType' object does not support item assignment)."""
    message = _refused(monkeypatch, tmp_path, text)
    assert f'{tmp_path / "opt.yml"}: expected a mapping of options, the file holds nothing' in message


def test_yaml_1_2_floats_in_the_file_and_in_force_yml(tmp_path, monkeypatch):
    """Issue 14 item 9: PyYAML (YAML 1.1) reads 1e-4 and 1e6 as strings; the plugin reads them as floats."""
    opt, _ = _parse(monkeypatch, tmp_path, TRAIN_OPT)
    assert opt['train']['optim_g']['lr'] == 1e-4 and isinstance(opt['train']['optim_g']['lr'], float)
    opt, _ = _parse(monkeypatch, tmp_path, TRAIN_OPT, '--force_yml', 'train:optim_g:lr=1e6', 'train:total_iter=8')
    assert opt['train']['optim_g']['lr'] == 1e6 and isinstance(opt['train']['optim_g']['lr'], float)
    assert opt['train']['total_iter'] == 8 and opt['path']['experiments_root'] == str(tmp_path / 'experiments' / 'x')


@pytest.mark.parametrize('entry, expected', [
    ('train:optim_g:lR=1e-3', "option 'train.optim_g.lR' is not in"),
    ('train:optim_g:lr', 'expected KEY:SUBKEY=VALUE'),
    ('train:optim_g:lr=fast', "option train.optim_g.lr: expected a number, got str 'fast'"),
    ('train:total_iter=0', 'option train.total_iter: must be >= 1, got 0'),
])
def test_force_yml_mistakes_are_one_line(tmp_path, monkeypatch, entry, expected):
    assert expected in _refused(monkeypatch, tmp_path, TRAIN_OPT, '--force_yml', entry)


@pytest.mark.parametrize('old, new, expected', [
    (f'dataroot_gt: {REPO}, ', '', 'option datasets.train.dataroot_gt: missing'),  # issue 14 item 10
    ('scale: 1\n', '', 'option scale: missing (PairedImageDataset of datasets.train reads it'),
    ('total_iter: 4', 'total_iter: 0', 'option train.total_iter: must be >= 1, got 0'),  # issue 14 item 5
    ('total_iter: 4', 'total_iter: -3', 'option train.total_iter: must be >= 1, got -3'),
    ('total_iter: 4', 'total_iter: 4.5', 'option train.total_iter: expected an integer, got float 4.5'),
    ('total_iter: 4', 'total_iter: [4]', 'option train.total_iter: expected an integer, got list [4]'),
    ('  total_iter: 4\n', '', 'option train.total_iter: missing'),
    ('lr: 1e-4', 'lr: -1e-4', 'option train.optim_g.lr: must be > 0, got -0.0001'),
    ('name: x\n', '', 'option name: missing'),
    ('num_gpu: 0', 'num_gpu: two', "option num_gpu: expected an integer, got str 'two'"),
    ('logger: {print_freq: 1, ', 'logger: {print_freq: 0, ', 'option logger.print_freq: must be >= 1, got 0'),
    ('batch_size_per_gpu: 2', 'batch_size_per_gpu: 0', 'option datasets.train.batch_size_per_gpu: must be >= 1'),
    ('path: {}', 'path: [1]', 'option path: expected a mapping, got list [1]'),
    ('  train: {type', '  training: {type', "option datasets.training: training reads only 'train' and 'val*'"),
])
def test_option_mistakes_are_one_line_naming_the_key(tmp_path, monkeypatch, old, new, expected):
    assert old in TRAIN_OPT
    assert expected in _refused(monkeypatch, tmp_path, TRAIN_OPT.replace(old, new, 1))


def test_test_entry_needs_val_save_img(tmp_path, monkeypatch):
    text = TRAIN_OPT.replace('  train: {type', '  test_1: {type')
    assert 'option val: missing' in _refused(monkeypatch, tmp_path, text, is_train=False)
    opt, _ = _parse(monkeypatch, tmp_path, text + 'val: {save_img: false}\n', is_train=False)
    assert opt['path']['results_root'] == str(tmp_path / 'results' / 'x')
    assert opt['datasets']['test_1']['phase'] == 'test'


@pytest.fixture()
def offline_lpips(tmp_path, monkeypatch):
    """No LPIPS backbone in the torch hub cache and no network (an air-gapped cluster)."""
    import urllib.error

    import lpips

    from smfd_models import metrics
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path / 'hub'))

    def offline(*args, **kwargs):
        raise urllib.error.URLError('[Errno -3] Temporary failure in name resolution')

    monkeypatch.setattr(lpips, 'LPIPS', offline)
    monkeypatch.setattr(metrics, '_LPIPS_MODELS', {})


LPIPS_VAL = ('val:\n  val_freq: 2\n  save_img: false\n  metrics:\n    psnr: {type: calculate_psnr, crop_border: 0}\n'
             '    lpips: {type: smfd_lpips, net: alex}\n')


def test_training_without_lpips_weights_refuses_before_any_work(tmp_path, monkeypatch, offline_lpips):
    message = _refused(monkeypatch, tmp_path, TRAIN_OPT + LPIPS_VAL)
    assert 'option val.metrics.lpips: LPIPS unavailable (the ImageNet weights of the LPIPS backbone' in message
    assert 'alexnet-owt-7be5be79.pth' in message and 'remove val.metrics.lpips' in message


def test_test_entry_without_lpips_weights_goes_on_with_the_other_metrics(tmp_path, monkeypatch, capsys,
                                                                         offline_lpips):
    """Offline without LPIPS' backbone, `basicsr/test.py` used to stop at the first image, losing every metric."""
    import basicsr.test
    text = TRAIN_OPT.replace('  train: {type', '  test_1: {name: t, io_backend: {type: disk}, type') + LPIPS_VAL
    data = tmp_path / 'data'
    data.mkdir()
    cv2.imwrite(str(data / '000.png'), np.full((16, 16, 3), 100, np.uint8))
    text = text.replace(f'dataroot_gt: {REPO}, dataroot_lq: {REPO}', f'dataroot_gt: {data}, dataroot_lq: {data}')
    text = text.replace('network_g: {type: SMFDUNet}', 'network_g: {type: SMFDUNet, use_mask: false, encoder_widths: '
                        '[4, 8], bottleneck_width: 8, decoder_widths: [8, 4], final_width: 4, dense_layers: 1, '
                        'growth: 2, head_channels: 4}')
    opt_file = tmp_path / 'opt.yml'
    opt_file.write_text(text)
    monkeypatch.setattr(sys, 'argv', ['test.py', '-opt', str(opt_file)])
    monkeypatch.chdir(tmp_path)
    # BasicSR sets its logger up once per process: an earlier test's set-up would keep this run's log file empty
    import logging

    import basicsr.utils.logger as basicsr_logger
    monkeypatch.setattr(basicsr_logger, 'initialized_logger', {})
    logger = logging.getLogger('basicsr')
    handlers = logger.handlers[:]
    logger.handlers.clear()
    try:
        basicsr.test.test_pipeline(sysconfig.get_paths()['purelib'])
    finally:
        for handler in logger.handlers:
            handler.close()
        logger.handlers[:] = handlers
    err = capsys.readouterr().err
    assert f'test.py: warning: {opt_file}: val.metrics.lpips: unavailable (the ImageNet weights' in err
    assert 'the other metrics go on without it' in err and 'Traceback' not in err
    log = ''.join(p.read_text() for p in (tmp_path / 'results' / 'x').glob('test_x_*.log'))
    assert '# psnr: ' in log and '# lpips' not in log
