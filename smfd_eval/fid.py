"""Fréchet Inception Distance between two image folders (paper §2.5.1, Table 4.2).

FID = ||μ_r − μ_g||² + Tr(Σ_r + Σ_g − 2 (Σ_r Σ_g)^½) over the 2048-d pool features of the TF-ported Inception-v3
used by pytorch-fid. Everything numerical is BasicSR's (``basicsr.metrics.fid``): ``load_patched_inception_v3``,
``extract_inception_features``, ``calculate_fid``; this module adds folder reading, the offline error and a
random-weights switch for tests. FID is a set-level metric (not per image), so it is not in METRIC_REGISTRY:
run ``scripts/compute_fid.py --real DIR --fake DIR`` on the saved test outputs.
"""
import argparse
import contextlib
import os
import sys
import urllib.error
import warnings
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F
from basicsr.archs import inception as inception_module
from basicsr.metrics.fid import calculate_fid, extract_inception_features, load_patched_inception_v3

from smfd_data.image_io import list_images as list_image_names
from smfd_data.image_io import read_image

INCEPTION_SIZE = 299  # the Inception input; images are resized to it exactly as InceptionV3(resize_input=True) does


def inception_weights_path():
    """Where torch hub caches the FID Inception weights: ``$TORCH_HOME/hub/checkpoints/pt_inception-...pth``."""
    return os.path.join(torch.hub.get_dir(), 'checkpoints', os.path.basename(inception_module.FID_WEIGHTS_URL))


@contextlib.contextmanager
def _quiet_torchvision():
    """BasicSR builds Inception with torchvision's deprecated ``pretrained=`` argument; hide that warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='.*deprecated since 0.13', category=UserWarning)
        yield


@contextlib.contextmanager
def _random_inception_weights():
    """While active, BasicSR's ``fid_inception_v3`` keeps its random initialisation instead of loading weights."""
    with mock.patch.object(inception_module, 'LOCAL_FID_WEIGHTS', os.path.join(os.sep, 'nonexistent', 'fid.pth')), \
            mock.patch.object(inception_module, 'load_url', lambda *args, **kwargs: {}), \
            mock.patch.object(inception_module.models.Inception3, 'load_state_dict', lambda self, *a, **k: None):
        yield


def load_inception(device='cpu', pretrained=True):
    """BasicSR's patched Inception-v3 (pool3 features, input in [−1, 1]) in eval mode on ``device``.

    The weights (pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``, 91 MB) download on first use into the
    torch hub cache (see :func:`inception_weights_path`) or are read from
    ``experiments/pretrained_models/`` relative to the current directory. Offline without them: RuntimeError naming
    the URL and both places. ``pretrained=False`` keeps random weights: only for tests of the code path.
    """
    if not pretrained:
        with _random_inception_weights(), _quiet_torchvision():
            inception = load_patched_inception_v3(device=device, resize_input=True, normalize_input=False)
        # torch's default conv init shrinks activations ~1e-8 over Inception's depth; He init keeps features usable
        for module in inception.modules():
            if isinstance(module, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity='relu')
        return inception
    try:
        with _quiet_torchvision():
            return load_patched_inception_v3(device=device, resize_input=True, normalize_input=False)
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as err:
        raise RuntimeError(
            f'FID: the Inception weights are missing and could not be downloaded ({type(err).__name__}: {err}). '
            f'Download {inception_module.FID_WEIGHTS_URL} and put it at {inception_weights_path()} (torch hub cache, '
            f'$TORCH_HOME defaults to ~/.cache/torch) or at '
            f'{os.path.abspath(inception_module.LOCAL_FID_WEIGHTS)}.') from err


def image_paths(folder):
    """Sorted image paths of ``folder`` (not recursive); FileNotFoundError if it is missing or has no images."""
    paths = [os.path.join(folder, name) for name in list_image_names(folder).values()]
    if not paths:
        raise FileNotFoundError(f'FID: no images in {folder}')
    return sorted(paths)


def read_inception_input(path):
    """One image file → RGB (3, 299, 299) float tensor in [−1, 1] (pytorch-fid / BasicSR normalisation)."""
    rgb = torch.from_numpy(read_image(path)).permute(2, 0, 1)
    rgb = F.interpolate(rgb[None], size=(INCEPTION_SIZE, INCEPTION_SIZE), mode='bilinear', align_corners=False)[0]
    return rgb * 2 - 1


def _batches(paths, batch_size):
    for start in range(0, len(paths), batch_size):
        yield torch.stack([read_inception_input(p) for p in paths[start:start + batch_size]])


def folder_features(folder, inception, batch_size=16, device='cpu'):
    """(N, 2048) float64 Inception features of the images in ``folder``."""
    paths = image_paths(folder)
    num_batches = (len(paths) + batch_size - 1) // batch_size
    features = extract_inception_features(_batches(paths, batch_size), inception, num_batches, device=device)
    return features.numpy().astype(np.float64)


def feature_stats(features):
    """Mean vector and covariance matrix (rows are samples), as BasicSR's calculate_fid_folder computes them."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f'FID: need a (N>=2, D) feature matrix, got shape {features.shape}')
    return features.mean(0), np.cov(features, rowvar=False)


def fid_from_features(features1, features2):
    """FID between two (N, D) feature sets (Gaussian fit of each, then BasicSR's ``calculate_fid``)."""
    mu1, sigma1 = feature_stats(features1)
    mu2, sigma2 = feature_stats(features2)
    return float(calculate_fid(mu1, np.atleast_2d(sigma1), mu2, np.atleast_2d(sigma2)))


def compute_fid_folders(real_dir, fake_dir, batch_size=16, device='cpu', pretrained=True):
    """FID between the images of ``real_dir`` and ``fake_dir`` (sizes may differ: each is resized to 299²).

    Few images give a noisy, upward-biased FID (the covariance is 2048×2048): compare only numbers computed on the
    same number of images, ideally thousands (the paper's test split).
    """
    inception = load_inception(device, pretrained)
    real = folder_features(real_dir, inception, batch_size, device)
    fake = folder_features(fake_dir, inception, batch_size, device)
    return fid_from_features(real, fake)


# ------------------------------------------------------------------------------------------------- command line
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Frechet Inception Distance between two image folders.')
    parser.add_argument('--real', required=True, help='folder of reference (sharp) images')
    parser.add_argument('--fake', required=True, help='folder of restored / generated images')
    parser.add_argument('--batch', type=int, default=16, help='images per Inception batch (default: 16)')
    parser.add_argument('--device', default='cpu', help='torch device, e.g. cpu or cuda (default: cpu)')
    parser.add_argument('--random-inception', action='store_true', help=argparse.SUPPRESS)  # tests only
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.batch < 1:
        raise SystemExit(f'compute_fid: --batch must be >= 1, got {args.batch}')
    try:
        fid = compute_fid_folders(args.real, args.fake, args.batch, args.device, pretrained=not args.random_inception)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f'compute_fid: {err}', file=sys.stderr)
        return 1
    print(f'FID: {fid:.4f}')
    return 0

