"""smfd_eval.benchmark (scripts/benchmark.py) and smfd_eval.richardson_lucy on a tiny degraded test set made here."""
import csv
import json
import os

import cv2
import numpy as np
import pytest
import torch
import yaml

from smfd_basicsr import register

register()

from smfd_data.degradation import apply_degradation, convolve, kernel_for_op  # noqa: E402
from smfd_data.face_labels import group_labels  # noqa: E402
from smfd_data.synthetic_faces import generate_face  # noqa: E402
from smfd_eval import benchmark, report  # noqa: E402
from smfd_eval.methods import FolderMethod, InputMethod, parse_spec  # noqa: E402
from smfd_eval.richardson_lucy import blur_kernels_from_params, richardson_lucy  # noqa: E402
from smfd_models import checkpoint  # noqa: E402
from smfd_models.checkpoint import atomic_torch_save  # noqa: E402
from tests.test_deblur import MASK_TINY, SMFD_TINY, make_tiny_experiment  # noqa: E402


def _trainable(tiny):
    from basicsr.utils.registry import ARCH_REGISTRY
    args = {k: v for k, v in tiny.items() if k != 'type'}
    return sum(p.numel() for p in ARCH_REGISTRY.get(tiny['type'])(**args).parameters() if p.requires_grad)

SIZE = 48
NOISE_FREE_BLUR = {  # one motion layer, no resize (scale 1), no noise: the setting where RL must help
    'version': 1, 'layers': [{'sequence': 'GM', 'ops': [{'type': 'gaussian', 'size': 5, 'sigma': 1.0},
                                                       {'type': 'motion', 'size': 9, 'direction': 'horizontal'}]}],
    'scale': 1.0, 'down_interpolation': 'area', 'up_interpolation': 'bicubic', 'noise_sigma': 0.0, 'noise_seed': 0,
    'jpeg_quality': None}


def make_testset(root, n=3):
    """DIR/{lq,gt,labels}/<stem>.png + params.json as scripts/degrade_testset.py writes them (5 groups)."""
    for sub in ('lq', 'gt', 'labels'):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    images = []
    for i in range(n):
        rgb, labels = generate_face(np.random.default_rng([7, i]), SIZE)
        lq = apply_degradation(rgb.astype(np.float32) / 255.0, NOISE_FREE_BLUR)
        stem = f'{i:05d}'
        cv2.imwrite(os.path.join(root, 'gt', f'{stem}.png'), rgb[..., ::-1])
        cv2.imwrite(os.path.join(root, 'lq', f'{stem}.png'),
                    np.clip(np.floor(lq * 255 + 0.5), 0, 255).astype(np.uint8)[..., ::-1])
        cv2.imwrite(os.path.join(root, 'labels', f'{stem}.png'), group_labels(labels))
        images.append({'stem': stem, 'index': i, 'seed': 7, 'degradation': NOISE_FREE_BLUR})
    with open(os.path.join(root, 'params.json'), 'w') as f:
        json.dump({'format': 'smfd-degraded-set', 'num_classes': 5, 'images': images}, f)
    return root


def _psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64))**2)
    return 10 * np.log10(255.0**2 / mse)


def test_richardson_lucy_with_the_true_kernels():
    rgb, _ = generate_face(np.random.default_rng(3), SIZE)
    sharp = rgb.astype(np.float32) / 255.0
    kernels = blur_kernels_from_params(NOISE_FREE_BLUR)
    assert [k.shape for k in kernels] == [(5, 5), (9, 9)]
    blurred = apply_degradation(sharp, NOISE_FREE_BLUR)
    restored = richardson_lucy(blurred, kernels, iterations=30)
    err = lambda x: np.mean((x - sharp)**2)  # noqa: E731
    assert err(restored) < 0.75 * err(blurred)
    assert abs(restored.mean() - blurred.mean()) < 0.01  # RL preserves flux
    # the kernel matters: the same blur turned by 90° restores worse than the true one
    wrong = [kernels[0], np.ascontiguousarray(kernels[1].T)]
    assert err(richardson_lucy(blurred, wrong, iterations=30)) > 1.3 * err(restored)
    # sequential application = exactly what the degradation did (no composite-kernel border error)
    np.testing.assert_allclose(convolve(convolve(sharp, kernels[0]), kernels[1]), blurred, atol=1e-6)
    with pytest.raises(ValueError, match='2-D PSF'):
        richardson_lucy(blurred, [np.zeros((3, 3))])
    with pytest.raises(ValueError, match='no blur operation'):
        blur_kernels_from_params({**NOISE_FREE_BLUR, 'layers': []})
    assert np.array_equal(kernel_for_op(NOISE_FREE_BLUR['layers'][0]['ops'][1]), kernels[1])


