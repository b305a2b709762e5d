"""BasicSR's own entries (stock SRModel + PairedImageDataset) driving an SMFD arch on tiny data made here.

Covers what the plugin fixes in stock BasicSR 1.4.2: outputs under the current directory instead of
site-packages, `--auto_resume` on a CPU-only machine after a SIGKILL, and DDP with gloo on CPU.
"""
import glob
import os
import signal
import subprocess
import sys
import sysconfig
import time

import cv2
import numpy as np
import pytest
import torch

from tests.helpers import run_python, write_yaml

BASICSR_DIR = os.path.join(sysconfig.get_paths()['purelib'], 'basicsr')
TINY_NET = {'type': 'SMFDUNet', 'use_mask': False, 'encoder_widths': [4, 8, 8, 8], 'bottleneck_width': 8,
            'decoder_widths': [8, 8, 8, 8], 'final_width': 8, 'growth': 4, 'head_channels': 8}


def make_paired_folders(root, n=4, size=32):
    rng = np.random.default_rng(0)
    for sub in ('gt', 'lq'):
        os.makedirs(root / sub, exist_ok=True)
    for i in range(n):
        gt = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        cv2.imwrite(str(root / 'gt' / f'{i:03d}.png'), gt)
        cv2.imwrite(str(root / 'lq' / f'{i:03d}.png'), cv2.GaussianBlur(gt, (5, 5), 0))


def train_options(root, name, total_iter=4, save_every=2, **overrides):
    data = {'type': 'PairedImageDataset', 'dataroot_gt': str(root / 'gt'), 'dataroot_lq': str(root / 'lq'),
            'io_backend': {'type': 'disk'}, 'filename_tmpl': '{}'}
    opt = {
        'name': name, 'model_type': 'SRModel', 'scale': 1, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {
            'train': dict(data, name='train', gt_size=32, use_hflip=False, use_rot=False, num_worker_per_gpu=0,
                          batch_size_per_gpu=2, dataset_enlarge_ratio=1, prefetch_mode=None),
            'val': dict(data, name='val'),
        },
        'network_g': dict(TINY_NET),
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {'ema_decay': 0, 'optim_g': {'type': 'Adam', 'lr': 1e-3},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [1000], 'gamma': 0.5},
                  'total_iter': total_iter, 'warmup_iter': -1, 'pixel_opt': {'type': 'MSELoss'}},
        'val': {'val_freq': save_every, 'save_img': True, 'suffix': None,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': False}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': save_every, 'use_tb_logger': True, 'wandb': None},
        'dist_params': {'backend': 'gloo', 'port': 29500},
    }
    opt.update(overrides)
    return opt


@pytest.fixture()
def paired(tmp_path):
    make_paired_folders(tmp_path / 'data')
    return tmp_path


@pytest.mark.parametrize('entry', ['module', 'script'])
def test_stock_train_and_test_entries_write_under_cwd(paired, entry):
    opt_file = write_yaml(paired / 'train.yml', train_options(paired / 'data', f'smoke_{entry}'))
    args = ['-m', 'basicsr.train'] if entry == 'module' else [os.path.join(BASICSR_DIR, 'train.py')]
    run_python(args + ['-opt', opt_file], cwd=paired)
    exp = paired / 'experiments' / f'smoke_{entry}'
    assert (exp / 'models' / 'net_g_4.pth').is_file() and (exp / 'training_states' / '4.state').is_file()
    assert glob.glob(str(exp / 'visualization' / '*' / '*.png')), 'validation pictures missing'
    assert (paired / 'tb_logger' / f'smoke_{entry}').is_dir()
    assert not os.path.exists(os.path.join(os.path.dirname(BASICSR_DIR), 'experiments'))
    assert not os.path.exists(os.path.join(os.path.dirname(BASICSR_DIR), 'tb_logger'))

    test_opt = train_options(paired / 'data', f'smoke_{entry}_test')
    test_opt['datasets'] = {'test_1': test_opt['datasets']['val']}
    test_opt['path']['pretrain_network_g'] = str(exp / 'models' / 'net_g_4.pth')
    test_file = write_yaml(paired / 'test.yml', test_opt)
    args = ['-m', 'basicsr.test'] if entry == 'module' else [os.path.join(BASICSR_DIR, 'test.py')]
    run_python(args + ['-opt', test_file], cwd=paired)
    assert len(glob.glob(str(paired / 'results' / f'smoke_{entry}_test' / 'visualization' / 'val' / '*.png'))) == 4


