"""SMFDModel / SMFDMaskGeneratorModel end to end through BasicSR's own entries, on tiny synthetic faces.

Subprocess runs (`python -m basicsr.train` / `basicsr.test`, cwd = a temporary folder) cover: training with
validation, pictures, EMA and the protocol; the cascade with a frozen generator; early stopping (exit 0);
test mode for both models; predicted masks reused as `mask_root_pred`. In-process tests cover
option errors, safe loading and CPU DDP.
"""
import glob
import json
import os
import re
import socket

import cv2
import numpy as np
import pytest
import torch

from smfd_data.synthetic_faces import generate_face
from tests.helpers import run_python, write_yaml

SIZE = 32
DEGRADATION = {'gaussian_sizes': [3, 5], 'motion_sizes': [3, 5]}  # kernels that fit a 32² face
TINY_MASK_NET = {'type': 'MaskGenerator', 'in_channels': 1, 'num_classes': 5, 'encoder_widths': [4, 8, 8, 8],
                 'decoder_widths': [8, 8, 8], 'final_width': 8, 'dense_layers': 1, 'head_channels': 8}
TINY_SMFD_NET = {'type': 'SMFDUNet', 'encoder_widths': [4, 8, 8, 8], 'bottleneck_width': 8,
                 'decoder_widths': [8, 8, 8, 8], 'final_width': 8, 'dense_layers': 1, 'head_channels': 8}


def make_prepared(root, n=12, n_val=2):
    """The prepared CelebAMask-HQ layout (images/, labels/, meta_info/) with synthetic faces."""
    for sub in ('images', 'labels', 'meta_info'):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    stems = [f'{i:05d}' for i in range(n)]
    for i, stem in enumerate(stems):
        rgb, labels = generate_face(np.random.default_rng([7, i]), SIZE)
        cv2.imwrite(os.path.join(root, 'images', f'{stem}.png'), np.ascontiguousarray(rgb[..., ::-1]))
        cv2.imwrite(os.path.join(root, 'labels', f'{stem}.png'), labels)
    for split, names in (('train', stems[n_val:]), ('val', stems[:n_val])):
        with open(os.path.join(root, 'meta_info', f'{split}.txt'), 'w') as f:
            f.write('\n'.join(names) + '\n')
    return root


def dataset_opt(root, split, name, **extra):
    opt = {'name': name, 'type': 'SMFDFaceDataset', 'dataroot_gt': f'{root}/images', 'dataroot_mask': f'{root}/labels',
           'meta_info_file': f'{root}/meta_info/{split}.txt', 'gt_size': SIZE, 'num_classes': 5,
           'degradation': DEGRADATION}
    if split == 'train':
        opt.update(augment=False, deterministic=True, use_shuffle=True, num_worker_per_gpu=0, batch_size_per_gpu=4,
                   dataset_enlarge_ratio=1, prefetch_mode=None)
    opt.update(extra)
    return opt


def train_opt(root, name, model_type, network_g, metrics, total_iter=20, val_freq=10, protocol=None, **extra):
    lq = {'gray_lq': True} if model_type == 'SMFDMaskGeneratorModel' else {}
    opt = {
        'name': name, 'model_type': model_type, 'num_gpu': 'auto', 'manual_seed': 0,
        'datasets': {'train': dataset_opt(root, 'train', 'train', **lq), 'val': dataset_opt(root, 'val', 'val', **lq)},
        'network_g': dict(network_g),
        'path': {'pretrain_network_g': None, 'resume_state': None},
        'train': {'ema_decay': 0.9, 'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'total_iter': total_iter,
                  'warmup_iter': -1, 'protocol': protocol or {}},
        'val': {'val_freq': val_freq, 'save_img': True, 'tb_images': 1, 'metrics': metrics},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': val_freq, 'use_tb_logger': True, 'wandb': None},
    }
    opt.update(extra)
    return opt


def eval_opt(name, model_type, network_g, weights, datasets, metrics, **extra):
    opt = {'name': name, 'model_type': model_type, 'num_gpu': 'auto', 'manual_seed': 0, 'datasets': datasets,
           'network_g': dict(network_g), 'path': {'pretrain_network_g': weights, 'param_key_g': 'params_ema'},
           'val': {'save_img': True, 'suffix': None, 'metrics': metrics}}
    opt.update(extra)
    return opt


