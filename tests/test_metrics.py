"""SMFD metrics (paper §3.4.6.4, Tables 4.1/4.2) against hand-computed values; LPIPS/FID code paths offline."""
import math
import os
import urllib.error

import cv2
import numpy as np
import pytest
import torch
from basicsr.metrics import calculate_metric, calculate_niqe, calculate_psnr, calculate_ssim
from basicsr.metrics.psnr_ssim import _ssim
from basicsr.utils.registry import METRIC_REGISTRY

from smfd_eval import fid as smfd_fid
from smfd_models import metrics
from smfd_models.metrics import smfd_dice, smfd_jaccard, smfd_lpips, smfd_mse, smfd_region_psnr, smfd_region_ssim

# 4×4 label maps, 4 classes; class 3 is absent from both, so it is left out of the mean.
TARGET = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 2], [2, 2, 2, 2]], dtype=np.uint8)
PRED = np.array([[0, 0, 0, 1], [0, 0, 1, 1], [2, 2, 2, 2], [2, 2, 2, 0]], dtype=np.uint8)
# class 0: |A|=6 |B|=4 ∩=4;  class 1: |A|=3 |B|=4 ∩=3;  class 2: |A|=7 |B|=8 ∩=7
DICE = [8 / 10, 6 / 7, 14 / 15]
IOU = [4 / 6, 3 / 4, 7 / 8]


def _random_image(shape, seed):
    return (np.random.default_rng(seed).random(shape) * 255).astype(np.uint8)


def test_mse_of_constant_images_and_crop_border():
    img = np.full((8, 8, 3), 10, np.uint8)
    img2 = np.full((8, 8, 3), 13, np.uint8)
    assert smfd_mse(img, img2) == pytest.approx(9.0)
    img2[0, :] = 113  # a border row with a difference of 103 is cropped away
    assert smfd_mse(img, img2, crop_border=1) == pytest.approx(9.0)
    assert smfd_mse(img, img2) == pytest.approx((56 * 9 + 8 * 103**2) / 64)  # no uint8 wrap-around
    with pytest.raises(ValueError, match='image shapes differ'):
        smfd_mse(img, img2[:4])


def test_dice_and_jaccard_hand_computed_and_conventions():
    assert smfd_dice(PRED, TARGET, num_classes=4) == pytest.approx(np.mean(DICE))
    assert smfd_jaccard(PRED, TARGET, num_classes=4) == pytest.approx(np.mean(IOU))
    assert smfd_dice(PRED, TARGET, 4, ignore_background=True) == pytest.approx(np.mean(DICE[1:]))
    assert smfd_jaccard(torch.from_numpy(PRED), torch.from_numpy(TARGET), 4) == pytest.approx(np.mean(IOU))
    assert smfd_dice(TARGET, TARGET, 4) == 1.0 and smfd_jaccard(TARGET, TARGET, 4) == 1.0
    # pred and target swapped: Dice and IoU are symmetric
    assert smfd_dice(TARGET, PRED, 4) == pytest.approx(np.mean(DICE))
    # no foreground anywhere and background ignored: nothing to score, the maps agree
    background = np.zeros((4, 4), np.uint8)
    assert smfd_dice(background, background, 4, ignore_background=True) == 1.0
    with pytest.raises(ValueError, match=r'labels must lie in \[0, 2\]'):
        smfd_dice(np.full((4, 4), 3, np.uint8), TARGET, num_classes=3)
    with pytest.raises(ValueError, match='HW label maps'):
        smfd_jaccard(PRED, TARGET[:2], 4)


def _face_mask():
    """8×8 group map: hair (4) on top, skin (3) middle, a 2×2 component (1) block, background (0) bottom."""
    mask = np.zeros((8, 8), np.uint8)
    mask[:2] = 4
    mask[2:6] = 3
    mask[3:5, 3:5] = 1
    return mask


def test_region_psnr_counts_only_masked_pixels():
    mask = _face_mask()
    img = _random_image((8, 8, 3), 0)
    img2 = img.astype(np.int16)
    inside = mask == 1
    img2[inside] = np.clip(img2[inside] + np.array([10, -10, 10]), 0, 255)  # ±10 in the components only
    img2 = img2.astype(np.uint8)
    diff2 = (img.astype(float) - img2)[inside]**2
    expected = 10 * math.log10(255**2 / diff2.mean())
    assert smfd_region_psnr(img, img2, mask, region='components') == pytest.approx(expected)
    # the 'face' region (groups 1, 2, 3) dilutes the error over 32 pixels; the whole image over 64
    face = np.isin(mask, [1, 2, 3])
    expected_face = 10 * math.log10(255**2 / ((img.astype(float) - img2)[face]**2).mean())
    assert smfd_region_psnr(img, img2, mask) == pytest.approx(expected_face)
    assert smfd_region_psnr(img, img2, mask) > smfd_region_psnr(img, img2, mask, region='components')
    assert calculate_psnr(img, img2, 0) > smfd_region_psnr(img, img2, mask)
    # hair and background were untouched; group names work as region_groups
    assert smfd_region_psnr(img, img2, mask, region_groups=['hair', 0]) == float('inf')
    assert smfd_region_psnr(img, img2, mask, region_groups=[1]) == pytest.approx(expected)
    assert math.isnan(smfd_region_psnr(img, img2, np.zeros_like(mask), region='face'))


