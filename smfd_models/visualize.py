"""Side-by-side pictures of validation results (paper Fig. 4.1, 4.2): `blurry | mask | output | GT`.

Everything here works on numpy RGB uint8 HWC images; `save_rgb` converts to BGR only at the OpenCV boundary.
"""
import os

import cv2
import numpy as np
import torch

from smfd_data.face_labels import colorize

__all__ = ['tensor_to_rgb', 'labels_to_rgb', 'mask_to_labels', 'side_by_side', 'save_rgb', 'save_labels']


def tensor_to_rgb(tensor):
    """(C,H,W) or (1,C,H,W) float tensor in [0, 1], RGB or gray → (H,W,3) uint8 RGB (clipped, rounded)."""
    t = tensor.detach().float().cpu()
    if t.dim() == 4:
        t = t[0]
    if t.dim() != 3 or t.shape[0] not in (1, 3):
        raise ValueError(f'tensor_to_rgb: expected (C,H,W) with C in (1, 3), got shape {tuple(tensor.shape)}')
    img = (t.clamp(0, 1).permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
    return np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img


def mask_to_labels(mask):
    """A mask as a model sees it → (H,W) uint8 labels.

    Accepts float one-hot / probabilities (K,H,W) or (1,K,H,W) (argmax over K), or integer labels (H,W),
    (1,H,W), (1,1,H,W).
    """
    m = mask.detach().cpu() if isinstance(mask, torch.Tensor) else torch.as_tensor(np.asarray(mask))
    if m.is_floating_point():
        if m.dim() == 4:
            m = m[0]
        if m.dim() != 3:
            raise ValueError(f'mask_to_labels: a float mask must be (K,H,W), got shape {tuple(mask.shape)}')
        m = m.argmax(dim=0)
    else:
        while m.dim() > 2 and m.shape[0] == 1:
            m = m[0]
        if m.dim() != 2:
            raise ValueError(f'mask_to_labels: integer labels must be (H,W), got shape {tuple(mask.shape)}')
    return m.numpy().astype(np.uint8)


def labels_to_rgb(labels, num_classes):
    """(H,W) labels → (H,W,3) uint8 RGB with the palette of `num_classes` (smfd_data.face_labels)."""
    return colorize(labels, num_classes=num_classes)


def side_by_side(panels, gap=2, gap_value=255):
    """Concatenate RGB uint8 panels horizontally with a `gap`-pixel white separator.

    Panels of another height are resized (nearest) to the first panel's height, keeping their aspect ratio.
    """
    if not panels:
        raise ValueError('side_by_side: no panels')
    height = panels[0].shape[0]
    row = []
    for i, panel in enumerate(panels):
        if panel.ndim == 2:
            panel = np.repeat(panel[..., None], 3, axis=2)
        if panel.shape[0] != height:
            width = max(1, round(panel.shape[1] * height / panel.shape[0]))
            panel = cv2.resize(panel, (width, height), interpolation=cv2.INTER_NEAREST)
        if i:
            row.append(np.full((height, gap, 3), gap_value, dtype=np.uint8))
        row.append(panel.astype(np.uint8))
    return np.concatenate(row, axis=1)


def save_rgb(path, img):
    """Write an RGB uint8 image (PNG, folders created). Raises OSError naming the file when OpenCV fails."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if not cv2.imwrite(path, np.ascontiguousarray(img[..., ::-1])):
        raise OSError(f'{path}: cv2.imwrite failed')


def save_labels(path, labels):
    """Write (H,W) uint8 labels as a single-channel PNG (readable as SMFDFaceDataset `mask_root_pred`)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if not cv2.imwrite(path, np.ascontiguousarray(labels, dtype=np.uint8)):
        raise OSError(f'{path}: cv2.imwrite failed')
