"""The benchmark's metrics (paper Table 4.2 + regions + mask overlap): per image and per set, each metric that
cannot run (weights missing offline, images too small) reported as "unavailable (reason)", never as a number."""
import os

import numpy as np
import torch

from smfd_eval.methods import unavailable


def _bgr(img):
    return np.ascontiguousarray(img[..., ::-1])


class MetricSuite:
    """Per-image and set-level metrics with a reason for each one that cannot run."""

    def __init__(self, num_classes, device='cpu', offline=False, skip=(), identity_weights=None):
        from basicsr.metrics import calculate_niqe, calculate_psnr, calculate_ssim

        from smfd_models import metrics
        self.m, self.psnr, self.ssim, self.niqe_fn = metrics, calculate_psnr, calculate_ssim, calculate_niqe
        self.num_classes, self.device, self.offline = num_classes, device, offline
        self.reasons = {key: 'skipped (--skip)' for key in skip}
        if num_classes != 5:
            for key in ('psnr_face', 'ssim_face', 'psnr_components', 'ssim_components'):
                self.reasons[key] = f'regions need the 5 paper groups, the test set has {num_classes} classes'
        if 'lpips' not in self.reasons:
            self._check_lpips()
        self.identity = None
        if 'identity' not in self.reasons:
            self._load_identity(identity_weights)

    def _check_lpips(self):
        url = self.m._backbone_url('alex')
        path = os.path.join(torch.hub.get_dir(), 'checkpoints', os.path.basename(url))
        if self.offline and not os.path.isfile(path):
            self.reasons['lpips'] = f'AlexNet weights not in {path} and --offline'
            return
        try:
            self.m.get_lpips_model('alex', True, self.device)
        except Exception as err:  # offline download failures come as RuntimeError/URLError/OSError
            self.reasons['lpips'] = f'{type(err).__name__}: {str(err).splitlines()[0][:160]}'

    def _load_identity(self, weights):
        from smfd_eval import identity
        try:
            self.identity = identity.IdentityEmbedder(
                identity.load_arcface(weights, download=not self.offline), self.device)
        except identity.IdentityUnavailable as err:
            self.reasons['identity'] = str(err).splitlines()[0][:400]  # long: it says where to put the file

    def per_image(self, out, gt, labels, pred_labels=None):
        """Every per-image metric of one output (uint8 RGB) against its GT; failures become reasons."""
        a, b = _bgr(out), _bgr(gt)
        values = {'psnr': self.psnr(a, b, 0), 'ssim': self.ssim(a, b, 0), 'mse': self.m.smfd_mse(a, b)}
        if 'niqe' not in self.reasons:
            try:
                values['niqe'] = float(self.niqe_fn(a, 0, input_order='HWC', convert_to='y'))
            except Exception as err:
                self.reasons['niqe'] = (f'needs images with at least two 96×96 blocks, got {a.shape[1]}×{a.shape[0]}'
                                        if min(a.shape[:2]) < 96 or max(a.shape[:2]) < 192 else
                                        f'{type(err).__name__}: {err}')
        if 'lpips' not in self.reasons:
            values['lpips'] = self.m.smfd_lpips(a, b, device=self.device)
        if self.identity is not None and 'identity' not in self.reasons:
            values['identity'] = self.identity.similarity(out, gt)
        if 'psnr_face' not in self.reasons:
            for region in ('face', 'components'):
                values[f'psnr_{region}'] = self.m.smfd_region_psnr(a, b, mask=labels, region=region)
                values[f'ssim_{region}'] = self.m.smfd_region_ssim(a, b, mask=labels, region=region)
        if pred_labels is not None:
            values['dice'] = self.m.smfd_dice(pred_labels, labels, self.num_classes)
            values['jaccard'] = self.m.smfd_jaccard(pred_labels, labels, self.num_classes)
        return values

    def fid(self, real_dir, fake_dir):
        if 'fid' in self.reasons:
            return unavailable(self.reasons['fid'])
        from smfd_eval import fid
        local = os.path.abspath(fid.inception_module.LOCAL_FID_WEIGHTS)
        if self.offline and not (os.path.isfile(fid.inception_weights_path()) or os.path.isfile(local)):
            self.reasons['fid'] = f'Inception weights not in {fid.inception_weights_path()} and --offline'
            return unavailable(self.reasons['fid'])
        try:
            return fid.compute_fid_folders(real_dir, fake_dir, device=self.device)
        except Exception as err:
            self.reasons['fid'] = f'{type(err).__name__}: {str(err).splitlines()[0][:160]}'
            return unavailable(self.reasons['fid'])


def mean_over_images(values):
    """Mean over images; None/NaN (an empty mask region) are left out, +inf (identical images) is kept."""
    kept = [v for v in values if v is not None and not np.isnan(v)]
    return float(np.mean(kept)) if kept else None