MASK_METRICS = {'dice': {'type': 'smfd_dice'}, 'jaccard': {'type': 'smfd_jaccard'}}
SMFD_METRICS = {'psnr': {'type': 'calculate_psnr', 'crop_border': 0},
                'ssim': {'type': 'calculate_ssim', 'crop_border': 0},
                'mse': {'type': 'smfd_mse', 'better': 'lower'}, 'psnr_face': {'type': 'smfd_region_psnr'},
                'ssim_face': {'type': 'smfd_region_ssim'}}


@pytest.fixture(scope='module')
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp('models')
    make_prepared(str(root / 'data'))
    return root


def train(work, opt, check=True):
    result = run_python(['-m', 'basicsr.train', '-opt', write_yaml(work / f'{opt["name"]}.yml', opt)], cwd=work,
                        check=check)
    return result, work / 'experiments' / opt['name']


def losses_from_log(exp, name):
    log = ''.join(open(p).read() for p in glob.glob(str(exp / 'train_*.log')))
    return [float(v) for v in re.findall(rf'{name}: ([0-9.e+-]+)', log)], log


@pytest.fixture(scope='module')
def mask_run(work):
    opt = train_opt('data', 'mask_gen', 'SMFDMaskGeneratorModel', TINY_MASK_NET, MASK_METRICS,
                    protocol={'plateau': {'patience': 5}, 'save_best': {}})
    _, exp = train(work, opt)
    return exp


def test_mask_generator_trains_validates_and_saves(work, mask_run):
    models = mask_run / 'models'
    latest = torch.load(models / 'net_g_latest.pth', weights_only=True)
    assert set(latest) == {'params', 'params_ema'}  # EMA the BasicSR way
    assert any(not torch.equal(latest['params'][k], latest['params_ema'][k]) for k in latest['params']
               if latest['params'][k].is_floating_point())
    best = json.loads((models / 'net_g_best.json').read_text())
    assert best['metric'] == 'dice' and best['mode'] == 'max' and best['iter'] in (10, 16)
    assert 0 <= best['value'] <= 1 and best['value'] == best['metrics']['dice']
    state = torch.load(mask_run / 'training_states' / '10.state', weights_only=True)
    assert state['protocol']['save_best']['best_iter'] == 10  # refreshed after the validation at the same iter
    # BasicSR's loop: 10 training images, batch 4, drop_last -> 2 iterations per epoch, 8 epochs = 16 iterations
    labels = cv2.imread(str(mask_run / 'visualization' / 'pred_masks' / '10' / '00000.png'), cv2.IMREAD_UNCHANGED)
    assert labels.shape == (SIZE, SIZE) and labels.dtype == np.uint8 and labels.max() < 5
    compare = cv2.imread(str(mask_run / 'visualization' / '00000' / '00000_10_compare.png'))
    assert compare.shape == (SIZE, 3 * SIZE + 2 * 2, 3)  # blurry | prediction | GT with 2-px gaps
    assert glob.glob(str(work / 'tb_logger' / 'mask_gen' / 'events.*'))
    dice, _ = losses_from_log(mask_run, 'l_dice')
    assert len(dice) == 16 and all(0 <= d <= 1 for d in dice)


@pytest.fixture(scope='module')
def mask_test_run(work, mask_run):
    weights = str(mask_run / 'models' / 'net_g_best.pth')
    opt = eval_opt('mask_gen_test', 'SMFDMaskGeneratorModel', TINY_MASK_NET, weights,
                   {'test_1': dataset_opt('data', 'val', 'val', gray_lq=True)}, MASK_METRICS)
    run_python(['-m', 'basicsr.test', '-opt', write_yaml(work / 'mask_test.yml', opt)], cwd=work)
    return work / 'results' / 'mask_gen_test'


def test_mask_generator_test_mode_writes_pred_masks(mask_test_run):
    pred_dir = mask_test_run / 'visualization' / 'val' / 'pred_masks'
    assert sorted(os.listdir(pred_dir)) == ['00000.png', '00001.png']
    log = ''.join(open(p).read() for p in glob.glob(str(mask_test_run / 'test_*.log')))
    assert re.search(r'# dice: \d\.\d{4}', log) and re.search(r'# jaccard: \d\.\d{4}', log)


