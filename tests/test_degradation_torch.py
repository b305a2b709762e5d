"""Batched torch twin of the degradation (smfd_data/degradation_torch.py) against the CPU path."""
import json

import numpy as np
import pytest
import torch

from smfd_data.degradation import (
    INTERPOLATIONS,
    DegradationConfig,
    apply_degradation,
    blur_ops,
    convolve,
    kernel_for_op,
    resize_interpolated,
    resized_shape,
    rng_for_sample,
    sample_degradation,
)
from smfd_data.degradation_torch import (
    blur_batch,
    degrade_batch,
    degrade_batch_from_config,
    resize_batch,
    resize_matrix,
)

DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
# Every extra family and every resize method, so the twin is checked beyond the paper's defaults.
WIDE = DegradationConfig(linear_motion_prob=0.3, trajectory_prob=0.3, disk_prob=0.4,
                         down_interpolations=sorted(INTERPOLATIONS), up_interpolations=sorted(INTERPOLATIONS))
# Same linear operations (same float32 weights) in both paths; only the summation order differs, so the
# results agree to float32 rounding of sums of up to ~1,700 terms of magnitude ≤ 1 (observed ≤ 1e-6).
ATOL = 1e-5


def _batch(b=4, h=40, w=32, seed=0):
    return np.random.default_rng(seed).random((b, h, w, 3), dtype=np.float32)


def _to_torch(imgs, device='cpu'):
    return torch.from_numpy(imgs).permute(0, 3, 1, 2).to(device)


def _to_numpy(t):
    return t.permute(0, 2, 3, 1).cpu().numpy()


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('cfg', [None, WIDE], ids=['paper', 'wide'])
def test_blur_matches_cpu_path(cfg, device):
    imgs = _batch()
    params = [sample_degradation(cfg, rng_for_sample(5, i)) for i in range(len(imgs))]
    assert len({len(blur_ops(p)) for p in params}) > 1  # samples with different numbers of operations
    expected = []
    for img, p in zip(imgs, params):
        for op in blur_ops(p):
            img = convolve(img, kernel_for_op(op))
        expected.append(img)
    got = _to_numpy(blur_batch(_to_torch(imgs, device), params))
    np.testing.assert_allclose(got, np.stack(expected), atol=ATOL, rtol=0)


def test_blur_border_when_the_kernel_is_larger_than_the_image():
    imgs = _batch(2, 13, 9)
    ops = [{'type': 'motion', 'size': 41, 'direction': 'diagonal'},
           {'type': 'trajectory', 'size': 25, 'seed': 3}]
    params = [{'layers': [{'sequence': 'M', 'ops': [op]}]} for op in ops]
    got = _to_numpy(blur_batch(_to_torch(imgs), params))
    for i, op in enumerate(ops):
        np.testing.assert_allclose(got[i], convolve(imgs[i], kernel_for_op(op)), atol=ATOL, rtol=0)


@pytest.mark.parametrize('down, up', [('area', 'bicubic'), ('bilinear', 'bilinear'), ('nearest', 'lanczos'),
                                      ('bicubic', 'area'), ('lanczos', 'nearest')])
@pytest.mark.parametrize('scale', [2.0, 2.37, 3.0, 4.0])
def test_resize_matches_cv2(down, up, scale):
    imgs = _batch(1, 37, 30)
    p = {'scale': scale, 'down_interpolation': down, 'up_interpolation': up}
    lh, lw = resized_shape(37, 30, scale)
    expected = resize_interpolated(resize_interpolated(imgs[0], lw, lh, down), 30, 37, up)
    got = _to_numpy(resize_batch(_to_torch(imgs), [p]))[0]
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)


def test_resize_matrix_rows_are_cv2_weights():
    m = resize_matrix(10, 4, 'area')  # area 10 → 4: each output averages 2.5 inputs
    np.testing.assert_allclose(m[0], [0.4, 0.4, 0.2, 0, 0, 0, 0, 0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(m.sum(1), 1.0, atol=1e-6)


@pytest.mark.parametrize('device', DEVICES)
def test_full_pipeline_without_noise_matches_cpu(device):
    imgs = _batch(3, 36, 28, seed=1)
    params = [{**sample_degradation(WIDE, rng_for_sample(9, i)), 'noise_sigma': 0.0} for i in range(3)]
    expected = np.stack([apply_degradation(img, p) for img, p in zip(imgs, params)])
    got = _to_numpy(degrade_batch(_to_torch(imgs), [json.dumps(p) for p in params], device=device))
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize('device', DEVICES)
def test_noise_statistics_and_reproducibility(device):
    grey = torch.full((3, 3, 64, 64), 0.5)
    base = sample_degradation(None, rng_for_sample(0, 0))
    params = [{**base, 'noise_sigma': eta, 'noise_seed': s} for eta, s in ((5.0, 1), (10.0, 2), (10.0, 3))]
    out = degrade_batch(grey, params, device=device)
    assert out.device.type == device and out.dtype == torch.float32
    for i, p in enumerate(params):
        assert abs(out[i].mean().item() - 0.5) < 0.002
        assert out[i].std().item() == pytest.approx(p['noise_sigma'] / 255, rel=0.03)
    # independent fields per seed and per channel
    assert abs(np.corrcoef(out[1].flatten().cpu(), out[2].flatten().cpu())[0, 1]) < 0.05
    assert abs(np.corrcoef(out[1, 0].flatten().cpu(), out[1, 1].flatten().cpu())[0, 1]) < 0.05
    # the same noise_seed gives the same field
    again = degrade_batch(grey, params, device=device)
    assert torch.equal(out, again)


def test_jpeg_goes_through_the_cpu_codec():
    imgs = _batch(2, 32, 32, seed=2)
    params = [{**sample_degradation(DegradationConfig(jpeg_prob=1.0), rng_for_sample(0, i)), 'noise_sigma': 0.0}
              for i in range(2)]
    expected = np.stack([apply_degradation(img, p) for img, p in zip(imgs, params)])
    got = _to_numpy(degrade_batch(_to_torch(imgs), params))
    np.testing.assert_allclose(got * 255, np.round(got * 255), atol=1e-3)  # 8-bit values
    # pre-JPEG images agree to ~1e-6, so at most a rare rounding flip can change the codec's input
    assert np.abs(got - expected).mean() < 1e-3


def test_sampling_is_shared_with_the_cpu_path():
    imgs = torch.rand(3, 3, 24, 24)
    out, params = degrade_batch_from_config(imgs, WIDE, [rng_for_sample(4, i) for i in range(3)])
    assert params == [sample_degradation(WIDE, rng_for_sample(4, i)) for i in range(3)]
    assert out.shape == imgs.shape and 0 <= out.min() and out.max() <= 1


def test_errors():
    p = sample_degradation(None, rng_for_sample(0, 0))
    with pytest.raises(ValueError, match=r'expected imgs of shape \(B, C, H, W\)'):
        degrade_batch(torch.rand(3, 8, 8), [p])
    with pytest.raises(ValueError, match='2 images but 1 parameter sets'):
        degrade_batch(torch.rand(2, 3, 8, 8), [p])
    with pytest.raises(ValueError, match='params version'):
        degrade_batch(torch.rand(1, 3, 8, 8), [{**p, 'version': 99}])
