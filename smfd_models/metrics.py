"""Evaluation metrics of SMFD (paper §2.5.1, §3.4.6.4, Tables 4.1 and 4.2), registered in BasicSR's METRIC_REGISTRY.

BasicSR calls every metric as ``fn(**metric_data, **metric_opt_without_type)``, so each function takes ``**kwargs``
and ignores what it does not use. Image metrics receive ``img`` / ``img2`` as uint8 BGR HWC arrays (output of
``basicsr.utils.tensor2img``, as SRModel passes them), ``SMFDModel`` adds ``mask`` (HW uint8 group labels);
``SMFDMaskGeneratorModel`` passes ``pred`` / ``target`` (HW label maps) and ``num_classes``.
PSNR, SSIM and NIQE are BasicSR's own ``calculate_psnr`` / ``calculate_ssim`` / ``calculate_niqe``. FID is a
folder-level metric: see :mod:`smfd_models.fid`. Definitions and conventions: ``docs/metrics.md``.
"""
import os
import urllib.error
import warnings

import cv2
import numpy as np
import torch
from basicsr.metrics.metric_util import reorder_image, to_y_channel
from basicsr.utils.registry import METRIC_REGISTRY

from smfd_data.face_labels import group_names

# Regions of the 5-group mask (paper §3.4.2, ``smfd_data.face_labels.PAPER_GROUPS``: 0 background (incl. neck,
# cloth), 1 facial components (eyes, brows, nose, ears, lips, mouth), 2 wearings (hat, earrings, necklace,
# glasses), 3 skin, 4 hair). 'face' is every non-background group except hair; 'components' the components alone.
PAPER_GROUP_IDS = {name: idx for idx, name in enumerate(group_names())}
REGION_GROUPS = {
    'face': tuple(PAPER_GROUP_IDS[name] for name in ('components', 'wearings', 'skin')),  # (1, 2, 3)
    'components': (PAPER_GROUP_IDS['components'], ),  # (1,)
}


def _to_numpy(x):
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _crop(arr, crop_border):
    if crop_border:
        return arr[crop_border:-crop_border, crop_border:-crop_border, ...]
    return arr


def _prepare_pair(img, img2, crop_border, input_order, test_y_channel, name):
    """HWC float64 copies of an image pair on the 0–255 scale, cropped and optionally reduced to Y (as BasicSR)."""
    img, img2 = _to_numpy(img), _to_numpy(img2)
    if img.shape != img2.shape:
        raise ValueError(f'{name}: image shapes differ: {img.shape} vs {img2.shape}')
    if input_order not in ('HWC', 'CHW'):
        raise ValueError(f'{name}: input_order must be "HWC" or "CHW", got {input_order!r}')
    img = _crop(reorder_image(img, input_order=input_order), crop_border)
    img2 = _crop(reorder_image(img2, input_order=input_order), crop_border)
    if test_y_channel:
        img, img2 = to_y_channel(img), to_y_channel(img2)
    return img.astype(np.float64), img2.astype(np.float64)


@METRIC_REGISTRY.register()
def smfd_mse(img, img2, crop_border=0, input_order='HWC', test_y_channel=False, **kwargs):
    """Mean squared error on the 0–255 scale (paper Table 4.2 reports e.g. 330.19).

    Args:
        img, img2 (ndarray): Images with values in [0, 255] (uint8 BGR HWC from BasicSR).
        crop_border (int): Pixels cut from each edge first. Default: 0.

    Returns:
        float: mean over all pixels and channels of (img − img2)².
    """
    img, img2 = _prepare_pair(img, img2, crop_border, input_order, test_y_channel, 'smfd_mse')
    return float(np.mean((img - img2)**2))


