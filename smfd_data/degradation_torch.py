"""Batched torch twin of ``smfd_data.degradation.apply_degradation`` (§3.4.1) for on-device degradation.

Real-ESRGAN style: the data loader only decodes sharp images and draws parameters with the shared
``sample_degradation``; the model's ``feed_data`` calls ``degrade_batch`` on the training device.

Same parameters → same image as the CPU path, step by step:

* Blur: the same kernels (``kernel_for_op``), flipped for a true convolution, applied with ``conv2d`` after
  padding with the index map of ``cv2.BORDER_REFLECT`` (torch's ``'reflect'`` mode is reflect-101, so it is not
  used). Matches ``cv2.filter2D`` to float32 rounding (~1e-6).
* Resize: resampling is linear and separable, so the weights of ``cv2.resize`` are probed once per
  (input size, output size, method) by resizing an identity matrix, and the down+up resize becomes two
  matrix products per image. Matches ``cv2.resize`` for every method (area, bicubic, lanczos, …) to float32
  rounding; ``F.interpolate`` would not (its 'area' is adaptive pooling, its antialiasing differs).
* Noise: drawn by a ``torch.Generator`` seeded with ``noise_seed``: same distribution and the same
  reproducibility, but not the same numbers as NumPy's generator.
* JPEG (off by default): the sample goes through the CPU ``jpeg_compress`` (identical result, host round trip).
"""
import json
from functools import lru_cache

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from smfd_data.degradation import (
    BLUR_BORDER,
    INTERPOLATIONS,
    PARAMS_VERSION,
    blur_ops,
    jpeg_compress,
    kernel_for_op,
    resized_shape,
    sample_degradation,
)


@lru_cache(maxsize=256)
def border_index(n, pad):
    """Source index of each position in [−pad, n + pad) under ``BLUR_BORDER`` (what cv2.filter2D reads)."""
    return np.array([cv2.borderInterpolate(p, n, BLUR_BORDER) for p in range(-pad, n + pad)], dtype=np.int64)


@lru_cache(maxsize=256)
def resize_matrix(n_in, n_out, interpolation):
    """(n_out, n_in) float64 weights W with ``cv2.resize`` along one axis == W @ x (probed from OpenCV)."""
    eye = np.eye(n_in, dtype=np.float32)
    # Rows of ``eye`` are impulses; resizing only the width leaves the rows independent (the vertical
    # weights are exactly 1 when the height does not change).
    probe = cv2.resize(eye, (n_out, n_in), interpolation=INTERPOLATIONS[interpolation])
    return probe.astype(np.float64).T.copy()


def _pad_reflect(x, pad):
    """Pad (N, C, H, W) by ``pad`` on each side exactly like cv2's ``BLUR_BORDER``."""
    h, w = x.shape[-2:]
    ih = torch.from_numpy(border_index(h, pad)).to(x.device)
    iw = torch.from_numpy(border_index(w, pad)).to(x.device)
    return x.index_select(-2, ih).index_select(-1, iw)