def test_parse_spec():
    assert parse_spec('a=b.pth,mask=gt', '--smfd') == ('a', 'b.pth', {'mask': 'gt'})
    with pytest.raises(ValueError, match='NAME='):
        parse_spec('nothing', '--smfd')
    with pytest.raises(ValueError, match='key=value'):
        parse_spec('a=b,oops', '--smfd')


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('bench')
    testset = make_testset(str(root / 'testset'))
    experiments = str(root / 'experiments')
    mask_ckpt = make_tiny_experiment(experiments, 'demo_mask', MASK_TINY, seed=1, size=SIZE)
    smfd_ckpt = make_tiny_experiment(experiments, 'demo_smfd', SMFD_TINY, seed=2, size=SIZE)
    # a "folder method": perfect outputs (copies of the GT), in two lossless formats
    folder = root / 'perfect'
    folder.mkdir()
    for i, stem in enumerate(sorted(os.listdir(os.path.join(testset, 'gt')))):
        img = cv2.imread(os.path.join(testset, 'gt', stem))
        cv2.imwrite(str(folder / (stem[:-4] + ('.bmp' if i == 0 else '.png'))), img)
    # any BasicSR arch + checkpoint (EMA weights), here a tiny SRVGGNetCompact at scale 1
    arch = {'type': 'SRVGGNetCompact', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 4, 'num_conv': 1, 'upscale': 1}
    with open(root / 'arch.yml', 'w') as f:
        yaml.safe_dump({'network_g': arch}, f)
    from basicsr.utils.registry import ARCH_REGISTRY
    torch.manual_seed(0)
    net = ARCH_REGISTRY.get('SRVGGNetCompact')(**{k: v for k, v in arch.items() if k != 'type'})
    atomic_torch_save({'params_ema': net.state_dict()}, str(root / 'srvgg.pth'))
    return {'root': root, 'testset': testset, 'experiments': experiments, 'smfd': smfd_ckpt, 'mask': mask_ckpt,
            'folder': str(folder), 'arch': str(root / 'arch.yml'), 'srvgg': str(root / 'srvgg.pth'),
            'srvgg_params': sum(p.numel() for p in net.parameters())}