# ----------------------------------------------------------------------------------------------------------------
# Segmentation metrics of the mask generator (§3.4.6.4: "computed channel wise independently before a mean")
# ----------------------------------------------------------------------------------------------------------------
def _per_class_overlap(pred, target, num_classes, ignore_background, name):
    """Per-class |A∩B|, |A|, |B| of two HW label maps, for the classes present in at least one of them."""
    pred, target = _to_numpy(pred), _to_numpy(target)
    pred = pred[..., 0] if pred.ndim == 3 and pred.shape[-1] == 1 else pred
    target = target[..., 0] if target.ndim == 3 and target.shape[-1] == 1 else target
    if pred.shape != target.shape or pred.ndim != 2:
        raise ValueError(f'{name}: pred and target must be HW label maps of one shape, got {pred.shape} and '
                         f'{target.shape}')
    if num_classes is None or int(num_classes) < 1:
        raise ValueError(f'{name}: num_classes must be a positive int, got {num_classes!r}')
    num_classes = int(num_classes)
    for label_map, what in ((pred, 'pred'), (target, 'target')):
        if label_map.size and (label_map.min() < 0 or label_map.max() >= num_classes):
            raise ValueError(f'{name}: {what} labels must lie in [0, {num_classes - 1}], got '
                             f'[{label_map.min()}, {label_map.max()}]')
    pred, target = pred.astype(np.int64).ravel(), target.astype(np.int64).ravel()
    # confusion counts in one pass: |A∩B| is the diagonal, |A| / |B| the marginals
    confusion = np.bincount(target * num_classes + pred, minlength=num_classes**2).reshape(num_classes, num_classes)
    intersection = np.diag(confusion).astype(np.float64)
    size_pred = confusion.sum(0).astype(np.float64)
    size_target = confusion.sum(1).astype(np.float64)
    classes = np.arange(1 if ignore_background else 0, num_classes)
    present = classes[(size_pred[classes] + size_target[classes]) > 0]
    return intersection[present], size_pred[present], size_target[present]


@METRIC_REGISTRY.register()
def smfd_dice(pred, target, num_classes, ignore_background=False, **kwargs):
    """Hard Dice coefficient 2|A∩B| / (|A|+|B|) per class, averaged over classes (paper §3.4.6.4, Table 4.1).

    Args:
        pred, target (ndarray | Tensor): HW label maps (class indices in [0, num_classes)).
        num_classes (int): Number of classes K.
        ignore_background (bool): Leave class 0 out. Default: False.

    Returns:
        float in [0, 1]: mean Dice over the classes present in ``pred`` or ``target``; a class absent from both
        is left out of the mean (it would be 0/0). If no class is left (only possible with
        ``ignore_background=True`` and two all-background maps), the maps agree and the result is 1.0.
    """
    inter, size_a, size_b = _per_class_overlap(pred, target, num_classes, ignore_background, 'smfd_dice')
    if inter.size == 0:
        return 1.0
    return float(np.mean(2 * inter / (size_a + size_b)))


@METRIC_REGISTRY.register()
def smfd_jaccard(pred, target, num_classes, ignore_background=False, **kwargs):
    """Jaccard index (IoU) |A∩B| / |A∪B| per class, averaged over classes (paper §3.4.6.4, Table 4.1).

    Same arguments and conventions as :func:`smfd_dice`.
    """
    inter, size_a, size_b = _per_class_overlap(pred, target, num_classes, ignore_background, 'smfd_jaccard')
    if inter.size == 0:
        return 1.0
    return float(np.mean(inter / (size_a + size_b - inter)))