def test_smfd_gt_mask_trains_loss_decreases_and_tests(work, mask_run, mask_test_run):
    opt = train_opt('data', 'smfd_gt', 'SMFDModel', TINY_SMFD_NET, SMFD_METRICS, mask_source='gt',
                    protocol={'plateau': {}, 'early_stop': {}, 'save_best': {}})
    _, exp = train(work, opt)
    l_pix, log = losses_from_log(exp, 'l_pix')
    assert len(l_pix) == 16
    # deterministic degradations, fixed samples: MSE must go down (post-processing starts far from the target)
    assert np.mean(l_pix[-4:]) < 0.8 * np.mean(l_pix[:4]), l_pix
    assert 'Loss [MSELoss] is created' in log  # §3.4.6.4 default
    assert (exp / 'models' / 'net_g_best.pth').is_file()
    pictures = glob.glob(str(exp / 'visualization' / '00000' / '00000_10_compare.png'))
    assert pictures and cv2.imread(pictures[0]).shape == (SIZE, 4 * SIZE + 3 * 2, 3)  # blurry|mask|output|GT

    # test mode, same class: GT masks, masks predicted by the generator's test run (mask_root_pred), and the
    # frozen generator in the loop (per-dataset mask_source)
    datasets = {'test_1': dataset_opt('data', 'val', 'gt_masks'),
                'test_2': dataset_opt('data', 'val', 'pred_files',
                                      mask_root_pred=str(mask_test_run / 'visualization' / 'val' / 'pred_masks')),
                'test_3': dataset_opt('data', 'val', 'cascade', mask_source='generator')}
    topt = eval_opt('smfd_gt_test', 'SMFDModel', TINY_SMFD_NET, str(exp / 'models' / 'net_g_best.pth'), datasets,
                    SMFD_METRICS, mask_source='gt', network_mask=dict(TINY_MASK_NET))
    topt['path'].update(pretrain_network_mask=str(mask_run / 'models' / 'net_g_best.pth'))
    run_python(['-m', 'basicsr.test', '-opt', write_yaml(work / 'smfd_test.yml', topt)], cwd=work)
    res = work / 'results' / 'smfd_gt_test'
    for name in ('gt_masks', 'pred_files', 'cascade'):
        assert len(glob.glob(str(res / 'visualization' / name / '*_smfd_gt_test.png'))) == 2
        assert len(glob.glob(str(res / 'visualization' / name / 'compare' / '*.png'))) == 2
    log = ''.join(open(p).read() for p in glob.glob(str(res / 'test_*.log')))
    assert re.findall(r'Validation (\w+)', log) == ['gt_masks', 'pred_files', 'cascade']
    assert log.count('# ssim_face:') == 3
    pics = {name: cv2.imread(str(res / 'visualization' / name / 'compare' / '00000.png'))
            for name in ('gt_masks', 'pred_files', 'cascade')}
    blurry, mask = slice(0, SIZE), slice(SIZE + 2, 2 * SIZE + 2)
    assert np.array_equal(pics['gt_masks'][:, blurry], pics['cascade'][:, blurry])  # same blurry input
    # the generator's saved predictions and its in-loop argmax agree (gray conversion may flip rare ties)
    assert np.mean(np.all(pics['pred_files'][:, mask] == pics['cascade'][:, mask], axis=2)) > 0.98
    assert not np.array_equal(pics['gt_masks'][:, mask], pics['cascade'][:, mask])


def test_smfd_generator_cascade(work, mask_run):
    opt = train_opt('data', 'smfd_cascade', 'SMFDModel', TINY_SMFD_NET, SMFD_METRICS, total_iter=4, val_freq=4,
                    mask_source='generator', network_mask=dict(TINY_MASK_NET))
    opt['path'].update(pretrain_network_mask=str(mask_run / 'models' / 'net_g_latest.pth'),
                       ignore_resume_networks=['network_mask'])
    opt['train']['optim_g'] = {'type': 'AdamW', 'lr': 1e-3, 'weight_decay': 1e-4}
    _, exp = train(work, opt)
    _, log = losses_from_log(exp, 'l_pix')
    assert 'with param key: [params_ema]' in log and 'frozen MaskGenerator' in log
    saved = torch.load(exp / 'models' / 'net_g_latest.pth', weights_only=True)
    assert not any(k.startswith('net_mask') for k in saved['params'])  # the frozen generator is not net_g
    assert cv2.imread(str(exp / 'visualization' / '00000' / '00000_4_compare.png')).shape[1] == 4 * SIZE + 6