def test_region_metrics_reject_bad_masks():
    img = _random_image((8, 8, 3), 1)
    with pytest.raises(ValueError, match='needs a `mask`'):
        smfd_region_psnr(img, img)
    with pytest.raises(ValueError, match='does not match image shape'):
        smfd_region_psnr(img, img, np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="unknown region 'eyes'"):
        smfd_region_ssim(img, img, _face_mask(), region='eyes')
    with pytest.raises(ValueError, match="unknown group name 'beard'"):
        smfd_region_ssim(img, img, _face_mask(), region_groups=['beard'])


def test_ssim_map_matches_basicsr_and_region_ssim_is_local():
    img = _random_image((32, 32, 3), 2)
    img2 = cv2.GaussianBlur(img, (5, 5), 1.0)
    channel = img[..., 0].astype(np.float64), img2[..., 0].astype(np.float64)
    ssim_map = metrics.ssim_map(*channel)
    assert ssim_map.shape == (22, 22)
    assert ssim_map.mean() == pytest.approx(_ssim(*channel), abs=1e-12)
    # a region covering every pixel gives BasicSR's SSIM
    everywhere = np.full((32, 32), 3, np.uint8)
    assert smfd_region_ssim(img, img2, everywhere) == pytest.approx(calculate_ssim(img, img2, 0), abs=1e-12)
    # changes only at columns >= 20 do not reach windows centred at columns <= 9 (radius 5)
    changed = img.copy()
    changed[:, 20:] = 255 - changed[:, 20:]
    left = np.zeros((32, 32), np.uint8)
    left[:, :10] = 1
    assert smfd_region_ssim(img, changed, left, region='components') == pytest.approx(1.0, abs=1e-12)
    assert smfd_region_ssim(img, changed, 1 - left, region='components') < 0.5
    assert calculate_ssim(img, changed, 0) < 1.0
    # a region only in the 5-pixel border has no valid SSIM window centre
    border = np.zeros((32, 32), np.uint8)
    border[:5] = 1
    assert math.isnan(smfd_region_ssim(img, img2, border, region='components'))


def test_lpips_with_random_backbone_code_path():
    torch.manual_seed(0)
    img = _random_image((32, 32, 3), 3)
    other = cv2.GaussianBlur(img, (7, 7), 2.0)
    same = smfd_lpips(img, img.copy(), pretrained_backbone=False)
    different = smfd_lpips(img, other, pretrained_backbone=False)
    assert isinstance(same, float) and same == pytest.approx(0.0, abs=1e-7)
    assert different > 1e-4
    assert metrics.get_lpips_model('alex', False) is metrics.get_lpips_model('alex', False)  # cached per net
    # BGR uint8 → RGB in [−1, 1]: a pure red BGR pixel (0, 0, 255) becomes (1, −1, −1)
    red = np.zeros((1, 1, 3), np.uint8)
    red[..., 2] = 255
    assert metrics._bgr_uint8_to_lpips_tensor(red, 'cpu').flatten().tolist() == [1.0, -1.0, -1.0]