# ----------------------------------------------------------------------------------------------------------------
# Region-restricted PSNR / SSIM: how well the face (or its components) is restored, using the 5-group mask
# ----------------------------------------------------------------------------------------------------------------
def region_mask(mask, region='face', region_groups=None, shape=None, name='region metric'):
    """Boolean HW mask of the pixels whose group label belongs to ``region``.

    Args:
        mask (ndarray | Tensor): HW (or HW1) integer group labels.
        region (str): Key of ``REGION_GROUPS`` ('face' | 'components'). Ignored when ``region_groups`` is given.
        region_groups (list[int | str] | None): Explicit group ids (or ``PAPER_GROUPS`` names such as 'skin')
            that form the region; overrides ``region``.
        shape (tuple | None): Expected HW shape (the images'); a mismatch raises ValueError.
    """
    if mask is None:
        raise ValueError(f'{name}: needs a `mask` (HW group labels); SMFDModel passes it during validation')
    mask = _to_numpy(mask)
    if mask.ndim == 3 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if mask.ndim != 2:
        raise ValueError(f'{name}: mask must be an HW label map, got shape {mask.shape}')
    if shape is not None and mask.shape != tuple(shape):
        raise ValueError(f'{name}: mask shape {mask.shape} does not match image shape {tuple(shape)}')
    if region_groups is None:
        if region not in REGION_GROUPS:
            raise ValueError(f'{name}: unknown region {region!r}; use one of {sorted(REGION_GROUPS)} or pass '
                             f'region_groups=[...]')
        region_groups = REGION_GROUPS[region]
    ids = []
    for group in region_groups:
        if isinstance(group, str):
            if group not in PAPER_GROUP_IDS:
                raise ValueError(f'{name}: unknown group name {group!r}; paper groups: {list(PAPER_GROUP_IDS)}')
            group = PAPER_GROUP_IDS[group]
        ids.append(int(group))
    return np.isin(mask, np.asarray(ids, dtype=np.int64))


def ssim_map(img, img2):
    """SSIM map of two single-channel float64 images on the 0–255 scale.

    Same computation as ``basicsr.metrics.psnr_ssim._ssim`` (11×11 Gaussian window, σ=1.5, 'valid' mode), which
    returns only the mean: pixel (i, j) of the (H−10, W−10) map is the SSIM of the window centred at (i+5, j+5).
    """
    c1 = (0.01 * 255)**2
    c2 = (0.03 * 255)**2
    kernel = cv2.getGaussianKernel(11, 1.5)
    window = np.outer(kernel, kernel.transpose())

    mu1 = cv2.filter2D(img, -1, window)[5:-5, 5:-5]  # valid mode for window size 11
    mu2 = cv2.filter2D(img2, -1, window)[5:-5, 5:-5]
    mu1_sq = mu1**2
    mu2_sq = mu2**2
    mu1_mu2 = mu1 * mu2
    sigma1_sq = cv2.filter2D(img**2, -1, window)[5:-5, 5:-5] - mu1_sq
    sigma2_sq = cv2.filter2D(img2**2, -1, window)[5:-5, 5:-5] - mu2_sq
    sigma12 = cv2.filter2D(img * img2, -1, window)[5:-5, 5:-5] - mu1_mu2
    return ((2 * mu1_mu2 + c1) * (2 * sigma12 + c2)) / ((mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2))


@METRIC_REGISTRY.register()
def smfd_region_psnr(img, img2, mask=None, region='face', region_groups=None, crop_border=0, input_order='HWC',
                     test_y_channel=False, **kwargs):
    """PSNR over the pixels of a mask region: 10·log10(255² / MSE over masked pixels and all channels).

    Args:
        img, img2 (ndarray): Images on the 0–255 scale (uint8 BGR HWC from BasicSR).
        mask (ndarray): HW group labels at image resolution (5-group mask, paper §3.3).
        region (str): 'face' (groups 1, 2, 3) or 'components' (group 1). Default: 'face'.
        region_groups (list[int | str] | None): Explicit group ids or paper group names, overriding ``region``.
        crop_border, input_order, test_y_channel: as in BasicSR's ``calculate_psnr`` (the mask is cropped too).

    Returns:
        float: PSNR in dB; ``inf`` if the region is identical, ``nan`` if the region is empty.
    """
    img, img2 = _prepare_pair(img, img2, crop_border, input_order, test_y_channel, 'smfd_region_psnr')
    inside = _crop(region_mask(mask, region, region_groups, None, 'smfd_region_psnr'), crop_border)
    if inside.shape != img.shape[:2]:
        raise ValueError(f'smfd_region_psnr: mask shape {inside.shape} does not match image shape {img.shape[:2]}')
    if not inside.any():
        return float('nan')
    mse = np.mean((img[inside] - img2[inside])**2)
    if mse == 0:
        return float('inf')
    return float(10. * np.log10(255. * 255. / mse))


