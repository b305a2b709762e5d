"""CelebAMask-HQ face-part labels and their grouping into the paper's five classes (§3.2, §3.4.2).

CelebAMask-HQ annotates 18 face parts, one binary PNG per part. Merged into one label map they give 19
classes: 0 is background and part ``CELEBAMASK_PARTS[i]`` is label ``i + 1``. The merge order is the
list order: a later part overwrites an earlier one where masks overlap (this is the order of the
dataset's own ``g_mask.py``; e.g. eyes overwrite eyeglasses, hair overwrites skin).

§3.4.2 merges the 19 labels into 5 groups: 0 background and everything else, 1 facial components,
2 wearings, 3 skin ("the face"), 4 hair. ``PAPER_GROUPS`` is that grouping; where the text is ambiguous
(mouth, eyeglasses, necklace, neck, "nose pin") the choices are explained in ``docs/data.md``.
A grouping is configurable (YAML): a dict ``{group_name: [part, ...]}`` or a list of lists; parts that
no group lists fall into group 0.
"""
import colorsys
from collections.abc import Mapping, Sequence

import numpy as np

CELEBAMASK_PARTS = [
    'skin', 'nose', 'eye_g', 'l_eye', 'r_eye', 'l_brow', 'r_brow', 'l_ear', 'r_ear', 'mouth', 'u_lip', 'l_lip',
    'hair', 'hat', 'ear_r', 'neck_l', 'neck', 'cloth'
]
CELEBAMASK_CLASSES = ['background'] + CELEBAMASK_PARTS  # index = label value
NUM_CELEBAMASK_CLASSES = len(CELEBAMASK_CLASSES)  # 19
CLASS_INDEX = {name: idx for idx, name in enumerate(CELEBAMASK_CLASSES)}

# §3.4.2: "nose, right eye, left eye, right eyebrow, left eyebrow, right ear, left ear, upper lip, and lower lip"
# are one value; "wearings including a hat/cap, nose pin, or earrings" another; then the face (skin) and hair;
# "including the backdrop, everything else was set to 0". Parts not listed here go to group 0 (neck, cloth).
PAPER_GROUPS = {
    'background': ['background', 'neck', 'cloth'],
    'components': ['l_brow', 'r_brow', 'l_eye', 'r_eye', 'nose', 'u_lip', 'l_lip', 'mouth', 'l_ear', 'r_ear'],
    'wearings': ['hat', 'ear_r', 'neck_l', 'eye_g'],
    'skin': ['skin'],
    'hair': ['hair'],
}

# Left/right part pairs that swap under a horizontal flip.
FLIP_PAIRS = [('l_eye', 'r_eye'), ('l_brow', 'r_brow'), ('l_ear', 'r_ear')]

# The colours CelebAMask-HQ's own visualisation uses for the 19 classes (RGB).
CELEBAMASK_COLORS = [
    (0, 0, 0), (204, 0, 0), (76, 153, 0), (204, 204, 0), (51, 51, 255), (204, 0, 204), (0, 255, 255),
    (255, 204, 204), (102, 51, 0), (255, 0, 0), (102, 204, 0), (255, 255, 0), (0, 0, 153), (0, 0, 204),
    (255, 51, 153), (0, 204, 204), (0, 51, 0), (255, 153, 51), (0, 204, 0)
]
# Five groups: background black, components cyan, wearings yellow, skin and hair as in CelebAMask-HQ.
GROUP_COLORS = [(0, 0, 0), (0, 255, 255), (255, 255, 0), (204, 0, 0), (0, 0, 204)]


def _normalise_groups(groups):
    """Return ``(names, lists)`` for a dict ``{name: parts}`` or a list of part lists."""
    if isinstance(groups, Mapping):
        names = [str(name) for name in groups]
        lists = list(groups.values())
    elif isinstance(groups, Sequence) and not isinstance(groups, str):
        names = [f'group{i}' for i in range(len(groups))]
        lists = list(groups)
    else:
        raise ValueError('label groups must be a dict {name: [parts]} or a list of lists, '
                         f'got {type(groups).__name__}')
    if not 1 <= len(lists) <= NUM_CELEBAMASK_CLASSES:
        raise ValueError(f'label groups: need 1 to {NUM_CELEBAMASK_CLASSES} groups, got {len(lists)}')
    for name, parts in zip(names, lists):
        if isinstance(parts, str) or not isinstance(parts, Sequence):
            raise ValueError(f'label group {name!r} must be a list of part names, got {parts!r}')
    return names, lists


def group_names(groups=None):
    """Names of the groups in label order (``group0``... for a list of lists)."""
    return _normalise_groups(PAPER_GROUPS if groups is None else groups)[0]


