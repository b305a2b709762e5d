"""Blur kernels of §3.4.1 (smfd_data/blur_kernels.py)."""
import math

import cv2
import numpy as np
import pytest

from smfd_data.blur_kernels import (
    MOTION_DIRECTIONS,
    disk_kernel,
    gaussian_kernel,
    gaussian_sigma,
    linear_motion_kernel,
    motion_kernel,
    trajectory_kernel,
)

ALL_KERNELS = [
    lambda: gaussian_kernel(15),
    lambda: gaussian_kernel(41, sigma_rule='size_over_6'),
    lambda: gaussian_kernel(9, sigma=1.3),
    *[(lambda d=d: motion_kernel(21, d)) for d in MOTION_DIRECTIONS],
    lambda: linear_motion_kernel(17.3, 33.0),
    lambda: trajectory_kernel(25, np.random.default_rng(0)),
    lambda: disk_kernel(4.3),
]


@pytest.mark.parametrize('make', ALL_KERNELS)
def test_kernels_are_normalised_float32_odd_square(make):
    k = make()
    assert k.dtype == np.float32 and k.ndim == 2
    assert k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
    assert abs(float(k.sum(dtype=np.float64)) - 1.0) < 1e-5
    assert (k >= 0).all()


@pytest.mark.parametrize('size', [11, 15, 21, 41])
def test_gaussian_opencv_rule_equals_cv2_kernel(size):
    g1 = cv2.getGaussianKernel(size, 0)  # σ = 0 → OpenCV's size rule
    np.testing.assert_allclose(gaussian_kernel(size), np.outer(g1, g1), atol=1e-7)
    assert gaussian_sigma(15) == pytest.approx(2.6)  # 0.3·(7 − 1) + 0.8
    assert gaussian_sigma(41) == pytest.approx(6.5)


def test_gaussian_explicit_sigma_and_size_over_6():
    g1 = cv2.getGaussianKernel(21, 2.0)
    np.testing.assert_allclose(gaussian_kernel(21, sigma=2.0), np.outer(g1, g1), atol=1e-7)
    g1 = cv2.getGaussianKernel(21, 21 / 6)
    np.testing.assert_allclose(gaussian_kernel(21, sigma_rule='size_over_6'), np.outer(g1, g1), atol=1e-7)


@pytest.mark.parametrize('bad', [0, -3, 16, 2.5, True])
def test_bad_sizes_name_the_parameter(bad):
    with pytest.raises(ValueError, match='gaussian_kernel: size must be a positive odd integer'):
        gaussian_kernel(bad)
    with pytest.raises(ValueError, match='motion_kernel: size'):
        motion_kernel(bad, 'horizontal')
    with pytest.raises(ValueError, match='trajectory_kernel: size'):
        trajectory_kernel(bad, 0)


def test_bad_arguments():
    with pytest.raises(ValueError, match='direction must be one of'):
        motion_kernel(15, 'up')
    with pytest.raises(ValueError, match='sigma_rule'):
        gaussian_kernel(15, sigma_rule='nope')
    with pytest.raises(ValueError, match='radius'):
        disk_kernel(0)
    with pytest.raises(ValueError, match='length'):
        linear_motion_kernel(-1, 0)


