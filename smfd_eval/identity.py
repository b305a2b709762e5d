"""Identity similarity: cosine similarity between face-recognition embeddings of an output and its ground truth.

Deblurring can raise PSNR while changing who the face looks like; users of face restorers judge identity first
(GFPGAN trains with an identity loss for this reason). The embedding is the one of GFPGAN's identity loss:
the ArcFace ResNet-18 ``gfpgan.archs.arcface_arch.ResNetArcFace`` (IRBlock, layers [2, 2, 2, 2], no SE), weights
``arcface_resnet18.pth`` from GFPGAN's v0.1.0 release, fed as ``GFPGANModel.gray_resize_for_identity`` feeds it:
RGB in [-1, 1] → gray (0.2989 R + 0.5870 G + 0.1140 B) → bilinear resize to 128×128 (align_corners=False),
giving a 512-d vector (fc5 + BN). 1 = same direction; the scale is ArcFace's own, so compare methods on one set.

The arch comes from the ``gfpgan`` package (``pip install --no-deps gfpgan==1.3.8``), imported only when the
metric is built; the weights download on first use into ``CACHE_DIR/gfpgan`` (``~/.cache/smfd``, ``$SMFD_CACHE``)
and load with ``weights_only``. Either one missing raises ``IdentityUnavailable`` with the reason, which the
benchmark prints as "unavailable (reason)".
"""
import hashlib
import importlib

import numpy as np
import torch
import torch.nn.functional as F

from smfd_models.checkpoint import WeightsUnavailable, cached_weights, load_weights

ARCFACE_URL = 'https://github.com/TencentARC/GFPGAN/releases/download/v0.1.0/arcface_resnet18.pth'
ARCFACE_CONFIG = {'block': 'IRBlock', 'layers': [2, 2, 2, 2], 'use_se': False}  # GFPGAN's network_identity
INPUT_SIZE = 128
GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)  # GFPGAN's own rounding of BT.601, kept so embeddings match its loss
WEIGHTS_SUBDIR = 'gfpgan'


class IdentityUnavailable(RuntimeError):
    """The identity network cannot be built (gfpgan not installed, weights missing offline, unreadable file)."""


def build_arcface():
    """GFPGAN's ArcFace ResNet-18 with its own random initialisation (eval mode)."""
    from smfd_basicsr import prepare_basicsr
    prepare_basicsr()  # gfpgan imports basicsr, which needs the torchvision stand-in
    try:
        module = importlib.import_module('gfpgan.archs.arcface_arch')
    except ImportError as err:
        raise IdentityUnavailable(f'needs the ArcFace arch of gfpgan: pip install --no-deps gfpgan==1.3.8 '
                                  f'({type(err).__name__}: {err})') from err
    return module.ResNetArcFace(**ARCFACE_CONFIG).eval()


def load_arcface(weights=None, download=True, cache_dir=None):
    """The pretrained identity network: ``weights`` (a local file) or GFPGAN's release file from the cache.

    ``download=False`` never goes online (offline benchmarks). Raises IdentityUnavailable with the reason.
    """
    try:  # the file first: offline without it, gfpgan is not even imported
        path = weights or cached_weights(ARCFACE_URL, cache_dir, WEIGHTS_SUBDIR, download=download)
        return load_weights(build_arcface(), path, None).eval()  # a bare state dict (GFPGAN: param_key=None)
    except (WeightsUnavailable, FileNotFoundError, ValueError) as err:
        raise IdentityUnavailable(str(err)) from err


def identity_input(images, device='cpu'):
    """uint8 RGB HWC faces (a list, each any size) → the network's input (N, 1, 128, 128) in [-1, 1]."""
    tensors = []
    for img in images:
        img = np.asarray(img)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f'identity: expected uint8 RGB HWC images, got {img.dtype} {img.shape}')
        x = torch.from_numpy(np.ascontiguousarray(img)).to(device).permute(2, 0, 1)[None].float() / 127.5 - 1
        gray = sum(w * x[:, c] for c, w in enumerate(GRAY_WEIGHTS)).unsqueeze(1)
        tensors.append(F.interpolate(gray, (INPUT_SIZE, INPUT_SIZE), mode='bilinear', align_corners=False))
    return torch.cat(tensors)


def cosine_similarity(a, b):
    """cos(a, b) in [-1, 1]; NaN when either vector is zero (no direction to compare)."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    if norm == 0:
        return float('nan')
    return float(np.clip(np.dot(a, b) / norm, -1.0, 1.0))


class IdentityEmbedder:
    """Embeddings and output-vs-GT similarity; GT embeddings are kept (every method compares with the same GT)."""

    def __init__(self, net, device='cpu'):
        self.device = torch.device(device)
        self.net = net.to(self.device).eval().requires_grad_(False)
        self._gt_cache = {}

    @torch.no_grad()
    def embed(self, images):
        """(N, 512) float64 embeddings of uint8 RGB faces."""
        return self.net(identity_input(images, self.device)).double().cpu().numpy()

    def _gt_embedding(self, gt):
        key = (gt.shape, hashlib.sha1(np.ascontiguousarray(gt).tobytes()).hexdigest())
        if key not in self._gt_cache:
            self._gt_cache[key] = self.embed([gt])[0]
        return self._gt_cache[key]

    def similarity(self, out, gt):
        """Cosine similarity of the embeddings of ``out`` and ``gt`` (uint8 RGB, any sizes)."""
        return cosine_similarity(self.embed([out])[0], self._gt_embedding(gt))