def test_benchmark_table(setup, monkeypatch, capsys):
    monkeypatch.setenv('TORCH_HOME', str(setup['root'] / 'torch_home'))  # no cached LPIPS/FID weights
    monkeypatch.setattr(checkpoint, 'CACHE_DIR', str(setup['root'] / 'smfd_cache'))  # no cached ArcFace weights
    out = setup['root'] / 'out'
    code = benchmark.main([
        '--testset', setup['testset'], '--out', str(out), '--device', 'cpu', '--offline', '--richardson-lucy',
        '--folder', f'perfect={setup["folder"]}', '--basicsr', f'srvgg={setup["arch"]}:{setup["srvgg"]}',
        '--smfd', f'ours_gen={setup["smfd"]},mask=generator', '--smfd', f'ours_gt={setup["smfd"]},mask=gt',
        '--experiments-dir', setup['experiments'], '--batch', '2'])
    assert code == 0
    printed = capsys.readouterr().out
    result = json.loads((out / 'benchmark.json').read_text())
    rows = {r['method']: r for r in result['rows']}
    assert list(rows) == ['input', 'richardson_lucy', 'perfect', 'srvgg', 'ours_gen', 'ours_gen_soft', 'ours_gt']
    # the generated-mask row with each hand-off: one-hot (what the GT-trained net saw) and the softmax
    assert 'one-hot' not in rows['ours_gen']['description'] and 'onehot hand-off' in rows['ours_gen']['description']
    assert 'soft hand-off' in rows['ours_gen_soft']['description']
    assert rows['ours_gen_soft']['params'] == rows['ours_gen']['params']
    assert rows['ours_gen_soft']['dice'] == rows['ours_gen']['dice']  # same masks, different hand-off

    # the input row, recomputed by hand from the PNGs
    stems = sorted(os.listdir(os.path.join(setup['testset'], 'gt')))
    read = lambda sub, s: cv2.imread(os.path.join(setup['testset'], sub, s))  # noqa: E731
    expected_psnr = np.mean([_psnr(read('lq', s), read('gt', s)) for s in stems])
    expected_mse = np.mean([np.mean((read('lq', s).astype(float) - read('gt', s))**2) for s in stems])
    assert rows['input']['psnr'] == pytest.approx(expected_psnr, abs=1e-6)
    assert rows['input']['mse'] == pytest.approx(expected_mse, abs=1e-6)
    # Richardson–Lucy with the true kernels beats the blurry floor on a noise-free blur
    assert rows['richardson_lucy']['psnr'] > rows['input']['psnr'] + 1.0
    assert rows['richardson_lucy']['ssim'] > rows['input']['ssim']
    assert rows['richardson_lucy']['psnr_face'] > rows['input']['psnr_face']
    # perfect outputs matched by stem across formats
    assert rows['perfect']['mse'] == 0 and rows['perfect']['ssim'] == pytest.approx(1.0)
    assert rows['perfect']['psnr'] == float('inf')
    # cost columns: parameters of exactly the networks that ran
    assert rows['srvgg']['params'] == setup['srvgg_params']
    smfd_params, mask_params = (_trainable(tiny) for tiny in (SMFD_TINY, MASK_TINY))
    assert rows['ours_gt']['params'] == smfd_params  # SMFD_TINY alone (GT masks: no generator)
    assert rows['ours_gen']['params'] == smfd_params + mask_params  # + MASK_TINY
    assert 0 < rows['ours_gt']['gmacs'] < rows['ours_gen']['gmacs']
    assert rows['ours_gen']['ms_per_face'] > 0 and rows['input']['ms_per_face'] == '—'
    assert 0 <= rows['ours_gen']['dice'] <= 1 and rows['ours_gt']['dice'] == '—'
    # metrics that cannot run are marked, never numbers
    for row in rows.values():
        for key in ('lpips', 'fid', 'niqe', 'identity'):
            assert isinstance(row[key], str) and row[key].startswith('unavailable ('), (row['method'], key)
    assert 'AlexNet' in rows['input']['lpips'] and '96×96' in rows['input']['niqe']
    assert 'arcface_resnet18.pth' in rows['input']['identity'] or 'gfpgan' in rows['input']['identity']
    md = (out / 'benchmark.md').read_text()
    assert md == printed.strip() + '\n' or md.strip() in printed
    assert md.count('\n| ') == 1 + len(rows) and 'unavailable [1]' in md and '[1] unavailable (' in md
    with open(out / 'benchmark.csv') as f:
        table = list(csv.reader(f))
    assert table[0][:4] == ['method', 'psnr', 'ssim', 'mse'] and len(table) == 1 + len(rows)
    # the grid: rows = the test faces (≤ 4), columns = every method + GT, tiles enlarged to ≥ 96 px
    grid = cv2.imread(str(out / 'grid.png'))
    assert grid.shape[0] == 16 + 3 * (2 * SIZE + 2)
    assert grid.shape[1] == 8 * 2 * SIZE + 7 * 2  # 7 methods + GT
    assert sorted(os.listdir(out / 'outputs')) == sorted(rows)
    # the quality-vs-speed plot next to the table: a PNG of sane size, drawing exactly the table's numbers
    png = (out / 'plot.png').read_bytes()
    assert png[:8] == b'\x89PNG\r\n\x1a\n' and 20_000 < len(png) < 2_000_000
    plot = cv2.imread(str(out / 'plot.png'))
    assert 300 <= plot.shape[0] <= 2000 and 600 <= plot.shape[1] <= 3000 and plot.std() > 10
    drawn = report.quality_speed_plot(result, str(setup['root'] / 'plot_again.png'))
    timed = [m for m, r in rows.items() if isinstance(r['ms_per_face'], float)]
    assert timed == ['richardson_lucy', 'srvgg', 'ours_gen', 'ours_gen_soft', 'ours_gt']
    for key in ('psnr', 'ssim'):
        assert drawn[key]['points'] == [(m, rows[m]['ms_per_face'], rows[m][key]) for m in timed]
    assert drawn['psnr']['lines'] == [('input', rows['input']['psnr'])]
    assert drawn['psnr']['left_out'] == [('perfect', 'inf')]  # infinite PSNR cannot be drawn
    assert drawn['ssim']['lines'] == [('input', rows['input']['ssim']), ('perfect', rows['perfect']['ssim'])]