def test_project_entry_rejects_unknown_arch_before_training(paired):
    opt = train_options(paired / 'data', 'bad_arch', network_g={'type': 'SMFDUnet'})
    result = run_python(['-m', 'smfd_basicsr.train', '-opt', write_yaml(paired / 'bad.yml', opt)], cwd=paired,
                        check=False)
    assert result.returncode != 0
    assert "option 'network_g.type': unknown arch 'SMFDUnet'. Did you mean SMFDUNet" in result.stderr
    assert not (paired / 'experiments').exists(), 'nothing may be created before the options are valid'


def test_sigkill_then_auto_resume_on_cpu(paired):
    opt_file = write_yaml(paired / 'train.yml', train_options(paired / 'data', 'resume', total_iter=400, save_every=2))
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.Popen([sys.executable, '-m', 'smfd_basicsr.train', '-opt', opt_file], cwd=paired, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    states = paired / 'experiments' / 'resume' / 'training_states'
    deadline = time.time() + 240
    while time.time() < deadline and len(glob.glob(str(states / '*.state'))) < 2:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = sorted(int(os.path.basename(p)[:-6]) for p in glob.glob(str(states / '*.state')))
    assert len(saved) >= 2, 'training did not get far enough to test resuming'
    last = saved[-1]

    resumed = write_yaml(paired / 'train2.yml', train_options(paired / 'data', 'resume', total_iter=last + 2,
                                                              save_every=2))
    run_python(['-m', 'basicsr.train', '-opt', resumed, '--auto_resume'], cwd=paired)
    log = ''.join(open(p).read() for p in glob.glob(str(paired / 'experiments' / 'resume' / 'train_resume_*.log')))
    assert 'Resuming training from epoch' in log and f'iter: {last}.' in log
    assert (paired / 'experiments' / 'resume' / 'models' / f'net_g_{last + 2}.pth').is_file()


DDP_DRIVER = '''
import os, sys, torch, torch.distributed as dist
from smfd_basicsr import register
register()
import basicsr.train as entry
built = {}
stock_build_model = entry.build_model
def build_model(opt):
    built['model'] = stock_build_model(opt)
    return built['model']
entry.build_model = build_model
entry.train_pipeline(os.getcwd())
net = built['model'].get_bare_model(built['model'].net_g)
torch.save({k: v.detach().cpu() for k, v in net.named_parameters()}, f'rank{dist.get_rank()}.pth')
'''


def test_ddp_two_cpu_processes_keep_identical_weights(paired):
    opt = train_options(paired / 'data', 'ddp', total_iter=3, save_every=100)
    opt['datasets']['train']['batch_size_per_gpu'] = 1
    # Stock SRModel validates on rank 0 through the DDP wrapper, whose buffer broadcast then waits for rank 1:
    # a stock BasicSR limitation with BN archs (SMFD's own models validate on the bare network).
    del opt['val'], opt['datasets']['val']
    opt_file = write_yaml(paired / 'ddp.yml', opt)
    (paired / 'driver.py').write_text(DDP_DRIVER)
    torchrun = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2']  # a free port
    result = subprocess.run(torchrun + ['driver.py', '-opt', opt_file, '--launcher', 'pytorch'], cwd=paired,
                            env=dict(os.environ, OMP_NUM_THREADS='1'), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    w0, w1 = (torch.load(paired / f'rank{r}.pth', weights_only=True) for r in (0, 1))
    # Ranks start from different seeds (seed + rank) and read different samples: only DDP's parameter
    # broadcast and gradient all-reduce make the parameters equal (BN running stats are per rank until the
    # next forward re-broadcasts them, so they are not compared).
    assert w0.keys() == w1.keys()
    for key in w0:
        assert torch.equal(w0[key], w1[key]), key
