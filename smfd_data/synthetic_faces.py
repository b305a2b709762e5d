"""Procedural synthetic faces with exact 19-class CelebAMask-HQ label maps — FOR DEMOS AND TESTS ONLY.

These cartoon faces let the whole pipeline (dataset preparation, training, evaluation) run offline, in tests
and in the demo, without downloading CelebAMask-HQ. They are not a substitute for real data: real training
and every number comparable to the paper (§3.2, Chapter 4) use CelebAMask-HQ (see ``docs/data.md``).

How a face is made (``generate_face_parts``):
1. sample a pose (in-plane rotation, shift, scale, a small yaw that shifts features by their depth so the
   face looks turned) and a shape (face aspect and jaw, eye/brow/nose/mouth placement and sizes, hair style,
   optional hat, eyeglasses, earrings, necklace);
2. draw one binary mask per CelebAMask-HQ part with OpenCV polygons in face-local coordinates. Parts
   overlap the way CelebAMask-HQ's annotations do (skin lies under eyes, nose and lips; eyeglasses under the
   eyes; the inner mouth under the lips), so merging them in the standard order (later parts overwrite
   earlier, ``face_labels.merge_part_masks``) gives the label map;
3. colour the image *from the merged label map* (one colour per class) and add within-class detail (iris,
   nostrils, teeth, glasses frames), smooth shading and low-amplitude texture noise. Labels are exact
   because the image is derived from them, and the texture and shading keep deblurring non-trivial.

``write_celebamask_tree`` writes faces in CelebAMask-HQ's on-disk layout so the preparation script
(``scripts/prepare_celebamask_hq.py``) is exercised exactly as on the real dataset.
"""
import os
from multiprocessing import Pool

import cv2
import numpy as np

from smfd_data.face_labels import CELEBAMASK_PARTS, merge_part_masks
from smfd_data.image_io import imwrite_atomic

_SHIFT = 4  # sub-pixel bits for cv2.fillPoly: small faces keep their shapes
_SCALE = 1 << _SHIFT

_HAIR_COLORS = [(25, 20, 18), (55, 38, 26), (105, 72, 45), (195, 160, 105), (150, 70, 38), (165, 165, 160)]
_IRIS_COLORS = [(85, 55, 32), (60, 40, 25), (70, 110, 160), (80, 120, 80), (120, 100, 60)]
_METALS = [(212, 175, 55), (200, 200, 205)]  # gold, silver


class _FaceFrame:
    """Face-local coordinates → pixels. Unit = face half-width; u to the right, v downwards."""

    def __init__(self, cx, cy, scale, roll):
        self.cx, self.cy, self.scale = cx, cy, scale
        self.cos, self.sin = np.cos(roll), np.sin(roll)

    def to_px(self, pts):
        u, v = pts[:, 0], pts[:, 1]
        x = self.cx + self.scale * (self.cos * u - self.sin * v)
        y = self.cy + self.scale * (self.sin * u + self.cos * v)
        return np.stack([x, y], axis=1)

    def grid(self, size):
        """Face-local (u, v) of every pixel centre (float32 HxW each)."""
        dx = (np.arange(size, dtype=np.float32) - np.float32(self.cx))[None, :]
        dy = (np.arange(size, dtype=np.float32) - np.float32(self.cy))[:, None]
        c, s, k = float(self.cos), float(self.sin), 1.0 / float(self.scale)
        return (c * k) * dx + (s * k) * dy, (-s * k) * dx + (c * k) * dy


def _ellipse(cu, cv, ru, rv, angle=0.0, n=40):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    u, v = ru * np.cos(t), rv * np.sin(t)
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([cu + c * u - s * v, cv + s * u + c * v], axis=1)


def _band(us, vs, half_thickness):
    """Closed polygon around the curve (us, vs) with a (possibly varying) half thickness."""
    pts = np.stack([us, vs], axis=1)
    tangent = np.gradient(pts, axis=0)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-9
    offset = normal * np.broadcast_to(half_thickness, us.shape)[:, None]
    return np.concatenate([pts + offset, (pts - offset)[::-1]])


