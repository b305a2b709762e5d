"""Alignment and paste-back of smfd_models.face_paste with GIVEN landmarks on images made here (no weights)."""
import cv2
import numpy as np
import pytest

from smfd_inference.face_helper import (
    alignment_matrix,
    face_template,
    feather_weights,
    match_low_frequency,
    paste_face,
    warp_face,
)

SIZE = 64


def _photo(h=96, w=128):
    """A smooth 'photo': colour gradients plus some texture, float RGB [0, 1]."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([0.2 + 0.5 * xx / w, 0.3 + 0.4 * yy / h, 0.5 + 0.2 * np.sin(xx / 9.0) * np.cos(yy / 7.0)], -1)
    return np.clip(img, 0, 1).astype(np.float32)


def _landmarks(scale=0.6, angle_deg=12.0, offset=(40.0, 20.0)):
    """Template points of a SIZE crop mapped into the photo by a known similarity transform."""
    a = np.deg2rad(angle_deg)
    rot = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return face_template(SIZE) @ rot.T + np.asarray(offset), rot, np.asarray(offset)


def test_alignment_recovers_the_similarity_transform():
    points, rot, offset = _landmarks()
    affine = alignment_matrix(points, SIZE)
    mapped = points @ affine[:, :2].T + affine[:, 2]
    np.testing.assert_allclose(mapped, face_template(SIZE), atol=1e-3)
    np.testing.assert_allclose(affine[:, :2], np.linalg.inv(rot), atol=1e-4)


def test_alignment_rejects_bad_landmarks():
    with pytest.raises(ValueError, match='5 finite'):
        alignment_matrix(np.zeros((4, 2)), SIZE)
    with pytest.raises(ValueError, match='5 finite'):
        alignment_matrix(np.full((5, 2), np.nan), SIZE)


def test_feather_weights_ramp():
    w = feather_weights(SIZE, feather=8)
    assert w[0].max() == 0 and w[:, -1].max() == 0  # zero on the crop border: no hard edge after warping
    assert w[8:-8, 8:-8].min() == 1.0
    assert np.all(np.diff(w[SIZE // 2, :9]) > 0)  # strictly rising ramp


def test_paste_identity_round_trip_leaves_outside_untouched():
    img = _photo()
    affine = alignment_matrix(_landmarks()[0], SIZE)
    crop = warp_face(img, affine, SIZE)
    out, weights = paste_face(img, crop, affine, return_weights=True)
    outside = weights == 0
    assert outside.mean() > 0.5 and (weights > 0.99).sum() > 300
    assert np.array_equal(out[outside], img[outside])  # bit-exact outside the face
    # inside, warp + inverse warp only costs interpolation error
    assert np.abs(out - img)[weights > 0].mean() < 0.01


def _max_step(diff):
    """Largest jump of a difference image between neighbouring pixels (a seam shows up here)."""
    return max(np.abs(np.diff(diff, axis=0)).max(), np.abs(np.diff(diff, axis=1)).max())


def test_color_cast_is_removed_and_no_seam():
    img = _photo()
    affine = alignment_matrix(_landmarks()[0], SIZE)
    cast = np.array([0.15, -0.10, 0.08], dtype=np.float32)
    crop = warp_face(img, affine, SIZE)
    detail = 0.02 * np.sin(np.arange(SIZE) / 1.5)[None, :, None].astype(np.float32)  # "restored" detail
    restored = np.clip(crop + cast + detail, 0, 1)
    # hard paste (what a plain rectangle paste gives): a seam as large as the cast
    hard = img.copy()
    inverse = cv2.invertAffineTransform(affine)
    support = cv2.warpAffine(np.ones((SIZE, SIZE), np.float32), inverse, img.shape[1::-1]) > 0.999
    hard[support] = cv2.warpAffine(restored, inverse, img.shape[1::-1])[support]
    assert _max_step(hard - img) > 0.14
    # feathered, without colour matching: the cast remains but ramps in smoothly
    soft, weights = paste_face(img, restored, affine, match_color=False, return_weights=True)
    core = weights > 0.999
    np.testing.assert_allclose((soft - img)[core].mean(0), cast, atol=0.03)
    assert _max_step(soft - img) < 0.6 * _max_step(hard - img)
    # feathered + colour matching: mean colour of the face equals the photo's, no step at the border
    fixed = paste_face(img, restored, affine)
    np.testing.assert_allclose(fixed[core].mean(0), img[core].mean(0), atol=0.01)
    ring = (weights > 0) & (weights < 1)
    assert np.abs(fixed - img)[ring].mean() < 0.02
    assert _max_step(fixed - img) < _max_step(soft - img)


def test_match_low_frequency_keeps_detail():
    rng = np.random.default_rng(0)
    reference = np.full((SIZE, SIZE, 3), 0.5, np.float32)
    detail = (rng.random((SIZE, SIZE, 3)).astype(np.float32) - 0.5) * 0.1
    restored = reference + 0.2 + detail
    out = match_low_frequency(restored, reference, sigma=6.4)
    assert abs(out.mean() - 0.5) < 0.01  # the +0.2 cast is gone
    hp = lambda x: x - cv2.GaussianBlur(x, (0, 0), 3)  # noqa: E731
    assert np.corrcoef(hp(out).ravel(), hp(restored).ravel())[0, 1] > 0.95  # details kept


def test_face_partly_outside_the_image():
    img = _photo()
    points, _, _ = _landmarks(offset=(-20.0, -15.0))  # crop hangs over the top-left corner
    affine = alignment_matrix(points, SIZE)
    crop = warp_face(img, affine, SIZE)
    out, weights = paste_face(img, crop, affine, return_weights=True)
    assert out.shape == img.shape and weights[0, 0] > 0 and weights[-1, -1] == 0
    assert np.abs(out - img).max() < 0.05
