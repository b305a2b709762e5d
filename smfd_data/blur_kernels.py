"""Blur kernels (point spread functions) for the randomized degradation of §3.4.1.

The paper uses two families (§2.2.2, §2.2.3, §3.4.1):

* Gaussian blur (defocus-like): ``gaussian_kernel(size)``; with no σ the size→σ rule of
  ``cv2.GaussianBlur(img, (k, k), 0)`` is used, which is what an OpenCV pipeline like the paper's does.
* Linear motion blur along 4 directions: ``motion_kernel(size, direction)``, a centred line of ones.

Extra families (off by default in the degradation config) widen the blur space:

* ``linear_motion_kernel(length, angle_deg)``: a straight motion of any length and angle, rasterised
  exactly (each pixel gets the length of the segment inside its square), so it is anti-aliased.
* ``trajectory_kernel(size, rng)``: a random camera-shake trajectory after Boracchi & Foi (2012),
  "Modeling the performance of image restoration from motion blur" (random walk with inertia,
  a centripetal pull and rare big shakes), splatted bilinearly onto the grid.
* ``disk_kernel(radius)``: an out-of-focus pillbox with anti-aliased rim.

Every function returns a ``float32`` 2-D array with odd sides that sums to 1 (within float32 rounding),
centred on the middle pixel. Kernels are PSFs: blurring is a true convolution ``B = I * k`` (§3.4.1), so a
blurred impulse reproduces the kernel (see ``smfd_data.degradation.convolve``).
"""
import math

import numpy as np

MOTION_DIRECTIONS = ('horizontal', 'vertical', 'diagonal', 'anti_diagonal')
GAUSSIAN_SIGMA_RULES = ('opencv', 'size_over_6')


