"""Bad-input corpus, option files through BasicSR's own entries (issue 14 items 5, 8, 9, 10 and the rest).

Each case writes an option file (a valid tiny training or test file, then one mistake) and runs BasicSR's stock
``train_pipeline`` / ``test_pipeline`` in-process (the plugin's ``parse_options`` refuses before anything is built),
two of them as real subprocesses. Checked: exit status 1 with one line naming the file and the key, no traceback,
the option file unchanged, no ``experiments/``, ``results/`` or ``tb_logger/`` folder created.
"""
import hashlib
import os
import subprocess
import sys
import sysconfig

import cv2
import numpy as np
import pytest
import yaml

from smfd_basicsr import register

register()

import basicsr.test  # noqa: E402
import basicsr.train  # noqa: E402

BASICSR_DIR = os.path.join(sysconfig.get_paths()['purelib'], 'basicsr')
NET = {'type': 'SMFDUNet', 'use_mask': False, 'encoder_widths': [4, 8], 'bottleneck_width': 8,
       'decoder_widths': [8, 4], 'final_width': 4, 'dense_layers': 1, 'growth': 2, 'head_channels': 4}


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('paired')
    for sub in ('gt', 'lq'):
        (root / sub).mkdir()
        cv2.imwrite(str(root / sub / '000.png'), np.zeros((16, 16, 3), np.uint8))
    return root


