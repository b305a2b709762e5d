"""Side-by-side pictures of validation results (paper Fig. 4.1, 4.2): `blurry | mask | output | GT`.

Everything here works on numpy RGB uint8 HWC images; files are written by `smfd_data.image_io`.
"""

import cv2
import numpy as np
import torch

from smfd_data.face_labels import colorize

__all__ = ['tensor_to_rgb', 'labels_to_rgb', 'mask_to_labels', 'picture_grid', 'side_by_side']


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


def _text_strip(text, width, height, vertical_centre=False):
    strip = np.full((height, width, 3), 255, np.uint8)
    y = height // 2 + 4 if vertical_centre else min(height - 4, 12)
    cv2.putText(strip, text[:max(1, width // 7)], (3, y), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1,
                cv2.LINE_AA)
    return strip


def picture_grid(rows, row_labels=None, column_labels=None, min_tile=0, gap=2, gap_value=255):
    """The one picture-grid drawer: validation pictures, the benchmark's grid, the demo's report picture.

    ``rows``: list of rows, each a list of RGB uint8 images (HW maps are shown gray). Every tile takes the size of
    the first one (nearest-neighbour resize; a panel of another height keeps its aspect ratio) and is enlarged by
    an integer factor until its width is at least ``min_tile`` pixels, so small faces and labels stay readable.
    ``row_labels`` are written left of the rows, ``column_labels`` above the columns.
    """
    if not rows or not rows[0]:
        raise ValueError('picture_grid: no pictures')
    height, width = rows[0][0].shape[:2]
    scale = max(1, int(np.ceil(min_tile / width))) if min_tile else 1
    tile_h = height * scale

    def tile(img):
        img = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img
        h, w = img.shape[:2]
        size = (max(1, round(w * tile_h / h)), tile_h)
        return cv2.resize(img, size, interpolation=cv2.INTER_NEAREST).astype(np.uint8) if (w, h) != size else img

    def hcat(parts):
        out = []
        for i, part in enumerate(parts):
            if i:
                out.append(np.full((part.shape[0], gap, 3), gap_value, np.uint8))
            out.append(part)
        return np.concatenate(out, axis=1)

    lines = [[tile(img) for img in row] for row in rows]
    label_w = 110 if row_labels else 0
    if row_labels:
        lines = [[_text_strip(text, label_w, tile_h, True)] + line for text, line in zip(row_labels, lines)]
    lines = [hcat(line) for line in lines]
    if column_labels:
        widths = [t.shape[1] for t in [tile(img) for img in rows[0]]]
        heads = ([_text_strip('', label_w, 16)] if row_labels else []) + [
            _text_strip(text, w, 16) for text, w in zip(column_labels, widths)]
        lines.insert(0, hcat(heads))
    width_max = max(line.shape[1] for line in lines)
    lines = [np.pad(line, ((0, 0), (0, width_max - line.shape[1]), (0, 0)), constant_values=gap_value)
             for line in lines]
    out = []
    for i, line in enumerate(lines):
        if i:
            out.append(np.full((gap, width_max, 3), gap_value, np.uint8))
        out.append(line)
    return np.concatenate(out, axis=0)


def side_by_side(panels, gap=2, gap_value=255):
    """Panels in one row (a validation picture: ``blurry | mask | output | GT``), see ``picture_grid``."""
    return picture_grid([panels], gap=gap, gap_value=gap_value)