def _check_odd_size(size, name, func):
    """Kernel sides must be positive odd integers so that the kernel has a centre pixel."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size <= 0 or size % 2 == 0:
        raise ValueError(f'{func}: {name} must be a positive odd integer, got {size!r}')
    return int(size)


def _normalise(kernel, func):
    total = kernel.sum(dtype=np.float64)
    if not total > 0:
        raise ValueError(f'{func}: kernel is empty (sum {total})')
    return (kernel / total).astype(np.float32)


def gaussian_sigma(size, sigma_rule='opencv'):
    """σ used for a Gaussian kernel of side ``size`` when none is given.

    ``'opencv'``: σ = 0.3·((k−1)/2 − 1) + 0.8, the rule of ``cv2.getGaussianKernel`` / ``cv2.GaussianBlur``
    with σ = 0 (the paper blurs with OpenCV and names only the kernel size, §3.4.1).
    ``'size_over_6'``: σ = k/6, so that ±3σ spans the kernel.
    """
    size = _check_odd_size(size, 'size', 'gaussian_sigma')
    if sigma_rule == 'opencv':
        return 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    if sigma_rule == 'size_over_6':
        return size / 6.0
    raise ValueError(f'gaussian_sigma: sigma_rule must be one of {GAUSSIAN_SIGMA_RULES}, got {sigma_rule!r}')


def gaussian_kernel(size, sigma=None, sigma_rule='opencv'):
    """Isotropic Gaussian kernel (§2.2.2, eq. 2.1) of side ``size``.

    Args:
        size (int): positive odd side length (the paper uses {15, 21, 25, 31, 35, 41}).
        sigma (float | None): standard deviation in pixels; None → ``sigma_rule``.
        sigma_rule (str): 'opencv' or 'size_over_6' (see ``gaussian_sigma``).

    For odd sizes ≥ 11 this equals the outer product of ``cv2.getGaussianKernel(size, 0)`` with itself
    (with σ = 0 OpenCV uses fixed binomial-like tables for sizes ≤ 9; the paper's sizes are ≥ 15).
    """
    size = _check_odd_size(size, 'size', 'gaussian_kernel')
    if sigma is None:
        sigma = gaussian_sigma(size, sigma_rule)
    sigma = float(sigma)
    if not sigma > 0:
        raise ValueError(f'gaussian_kernel: sigma must be > 0, got {sigma}')
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-x ** 2 / (2 * sigma ** 2))
    g /= g.sum()
    return _normalise(np.outer(g, g), 'gaussian_kernel')


def motion_kernel(size, direction):
    """Linear motion kernel of §3.4.1: a centred line of ones along one of 4 directions, normalised.

    ``horizontal`` → middle row, ``vertical`` → middle column, ``diagonal`` → main diagonal (top-left to
    bottom-right, ``np.eye``), ``anti_diagonal`` → top-right to bottom-left. All four have ``size`` taps, so the
    diagonal ones span a √2 longer path, as in the common ``np.eye(k) / k`` implementation.
    """
    size = _check_odd_size(size, 'size', 'motion_kernel')
    kernel = np.zeros((size, size), dtype=np.float64)
    c = size // 2
    if direction == 'horizontal':
        kernel[c, :] = 1
    elif direction == 'vertical':
        kernel[:, c] = 1
    elif direction == 'diagonal':
        kernel[np.arange(size), np.arange(size)] = 1
    elif direction == 'anti_diagonal':
        kernel[np.arange(size), size - 1 - np.arange(size)] = 1
    else:
        raise ValueError(f'motion_kernel: direction must be one of {MOTION_DIRECTIONS}, got {direction!r}')
    return _normalise(kernel, 'motion_kernel')


def linear_motion_kernel(length, angle_deg, size=None):
    """Straight motion of ``length`` pixels at ``angle_deg``, rasterised exactly (anti-aliased).

    The PSF is a segment of the given length centred on the kernel centre; each pixel receives the length
    of the segment inside its unit square (the exposure a box-shaped sensor pixel integrates), so the
    kernel has sub-pixel accuracy for any angle and length.

    Angle convention: degrees counter-clockwise from the +x (column) axis as seen on screen (rows grow
    downwards): 0 → horizontal, 90 → vertical, 45 → ``anti_diagonal`` direction, 135 (≡ −45) → ``diagonal``.
    With an odd integer length L, ``linear_motion_kernel(L, 0) == motion_kernel(L, 'horizontal')`` and
    ``linear_motion_kernel(L·√2, −45) == motion_kernel(L, 'diagonal')``.

    Args:
        length (float): path length in pixels, > 0.
        angle_deg (float): direction in degrees.
        size (int | None): odd kernel side; None → the smallest side that holds the segment. A smaller
            given size crops the segment (the kernel is renormalised).
    """
    length = float(length)
    if not length > 0:
        raise ValueError(f'linear_motion_kernel: length must be > 0, got {length}')
    theta = math.radians(float(angle_deg))
    dx, dy = math.cos(theta), -math.sin(theta)  # image rows point down
    # Snap round-off (e.g. cos 90° = 6e-17) so axis-aligned segments stay inside one row/column.
    dx = 0.0 if abs(dx) < 1e-12 else dx
    dy = 0.0 if abs(dy) < 1e-12 else dy
    if size is None:
        half_extent = 0.5 * length * max(abs(dx), abs(dy))
        size = 2 * max(0, math.ceil(half_extent - 0.5 - 1e-9)) + 1  # tolerance: L·√2 at 45° is exact
    size = _check_odd_size(size, 'size', 'linear_motion_kernel')
    c = size // 2
    # Segment P(t) = t·(dx, dy), t ∈ [−L/2, L/2]; clip it against every pixel square (Liang–Barsky).
    centres = np.arange(size, dtype=np.float64) - c
    xs, ys = np.meshgrid(centres, centres)  # xs: column offsets, ys: row offsets
    t0 = np.full(xs.shape, -length / 2)
    t1 = np.full(xs.shape, length / 2)
    for d, lo in ((dx, xs - 0.5), (dy, ys - 0.5)):
        hi = lo + 1.0
        if d == 0.0:
            inside = (lo <= 0.0) & (0.0 < hi)  # the line lies at offset 0 on this axis
            t1 = np.where(inside, t1, -np.inf)
            continue
        ta, tb = lo / d, hi / d
        t0 = np.maximum(t0, np.minimum(ta, tb))
        t1 = np.minimum(t1, np.maximum(ta, tb))
    kernel = np.clip(t1 - t0, 0.0, None)
    return _normalise(kernel, 'linear_motion_kernel')


def _splat_bilinear(points, size):
    """Accumulate equal-weight points (x=col, y=row, kernel coordinates) onto a size×size grid."""
    kernel = np.zeros((size, size), dtype=np.float64)
    x, y = points[:, 0], points[:, 1]
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    fx, fy = x - x0, y - y0
    for ox, oy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = x0 + ox, y0 + oy
        ok = (xi >= 0) & (xi < size) & (yi >= 0) & (yi < size) & (w > 0)
        np.add.at(kernel, (yi[ok], xi[ok]), w[ok])
    return kernel


def trajectory_kernel(size, rng, max_length=60.0, num_steps=2000, anxiety=None, centripetal=None,
                      gaussian_term=None, freq_big_shakes=None):
    """Random camera-shake PSF after Boracchi & Foi (2012), ``createTrajectory`` + ``createPSFs``.

    A 2-D random walk with inertia: the velocity keeps a constant speed, is perturbed by Gaussian
    jitter, pulled back towards the origin (centripetal term) and rarely reversed by a "big shake".
    The trajectory is centred (bounding box centre → kernel centre) and scaled so that its longer side
    spans ``size − 1`` pixels, so ``size`` sets the blur extent as it does for ``motion_kernel``; it is
    sampled bilinearly onto the grid with equal exposure per step, then normalised.

    Args:
        size (int): odd kernel side.
        rng (np.random.Generator | int): randomness (an int is a seed).
        max_length (float): total path length of the walk before scaling (the reference uses 60 on a
            64-pixel canvas); it sets the dynamics (the centripetal pull acts on positions in pixels).
        num_steps (int): trajectory samples (Boracchi & Foi use 2000).
        anxiety, centripetal, gaussian_term, freq_big_shakes (float | None): the model's parameters;
            None → drawn like the reference code: 0.1·U, 0.7·U, 10·U, 0.2·U.
    """
    size = _check_odd_size(size, 'size', 'trajectory_kernel')
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    if num_steps < 2:
        raise ValueError(f'trajectory_kernel: num_steps must be >= 2, got {num_steps}')
    max_length = float(max_length)
    if not max_length > 0:
        raise ValueError(f'trajectory_kernel: max_length must be > 0, got {max_length}')
    anxiety = 0.1 * rng.random() if anxiety is None else float(anxiety)
    centripetal = 0.7 * rng.random() if centripetal is None else float(centripetal)
    gaussian_term = 10 * rng.random() if gaussian_term is None else float(gaussian_term)
    freq_big_shakes = 0.2 * rng.random() if freq_big_shakes is None else float(freq_big_shakes)
    angle = 2 * math.pi * rng.random()
    # Draw all randomness up front (vectorised), then run the sequential walk on Python complex numbers.
    shake_u = rng.random(num_steps - 1)
    shake_phase = rng.random(num_steps - 1)
    jitter = rng.standard_normal((num_steps - 1, 2))
    step = max_length / (num_steps - 1)
    v = complex(math.cos(angle), math.sin(angle)) * step
    x = [0j] * num_steps
    for t in range(num_steps - 1):
        shake = 0j
        if shake_u[t] < freq_big_shakes * anxiety:
            shake = 2 * v * complex(math.cos(math.pi + shake_phase[t] - 0.5), math.sin(math.pi + shake_phase[t] - 0.5))
        v += shake + anxiety * (gaussian_term * complex(jitter[t, 0], jitter[t, 1]) - centripetal * x[t]) * step
        speed = abs(v)
        v = v / speed * step if speed > 0 else complex(step, 0.0)
        x[t + 1] = x[t] + v
    traj = np.array(x)
    pts = np.stack([traj.real, traj.imag], axis=1)
    # Centre the bounding box on the kernel centre and scale its longer side to the grid.
    pts -= (pts.min(axis=0) + pts.max(axis=0)) / 2
    extent = (pts.max(axis=0) - pts.min(axis=0)).max()
    if extent > 0:
        pts *= (size - 1) / extent
    pts += (size - 1) / 2
    return _normalise(_splat_bilinear(pts, size), 'trajectory_kernel')


def disk_kernel(radius, supersample=16):
    """Defocus (pillbox) kernel: a disk of ``radius`` pixels, each pixel weighted by its covered area.

    The side is the smallest odd size holding the disk, 2·ceil(radius − 0.5) + 1. Coverage is estimated
    with ``supersample``² sub-pixel samples, which anti-aliases the rim.
    """
    radius = float(radius)
    if not radius > 0:
        raise ValueError(f'disk_kernel: radius must be > 0, got {radius}')
    c = max(0, math.ceil(radius - 0.5))
    size = 2 * c + 1
    sub = (np.arange(size * supersample, dtype=np.float64) + 0.5) / supersample - 0.5 - c
    xs, ys = np.meshgrid(sub, sub)
    inside = (xs ** 2 + ys ** 2 <= radius ** 2).astype(np.float64)
    kernel = inside.reshape(size, supersample, size, supersample).sum(axis=(1, 3))
    return _normalise(kernel, 'disk_kernel')