@METRIC_REGISTRY.register()
def smfd_region_ssim(img, img2, mask=None, region='face', region_groups=None, crop_border=0, input_order='HWC',
                     test_y_channel=False, **kwargs):
    """SSIM over a mask region: mean of BasicSR's SSIM map at the window centres inside the region.

    The SSIM map is computed on the whole image (so windows see their full neighbourhood), per channel as in
    ``calculate_ssim``; it is averaged over the pixels whose window centre lies in the region (the 5-pixel border
    that 'valid' filtering drops is never counted), then over channels. Arguments as :func:`smfd_region_psnr`.

    Returns:
        float: region SSIM (1.0 for identical images); ``nan`` if no window centre lies in the region.
    """
    img, img2 = _prepare_pair(img, img2, crop_border, input_order, test_y_channel, 'smfd_region_ssim')
    inside = _crop(region_mask(mask, region, region_groups, None, 'smfd_region_ssim'), crop_border)
    if inside.shape != img.shape[:2]:
        raise ValueError(f'smfd_region_ssim: mask shape {inside.shape} does not match image shape {img.shape[:2]}')
    if img.shape[0] < 11 or img.shape[1] < 11:
        raise ValueError(f'smfd_region_ssim: images must be at least 11×11 (SSIM window), got {img.shape[:2]}')
    inside = inside[5:-5, 5:-5]  # align with the 'valid' SSIM map
    if not inside.any():
        return float('nan')
    if img.ndim == 2:
        img, img2 = img[..., None], img2[..., None]
    per_channel = [ssim_map(img[..., c], img2[..., c])[inside].mean() for c in range(img.shape[2])]
    return float(np.mean(per_channel))


# ----------------------------------------------------------------------------------------------------------------
# LPIPS (Zhang et al. 2018; paper Table 4.2) through the `lpips` package
# ----------------------------------------------------------------------------------------------------------------
_LPIPS_MODELS = {}  # (net, pretrained_backbone, device) -> lpips.LPIPS, built once per process
_BACKBONE_WEIGHTS = {'alex': 'AlexNet_Weights', 'vgg': 'VGG16_Weights', 'squeeze': 'SqueezeNet1_1_Weights'}


def _backbone_url(net):
    import torchvision
    return getattr(torchvision.models, _BACKBONE_WEIGHTS[net]).IMAGENET1K_V1.url


def get_lpips_model(net='alex', pretrained_backbone=True, device=None):
    """Return a cached ``lpips.LPIPS`` (v0.1, linear heads shipped in the ``lpips`` wheel) in eval mode.

    The ImageNet backbone (torchvision AlexNet / VGG16 / SqueezeNet) downloads on first use into
    ``$TORCH_HOME/hub/checkpoints`` (default ``~/.cache/torch/hub/checkpoints``). Offline without that file a
    RuntimeError names the file, the URL and where to put it. ``pretrained_backbone=False`` uses a randomly
    initialised backbone (``pnet_rand=True``): only for tests of the code path, the numbers mean nothing.
    ``device`` None: CUDA when available, else CPU.
    """
    if device is None:
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if net not in _BACKBONE_WEIGHTS:
        raise ValueError(f'smfd_lpips: unknown net {net!r}; use one of {sorted(_BACKBONE_WEIGHTS)}')
    key = (net, bool(pretrained_backbone), str(device))
    if key not in _LPIPS_MODELS:
        import lpips
        try:
            with warnings.catch_warnings():  # lpips uses torchvision's deprecated `pretrained=` argument
                warnings.filterwarnings('ignore', message='.*deprecated since 0.13', category=UserWarning)
                model = lpips.LPIPS(net=net, version='0.1', pnet_rand=not pretrained_backbone, verbose=False)
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as err:
            url = _backbone_url(net)
            target = os.path.join(torch.hub.get_dir(), 'checkpoints', os.path.basename(url))
            raise RuntimeError(
                f'smfd_lpips: the ImageNet weights of the LPIPS backbone {net!r} are missing and could not be '
                f'downloaded ({type(err).__name__}: {err}). Download {url} and put it at {target} (the torch hub '
                f'cache: $TORCH_HOME/hub/checkpoints, TORCH_HOME defaults to ~/.cache/torch).') from err
        for param in model.parameters():
            param.requires_grad_(False)
        _LPIPS_MODELS[key] = model.to(device).eval()
    return _LPIPS_MODELS[key]