class _Canvas:
    """Draws face-local polygons into binary masks of one size."""

    def __init__(self, frame, size):
        self.frame, self.size = frame, size

    def poly(self, *polys):
        mask = np.zeros((self.size, self.size), np.uint8)
        pts = [np.round(self.frame.to_px(p) * _SCALE).astype(np.int32) for p in polys]
        cv2.fillPoly(mask, pts, 1, lineType=cv2.LINE_8, shift=_SHIFT)
        return mask.astype(bool)


def _random_color(rng, sat=(0.2, 0.9), val=(0.2, 0.95)):
    hsv = np.uint8([[[rng.integers(0, 180), rng.uniform(*sat) * 255, rng.uniform(*val) * 255]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def generate_face_parts(rng, size=256):
    """Render one synthetic face.

    Args:
        rng (np.random.Generator): the only source of randomness (same state → same face).
        size (int): image side in pixels.

    Returns:
        tuple: ``(rgb, parts, labels)``: uint8 HxWx3 RGB image, dict part name → HxW bool mask (only the
        parts present), uint8 HxW 19-class label map (``merge_part_masks(parts)``).
    """
    S = size
    # --- pose and shape (face-local units: 1 = face half-width, e = half-height) ---
    scale = S * rng.uniform(0.19, 0.235)
    e = rng.uniform(1.22, 1.42)
    frame = _FaceFrame(S * (0.5 + rng.normal(0, 0.025)), S * (0.46 + rng.normal(0, 0.025)), scale,
                       np.deg2rad(rng.uniform(-12, 12)))
    yaw = rng.uniform(-0.22, 0.22)  # features move sideways by yaw × depth: the face looks turned
    canvas = _Canvas(frame, S)
    parts = {}

    # skin: face outline with a narrower jaw below the eyes
    t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    jaw = rng.uniform(0.1, 0.3)
    face_outline = np.stack([np.cos(t) * (1 - jaw * np.clip(np.sin(t), 0, None)**2), e * np.sin(t)], axis=1)
    skin = canvas.poly(face_outline)
    parts['skin'] = skin

    eye_v = -e * rng.uniform(0.08, 0.16)
    eye_du = rng.uniform(0.36, 0.42)
    eye_w = rng.uniform(0.16, 0.2)
    eye_h = eye_w * rng.uniform(0.38, 0.52)
    brow_v = eye_v - rng.uniform(0.2, 0.27)
    nose_v = e * rng.uniform(0.26, 0.34)
    mouth_v = e * rng.uniform(0.55, 0.64)
    ear_v = eye_v + rng.uniform(0.05, 0.15)

    # nose: bridge between the eyes widening to the nostrils; the tip sticks out most (largest yaw shift)
    nose_w = rng.uniform(0.12, 0.17)
    nose_u = np.array([-0.05, 0.05, nose_w, nose_w * 0.55, 0.0, -nose_w * 0.55, -nose_w])
    nose_vs = np.array([eye_v + 0.02, eye_v + 0.02, nose_v - 0.02, nose_v + 0.05, nose_v + 0.07, nose_v + 0.05,
                        nose_v - 0.02])
    depth = 0.2 + 0.3 * (nose_vs - nose_vs.min()) / (nose_vs.max() - nose_vs.min())
    parts['nose'] = canvas.poly(np.stack([nose_u + yaw * depth, nose_vs], axis=1))

    # eyes (l_ = image left): the eye on the side the face turns to is foreshortened
    eye_centres = {}
    for name, side in (('l_eye', -1), ('r_eye', 1)):
        width = eye_w * (1 - 0.8 * yaw * side)
        cu = side * eye_du + yaw * 0.25
        eye_centres[name] = (cu, eye_v, width)
        parts[name] = canvas.poly(_ellipse(cu, eye_v, width, eye_h, angle=side * rng.uniform(-0.1, 0.15)))

    # eyebrows: tapered arcs above the eyes
    brow_thick = rng.uniform(0.035, 0.055)
    brow_arch = rng.uniform(0.03, 0.08)
    for name, side in (('l_brow', -1), ('r_brow', 1)):
        cu = side * eye_du + yaw * 0.25
        half = eye_w * (1 - 0.8 * yaw * side) * rng.uniform(1.15, 1.35)
        s = np.linspace(-1, 1, 16)
        us = cu + half * s
        vs = brow_v - brow_arch * (1 - s**2) + 0.02 * side * s
        thick = brow_thick * (1.1 - 0.5 * (s * side + 1) / 2)  # thicker at the inner end
        parts[name] = canvas.poly(_band(us, vs, thick))

    # ears: outside the face outline (ears overwrite skin in the merge order); shifted against the yaw
    for name, side in (('l_ear', -1), ('r_ear', 1)):
        ear = canvas.poly(_ellipse(side * 1.0 - yaw * 0.35, ear_v, 0.17, 0.3)) & ~skin
        if ear.any():
            parts[name] = ear

    # mouth and lips: the inner mouth (if open) lies under the lips, which overwrite it
    mouth_u = yaw * 0.3
    mouth_w = rng.uniform(0.26, 0.36)
    gap = rng.uniform(0.03, 0.09) if rng.random() < 0.35 else 0.0
    upper, lower = rng.uniform(0.05, 0.085), rng.uniform(0.07, 0.11)
    xs = np.linspace(-1, 1, 25)
    arc = np.sqrt(np.clip(1 - xs**2, 0, 1))
    bow = 1 - 0.35 * np.exp(-(xs / 0.15)**2)  # cupid's bow dip in the middle of the upper lip
    us = mouth_u + mouth_w * xs
    mid = mouth_v + 0.015 * xs**2
    parts['u_lip'] = canvas.poly(np.concatenate([np.stack([us, mid - gap / 2 - upper * arc * bow], 1),
                                                 np.stack([us, mid - gap / 2], 1)[::-1]]))
    parts['l_lip'] = canvas.poly(np.concatenate([np.stack([us, mid + gap / 2], 1),
                                                 np.stack([us, mid + gap / 2 + lower * arc], 1)[::-1]]))
    if gap > 0:
        parts['mouth'] = canvas.poly(_ellipse(mouth_u, mouth_v, mouth_w * 0.93, gap / 2 + 0.02))

    # hair: a cap over the skull minus the face below the hairline; long hair falls beside the face
    bald = rng.random() < 0.03
    hairline = min(-e * rng.uniform(0.68, 0.9), brow_v - 0.12)  # never over the eyebrows
    hair_top = -e * rng.uniform(1.1, 1.28)
    hair_w = rng.uniform(1.06, 1.22)
    long_hair = rng.random() < 0.45
    hair = np.zeros((S, S), bool)
    if not bald:
        cap_cv = (hair_top + ear_v) / 2
        cap = canvas.poly(_ellipse(0.0, cap_cv, hair_w, cap_cv - hair_top, n=48))
        if long_hair:
            length = e * rng.uniform(1.0, 2.2)
            cap |= canvas.poly(np.array([[-hair_w, cap_cv], [hair_w, cap_cv], [hair_w * 1.08, length],
                                         [-hair_w * 1.08, length]]))
        else:  # short hair stops around the ears
            cap &= canvas.poly(np.array([[-5, -5], [5, -5], [5, ear_v - 0.05], [-5, ear_v - 0.05]]))
        hu = np.linspace(-1.6, 1.6, 33)
        jag = 0.04 * rng.standard_normal(hu.shape) if rng.random() < 0.3 else 0.0  # uneven fringe
        below_hairline = canvas.poly(np.concatenate([np.stack([hu, hairline + 0.35 * hu**2 + jag], 1),
                                                     np.array([[1.6, 8.0], [-1.6, 8.0]])]))
        hair = cap & ~(skin & below_hairline)
        if hair.any():
            parts['hair'] = hair

    # hat above the hairline, over the hair
    if rng.random() < 0.12:
        crown = canvas.poly(_ellipse(0.0, hairline, 1.12, hairline - hair_top + 0.15))  # dome over the skull
        crown &= canvas.poly(np.array([[-5, -9], [5, -9], [5, hairline + 0.05], [-5, hairline + 0.05]]))
        brim_w = rng.uniform(1.2, 1.5)
        brim = canvas.poly(np.array([[-brim_w, hairline - 0.12], [brim_w, hairline - 0.12],
                                     [brim_w, hairline + 0.04], [-brim_w, hairline + 0.04]]))
        parts['hat'] = crown | brim

    # eyeglasses: lenses + frames + temples; eyes (later in the merge order) overwrite them
    glasses_frame = None
    if rng.random() < 0.18:
        lens_w, lens_h = eye_w * rng.uniform(1.4, 1.7), eye_w * rng.uniform(0.95, 1.2)
        rim = max(1, round(0.03 * scale))
        lens_polys = [_ellipse(cu, cv, w / eye_w * lens_w, lens_h, n=32) for cu, cv, w in eye_centres.values()]
        lenses = canvas.poly(*lens_polys)
        (lu, lv, lw), (ru, rv, rw) = eye_centres['l_eye'], eye_centres['r_eye']
        bar_l, bar_r = lu + lw / eye_w * lens_w, ru - rw / eye_w * lens_w
        line_pts = [np.array([[bar_l, lv - 0.04], [bar_r, rv - 0.04]]),
                    np.array([[lu - lw / eye_w * lens_w, lv - 0.03], [-1.02 - yaw * 0.35, ear_v - 0.05]]),
                    np.array([[ru + rw / eye_w * lens_w, rv - 0.03], [1.02 - yaw * 0.35, ear_v - 0.05]])]
        glasses_frame = np.zeros((S, S), np.uint8)
        for poly in lens_polys + line_pts:
            px = np.round(frame.to_px(poly) * _SCALE).astype(np.int32)
            cv2.polylines(glasses_frame, [px], len(poly) > 2, 1, rim, cv2.LINE_8, _SHIFT)
        glasses_frame = glasses_frame.astype(bool)
        temples_outside = glasses_frame & ~skin  # hidden behind the head where not over the face or ears
        ears_any = parts.get('l_ear', np.zeros_like(skin)) | parts.get('r_ear', np.zeros_like(skin))
        parts['eye_g'] = lenses | (glasses_frame & ~(temples_outside & ~ears_any))

    # earrings under the lobes of visible ears
    if rng.random() < 0.2:
        radius = rng.uniform(0.045, 0.07)
        rings = [canvas.poly(_ellipse(side * 1.02 - yaw * 0.35, ear_v + 0.3, radius, radius * 1.3, n=16))
                 for name, side in (('l_ear', -1), ('r_ear', 1)) if name in parts]
        if rings:
            parts['ear_r'] = np.logical_or.reduce(rings) & ~hair

    # neck below the face; necklace on it; clothes below; long hair falls in front of all three
    neck_w = rng.uniform(0.45, 0.6)
    neck_poly = canvas.poly(np.array([[-neck_w, 0.3 * e], [neck_w, 0.3 * e], [neck_w * 1.2, 9.0],
                                      [-neck_w * 1.2, 9.0]]))
    collar = e * rng.uniform(1.3, 1.6)
    necklace = np.zeros((S, S), bool)
    if rng.random() < 0.15:
        nu = np.linspace(-neck_w * 1.1, neck_w * 1.1, 21)
        necklace = canvas.poly(_band(nu, e * 1.02 + 0.5 * (collar - e * 1.02) * (1 - (nu / neck_w)**2 * 0.8),
                                     rng.uniform(0.025, 0.045))) & ~skin & ~hair
        if necklace.any():
            parts['neck_l'] = necklace
    neck = neck_poly & ~skin & ~hair & ~necklace
    if neck.any():
        parts['neck'] = neck
    v_depth = rng.uniform(0.05, 0.45)
    shoulder = rng.uniform(0.1, 0.3)
    cloth = canvas.poly(np.array([[-5.0, collar + 0.5 + shoulder], [-1.8, collar + shoulder],
                                  [-neck_w * 1.25, collar], [0.0, collar + v_depth], [neck_w * 1.25, collar],
                                  [1.8, collar + shoulder], [5.0, collar + 0.5 + shoulder], [5.0, 9.0],
                                  [-5.0, 9.0]])) & ~hair
    if cloth.any():
        parts['cloth'] = cloth

    labels = merge_part_masks(parts, shape=(S, S))
    rgb = _paint(rng, labels, parts, frame, e, eye_centres, eye_h, nose_v, yaw, glasses_frame)
    return rgb, parts, labels


def _paint(rng, labels, parts, frame, e, eye_centres, eye_h, nose_v, yaw, glasses_frame):
    """Colour the image from the label map, then add detail, shading and texture."""
    S = labels.shape[0]
    idx = {name: i for i, name in enumerate(['background'] + CELEBAMASK_PARTS)}
    tone = rng.uniform(0, 1)  # light to dark skin
    skin = np.array([241, 204, 178], np.float32) * (1 - tone) + np.array([105, 68, 48], np.float32) * tone
    skin += rng.normal(0, 5, 3)
    hair = np.array(_HAIR_COLORS[rng.integers(len(_HAIR_COLORS))], np.float32) + rng.normal(0, 8, 3)
    metal = np.array(_METALS[rng.integers(len(_METALS))], np.float32)
    colors = np.zeros((len(idx), 3), np.float32)
    colors[idx['skin']] = skin
    colors[idx['nose']] = skin * 0.96
    colors[[idx['l_ear'], idx['r_ear']]] = skin * 0.92
    colors[idx['neck']] = skin * 0.8
    colors[[idx['l_brow'], idx['r_brow']]] = np.minimum(hair, skin) * 0.55
    colors[[idx['l_eye'], idx['r_eye']]] = np.array([228, 224, 216], np.float32)
    lip = skin * 0.55 + np.array([185, 70, 80], np.float32) * 0.45 + rng.normal(0, 6, 3)
    colors[idx['u_lip']] = lip * 0.92
    colors[idx['l_lip']] = lip
    colors[idx['mouth']] = np.array([75, 28, 32], np.float32)
    colors[idx['hair']] = hair
    colors[idx['hat']] = _random_color(rng)
    colors[idx['cloth']] = _random_color(rng)
    colors[idx['eye_g']] = skin * 0.8 + _random_color(rng, sat=(0.1, 0.4)) * 0.12
    colors[[idx['ear_r'], idx['neck_l']]] = metal
    img = colors[labels]

    # background: gradient between two colours along a random direction
    bg0, bg1 = _random_color(rng, sat=(0.0, 0.6)), _random_color(rng, sat=(0.0, 0.6))
    coords = np.linspace(-0.5, 0.5, S, dtype=np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.clip(0.5 + float(np.cos(angle)) * coords[None, :] + float(np.sin(angle)) * coords[:, None], 0, 1)
    background = labels == 0
    img = np.where(background[..., None], bg0 + (bg1 - bg0) * ramp[..., None], img)

    # within-class detail: irises and pupils, nostrils, teeth, glasses frames, cloth stripes
    detail = np.zeros((S, S), np.uint8)
    iris = np.array(_IRIS_COLORS[rng.integers(len(_IRIS_COLORS))], np.float32)
    for name, (cu, cv, _) in eye_centres.items():
        centre = frame.to_px(np.array([[cu + yaw * 0.08, cv]]))[0]
        for radius, value in ((eye_h * 0.95, 1), (eye_h * 0.4, 2)):
            cv2.circle(detail, tuple(np.round(centre * _SCALE).astype(int)), int(radius * frame.scale * _SCALE),
                       value, -1, cv2.LINE_8, _SHIFT)
        eye = labels == idx[name]
        img[eye & (detail == 1)] = iris
        img[eye & (detail == 2)] = (20, 16, 16)
    detail[:] = 0
    for side in (-1, 1):
        nostril = frame.to_px(np.array([[side * 0.06 + yaw * 0.45, nose_v + 0.03]]))[0]
        cv2.ellipse(detail, tuple(np.round(nostril * _SCALE).astype(int)),
                    (max(1, int(0.04 * frame.scale * _SCALE)), max(1, int(0.022 * frame.scale * _SCALE))),
                    0, 0, 360, 1, -1, cv2.LINE_8, _SHIFT)
    nostrils = (detail == 1) & (labels == idx['nose'])
    img[nostrils] = skin * 0.45
    mouth = labels == idx['mouth']
    if mouth.any() and rng.random() < 0.6:
        rows = np.nonzero(mouth.any(axis=1))[0]
        teeth = mouth & (np.arange(S)[:, None] < (rows[0] + rows[-1]) / 2)
        img[teeth] = (232, 226, 212)
    if glasses_frame is not None:
        img[glasses_frame & (labels == idx['eye_g'])] = _random_color(rng, val=(0.05, 0.5))
    u, v = frame.grid(S)
    cloth = labels == idx['cloth']
    if cloth.any() and rng.random() < 0.35:
        period = rng.uniform(0.08, 0.2)  # face-local units
        stripes = np.sin((v if rng.random() < 0.5 else u) * float(2 * np.pi / period)) > 0
        img[cloth & stripes] *= 0.7

    # shading: a lit ellipsoid head (Lambert) for the person, a softer ramp for the background
    light = rng.normal(0, 1, 3) * np.array([0.6, 0.6, 0.0]) + np.array([0, 0, 1.0])
    lx, ly, lz = (float(c) for c in light / np.linalg.norm(light))
    e = float(e)
    nz = np.sqrt(np.clip(1 - (u * u + (v / e)**2) / 1.44, 0, 1))
    lambert = np.clip((lx / 1.2) * u + (ly / (1.2 * e)) * v + lz * nz, 0, 1)
    shade = np.where(background, 0.9 + 0.1 * ramp, 0.7 + 0.4 * lambert)
    img *= shade[..., None]

    # texture: low-frequency blotches, hair strands, fine sensor-like noise
    coarse = cv2.resize(rng.normal(0, 1, (6, 6)).astype(np.float32), (S, S), interpolation=cv2.INTER_CUBIC)
    img *= (1 + 0.05 * coarse)[..., None]
    hair_mask = labels == idx['hair']
    if hair_mask.any():  # strands: noise stretched along the image's vertical
        strands = cv2.resize(rng.random((max(2, S // 8), S), dtype=np.float32) - 0.5, (S, S),
                             interpolation=cv2.INTER_CUBIC)
        img[hair_mask] *= (1 + 0.35 * strands[hair_mask])[:, None]
    # fine sensor-like noise; uniform (cheap to draw) becomes near-Gaussian after the optics blur below
    sigma = rng.uniform(1.5, 4.0)
    img += (rng.random(img.shape, dtype=np.float32) - 0.5) * np.float32(sigma * np.sqrt(12))
    img = cv2.GaussianBlur(img, (0, 0), sigmaX=max(0.4, S / 640))  # camera optics: soft anti-aliasing
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def generate_face(rng, size=256):
    """One synthetic face: ``(rgb uint8 HxWx3, labels uint8 HxW)`` with 19 CelebAMask-HQ classes."""
    rgb, _, labels = generate_face_parts(rng, size)
    return rgb, labels


def rng_for_face(seed, index):
    """Independent stream per face: the tree is the same whatever the number of workers."""
    return np.random.default_rng([seed, index])


def _write_one(args):
    root, index, seed, img_size, mask_size = args
    rgb, parts, _ = generate_face_parts(rng_for_face(seed, index), max(img_size, mask_size))
    if rgb.shape[0] != img_size:
        rgb = cv2.resize(rgb, (img_size, img_size), interpolation=cv2.INTER_AREA)
    imwrite_atomic(os.path.join(root, 'CelebA-HQ-img', f'{index}.jpg'), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                   [cv2.IMWRITE_JPEG_QUALITY, 95])
    mask_dir = os.path.join(root, 'CelebAMask-HQ-mask-anno', str(index // 2000))
    for part, mask in parts.items():
        mask = mask.astype(np.uint8) * 255
        if mask.shape[0] != mask_size:
            mask = cv2.resize(mask, (mask_size, mask_size), interpolation=cv2.INTER_NEAREST)
        imwrite_atomic(os.path.join(mask_dir, f'{index:05d}_{part}.png'), mask)
    return index


def write_celebamask_tree(root, n, seed=0, img_size=512, mask_size=512, workers=1, progress=True):
    """Write ``n`` synthetic faces in CelebAMask-HQ's layout (for demos and tests only).

    Layout (as the real dataset, which has 1024² images and 512² masks)::

        root/CelebA-HQ-img/<id>.jpg                                  JPEG quality 95
        root/CelebAMask-HQ-mask-anno/<id // 2000>/<id:05d>_<part>.png  binary 0/255, only the parts present

    Face ``id`` is generated from ``np.random.default_rng([seed, id])``: the same for any ``workers``.
    """
    from tqdm import tqdm

    jobs = [(root, i, seed, img_size, mask_size) for i in range(n)]
    os.makedirs(os.path.join(root, 'CelebA-HQ-img'), exist_ok=True)
    bar = tqdm(total=n, unit='face', desc='synthetic faces', disable=not progress)
    if workers > 1:
        with Pool(workers) as pool:
            for _ in pool.imap_unordered(_write_one, jobs, chunksize=8):
                bar.update()
    else:
        for job in jobs:
            _write_one(job)
            bar.update()
    bar.close()
    return root