def test_identity_column_with_random_arcface(setup, monkeypatch):
    pytest.importorskip('gfpgan.archs.arcface_arch', reason='pip install --no-deps gfpgan==1.3.8')
    from smfd_eval import identity
    torch.manual_seed(0)
    net = identity.build_arcface()
    loaded = []
    monkeypatch.setattr(identity, 'load_arcface', lambda weights, download: loaded.append(download) or net)
    testset = benchmark.load_testset(setup['testset'])
    methods = [InputMethod('input'), FolderMethod('perfect', setup['folder'])]
    result = benchmark.evaluate(testset, methods, str(setup['root'] / 'identity'), offline=True,
                                skip=('niqe', 'lpips', 'fid'), grid_faces=0, log=lambda m: None)
    assert loaded == [False]  # --offline: no download
    rows = {r['method']: r for r in result['rows']}
    assert rows['perfect']['identity'] == pytest.approx(1.0, abs=1e-9)  # outputs identical to the GT
    embedder = identity.IdentityEmbedder(net)
    by_hand = [embedder.similarity(s['lq'], s['gt']) for s in testset['samples']]
    assert rows['input']['identity'] == pytest.approx(np.mean(by_hand))
    assert [p['identity'] for p in rows['input']['per_image']] == pytest.approx(by_hand)
    assert max(by_hand) < 1
    md = report.format_markdown(result)
    assert 'Identity ↑' in md and f'{rows["input"]["identity"]:.4f}' in md
    assert report.plot_data(result)['psnr']['lines'] == [('input', rows['input']['psnr'])]


def test_benchmark_usage_errors(setup, capsys):
    base = ['--testset', setup['testset'], '--out', str(setup['root'] / 'bad'), '--device', 'cpu']
    assert benchmark.main(base + ['--folder', 'input=' + setup['folder']]) == 2
    assert 'unique' in capsys.readouterr().err
    assert benchmark.main(base + ['--smfd', f'x={setup["smfd"]},mask=maybe']) == 2
    assert "mask='maybe'" in capsys.readouterr().err
    assert benchmark.main(base + ['--smfd', f'x={setup["smfd"]},handoff=hard']) == 2
    assert "option '--smfd x handoff': 'hard' is not valid. Valid: onehot, soft" in capsys.readouterr().err
    assert benchmark.main(['--testset', str(setup['root']), '--out', str(setup['root'] / 'bad')]) == 2
    assert 'params.json' in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------------
# scripts/cross_validate.py and scripts/run_ablations.py (Tables 4.4 and 4.3)
# ---------------------------------------------------------------------------------------------------------------
from smfd_eval import ablations as run_ablations  # noqa: E402
from smfd_eval import cross_validation as cross_validate  # noqa: E402

TABLE_4_4 = [(24.4046, 0.7061), (24.1845, 0.6950), (24.7568, 0.7122), (24.2840, 0.7027), (24.7137, 0.7105)]


def test_aggregate_reproduces_table_4_4():
    folds = [{'fold': k + 1, 'psnr': p, 'ssim': s} for k, (p, s) in enumerate(TABLE_4_4)]
    summary = cross_validate.aggregate(folds)
    # by hand: mean = 122.3436 / 5; population SD = sqrt(0.262019148 / 5) (squared deviations summed)
    assert summary['psnr']['mean'] == pytest.approx(24.46872, abs=1e-9)
    assert summary['psnr']['sd'] == pytest.approx(0.2289188, abs=1e-6)
    assert summary['ssim']['mean'] == pytest.approx(0.7053, abs=1e-9)
    assert summary['ssim']['sd'] == pytest.approx(0.0061342, abs=1e-6)  # sqrt(1.8814e-4 / 5)
    md = cross_validate.format_cv_markdown(folds, summary, 'CV')
    assert '| Mean ± SD | 24.4687 ± 0.2289 | 70.53 ± 0.61 |' in md and '| Fold 3 | 24.7568 | 71.22 |' in md
    assert cross_validate.mean_sd([]) != cross_validate.mean_sd([])  # nan, nan


def _train_option(tmp_path, name='cv_demo', comment=None):
    meta = tmp_path / 'prepared' / 'meta_info'
    opt = {'name': name, 'model_type': 'SMFDModel', 'mask_source': 'gt', 'network_g': dict(SMFD_TINY),
           'datasets': {'train': {'type': 'SMFDFaceDataset', 'dataroot_gt': str(tmp_path / 'prepared' / 'images'),
                                  'meta_info_file': str(meta / 'trainval.txt')},
                        'val': {'type': 'SMFDFaceDataset', 'meta_info_file': str(meta / 'test.txt')},
                        'val_2': {'type': 'SMFDFaceDataset', 'meta_info_file': str(meta / 'test.txt')}},
           'path': {}, 'train': {'total_iter': 2}}
    path = tmp_path / f'{name}.yml'
    with open(path, 'w') as f:
        if comment:
            f.write(f'# {comment}\n')
        yaml.safe_dump(opt, f, sort_keys=False)
    return str(path), opt, meta