def _blur_step(x, kernels):
    """Convolve each image of x (N, C, H, W) with its own kernel (list of N odd 2-D arrays), true convolution."""
    n, c, h, w = x.shape
    size = max(k.shape[0] for k in kernels)
    weight = np.zeros((n, size, size), dtype=np.float32)
    for i, k in enumerate(kernels):  # centre smaller kernels in the common size (zero taps add nothing)
        o = (size - k.shape[0]) // 2
        weight[i, o:o + k.shape[0], o:o + k.shape[1]] = k[::-1, ::-1]  # conv2d correlates: flip
    weight = torch.from_numpy(weight).to(x.device, x.dtype)
    weight = weight[:, None].expand(n, c, size, size).reshape(n * c, 1, size, size)
    padded = _pad_reflect(x, size // 2).reshape(1, n * c, h + size - 1, w + size - 1)
    return F.conv2d(padded, weight, groups=n * c).reshape(n, c, h, w)


def _as_params(p):
    params = json.loads(p) if isinstance(p, (str, bytes)) else p
    if params.get('version', PARAMS_VERSION) != PARAMS_VERSION:
        raise ValueError(f'degrade_batch: params version {params.get("version")} is not {PARAMS_VERSION}')
    return params


def blur_batch(x, params_list):
    """Heavy-blur stage of §3.4.1 for a batch: step j applies the j-th operation of every sample that has one."""
    ops_per_sample = [blur_ops(p) for p in params_list]
    for step in range(max((len(ops) for ops in ops_per_sample), default=0)):
        idx = [i for i, ops in enumerate(ops_per_sample) if len(ops) > step]
        kernels = [kernel_for_op(ops_per_sample[i][step]) for i in idx]
        if len(idx) == x.shape[0]:
            x = _blur_step(x, kernels)
        else:
            sel = torch.tensor(idx, device=x.device)
            x = x.index_copy(0, sel, _blur_step(x.index_select(0, sel), kernels))
    return x


def resize_batch(x, params_list):
    """Down- then up-scale each image by its own factor (one matrix product per axis: R = U·D)."""
    n, _, h, w = x.shape
    rh = np.empty((n, h, h), dtype=np.float32)
    rw = np.empty((n, w, w), dtype=np.float32)
    for i, p in enumerate(params_list):
        lh, lw = resized_shape(h, w, p['scale'])
        rh[i] = resize_matrix(lh, h, p['up_interpolation']) @ resize_matrix(h, lh, p['down_interpolation'])
        rw[i] = resize_matrix(lw, w, p['up_interpolation']) @ resize_matrix(w, lw, p['down_interpolation'])
    rh = torch.from_numpy(rh).to(x.device, x.dtype)
    rw = torch.from_numpy(rw).to(x.device, x.dtype)
    return rh[:, None] @ x @ rw[:, None].transpose(-1, -2)


def noise_batch(x, params_list):
    """Add η·N(0, 1)/255 per sample, the noise drawn by a torch Generator seeded with ``noise_seed``."""
    noise = torch.empty_like(x)
    for i, p in enumerate(params_list):
        g = torch.Generator(device=x.device).manual_seed(int(p['noise_seed']))
        noise[i] = torch.randn(x.shape[1:], generator=g, device=x.device, dtype=x.dtype) * (p['noise_sigma'] / 255.0)
    return x + noise


def degrade_batch(imgs, params_list, device=None):
    """Degrade a batch on ``device`` with per-sample parameters from ``sample_degradation``.

    Args:
        imgs (Tensor): (B, C, H, W) float in [0, 1] (RGB for C = 3).
        params_list (list[dict | str]): B parameter dicts (or their JSON strings, as datasets return them).
        device (torch.device | str | None): where to compute; None → ``imgs.device``.
    Returns:
        Tensor (B, C, H, W) float32 in [0, 1] on ``device``.
    """
    if imgs.ndim != 4:
        raise ValueError(f'degrade_batch: expected imgs of shape (B, C, H, W), got {tuple(imgs.shape)}')
    if len(params_list) != imgs.shape[0]:
        raise ValueError(f'degrade_batch: {imgs.shape[0]} images but {len(params_list)} parameter sets')
    params_list = [_as_params(p) for p in params_list]
    x = imgs.to(device if device is not None else imgs.device, torch.float32)
    x = blur_batch(x, params_list)
    x = resize_batch(x, params_list).clamp_(0.0, 1.0)
    x = noise_batch(x, params_list).clamp_(0.0, 1.0)
    for i, p in enumerate(params_list):
        if p.get('jpeg_quality') is not None:  # no JPEG codec on device: CPU round trip, same result as CPU path
            hwc = x[i].permute(1, 2, 0).cpu().numpy()
            x[i] = torch.from_numpy(jpeg_compress(hwc, p['jpeg_quality'])).permute(2, 0, 1).to(x.device)
    return x


def degrade_batch_from_config(imgs, cfg, rngs, device=None):
    """Draw one parameter set per image with the shared ``sample_degradation`` and apply them on device.

    ``rngs``: one ``np.random.Generator`` per image (e.g. ``rng_for_sample(seed, index)``).
    Returns ``(degraded, params_list)``.
    """
    params_list = [sample_degradation(cfg, rng) for rng in rngs]
    return degrade_batch(imgs, params_list, device), params_list