def test_motion_directions_lie_on_their_line():
    s = 15
    nz = {d: np.argwhere(motion_kernel(s, d) > 0) for d in MOTION_DIRECTIONS}
    assert (nz['horizontal'][:, 0] == s // 2).all() and len(nz['horizontal']) == s
    assert (nz['vertical'][:, 1] == s // 2).all() and len(nz['vertical']) == s
    assert (nz['diagonal'][:, 0] == nz['diagonal'][:, 1]).all() and len(nz['diagonal']) == s
    assert (nz['anti_diagonal'][:, 0] + nz['anti_diagonal'][:, 1] == s - 1).all() and len(nz['anti_diagonal']) == s
    np.testing.assert_allclose(motion_kernel(s, 'horizontal')[s // 2], np.full(s, 1 / s, np.float32))


def test_linear_motion_matches_the_four_directions():
    for L in (5, 21):
        np.testing.assert_allclose(linear_motion_kernel(L, 0), motion_kernel(L, 'horizontal'), atol=1e-7)
        np.testing.assert_allclose(linear_motion_kernel(L, 90), motion_kernel(L, 'vertical'), atol=1e-7)
        np.testing.assert_allclose(linear_motion_kernel(L * math.sqrt(2), -45), motion_kernel(L, 'diagonal'), atol=1e-7)
        np.testing.assert_allclose(linear_motion_kernel(L * math.sqrt(2), 45), motion_kernel(L, 'anti_diagonal'),
                                   atol=1e-7)


def test_linear_motion_any_angle_is_subpixel():
    k = linear_motion_kernel(12.0, 30.0)
    assert k.shape == (11, 11)  # half extent 6·cos 30° = 5.2 → radius 5
    # The weight centroid is the centre and the principal axis points at 30° (rows grow downwards).
    ys, xs = np.mgrid[:11, :11] - 5.0
    assert abs((k * xs).sum()) < 1e-5 and abs((k * ys).sum()) < 1e-5
    cov = np.array([[(k * xs * xs).sum(), (k * xs * ys).sum()], [(k * xs * ys).sum(), (k * ys * ys).sum()]])
    vals, vecs = np.linalg.eigh(cov)
    v = vecs[:, 1]
    assert math.degrees(math.atan2(-v[1], v[0])) % 180 == pytest.approx(30.0, abs=1.0)
    # Second moment along the line ≈ L²/12 of a uniform segment (pixel quantisation adds a little).
    assert vals[1] == pytest.approx(12.0 ** 2 / 12, rel=0.05)
    # A 12-pixel line at 30° is spread over more than 12 pixels (anti-aliasing), unlike a hard line.
    assert (k > 0).sum() > 12


def test_linear_motion_explicit_size_crops_and_renormalises():
    k = linear_motion_kernel(21, 0, size=11)
    assert k.shape == (11, 11)
    np.testing.assert_allclose(k, motion_kernel(11, 'horizontal'), atol=1e-7)


def test_trajectory_is_reproducible_spans_the_kernel_and_is_not_a_line():
    a = trajectory_kernel(31, np.random.default_rng(5))
    b = trajectory_kernel(31, 5)  # an int seed is the same generator
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, trajectory_kernel(31, 6))
    rows, cols = np.nonzero(a)
    assert max(np.ptp(rows), np.ptp(cols)) >= 29  # longer side scaled to the grid (bilinear may touch 30)
    assert min(rows.min(), cols.min()) >= 0 and max(rows.max(), cols.max()) <= 30
    # Bounding box centred on the kernel centre (within one pixel of splatting).
    assert abs((rows.min() + rows.max()) / 2 - 15) <= 1 and abs((cols.min() + cols.max()) / 2 - 15) <= 1


def test_trajectory_without_jitter_is_a_straight_line():
    k = trajectory_kernel(21, 0, anxiety=0.0).astype(np.float64)  # no jitter, shakes or pull: constant velocity
    ys, xs = np.mgrid[:21, :21].astype(np.float64)
    xs -= (k * xs).sum()
    ys -= (k * ys).sum()
    cov = np.array([[(k * xs * xs).sum(), (k * xs * ys).sum()], [(k * xs * ys).sum(), (k * ys * ys).sum()]])
    small, large = np.linalg.eigvalsh(cov)
    assert small / large < 0.01  # a line: (almost) no spread across it
    assert large > 20 ** 2 / 12 * 0.8  # ≈ uniform over the 20-pixel span


def test_disk_is_round_and_covers_the_area():
    k = disk_kernel(5.0)
    assert k.shape == (11, 11)
    np.testing.assert_allclose(k, k.T, atol=1e-7)
    np.testing.assert_allclose(k, k[::-1], atol=1e-7)
    full = k[5, 5]
    # Covered pixel area ≈ π r²: the sum of coverage fractions (max weight = full pixel).
    assert (k / full).sum() == pytest.approx(math.pi * 25, rel=0.01)
    assert k[0, 0] == 0 and k[5, 0] > 0
