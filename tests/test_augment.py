"""The rotation fill rule of smfd_data/augment.py (issue #10, item 6): image and labels are both reflected.

The image encodes its own source coordinates (x, y): cv2's bilinear warp with BORDER_REFLECT_101 returns the
*reflected* source coordinate of every output pixel (the folded coordinate is piecewise linear with its folds
on pixel centres, so bilinear interpolation reproduces it). The labels are a blockwise function of the source
coordinates, so after any flip / rotation / crop the label of each pixel must equal that function of the pixel's
colour — everywhere, in the reflected corners too. The former fill (labels padded with background) fails there.
"""
import numpy as np
import pytest

from smfd_data.augment import FILL_BORDER, apply_geometric, augment_pair, geometric_matrix
from smfd_data.face_labels import CELEBAMASK_CLASSES, NUM_CELEBAMASK_CLASSES, flip_lut

SIZE = 40
BLOCK = 5
LEFT_RIGHT = [CELEBAMASK_CLASSES.index(n) for n in ('l_eye', 'r_eye', 'l_brow', 'r_brow', 'l_ear', 'r_ear')]


def label_of(x, y):
    """A blockwise class in 1..18 (never background 0), using every left/right class."""
    bx, by = np.floor_divide(x, BLOCK), np.floor_divide(y, BLOCK)
    return (1 + (bx + 3 * by) % (NUM_CELEBAMASK_CLASSES - 1)).astype(np.uint8)


def coordinate_sample(size=SIZE):
    yy, xx = np.mgrid[:size, :size]
    img = np.stack([xx, yy, np.zeros_like(xx)], axis=-1).astype(np.float32)
    return img, label_of(xx, yy)


def expected_labels(out_img, lut=None):
    """Every class the colour (= source coordinate) allows: nearest pixel, with slack for cv2's 1/32-px bilinear
    weights where the coordinate is within 1/16 px of a pixel boundary."""
    x, y = out_img[..., 0], out_img[..., 1]
    allowed = []
    for dx in (-1 / 16, 1 / 16):
        for dy in (-1 / 16, 1 / 16):
            lab = label_of(np.floor(x + dx + 0.5).astype(int), np.floor(y + dy + 0.5).astype(int))
            allowed.append(lab if lut is None else lut[lab])
    return np.stack(allowed)


def outside_source(params, size=SIZE):
    """Output pixels whose sampling point lies outside the source image (filled by the border rule)."""
    import cv2
    inverse = cv2.invertAffineTransform(geometric_matrix(params, size, size))
    v, u = np.mgrid[:size, :size]
    xs = inverse[0, 0] * u + inverse[0, 1] * v + inverse[0, 2]
    ys = inverse[1, 0] * u + inverse[1, 1] * v + inverse[1, 2]
    return (xs < -0.5) | (xs > size - 0.5) | (ys < -0.5) | (ys > size - 0.5)


def params(angle, hflip=False, crop_scale=1.0, crop_x=0.5, crop_y=0.5):
    return {'hflip': hflip, 'angle': angle, 'crop_scale': crop_scale, 'crop_x': crop_x, 'crop_y': crop_y,
            'brightness': 1.0, 'contrast': 1.0}


def test_coordinate_image_reflects_as_expected():
    """The premise: the warped image holds the reflected (BORDER_REFLECT_101) source coordinates."""
    import cv2
    img, labels = coordinate_sample()
    p = params(30.0)
    out_img, _ = apply_geometric(img, labels, p)
    inverse = cv2.invertAffineTransform(geometric_matrix(p, SIZE, SIZE))
    v, u = np.mgrid[:SIZE, :SIZE]
    xs = inverse[0, 0] * u + inverse[0, 1] * v + inverse[0, 2]
    period = 2 * (SIZE - 1)
    folded = np.abs(((xs + SIZE - 1) % period) - (SIZE - 1))  # reflect_101 about pixels 0 and SIZE-1
    np.testing.assert_allclose(out_img[..., 0], folded, atol=1 / 16)
    assert FILL_BORDER == cv2.BORDER_REFLECT_101


@pytest.mark.parametrize('angle', [30.0, -30.0, 17.0, 90.0])
@pytest.mark.parametrize('crop', [(1.0, 0.5, 0.5), (0.8, 0.0, 1.0)])
def test_labels_follow_the_pixels_everywhere_including_reflected_corners(angle, crop):
    img, labels = coordinate_sample()
    p = params(angle, crop_scale=crop[0], crop_x=crop[1], crop_y=crop[2])
    out_img, out_labels = apply_geometric(img, labels, p)
    assert ((expected_labels(out_img) == out_labels[None]).any(axis=0)).all()
    margin = outside_source(p)
    if angle != 90.0:  # a quarter turn of a square covers it
        assert margin.sum() > 0.02 * SIZE * SIZE
    assert (out_labels[margin] != 0).all()  # no background invented in the fill
    for corner in ((0, 0), (0, -1), (-1, 0), (-1, -1)):
        assert out_labels[corner] != 0


def test_flip_swap_stays_correct_with_the_reflected_fill():
    """hflip before the warp: the labels are the flipped source's, swapped left/right, in the margin too."""
    img, labels = coordinate_sample()
    lut = np.asarray(flip_lut(), dtype=np.uint8)
    p = params(30.0, hflip=True)
    out_img, out_labels = apply_geometric(img, labels, p, lut)
    # the image carries the original coordinates through the flip, so the relation is lut[label_of(colour)]
    assert ((expected_labels(out_img, lut) == out_labels[None]).any(axis=0)).all()
    margin = outside_source(p)
    swapped = np.isin(out_labels[margin], LEFT_RIGHT)
    assert swapped.any()  # the check covers left/right classes inside the reflected margin


def test_augment_pair_draws_keep_the_relation():
    """Random draws of the paper's augmentation (geometry only): the relation holds for every sample."""
    from smfd_data.augment import AugmentConfig
    cfg = AugmentConfig.from_option({'brightness': False, 'contrast': False})
    lut = np.asarray(flip_lut(), dtype=np.uint8)
    rng = np.random.default_rng(3)
    for _ in range(12):
        img, labels = coordinate_sample()
        out_img, out_labels, p = augment_pair(img, labels, cfg, rng, lut)
        expected = expected_labels(out_img, lut if p['hflip'] else None)
        assert ((expected == out_labels[None]).any(axis=0)).all(), p
        assert (out_labels != 0).all()