def _block_downloads(monkeypatch, tmp_path):
    """An empty torch hub cache and no network: every download raises URLError."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError(f'offline test: {url}')

    monkeypatch.setattr(torch.hub, 'download_url_to_file', offline)


def test_lpips_offline_error_names_the_missing_weights(monkeypatch, tmp_path):
    _block_downloads(monkeypatch, tmp_path)
    monkeypatch.setattr(metrics, '_LPIPS_MODELS', {})
    img = _random_image((16, 16, 3), 4)
    with pytest.raises(RuntimeError) as info:
        smfd_lpips(img, img)
    message = str(info.value)
    assert 'https://download.pytorch.org/models/alexnet-owt-7be5be79.pth' in message
    assert os.path.join(str(tmp_path / 'torch_home'), 'hub', 'checkpoints', 'alexnet-owt-7be5be79.pth') in message


def test_fid_from_features_matches_closed_forms():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    assert smfd_fid.fid_from_features(x, x) == pytest.approx(0.0, abs=1e-8)
    shift = np.array([1.0, -2.0, 0.5])
    assert smfd_fid.fid_from_features(x, x + shift) == pytest.approx(float(shift @ shift), abs=1e-8)
    # whiten exactly (sample covariance = I), then scale: Σ1 = diag(a), Σ2 = diag(b)
    # → FID = ||Δμ||² + Σ (√a − √b)²
    x = x - x.mean(0)
    x = x @ np.linalg.inv(np.linalg.cholesky(np.cov(x, rowvar=False))).T
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    fid = smfd_fid.fid_from_features(x * np.sqrt(a), x * np.sqrt(b) + shift)
    assert fid == pytest.approx(float(shift @ shift + ((np.sqrt(a) - np.sqrt(b))**2).sum()), abs=1e-8)
    with pytest.raises(ValueError, match='N>=2'):
        smfd_fid.fid_from_features(x[:1], x[:1])


def test_fid_folder_path_with_random_inception(tmp_path, capsys):
    from smfd_eval.fid import main
    real, fake = tmp_path / 'real', tmp_path / 'fake'
    real.mkdir()
    fake.mkdir()
    for i in range(3):  # sizes differ between the folders: every image is resized to 299² first
        cv2.imwrite(str(real / f'{i}.png'), _random_image((32, 32, 3), 10 + i))
        cv2.imwrite(str(fake / f'{i}.png'), cv2.GaussianBlur(_random_image((40, 48, 3), 20 + i), (0, 0), 2))
    torch.manual_seed(0)
    inception = smfd_fid.load_inception('cpu', pretrained=False)
    feats = smfd_fid.folder_features(str(real), inception, batch_size=2)
    assert feats.shape == (3, 2048) and np.isfinite(feats).all() and feats.std() > 0
    assert np.allclose(smfd_fid.folder_features(str(real), inception, batch_size=3), feats, atol=1e-5)
    # the whole script, random weights (one 2048² matrix square root: the slow part, ~15 s)
    torch.manual_seed(0)
    assert main(['--real', str(real), '--fake', str(fake), '--batch', '2', '--random-inception']) == 0
    fid = float(capsys.readouterr().out.strip().split('FID:')[-1])
    assert np.isfinite(fid) and fid > 0
    assert main(['--real', str(tmp_path / 'missing'), '--fake', str(fake), '--random-inception']) == 1
    assert 'does not exist' in capsys.readouterr().err


def test_fid_offline_error_names_the_cache_path(monkeypatch, tmp_path):
    _block_downloads(monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)  # BasicSR also looks for experiments/pretrained_models/... relative to the cwd
    with pytest.raises(RuntimeError) as info:
        smfd_fid.load_inception('cpu')
    message = str(info.value)
    assert 'pt_inception-2015-12-05-6726825d.pth' in message
    assert os.path.join(str(tmp_path / 'torch_home'), 'hub', 'checkpoints') in message


def test_niqe_of_basicsr_runs_offline_and_needs_two_96px_blocks():
    img = cv2.GaussianBlur(_random_image((96, 192, 3), 5), (0, 0), 1.5)
    value = calculate_niqe(img, crop_border=0)
    assert np.isfinite(value) and value > 0
    with pytest.raises(Exception):  # 64×64 has no 96×96 block: BasicSR's NIQE cannot score it
        calculate_niqe(_random_image((64, 64, 3), 6), crop_border=0)


def test_metrics_are_registered_and_callable_through_basicsr():
    names = ['smfd_mse', 'smfd_dice', 'smfd_jaccard', 'smfd_region_psnr', 'smfd_region_ssim', 'smfd_lpips']
    for name in names:
        assert METRIC_REGISTRY.get(name) is getattr(metrics, name)
    img = np.full((8, 8, 3), 10, np.uint8)
    img2 = np.full((8, 8, 3), 13, np.uint8)
    # extra keys from the YAML and from the model (e.g. SMFDModel's mask) are accepted
    assert calculate_metric({'img': img, 'img2': img2, 'mask': _face_mask()},
                            {'type': 'smfd_mse', 'crop_border': 0, 'better': 'lower'}) == pytest.approx(9.0)
    assert calculate_metric({'img': img, 'img2': img2, 'mask': _face_mask()},
                            {'type': 'smfd_region_psnr', 'region': 'components'}) == pytest.approx(
                                10 * math.log10(255**2 / 9))
    assert calculate_metric({'pred': PRED, 'target': TARGET, 'num_classes': 4},
                            {'type': 'smfd_jaccard'}) == pytest.approx(np.mean(IOU))