def train_opt(data):
    paired = {'type': 'PairedImageDataset', 'dataroot_gt': str(data / 'gt'), 'dataroot_lq': str(data / 'lq'),
              'io_backend': {'type': 'disk'}}
    return {
        'name': 'corpus', 'model_type': 'SRModel', 'scale': 1, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {'train': dict(paired, name='train', gt_size=16, batch_size_per_gpu=1, num_worker_per_gpu=0),
                     'val': dict(paired, name='val')},
        'network_g': dict(NET),
        'path': {'pretrain_network_g': None, 'resume_state': None},
        'train': {'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'total_iter': 2, 'pixel_opt': {'type': 'MSELoss'},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [10], 'gamma': 0.5}},
        'val': {'val_freq': 2, 'save_img': False,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': False},
    }


def test_opt(data):
    opt = train_opt(data)
    opt['datasets'] = {'test_1': opt['datasets']['val']}
    del opt['train'], opt['logger']
    return opt


def _set(opt, dotted, value):
    *parents, last = dotted.split('.')
    node = opt
    for key in parents:
        node = node[key]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value


DELETE = object()
# (id, dotted key, new value, expected part of the message); DELETE removes the key
TRAIN_CASES = [
    ('name_missing', 'name', DELETE, 'option name: missing'),
    ('name_number', 'name', 123, 'option name: expected a text, got 123'),
    ('name_empty', 'name', '', "option name: expected a text, got ''"),
    ('num_gpu_missing', 'num_gpu', DELETE, 'option num_gpu: missing'),
    ('num_gpu_negative', 'num_gpu', -1, 'option num_gpu: must be >= 0, got -1'),
    ('num_gpu_text', 'num_gpu', 'two', "option num_gpu: expected an integer, got str 'two'"),
    ('num_gpu_bool', 'num_gpu', True, 'option num_gpu: expected an integer, got bool True'),
    ('datasets_missing', 'datasets', DELETE, 'option datasets: missing'),
    ('datasets_list', 'datasets', [1, 2], 'option datasets: expected a mapping, got list'),
    ('datasets_empty', 'datasets', {}, 'option datasets: empty'),
    ('dataset_text', 'datasets.train', 'gt', 'option datasets.train: expected a mapping, got str'),
    ('dataroot_gt_missing', 'datasets.train.dataroot_gt', DELETE, 'option datasets.train.dataroot_gt: missing'),
    ('dataroot_lq_missing', 'datasets.val.dataroot_lq', DELETE, 'option datasets.val.dataroot_lq: missing'),
    ('dataroot_gt_null', 'datasets.train.dataroot_gt', None, 'option datasets.train.dataroot_gt: missing'),
    ('dataroot_nowhere', 'datasets.train.dataroot_gt', '/nowhere/gt',
     "option 'datasets.train.dataroot_gt': path '/nowhere/gt' does not exist"),
    ('dataset_type_unknown', 'datasets.train.type', 'PairedImageDatset',
     "unknown dataset 'PairedImageDatset'. Did you mean PairedImageDataset"),
    ('no_train_phase', 'datasets.train', DELETE, 'option datasets.train: missing (training needs a train phase)'),
    ('batch_missing', 'datasets.train.batch_size_per_gpu', DELETE,
     'option datasets.train.batch_size_per_gpu: missing'),
    ('batch_zero', 'datasets.train.batch_size_per_gpu', 0, 'datasets.train.batch_size_per_gpu: must be >= 1, got 0'),
    ('batch_float', 'datasets.train.batch_size_per_gpu', 1.5, 'expected an integer, got float 1.5'),
    ('train_missing', 'train', DELETE, 'option train: missing'),
    ('train_list', 'train', ['a'], 'option train: expected a mapping, got list'),
    ('total_iter_zero', 'train.total_iter', 0, 'option train.total_iter: must be >= 1, got 0'),  # item 5
    ('total_iter_negative', 'train.total_iter', -5, 'option train.total_iter: must be >= 1, got -5'),
    ('total_iter_text', 'train.total_iter', 'many', "option train.total_iter: expected an integer, got str 'many'"),
    ('total_iter_missing', 'train.total_iter', DELETE, 'option train.total_iter: missing'),
    ('total_iter_nan', 'train.total_iter', float('nan'), 'option train.total_iter: expected an integer'),
    ('lr_text', 'train.optim_g.lr', 'fast', "option train.optim_g.lr: expected a number, got str 'fast'"),
    ('lr_zero', 'train.optim_g.lr', 0, 'option train.optim_g.lr: must be > 0, got 0'),
    ('lr_missing', 'train.optim_g.lr', DELETE, 'option train.optim_g.lr: missing'),
    ('lr_list', 'train.optim_g.lr', [1e-3], 'option train.optim_g.lr: expected a number, got list'),
    ('logger_missing', 'logger', DELETE, 'option logger: missing'),
    ('print_freq_zero', 'logger.print_freq', 0, 'option logger.print_freq: must be >= 1, got 0'),
    ('checkpoint_freq_missing', 'logger.save_checkpoint_freq', DELETE, 'option logger.save_checkpoint_freq: missing'),
    ('val_freq_zero', 'val.val_freq', 0, 'option val.val_freq: must be >= 1, got 0'),
    ('val_text', 'val', 'yes', "option val: expected a mapping, got str 'yes'"),
    ('arch_unknown', 'network_g.type', 'SMFDUnet', "option 'network_g.type': unknown arch 'SMFDUnet'"),
    ('model_unknown', 'model_type', 'SRModle', "option 'model_type': unknown model 'SRModle'"),
    ('loss_unknown', 'train.pixel_opt.type', 'MSELos', "option 'train.pixel_opt.type': unknown loss 'MSELos'"),
    ('metric_unknown', 'val.metrics.psnr.type', 'psnr', "option 'val.metrics.psnr.type': unknown metric 'psnr'"),
    ('pretrain_nowhere', 'path.pretrain_network_g', '/nowhere/net_g.pth',
     "option 'path.pretrain_network_g': path '/nowhere/net_g.pth' does not exist"),
    ('resume_nowhere', 'path.resume_state', '/nowhere/4.state',
     "option 'path.resume_state': path '/nowhere/4.state' does not exist"),
    ('path_list', 'path', [1], 'option path: expected a mapping, got list [1]'),
    ('misspelt_val', 'vall', {'val_freq': 2}, "option vall: unknown option; did you mean 'val'?"),
    ('mask_source_bad', 'mask_source', 'dataset', "option 'mask_source': 'dataset' is not valid"),
    ('scale_missing', 'scale', DELETE, 'option scale: missing (PairedImageDataset of datasets.train reads it'),
]


@pytest.fixture()
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _digest(path):
    return hashlib.sha256(open(path, 'rb').read()).hexdigest() if os.path.isfile(path) else None


def _refused(monkeypatch, capsys, folder, opt_file, *extra, entry='train'):
    monkeypatch.setattr(sys, 'argv', [f'{entry}.py', '-opt', str(opt_file), *extra])
    before = _digest(opt_file)
    pipeline = basicsr.train.train_pipeline if entry == 'train' else basicsr.test.test_pipeline
    with pytest.raises(SystemExit) as info:
        pipeline(BASICSR_DIR)  # the stock entries pass site-packages; the plugin moves outputs to the cwd
    message = str(info.value.code)
    printed = capsys.readouterr()
    assert 'Traceback' not in printed.err + printed.out
    assert message.startswith(f'{entry}.py: error: ') and '\n' not in message, message
    assert _digest(opt_file) == before
    for sub in ('experiments', 'results', 'tb_logger'):
        assert not (folder / sub).exists(), f'{sub}/ created before the options were checked'
    return message


def _write(path, opt):
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path


@pytest.mark.parametrize('key, value, expected', [c[1:] for c in TRAIN_CASES], ids=[c[0] for c in TRAIN_CASES])
def test_train_option_mistake(in_tmp, monkeypatch, capsys, data, key, value, expected):
    opt = train_opt(data)
    _set(opt, key, value)
    opt_file = _write(in_tmp / 'train.yml', opt)
    message = _refused(monkeypatch, capsys, in_tmp, opt_file)
    assert f'{opt_file}: ' in message and expected in message, message


TEST_CASES = [
    ('val_missing', 'val', DELETE, 'option val: missing'),
    ('save_img_missing', 'val.save_img', DELETE, 'option val.save_img: missing'),
    ('test_dataroot_missing', 'datasets.test_1.dataroot_gt', DELETE, 'option datasets.test_1.dataroot_gt: missing'),
    ('test_datasets_empty', 'datasets', {}, 'option datasets: empty (no dataset to test)'),
    ('test_pretrain_nowhere', 'path.pretrain_network_g', '/nowhere/net.pth', "path '/nowhere/net.pth' does not exist"),
]


@pytest.mark.parametrize('key, value, expected', [c[1:] for c in TEST_CASES], ids=[c[0] for c in TEST_CASES])
def test_test_option_mistake(in_tmp, monkeypatch, capsys, data, key, value, expected):
    opt = test_opt(data)
    _set(opt, key, value)
    opt_file = _write(in_tmp / 'test.yml', opt)
    assert expected in _refused(monkeypatch, capsys, in_tmp, opt_file, entry='test')


FILE_CASES = {
    'empty': b'',  # issue 14 item 8: TypeError: 'NoneType' object does not support item assignment
    'comments_only': b'# name: x\n# num_gpu: 0\n',
    'blank_lines': b'\n   \n\n',
    'a_list': b'- name\n- num_gpu\n',
    'a_scalar': b'just some text\n',
    'bad_indent': b'name: x\n  num_gpu: 0\n datasets: {}\n',
    'tab_indent': b'name: x\ntrain:\n\ttotal_iter: 2\n',
    'not_utf8': b'name: \xff\xfe\x00x\n',
    'binary': bytes(range(256)),
    'unclosed_bracket': b'name: x\ndatasets: {train: [\n',
    'duplicate_anchor_alias': b'name: *nothing\n',
    'python_tag': b'name: !!python/object/apply:os.system ["echo pwned"]\n',
}
FILE_EXPECTED = {
    'empty': 'expected a mapping of options, the file holds nothing (empty or only comments)',
    'comments_only': 'the file holds nothing (empty or only comments)',
    'blank_lines': 'the file holds nothing (empty or only comments)',
    'a_list': 'expected a mapping of options, the file holds a list',
    'a_scalar': 'expected a mapping of options, the file holds a str',
}


@pytest.mark.parametrize('case', sorted(FILE_CASES))
def test_broken_option_file(in_tmp, monkeypatch, capsys, case):
    opt_file = in_tmp / f'{case}.yml'
    opt_file.write_bytes(FILE_CASES[case])
    message = _refused(monkeypatch, capsys, in_tmp, opt_file)
    assert f'{opt_file}: ' in message
    assert FILE_EXPECTED.get(case, 'not a valid YAML file') in message, message


@pytest.mark.parametrize('case', ['missing', 'folder'])
def test_option_path_that_is_no_file(in_tmp, monkeypatch, capsys, case):
    path = in_tmp / 'opt.yml'
    if case == 'folder':
        path.mkdir()
    assert f'{path}: option file not found' in _refused(monkeypatch, capsys, in_tmp, path)


@pytest.mark.parametrize('entry, expected', [
    ('train:optim_g:lr', 'expected KEY:SUBKEY=VALUE'),
    ('=1', 'expected KEY:SUBKEY=VALUE'),
    ('train::lr=1', 'expected KEY:SUBKEY=VALUE'),
    ('train:optim_g:lR=1e-3', "option 'train.optim_g.lR' is not in"),
    ('trian:total_iter=3', "option 'trian' is not in"),
    ('name:x=1', "option 'name.x' is not in"),
    ('train:total_iter=0', 'option train.total_iter: must be >= 1, got 0'),
    ('train:total_iter=-1', 'option train.total_iter: must be >= 1, got -1'),
    ('train:optim_g:lr=abc', "option train.optim_g.lr: expected a number, got str 'abc'"),
    ('train:optim_g:lr=[1', "'[1' is not a valid YAML value"),
])
def test_force_yml_mistake(in_tmp, monkeypatch, capsys, data, entry, expected):
    opt_file = _write(in_tmp / 'train.yml', train_opt(data))
    message = _refused(monkeypatch, capsys, in_tmp, opt_file, '--force_yml', entry)
    assert expected in message, message


@pytest.mark.parametrize('text, expected', [('lr: 1e-4', 1e-4), ('lr: 1E-4', 1e-4), ('lr: 1.0e-4', 1e-4),
                                            ('lr: 2e+3', 2000.0), ('lr: .5e-2', 0.005)])
def test_yaml_1_2_floats_are_floats(in_tmp, monkeypatch, data, text, expected):
    """Issue 14 item 9, the file side: PyYAML alone reads 1e-4 as the string '1e-4'."""
    from basicsr.utils import options
    opt_file = in_tmp / 'train.yml'
    opt_file.write_text(yaml.safe_dump(train_opt(data), sort_keys=False).replace('lr: 0.001', text))
    monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', str(opt_file)])
    opt, _ = options.parse_options(BASICSR_DIR)
    assert opt['train']['optim_g']['lr'] == expected and type(opt['train']['optim_g']['lr']) is float


@pytest.mark.parametrize('entry, key, expected', [
    ('train:optim_g:lr=1e6', ('train', 'optim_g', 'lr'), 1e6),  # issue 14 item 9: was the string '1e6'
    ('train:optim_g:lr=5e-5', ('train', 'optim_g', 'lr'), 5e-5),
    ('train:total_iter=1e3', ('train', 'total_iter'), 1000),
    ('train:scheduler:milestones=[2, 4]', ('train', 'scheduler', 'milestones'), [2, 4]),
    ('val:save_img=true', ('val', 'save_img'), True),
    ('path:pretrain_network_g=~', ('path', 'pretrain_network_g'), None),
])
def test_force_yml_values_are_yaml(in_tmp, monkeypatch, data, entry, key, expected):
    from basicsr.utils import options
    opt_file = _write(in_tmp / 'train.yml', train_opt(data))
    monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', str(opt_file), '--force_yml', entry])
    opt, _ = options.parse_options(BASICSR_DIR)
    value = opt
    for k in key:
        value = value[k]
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize('args, entry, expected', [
    (['-m', 'basicsr.train'], 'train.py', 'the file holds nothing (empty or only comments)'),
    ([os.path.join(BASICSR_DIR, 'test.py')], 'test.py', 'option datasets.test_1.dataroot_gt: missing'),
])
def test_stock_entries_in_a_subprocess_print_one_line(tmp_path, data, args, entry, expected):
    """The real command lines: status 1, the one line on stderr, no traceback (item 8 and item 10)."""
    opt_file = tmp_path / 'x.yml'
    if entry == 'train.py':
        opt_file.write_text('# nothing here yet\n')
    else:
        opt = test_opt(data)
        del opt['datasets']['test_1']['dataroot_gt']
        _write(opt_file, opt)
    result = subprocess.run([sys.executable, *args, '-opt', str(opt_file)], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert result.returncode == 1
    assert 'Traceback' not in result.stderr
    lines = [line for line in result.stderr.splitlines() if 'error:' in line]
    assert lines == [f'{entry}: error: {opt_file}: {lines[0].split(f"{opt_file}: ", 1)[1]}'] and expected in lines[0]
    assert not (tmp_path / 'experiments').exists() and not (tmp_path / 'results').exists()