def lpips_unavailable(net='alex', pretrained_backbone=True):
    """None if ``smfd_lpips`` can run here, else the reason (one line): the option check calls this so that a
    machine without the backbone weights (offline) refuses before any work instead of failing at the first image.
    Cheap when the weights are cached; otherwise it tries the download once (what the first image would do)."""
    if net not in _BACKBONE_WEIGHTS:
        return f'unknown net {net!r}; use one of {sorted(_BACKBONE_WEIGHTS)}'
    if not pretrained_backbone or any(key[:2] == (net, True) for key in _LPIPS_MODELS):
        return None
    try:
        import lpips  # noqa: F401
    except ImportError as err:
        return f'the lpips package is not installed ({err})'
    if os.path.isfile(os.path.join(torch.hub.get_dir(), 'checkpoints', os.path.basename(_backbone_url(net)))):
        return None
    try:
        get_lpips_model(net, pretrained_backbone, device='cpu')
    except RuntimeError as err:
        return str(err).removeprefix('smfd_lpips: ')
    return None


def _bgr_uint8_to_lpips_tensor(img, device):
    """uint8 BGR HWC (BasicSR's tensor2img output) → RGB (1,3,H,W) float tensor in [−1, 1] (what LPIPS expects)."""
    img = _to_numpy(img)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f'smfd_lpips: expected an HWC image with 3 (or 1) channels, got shape {img.shape}')
    rgb = np.ascontiguousarray(img[..., ::-1]).astype(np.float32) / 255.
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].to(device) * 2 - 1


@METRIC_REGISTRY.register()
def smfd_lpips(img, img2, net='alex', pretrained_backbone=True, device=None, crop_border=0, **kwargs):
    """LPIPS distance (lower = more similar) between two uint8 BGR HWC images (paper Table 4.2).

    Args:
        img, img2 (ndarray): uint8 BGR HWC images on the 0–255 scale (as BasicSR's SRModel passes them).
        net (str): LPIPS backbone, 'alex' (default, the usual choice for evaluation) | 'vgg' | 'squeeze'.
        pretrained_backbone (bool): False only for tests (random backbone, meaningless values).
        device (str | None): Torch device of the LPIPS network. Default: None (CUDA when available, else CPU).
        crop_border (int): Pixels cut from each edge first. Default: 0.
    """
    img, img2 = _to_numpy(img), _to_numpy(img2)
    if img.shape != img2.shape:
        raise ValueError(f'smfd_lpips: image shapes differ: {img.shape} vs {img2.shape}')
    model = get_lpips_model(net, pretrained_backbone, device)
    device = next(model.parameters()).device
    x = _bgr_uint8_to_lpips_tensor(_crop(img, crop_border), device)
    y = _bgr_uint8_to_lpips_tensor(_crop(img2, crop_border), device)
    with torch.no_grad():
        return float(model(x, y).item())
