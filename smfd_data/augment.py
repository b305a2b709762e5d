"""Real-time joint augmentation of a sharp face and its label map (paper §3.4.6.1).

The paper augments with random rotations (up to ±30°), random horizontal flips, random crops (0.8x to 1.0x),
brightness (0.7–1.3) and contrast (0.7–1.3). Geometry must move the image and the label map together, so one
set of sampled parameters drives both:

* horizontal flip: an exact array flip; the label map also swaps left/right classes through a look-up table
  (``face_labels.flip_lut()`` for the 19 CelebAMask-HQ classes), otherwise a flipped left eye would stay
  labelled "left eye" although it now sits on the right;
* rotation and random resized crop: one affine warp on the exact same sampling grid, bilinear for the image and
  nearest for the labels. **Fill rule**: where a rotated corner samples outside the source, both are filled by
  reflection (``cv2.BORDER_REFLECT_101``), so every pixel's label is the label of the source pixel its colour comes
  from — the margin (up to ~15 % of a sample at ±30°) is mirrored face *labelled as what it shows*, not as
  background. The reflected margin keeps its source labels as they are (no left/right swap): a copy of the
  right-hand ear mirrored across the right border still lies on the right-hand side. The left/right swap belongs
  to the explicit horizontal flip only, which runs before the warp, so flip and fill compose correctly;
* brightness/contrast: on the image only (labels do not change). They act on the *sharp* image before
  degradation, so the ground truth of a sample is the photometrically augmented sharp face.
"""
from dataclasses import dataclass, fields

import cv2
import numpy as np

from smfd_data.image_io import BT601

# The one fill rule of the geometric warp, for the image and the labels alike (see the module docstring).
FILL_BORDER = cv2.BORDER_REFLECT_101


@dataclass(frozen=True)
class AugmentConfig:
    """Options of ``augment:`` (paper defaults). A key set to ``false``/``null``/``0`` switches that part off.

    Attributes:
        rotation (float): maximum absolute rotation angle in degrees; angle ~ U(-rotation, rotation).
        hflip (bool): flip horizontally with probability 0.5.
        crop_scale (tuple | None): (lo, hi) side fraction of the random square-aspect crop, resized back to the
            input size. 1.0 keeps the whole image.
        brightness (tuple | None): (lo, hi) multiplicative brightness factor.
        contrast (tuple | None): (lo, hi) contrast factor around the image's mean luma.
    """
    rotation: float = 30.0
    hflip: bool = True
    crop_scale: tuple = (0.8, 1.0)
    brightness: tuple = (0.7, 1.3)
    contrast: tuple = (0.7, 1.3)

    @classmethod
    def from_option(cls, value):
        """``None``/``True`` → paper defaults; ``False`` → everything off; a dict overrides the paper defaults."""
        if value is None or value is True:
            return cls()
        if value is False:
            return cls(rotation=0.0, hflip=False, crop_scale=None, brightness=None, contrast=None)
        if not isinstance(value, dict):
            raise ValueError(f'augment must be true, false or a dict, got {value!r}')
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(value) - set(valid))
        if unknown:
            raise ValueError(f'augment: unknown key(s) {unknown}; valid keys: {valid}')
        kwargs = {}
        for key, item in value.items():
            if key == 'rotation':
                item = float(item or 0.0)
                if not 0.0 <= item <= 180.0:
                    raise ValueError(f'augment.rotation must be in [0, 180] degrees, got {item}')
            elif key == 'hflip':
                item = bool(item)
            else:
                item = _range_option(key, item)
            kwargs[key] = item
        return cls(**kwargs)

    @property
    def enabled(self):
        return bool(self.rotation or self.hflip or self.crop_scale or self.brightness or self.contrast)


def _range_option(key, item):
    if item is None or item is False:
        return None
    try:
        lo, hi = (float(v) for v in item)
    except (TypeError, ValueError):
        raise ValueError(f'augment.{key} must be a pair [lo, hi] or false, got {item!r}') from None
    if not 0.0 < lo <= hi:
        raise ValueError(f'augment.{key} needs 0 < lo <= hi, got {item!r}')
    if key == 'crop_scale' and hi > 1.0:
        raise ValueError(f'augment.crop_scale must lie in (0, 1], got {item!r}')
    return (lo, hi)


def sample_augmentation(cfg, rng):
    """Draw the parameters of one augmentation.

    Always draws the same 7 uniforms in the same order, so switching one part off does not change the values
    drawn for the others (a seeded sample stays comparable across ablations).
    """
    u = rng.random(7)
    crop = cfg.crop_scale or (1.0, 1.0)
    brightness = cfg.brightness or (1.0, 1.0)
    contrast = cfg.contrast or (1.0, 1.0)
    return {
        'hflip': bool(cfg.hflip and u[0] < 0.5),
        'angle': float((2.0 * u[1] - 1.0) * cfg.rotation),
        'crop_scale': float(crop[0] + (crop[1] - crop[0]) * u[2]),
        'crop_x': float(u[3]),  # position of the crop window as a fraction of the free margin
        'crop_y': float(u[4]),
        'brightness': float(brightness[0] + (brightness[1] - brightness[0]) * u[5]),
        'contrast': float(contrast[0] + (contrast[1] - contrast[0]) * u[6]),
    }


