"""Faces in photos for in-the-wild deblurring (``scripts/deblur.py --detect``): detection (facexlib's RetinaFace,
built without ParseNet), 5-point alignment and seamless paste-back.

SMFD-UNet is trained on aligned face crops (CelebAMask-HQ, §3.2/§3.4.2), so a face in a photo is first warped
onto the crop the model knows, restored, and warped back. GFPGAN/CodeFormer users complain about two artefacts of
that last step (docs/tools.md): a visible rectangle where the crop is pasted, and a colour shift of the pasted face.
This module avoids both:

* feathering: the blend weight is 0 at the crop border and rises smoothly (smoothstep of the distance to the border,
  in aligned-crop pixels) to 1 inside, so the paste has no hard edge at any face scale;
* colour consistency: the restored crop keeps its own high frequencies (what deblurring adds) but takes the
  low-frequency colour of the original crop, ``restored + G_σ(original) − G_σ(restored)``; blur moves energy mostly
  at high frequencies, so this removes casts/brightness drift without undoing the deblurring.

Everything works on float32 RGB HWC images in [0, 1] (design.md conventions). Landmarks are the 5 points of
RetinaFace (left eye, right eye, nose, left mouth corner, right mouth corner, in image x/y).
"""
import warnings

import cv2
import numpy as np
import torch

from smfd_data.image_io import to_uint8
from smfd_models.checkpoint import CACHE_DIR, cached_weights, load_weights

__all__ = [
    'FFHQ_TEMPLATE_512', 'face_template', 'alignment_matrix', 'warp_face', 'feather_weights', 'match_low_frequency',
    'paste_face', 'DETECTOR_URLS', 'build_face_detector', 'detect_faces', 'center_face'
]
DEFAULT_WEIGHTS_DIR = f'{CACHE_DIR}/facexlib'
DETECTOR_URLS = {  # facexlib v0.1.0 release assets (plain state dicts)
    'retinaface_resnet50': 'https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_Resnet50_Final.pth',
    'retinaface_mobile0.25':
    'https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_mobilenet0.25_Final.pth',
}

# The 5-point FFHQ template at 512² (facexlib's FaceRestoreHelper); CelebA-HQ crops follow the same alignment.
FFHQ_TEMPLATE_512 = np.array([[192.98138, 239.94708], [318.90277, 240.1936], [256.63416, 314.01935],
                              [201.26117, 371.41043], [313.08905, 371.15118]], dtype=np.float32)
DEFAULT_FEATHER_RATIO = 0.08  # blend ramp width, as a fraction of the crop side (20 px at 256²)
DEFAULT_COLOR_SIGMA_RATIO = 0.1  # σ of the low-pass used for colour matching (25.6 px at 256²)


def face_template(size):
    """The 5 template points for a ``size``×``size`` aligned crop, (5, 2) float32."""
    return FFHQ_TEMPLATE_512 * np.float32(size / 512.0)


def alignment_matrix(landmarks, size):
    """2×3 similarity transform that maps the 5 image ``landmarks`` onto the template of a ``size``² crop.

    Least-median fit (robust to one bad landmark), as facexlib does. Raises ValueError on degenerate landmarks.
    """
    landmarks = np.asarray(landmarks, dtype=np.float32).reshape(-1, 2)
    if landmarks.shape != (5, 2) or not np.isfinite(landmarks).all():
        raise ValueError(f'alignment_matrix: expected 5 finite (x, y) landmarks, got shape {landmarks.shape}')
    affine, _ = cv2.estimateAffinePartial2D(landmarks, face_template(size), method=cv2.LMEDS)
    if affine is None or not np.isfinite(affine).all() or abs(np.linalg.det(affine[:, :2])) < 1e-12:
        raise ValueError('alignment_matrix: the landmarks are degenerate (no similarity transform found)')
    return affine.astype(np.float64)


def warp_face(img, affine, size):
    """Aligned ``size``² crop of ``img`` under ``affine`` (bilinear; outside the image: reflected content)."""
    return cv2.warpAffine(img, affine, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)


def feather_weights(size, feather=None):
    """(size, size) float32 blend weights: 0 on the crop border, smoothstep up to 1 over ``feather`` pixels."""
    feather = max(1.0, float(size * DEFAULT_FEATHER_RATIO if feather is None else feather))
    idx = np.arange(size, dtype=np.float32)
    edge = np.minimum(idx, size - 1 - idx)  # distance of each row/column to the nearest crop edge
    dist = np.minimum(edge[:, None], edge[None, :])
    t = np.clip(dist / feather, 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


def match_low_frequency(restored, reference, sigma):
    """``restored + G_σ(reference) − G_σ(restored)``: keep restored details, take the reference's colour."""
    if sigma is None or sigma <= 0:
        return restored
    ksize = 2 * int(np.ceil(3 * sigma)) + 1

    def low(x):
        return cv2.GaussianBlur(x, (ksize, ksize), sigma, borderType=cv2.BORDER_REFLECT101)

    return np.clip(restored + low(reference) - low(restored), 0.0, 1.0).astype(np.float32)


def _paste_window(affine, size, shape):
    """Integer bounding box (x0, y0, x1, y1) in the image of the aligned crop mapped back, clipped to the image."""
    inverse = cv2.invertAffineTransform(affine)
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], dtype=np.float64) - [0.5, 0.5, 0]
    points = corners @ inverse.T
    h, w = shape[:2]
    x0, y0 = np.floor(points.min(0)).astype(int) - 1
    x1, y1 = np.ceil(points.max(0)).astype(int) + 2
    return max(0, x0), max(0, y0), min(w, x1), min(h, y1), inverse