def test_early_stopping_ends_cleanly(work):
    # min_delta 1: only the first validation counts as an improvement -> stop at the second (iter 4)
    opt = train_opt('data', 'smfd_stop', 'SMFDModel', dict(TINY_SMFD_NET, use_mask=False), SMFD_METRICS,
                    total_iter=20, val_freq=2, mask_source='none',
                    protocol={'early_stop': {'patience': 1, 'min_delta': 1.0}})
    opt['logger']['save_checkpoint_freq'] = 100
    result, exp = train(work, opt)
    assert result.returncode == 0
    _, log = losses_from_log(exp, 'l_pix')
    assert 'Early stopping: ssim has not improved for 1 validations (best' in log
    assert 'ending training (exit status 0)' in log and 'End of training' not in log
    models = sorted(os.listdir(exp / 'models'))
    assert models == ['net_g_4.pth', 'net_g_latest.pth']
    state = torch.load(exp / 'training_states' / '4.state', weights_only=True)
    assert state['iter'] == 4 and state['protocol']['stopped'] is True


# ----------------------------------------------------------------------------------------------------------------
# In-process
# ----------------------------------------------------------------------------------------------------------------
def model_opt(tmp_path, **extra):
    opt = {'name': 'unit', 'model_type': 'SMFDModel', 'num_gpu': 0, 'is_train': True, 'dist': False, 'rank': 0,
           'world_size': 1, 'network_g': dict(TINY_SMFD_NET),
           'path': {'models': str(tmp_path / 'models'), 'training_states': str(tmp_path / 'states'),
                    'visualization': str(tmp_path / 'vis')},
           'train': {'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'total_iter': 10}}
    opt.update(extra)
    return opt


def build(opt):
    from basicsr.models import build_model
    return build_model(opt)


def batch(b=2):
    gen = torch.Generator().manual_seed(0)
    return {'lq': torch.rand(b, 3, SIZE, SIZE, generator=gen), 'gt': torch.rand(b, 3, SIZE, SIZE, generator=gen),
            'mask': torch.randint(0, 5, (b, SIZE, SIZE), generator=gen)}


# the NaN guard (skip before optimizer.step, stop after N, no non-finite checkpoint): tests/test_nan_guard.py


def test_degrade_on_device_degrades_the_sharp_batch(tmp_path):
    """A dataset with degrade_on_device hands over gt + parameters and says so in the batch; feed_data degrades."""
    from smfd_data.degradation import DegradationConfig, sample_degradation
    from smfd_data.degradation_torch import degrade_batch

    opt = model_opt(tmp_path, datasets={'train': {'degrade_on_device': True}, 'val': {'name': 'val'}})
    model = build(opt)
    data = batch()
    cfg = DegradationConfig.from_dict(DEGRADATION)
    data['degradation'] = [json.dumps(sample_degradation(cfg, np.random.default_rng(i))) for i in range(2)]
    data['lq'] = data['gt'].clone()
    data['degrade_on_device'] = torch.tensor([True, True])
    model.feed_data(data)
    expected = degrade_batch(data['gt'], data['degradation'])
    assert torch.allclose(model.lq, expected) and not torch.allclose(model.lq, data['gt'], atol=1e-2)


def test_mask_source_errors(tmp_path):
    with pytest.raises(ValueError, match="'mask_source': 'ground_truth' is not valid. Valid: gt, generator, none"):
        build(model_opt(tmp_path, mask_source='ground_truth'))
    with pytest.raises(ValueError, match="option 'mask_source': none needs network_g.use_mask: false"):
        build(model_opt(tmp_path, mask_source='none'))
    with pytest.raises(ValueError, match='mask_source: generator needs network_mask'):
        build(model_opt(tmp_path, mask_source='generator'))
    with pytest.raises(ValueError, match=r"train.protocol.save_best.metric 'ssim' is not computed during validation"):
        build(model_opt(tmp_path, val={'metrics': {'psnr': {'type': 'calculate_psnr'}}},
                        train={'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'protocol': {'save_best': {}}}))
    with pytest.raises(ValueError, match=r"type 'RMSprop' is not supported; valid: \['Adam', 'AdamW', 'SGD'\]"):
        build(model_opt(tmp_path, train={'optim_g': {'type': 'RMSprop', 'lr': 1e-3}}))


def test_pretrained_weights_with_pickled_code_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    class Evil:
        def __reduce__(self):
            return (os.system, ('echo pwned > pwned.txt', ))

    torch.save({'params': Evil()}, tmp_path / 'evil.pth')
    opt = model_opt(tmp_path, is_train=False)
    opt['path']['pretrain_network_g'] = str(tmp_path / 'evil.pth')
    with pytest.raises(ValueError, match='evil.pth: refusing to load.*refuses to execute code from checkpoints'):
        build(opt)
    assert not (tmp_path / 'pwned.txt').exists()


def test_cpu_ddp_wrap_and_protocol_broadcast(tmp_path):
    """Single-rank gloo group: DDP without device ids on CPU, and the protocol decision goes through the broadcast."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=0, world_size=1)
    try:
        opt = model_opt(tmp_path, dist=True, val={'metrics': {'ssim': {'type': 'calculate_ssim', 'crop_border': 0}}})
        opt['train']['protocol'] = {'plateau': {'patience': 1, 'min_delta': 1.0}}
        model = build(opt)
        assert isinstance(model.net_g, DistributedDataParallel)
        model.feed_data(batch())
        model.optimize_parameters(1)

        class Loader(list):
            dataset = type('D', (), {'opt': {'name': 'val'}})()

        samples = [dict({k: v[:1] for k, v in batch().items()}, lq_path=[f'{i}.png']) for i in range(2)]
        model.validation(Loader(samples), 2, None, save_img=False)  # first: best
        assert model.get_current_learning_rate() == [1e-3]
        model.validation(Loader(samples), 4, None, save_img=False)  # no improvement > 1 -> lr * 0.2
        assert model.get_current_learning_rate() == pytest.approx([2e-4])
    finally:
        dist.destroy_process_group()


# ----------------------------------------------------------------------------------------------------------------
# Option files
# ----------------------------------------------------------------------------------------------------------------
OPTION_FILES = sorted(glob.glob(os.path.join(os.path.dirname(os.path.dirname(__file__)), 'options', '**', '*.yml'),
                                recursive=True))


def read_option_file(path):
    """Read as BasicSR's entries do (the plugin's one YAML reader)."""
    from smfd_data.option_file import read_option as read_yaml
    return read_yaml(path)


@pytest.mark.parametrize('path', OPTION_FILES, ids=lambda p: os.path.relpath(p, os.path.dirname(os.path.dirname(p))))
def test_option_file_is_valid_and_builds_its_model(path, tmp_path):
    """Every option file: a header comment, registered names, valid dataset/protocol options, a model that builds."""
    from basicsr.archs import build_network
    from basicsr.utils.registry import ARCH_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY

    from smfd_data.augment import AugmentConfig
    from smfd_data.degradation import DegradationConfig
    from smfd_models.checkpoint import atomic_torch_save

    with open(path) as f:
        assert f.readline().startswith('# '), 'each option file starts with what it reproduces'
    opt = read_option_file(path)
    assert opt['model_type'] in MODEL_REGISTRY and opt['num_gpu'] == 'auto'
    for key in ('network_g', 'network_mask'):
        if key in opt:
            assert opt[key]['type'] in ARCH_REGISTRY
    for name, metric in (opt.get('val', {}).get('metrics') or {}).items():
        assert metric['type'] in METRIC_REGISTRY, name
    for key, value in (opt.get('train') or {}).items():
        if key.endswith('_opt'):
            assert value['type'] in LOSS_REGISTRY, key
    for phase, dataset in opt['datasets'].items():
        DegradationConfig.from_dict(dataset.get('degradation'))
        AugmentConfig.from_option(dataset.get('augment'))
        assert dataset['type'] in ('SMFDFaceDataset', 'SMFDDegradedFolderDataset'), phase

    # build the model as BasicSR would (CPU, tiny stand-in weights where a file is needed)
    opt.update(num_gpu=0, dist=False, rank=0, world_size=1, is_train='train' in opt['datasets'])
    opt['path'].update(models=str(tmp_path / 'models'), training_states=str(tmp_path / 'states'),
                       visualization=str(tmp_path / 'vis'))
    for key in ('network_g', 'network_mask'):
        weights = opt['path'].get(f'pretrain_{key}')
        if weights:
            fake = tmp_path / f'{key}.pth'
            atomic_torch_save({'params': build_network(dict(opt[key])).state_dict()}, fake)
            opt['path'][f'pretrain_{key}'] = str(fake)
    model = build(opt)
    if opt['is_train']:
        assert model.protocol.enabled
        monitored = opt['train']['protocol']['save_best']['metric']
        assert monitored == ('dice' if opt['model_type'] == 'SMFDMaskGeneratorModel' else 'ssim')  # §3.4.6.3
        assert model.get_current_learning_rate() == [opt['train']['optim_g']['lr']]
        if os.sep + 'demo' + os.sep not in str(path):  # the paper's Adam lr (§3.4.6.2); the demo states its own
            assert opt['train']['optim_g']['lr'] == 1e-3