def grouping_lut(groups=None):
    """Look-up table mapping each of the 19 CelebAMask-HQ labels to its group index (§3.4.2).

    Args:
        groups (dict | list | None): ``{group_name: [part names]}`` (group index = position) or a list of
            lists. Part names are those of ``CELEBAMASK_CLASSES`` ('background' included). Parts no group
            lists go to group 0. None: ``PAPER_GROUPS``.

    Returns:
        np.ndarray: uint8 array of length 19; ``lut[label19] = group``.
    """
    names, lists = _normalise_groups(PAPER_GROUPS if groups is None else groups)
    lut = np.zeros(NUM_CELEBAMASK_CLASSES, dtype=np.uint8)
    owner = {}
    for group_idx, (name, parts) in enumerate(zip(names, lists)):
        for part in parts:
            if part not in CLASS_INDEX:
                raise ValueError(f'label group {name!r}: unknown part {part!r}; valid parts: {CELEBAMASK_CLASSES}')
            if part in owner:
                raise ValueError(f'label groups: part {part!r} is listed in both {owner[part]!r} and {name!r}')
            owner[part] = name
            lut[CLASS_INDEX[part]] = group_idx
    return lut


def group_labels(labels, lut=None):
    """Map a 19-class label map (uint8 HxW) to group labels with ``lut`` (default: the paper's grouping)."""
    lut = grouping_lut() if lut is None else np.asarray(lut, dtype=np.uint8)
    labels = np.asarray(labels)
    if labels.size and int(labels.max()) >= len(lut):
        raise ValueError(f'label value {int(labels.max())} is out of range for a look-up table of {len(lut)} classes')
    return lut[labels]


def flip_lut():
    """Permutation of the 19 labels for a horizontal flip (l_/r_ eye, brow, ear swap); an involution."""
    lut = np.arange(NUM_CELEBAMASK_CLASSES, dtype=np.uint8)
    for left, right in FLIP_PAIRS:
        lut[CLASS_INDEX[left]], lut[CLASS_INDEX[right]] = CLASS_INDEX[right], CLASS_INDEX[left]
    return lut


def merge_part_masks(masks, shape=None):
    """Merge binary part masks into one 19-class label map in the standard order (later parts win).

    Args:
        masks (Mapping[str, np.ndarray]): part name → HxW mask (nonzero = part). Missing parts are absent.
        shape (tuple | None): (H, W) of the result; needed only when ``masks`` is empty.

    Returns:
        np.ndarray: uint8 HxW label map.
    """
    unknown = sorted(set(masks) - set(CELEBAMASK_PARTS))
    if unknown:
        raise ValueError(f'unknown part names {unknown}; valid parts: {CELEBAMASK_PARTS}')
    if shape is None:
        if not masks:
            raise ValueError('merge_part_masks: no masks and no shape given')
        shape = next(iter(masks.values())).shape[:2]
    labels = np.zeros(shape, dtype=np.uint8)
    for idx, part in enumerate(CELEBAMASK_PARTS, start=1):
        if part in masks:
            mask = masks[part]
            if mask.shape[:2] != tuple(shape):
                raise ValueError(f'mask of part {part!r} has shape {mask.shape[:2]}, expected {tuple(shape)}')
            labels[mask != 0] = idx
    return labels


def palette(num_classes=NUM_CELEBAMASK_CLASSES):
    """(K, 3) uint8 RGB colours: CelebAMask-HQ's for 19 classes, distinct fixed colours for 5, else HSV."""
    return _palette(num_classes)


def _palette(num_classes):
    if num_classes == NUM_CELEBAMASK_CLASSES:
        return np.array(CELEBAMASK_COLORS, dtype=np.uint8)
    if num_classes <= len(GROUP_COLORS):
        return np.array(GROUP_COLORS[:num_classes], dtype=np.uint8)
    # Any other K: black background, then hues spread by the golden ratio (neighbours stay distinct).
    colors = [(0, 0, 0)]
    for k in range(1, num_classes):
        hue = (k * 0.618033988749895) % 1.0
        r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95 if k % 2 else 0.7)
        colors.append((round(r * 255), round(g * 255), round(b * 255)))
    return np.array(colors, dtype=np.uint8)


def colorize(labels, palette=None, num_classes=None):
    """Colour a label map: HxW class indices → HxWx3 uint8 RGB.

    Args:
        labels (np.ndarray): HxW integer labels.
        palette (np.ndarray | None): (K, 3) colours; default ``palette(num_classes)``.
        num_classes (int | None): used when no palette is given; None guesses 5 when every label < 5, else 19.
    """
    labels = np.asarray(labels)
    if palette is None:
        if num_classes is None:
            num_classes = 5 if labels.size == 0 or int(labels.max()) < 5 else NUM_CELEBAMASK_CLASSES
        palette = _palette(num_classes)
    palette = np.asarray(palette, dtype=np.uint8)
    if labels.size and int(labels.max()) >= len(palette):
        raise ValueError(f'label value {int(labels.max())} has no colour in a palette of {len(palette)} classes')
    return palette[labels]