def test_fold_options_and_dry_run(tmp_path, capsys):
    path, opt, meta = _train_option(tmp_path)
    fold = cross_validate.fold_option(opt, 3, str(meta), check_files=False)
    assert fold['name'] == 'cv_demo_fold3' and opt['name'] == 'cv_demo'  # the input is not modified
    assert fold['datasets']['train']['meta_info_file'] == str(meta / 'fold3_train.txt')
    assert fold['datasets']['val']['meta_info_file'] == fold['datasets']['val_2']['meta_info_file'] \
        == str(meta / 'fold3_val.txt')
    with pytest.raises(FileNotFoundError, match='fold3_train.txt'):
        cross_validate.fold_option(opt, 3, str(meta))
    assert cross_validate.main(['-opt', path, '--dry-run', '--out', str(tmp_path / 'cv')]) == 0
    printed = capsys.readouterr().out
    docs = [yaml.safe_load(part) for part in printed.split('# ---- fold ')[1:]]
    assert [d['name'] for d in docs] == [f'cv_demo_fold{k}' for k in range(1, 6)]
    assert [d['datasets']['train']['meta_info_file'] for d in docs] == [str(meta / f'fold{k}_train.txt')
                                                                         for k in range(1, 6)]
    assert 'python -m basicsr.train -opt' in printed
    assert not (tmp_path / 'cv').exists()  # a dry run writes nothing
    # without --dry-run the missing fold files are an error (exit 2), before any training
    assert cross_validate.main(['-opt', path, '--out', str(tmp_path / 'cv')]) == 2
    assert 'fold1_train.txt' in capsys.readouterr().err


def test_ablations_dry_run_and_table(tmp_path, capsys):
    first, _, _ = _train_option(tmp_path, 'abl_nomask', 'Table 4.3 ablation, row "Backbone without Semantic Mask '
                                'Branch" (paper: PSNR 22.46, SSIM 66.25%):')
    second, _, _ = _train_option(tmp_path, 'abl_full')
    assert run_ablations.label_of(first, {}) == ('Backbone without Semantic Mask Branch', 22.46, pytest.approx(0.6625))
    assert run_ablations.label_of(second, {'name': 'abl_full'}) == ('abl_full', None, None)
    assert run_ablations.main(['--opts', str(tmp_path / 'abl_*.yml'), '--dry-run', '--runs', '2']) == 0
    printed = capsys.readouterr().out
    assert printed.count('# ---- ') == 4 and '# ---- Backbone without Semantic Mask Branch' in printed
    assert '# ---- abl_full' in printed and 'name: abl_nomask_run1' in printed and 'manual_seed: 1' in printed
    rows = [{'label': 'A', 'summary': cross_validate.aggregate([{'psnr': 22.0, 'ssim': 0.6}, {'psnr': 24.0,
                                                                                             'ssim': 0.7}])},
            {'label': 'B', 'summary': cross_validate.aggregate([{'psnr': 24.37, 'ssim': 0.7081}]),
             'paper_psnr': 24.37, 'paper_ssim': 0.7081}]
    md = run_ablations.format_ablation_markdown(rows, 'T')
    assert '| A | 23.00 ± 1.00 | 65.00 ± 5.00 | 2 | — | — |' in md and '| B | 24.37 | 70.81 | 1 | 24.37 | 70.81 |' in md
    assert run_ablations.main(['--opts', str(tmp_path / 'none_*.yml')]) == 2


def test_evaluate_experiment_matches_the_benchmark(setup):
    scores = cross_validate.evaluate_experiment('demo_smfd', {'mask_source': 'gt'}, setup['testset'],
                                                str(setup['root'] / 'cv_eval'), 'cpu', setup['experiments'])
    result = json.loads((setup['root'] / 'out' / 'benchmark.json').read_text())
    row = next(r for r in result['rows'] if r['method'] == 'ours_gt')
    assert scores['psnr'] == pytest.approx(row['psnr']) and scores['ssim'] == pytest.approx(row['ssim'])
    assert scores['checkpoint'] == setup['smfd'] and scores['mask'] == 'gt'