def paste_face(img, restored_face, affine, feather=None, color_sigma=None, match_color=True, return_weights=False):
    """Blend ``restored_face`` (aligned crop) back into ``img`` with a feathered, colour-consistent paste.

    Args:
        img (ndarray): float32 RGB HWC [0, 1] image the crop was taken from (not modified).
        restored_face (ndarray): float32 RGB (S, S, 3) restored aligned crop.
        affine (ndarray): the 2×3 image → crop transform used to take the crop (:func:`alignment_matrix`).
        feather (float | None): blend ramp width in crop pixels (default 8 % of S).
        color_sigma (float | None): σ of the colour-matching low-pass in crop pixels (default 10 % of S).
        match_color (bool): False pastes the restored colours as they are.
        return_weights (bool): also return the (H, W) blend weights.

    Returns:
        ndarray float32 (H, W, 3): a new image; pixels where the weight is 0 are exactly ``img``'s.
    """
    size = restored_face.shape[0]
    if restored_face.shape[:2] != (size, size):
        raise ValueError(f'paste_face: the restored face must be square, got {restored_face.shape[:2]}')
    restored_face = np.asarray(restored_face, dtype=np.float32)
    if match_color:
        sigma = size * DEFAULT_COLOR_SIGMA_RATIO if color_sigma is None else color_sigma
        restored_face = match_low_frequency(restored_face, warp_face(img, affine, size), sigma)
    out = np.array(img, dtype=np.float32, copy=True)
    x0, y0, x1, y1, inverse = _paste_window(affine, size, img.shape)
    weights = np.zeros(img.shape[:2], dtype=np.float32)
    if x1 <= x0 or y1 <= y0:  # the face lies entirely outside the image
        return (out, weights) if return_weights else out
    # Warp only into the window around the face (cheap on large photos): shift the inverse transform.
    inverse = inverse.copy()
    inverse[:, 2] -= (x0, y0)
    dsize = (x1 - x0, y1 - y0)
    face = cv2.warpAffine(restored_face, inverse, dsize, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    alpha = cv2.warpAffine(feather_weights(size, feather), inverse, dsize, flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    alpha = np.clip(alpha, 0.0, 1.0)
    window = out[y0:y1, x0:x1]
    inside = alpha > 0
    a = alpha[inside][:, None]
    window[inside] = a * face[inside] + (1.0 - a) * window[inside]
    weights[y0:y1, x0:x1] = alpha
    return (out, weights) if return_weights else out


# ------------------------------------------------------------------------------------------------ detection
def build_face_detector(name='retinaface_resnet50', weights_dir=DEFAULT_WEIGHTS_DIR, device='cpu', pretrained=True):
    """facexlib's RetinaFace, weights loaded safely from ``weights_dir`` (downloaded there on first use).

    Unlike ``FaceRestoreHelper`` this builds only the detector (no ParseNet download) and never writes into
    site-packages or the current directory. Offline without the file: WeightsUnavailable naming where to put it.
    ``pretrained=False`` keeps random weights (tests of the wiring only).
    """
    if name not in DETECTOR_URLS:
        raise ValueError(f'unknown detector {name!r}; choose one of {sorted(DETECTOR_URLS)}')
    from facexlib.detection.retinaface import RetinaFace

    with warnings.catch_warnings():  # torchvision's deprecation notes about facexlib's `pretrained=False`
        warnings.simplefilter('ignore', UserWarning)
        detector = RetinaFace(network_name=name.split('_', 1)[1], half=False, device=torch.device(device))
    if pretrained:
        load_weights(detector, cached_weights(DETECTOR_URLS[name], weights_dir), None)
    return detector.requires_grad_(False).to(device).eval()


@torch.no_grad()
def detect_faces(detector, img, det_size=640, threshold=0.8):
    """Faces of a float RGB image: list of ``(box x0,y0,x1,y1, score, landmarks (5, 2))`` in image pixels.

    Detection runs on a copy whose longer side is ``det_size`` (bounded cost on large photos; small faces in
    huge group photos may be missed: raise --det-size).
    """
    h, w = img.shape[:2]
    scale = det_size / max(h, w)
    small = cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))),
                       interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    bgr = to_uint8(small)[..., ::-1].copy()
    dets = detector.detect_faces(bgr, conf_threshold=threshold, use_origin_size=True)
    faces = []
    for det in np.asarray(dets).reshape(-1, 15):
        faces.append((det[:4] / scale, float(det[4]), det[5:15].reshape(5, 2) / scale))
    return faces


def center_face(faces, height, width):
    """The face whose box centre is nearest the image centre (GFPGAN's --only_center_face)."""
    centre = np.array([width / 2, height / 2])
    return min(faces, key=lambda f: np.linalg.norm((f[0][:2] + f[0][2:4]) / 2 - centre))