def geometric_matrix(params, height, width):
    """2×3 forward affine (source pixel → output pixel) of rotation then crop-and-resize-back.

    Pixel centres are at integer coordinates; the crop window (side fraction ``s``) is mapped onto the full
    output so that its border pixel centres land on the output's border pixel centres' half-pixel grid.
    """
    center = ((width - 1) / 2.0, (height - 1) / 2.0)
    rotation = np.vstack([cv2.getRotationMatrix2D(center, params['angle'], 1.0), [0.0, 0.0, 1.0]])
    s = params['crop_scale']
    crop_w, crop_h = s * width, s * height
    x0 = params['crop_x'] * (width - crop_w)
    y0 = params['crop_y'] * (height - crop_h)
    crop = np.array([[1.0 / s, 0.0, (0.5 - x0) / s - 0.5],
                     [0.0, 1.0 / s, (0.5 - y0) / s - 0.5],
                     [0.0, 0.0, 1.0]])
    return (crop @ rotation)[:2]


def _warp(array, params, interpolation):
    """The rotation and crop of ``params`` on ``array`` (HW or HWC), filled by ``FILL_BORDER``; contiguous."""
    if params['angle'] == 0.0 and params['crop_scale'] == 1.0:
        return np.ascontiguousarray(array)
    height, width = array.shape[:2]
    # reshape: OpenCV drops a single channel axis
    return cv2.warpAffine(np.ascontiguousarray(array), geometric_matrix(params, height, width), (width, height),
                          flags=interpolation, borderMode=FILL_BORDER).reshape(array.shape)


def geometric_image(img, params):
    """Flip, rotate and crop one image (HWC float) on the grid of ``params``: ``apply_geometric`` without labels,
    for the blurry input of a degraded sample (it must move exactly like its sharp face)."""
    if params['hflip']:
        img = img[:, ::-1]
    return _warp(img, params, cv2.INTER_LINEAR)


def apply_geometric(img, labels, params, label_flip_lut=None):
    """Flip, rotate and crop ``img`` (HWC float) and ``labels`` (HW uint8) with the same parameters.

    Both are warped on the same grid and filled by reflection (``FILL_BORDER``) where the rotation looks outside
    the source, so a label always describes the pixel it sits on, corners included.

    Args:
        label_flip_lut (np.ndarray | None): class → mirrored class, applied to the labels when flipping
            (``None``: labels without left/right classes, e.g. grouped labels).
    """
    if params['hflip']:
        labels = labels[:, ::-1]
        if label_flip_lut is not None:
            labels = np.asarray(label_flip_lut, dtype=np.uint8)[labels]
    return geometric_image(img, params), _warp(labels, params, cv2.INTER_NEAREST)


def _photometric_identity(params):
    return params['brightness'] == 1.0 and params['contrast'] == 1.0


def _mean_luma(img):
    return np.float32((img.reshape(-1, 3) @ np.asarray(BT601, dtype=np.float32)).mean())


def contrast_pivot(img, params):
    """The contrast pivot ``apply_photometric`` uses for ``img``: its mean luma after the brightness factor (None
    when the photometric map is the identity)."""
    if _photometric_identity(params):
        return None
    return _mean_luma(img * np.float32(params['brightness']))


def apply_photometric(img, params, pivot=None):
    """Brightness (multiplicative), then contrast around the mean luma; clipped to [0, 1].

    ``pivot``: the contrast pivot (``contrast_pivot`` of another image; default that of ``img``). A degraded sample
    passes its sharp face's for both images, so blurry and sharp get the same pixel map.
    """
    if _photometric_identity(params):
        return img
    img = img * np.float32(params['brightness'])
    if pivot is None:
        pivot = _mean_luma(img)
    img = (img - pivot) * np.float32(params['contrast']) + pivot
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def augment_pair(img, labels, cfg, rng, label_flip_lut=None):
    """Sample one augmentation and apply it to an image / label-map pair. Returns ``(img, labels, params)``."""
    params = sample_augmentation(cfg, rng)
    img, labels = apply_geometric(img, labels, params, label_flip_lut)
    return apply_photometric(img, params), labels, params


def augment_degraded(lq, gt, labels, cfg, rng, label_flip_lut=None):
    """Joint augmentation of a degraded sample (blurry ``lq``, sharp ``gt``, ``labels``): one draw, one warp grid
    and one photometric map for all three (§3.4.6.1 applied to a generated blurred set, §3.4). Returns
    ``(lq, gt, labels, params)``."""
    params = sample_augmentation(cfg, rng)
    gt, labels = apply_geometric(gt, labels, params, label_flip_lut)
    lq = geometric_image(lq, params)
    pivot = contrast_pivot(gt, params)  # computed once, for both
    return apply_photometric(lq, params, pivot), apply_photometric(gt, params, pivot), labels, params
