"""Classical, non-learned baselines for the benchmark (Table 4.2 style): Richardson–Lucy deconvolution.

Richardson–Lucy (Richardson 1972, Lucy 1974; seed paper 002) is the maximum-likelihood deconvolution under Poisson
noise for a KNOWN point-spread function k::

    u_{t+1} = u_t · ( k̃ ⊛ ( d / (k ⊛ u_t) ) ),     k̃ = k flipped (the adjoint of the convolution)

Given the TRUE blur of each test image (the degraded test set stores its parameters, ``params.json``), RL is an
oracle-kernel floor a learned blind deblurrer should beat. The forward model here is the exact blur of §3.4.1:
the blur operations of every layer applied in order with ``smfd_data.degradation.convolve`` (true convolution,
symmetric borders), so no composite kernel (up to 9 × 41 px wide) has to be built. What RL does NOT model: the
resolution degradation (down/up-scale) and the Gaussian noise of §3.4.1, which it amplifies as iterations grow.
"""
import numpy as np

from smfd_data.degradation import blur_ops, convolve, kernel_for_op

__all__ = ['blur_kernels_from_params', 'richardson_lucy']

_EPS = 1e-6


def blur_kernels_from_params(params):
    """The PSFs (float32 2-D arrays) of every blur operation of a degradation ``params`` dict, in order."""
    ops = blur_ops(params)
    if not ops:
        raise ValueError('richardson_lucy: the degradation parameters contain no blur operation')
    return [np.asarray(kernel_for_op(op), dtype=np.float32) for op in ops]


def _blur(img, kernels):
    for kernel in kernels:
        img = convolve(img, kernel).reshape(img.shape)
    return img


def _adjoint(img, kernels):
    # The adjoint of "convolve with k1, then k2, ..." is "correlate with ..., k2, k1": flipped kernels, reversed.
    for kernel in reversed(kernels):
        img = convolve(img, np.ascontiguousarray(kernel[::-1, ::-1])).reshape(img.shape)
    return img


def richardson_lucy(img, kernels, iterations=30, clip=True):
    """Channel-wise Richardson–Lucy deconvolution of a blurred float image with known PSF(s).

    Args:
        img (ndarray): float32 HW or HWC image in [0, 1] (the blurred observation d).
        kernels (ndarray | list[ndarray]): one PSF or the sequence of PSFs applied in order (summing to 1 each).
        iterations (int): RL iterations (30: the usual compromise between sharpening and noise amplification).
        clip (bool): clip the result to [0, 1].

    Returns:
        ndarray float32, same shape as ``img``.
    """
    if isinstance(kernels, np.ndarray):
        kernels = [kernels]
    kernels = [np.asarray(k, dtype=np.float32) for k in kernels]
    for k in kernels:
        if k.ndim != 2 or not np.isfinite(k).all() or k.sum() <= 0:
            raise ValueError(f'richardson_lucy: each kernel must be a finite 2-D PSF with a positive sum, got '
                             f'shape {k.shape}')
    observed = np.clip(np.asarray(img, dtype=np.float32), 0.0, None)
    if observed.ndim not in (2, 3):
        raise ValueError(f'richardson_lucy: expected an HW or HWC image, got shape {observed.shape}')
    # Normalise the PSFs so the adjoint of an all-ones image is ones (flux preservation).
    kernels = [k / k.sum() for k in kernels]
    estimate = observed.copy()  # start from the observation (a flat start needs more iterations)
    for _ in range(int(iterations)):
        ratio = observed / np.maximum(_blur(estimate, kernels), _EPS)
        estimate = estimate * _adjoint(ratio, kernels)
    if clip:
        estimate = np.clip(estimate, 0.0, 1.0)
    return estimate.astype(np.float32)
