"""Image files, one place for every reader and writer of the project: datasets, preparation, the deblur command,
the benchmark and the demo.

- one list of extensions (``IMAGE_EXTENSIONS``) and one folder listing (``list_images``);
- one completeness rule: a PNG must reach its IEND chunk, a JPEG its end-of-image marker after the scan data,
  walking the file's own structure; bytes *after* the end (phone "motion photos" append a video) are allowed, as
  OpenCV and PIL allow them, while a cut-off file is refused (OpenCV would decode it into grey rows);
- EXIF orientation applied, once (phone photos are stored sideways with an orientation tag; OpenCV's own rotation
  is switched off);
- GIF: the first frame;
- non-finite pixels (NaN/inf in float TIFFs) refused: they would come out as black images;
- atomic writes (``smfd_data.atomic_io``: a reader sees the old file or the new one, never a partial one).

Images in memory are float32 RGB HWC in [0, 1] (``decode_image``, ``read_image``) unless a function says "BGR" or
"raw" (OpenCV's order and dtype).
"""
import io
import os
import warnings

import cv2
import numpy as np

from smfd_data.atomic_io import atomic_write_bytes

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.gif')  # GIF: the first frame
BT601 = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma weights, the usual RGB → gray conversion (OpenCV, PIL)
DEFAULT_MAX_PIXELS = 40_000_000

_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
_EXIF_ORIENTATION = 0x0112


# ------------------------------------------------------------------------------------------------ folders
def is_image_file(name):
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def list_images(folder):
    """``{stem: file name}`` of the images in ``folder`` (not recursive), in sorted order.

    Raises FileNotFoundError when the folder is missing and ValueError when two files share a stem (``x.png`` and
    ``x.jpg``: which one is meant?).
    """
    if not os.path.isdir(folder):
        raise FileNotFoundError(f'{folder}: image folder does not exist')
    found = {}
    for name in sorted(os.listdir(folder)):
        if not is_image_file(name):
            continue
        stem = os.path.splitext(name)[0]
        if stem in found:
            raise ValueError(f'{folder}: two files for the stem {stem!r}: {found[stem]} and {name}')
        found[stem] = name
    return found


# ------------------------------------------------------------------------------------------------ completeness
def _png_complete(data):
    """Walk the chunks (length, type, data, CRC) from the signature to IEND."""
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], 'big')
        kind = data[pos + 4:pos + 8]
        pos += 12 + length
        if pos > len(data):
            return False
        if kind == b'IEND':
            return True
    return False


def _jpeg_complete(data):
    """Walk the marker segments from SOI; after each start-of-scan skip the entropy-coded data (where 0xFF is
    followed by 0x00 or a restart marker) up to the next marker; complete when an end-of-image marker is reached."""
    pos, n = 2, len(data)
    while pos + 1 < n:
        if data[pos] != 0xFF:  # stray bytes between segments: skip to the next marker, as libjpeg does
            pos = data.find(b'\xff', pos)
            if pos < 0:
                return False
            continue
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:  # EOI
            return True
        if marker in (0x01,) or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        if pos + 4 > n:
            return False
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], 'big')
        if marker == 0xDA:  # SOS: entropy-coded data until the next real marker
            while True:
                pos = data.find(b'\xff', pos)
                if pos < 0 or pos + 1 >= n:
                    return False
                follower = data[pos + 1]
                if follower == 0x00 or 0xD0 <= follower <= 0xD7 or follower == 0xFF:
                    pos += 1 if follower == 0xFF else 2
                    continue
                break
    return False


def check_complete(data, name):
    """Raise ValueError naming ``name`` for an empty file or a PNG/JPEG cut off before its end marker.

    Recognised by the signature, whatever the extension; other formats are left to the decoder.
    """
    if data is None or len(data) == 0:
        raise ValueError(f'{name}: empty file (0 bytes)')
    if data.startswith(_PNG_SIGNATURE) and not _png_complete(data):
        raise ValueError(f'{name}: truncated or corrupt PNG (the file ends before its IEND chunk)')
    if data.startswith(b'\xff\xd8') and not _jpeg_complete(data):
        raise ValueError(f'{name}: truncated or corrupt JPEG (the file ends before its end-of-image marker)')


# ------------------------------------------------------------------------------------------------ decoding
def read_bytes(path):
    """The file's bytes; FileNotFoundError / ValueError naming the file."""
    try:
        with open(path, 'rb') as f:
            return f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f'{path}: file not found') from None
    except IsADirectoryError:
        raise ValueError(f'{path}: is a folder, not an image file') from None
    except OSError as err:
        raise ValueError(f'{path}: cannot read file ({err.strerror or err})') from err


def exif_orientation(data):
    """The EXIF orientation tag (1–8) of an encoded image, 1 when there is none (or PIL cannot tell)."""
    if b'Exif' not in data[:1 << 16] and not data.startswith((b'II*\x00', b'MM\x00*')):
        return 1  # no EXIF block where JPEG/PNG/WebP keep it (TIFFs carry tags in their header)
    from PIL import Image
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            with Image.open(io.BytesIO(data)) as im:
                value = im.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # a broken EXIF block must not make a decodable image unreadable
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def apply_orientation(img, orientation):
    """Turn a decoded image (HW or HWC) the way EXIF ``orientation`` says, so it displays upright."""
    if orientation in (2, 4, 5, 7):  # mirrored variants: flip first, then rotate as its unmirrored twin
        img = img[:, ::-1]
        orientation = {2: 1, 4: 3, 5: 8, 7: 6}[orientation]
    turns = {3: 2, 6: 3, 8: 1}.get(orientation, 0)  # np.rot90 turns counter-clockwise
    return np.ascontiguousarray(np.rot90(img, turns) if turns else img)


def imdecode_checked(data, name, flags=cv2.IMREAD_UNCHANGED, orient=True):
    """Bytes → OpenCV's raw decoding (BGR(A), uint8/uint16/float), checked for completeness, EXIF-oriented
    (once: OpenCV's own EXIF rotation, on by default for every flag but IMREAD_UNCHANGED, is switched off).
    A GIF gives its first frame."""
    check_complete(data, name)
    if flags >= 0:
        flags |= cv2.IMREAD_IGNORE_ORIENTATION
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    if img is None or img.size == 0:
        raise ValueError(f'{name}: cannot decode the image (unreadable, unsupported or not an image file)')
    if orient:
        img = apply_orientation(img, exif_orientation(data))
    return img


def imread_checked(path, flags=cv2.IMREAD_UNCHANGED):
    """An image file as OpenCV decodes it (BGR order, native dtype), with the checks of ``imdecode_checked``."""
    return imdecode_checked(read_bytes(path), path, flags)


def to_float_rgb(img, name):
    """OpenCV's raw decoding → float32 RGB HWC in [0, 1]: 8-bit /255, 16-bit /65535, float clipped; gray (and
    gray + alpha) replicated to 3 channels; alpha dropped (not composited). Non-finite floats are refused."""
    if img.dtype == np.uint8:
        img = img.astype(np.float32) / 255.0
    elif img.dtype == np.uint16:
        img = img.astype(np.float32) / 65535.0
    elif img.dtype in (np.float32, np.float64):
        if not np.isfinite(img).all():
            raise ValueError(f'{name}: the image holds NaN or infinite pixel values')
        img = np.clip(img.astype(np.float32), 0.0, 1.0)
    else:
        raise ValueError(f'{name}: unsupported image dtype {img.dtype} (expected 8/16-bit or float)')
    if img.ndim == 2:
        img = img[..., None]
    channels = img.shape[2]
    if channels in (1, 2):  # gray or gray + alpha
        img = np.repeat(img[..., :1], 3, axis=2)
    elif channels in (3, 4):  # BGR or BGRA (OpenCV order) → RGB, alpha dropped
        img = img[..., 2::-1]
    else:
        raise ValueError(f'{name}: unsupported number of channels {channels}')
    return np.ascontiguousarray(img)


def decode_image(data, name):
    """Bytes → RGB float32 HWC in [0, 1] (see ``to_float_rgb``); errors name ``name``."""
    img = to_float_rgb(imdecode_checked(data, name), name)
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f'{name}: zero-size image')
    return img


def header_size(path):
    """(width, height) from the file header without decoding the pixels (PIL, lazy), or None if PIL cannot tell.

    Refuses decompression bombs (more than twice PIL's limit, ~179 MP) with a ValueError naming the file.
    """
    from PIL import Image
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            with Image.open(path) as im:
                return im.size
    except Image.DecompressionBombError as err:
        raise ValueError(f'{path}: {err} Refused; downscale it first') from err
    except Exception:  # not a format PIL knows (or broken): the decoder decides
        return None


def _check_pixel_count(path, width, height, max_pixels):
    if width * height > max_pixels:
        raise ValueError(f'{path}: {width}×{height} = {width * height / 1e6:.3g} MP; the limit is '
                         f'{max_pixels / 1e6:.3g} MP (--max-pixels): downscale it first or raise the limit')


def check_pixels(path, max_pixels=DEFAULT_MAX_PIXELS):
    """Refuse (ValueError naming the file) an image of more than ``max_pixels`` pixels, from its header before
    decoding; a format PIL cannot read the header of is left to the decoder (and checked after it)."""
    size = header_size(path) if os.path.isfile(path) else None
    if size is not None:
        _check_pixel_count(path, size[0], size[1], max_pixels)


def read_image(path, max_pixels=DEFAULT_MAX_PIXELS):
    """Any image file → float32 RGB HWC in [0, 1] (gray → 3 channels, alpha dropped, 16-bit scaled, upright).

    Raises ValueError naming the file: empty/truncated/unreadable/non-image/non-finite, or more than
    ``max_pixels`` pixels (``check_pixels`` before decoding when PIL knows the format, after it otherwise).
    """
    check_pixels(path, max_pixels)
    img = decode_image(read_bytes(path), path)
    _check_pixel_count(path, img.shape[1], img.shape[0], max_pixels)
    return img


def decode_labels(data, name, num_classes):
    """Bytes → uint8 HW label map with values in ``0..num_classes-1``.

    Palette PNGs give their indices; colour (3/4-channel) maps are accepted only when all colour channels are
    equal (a gray map saved as RGB). 16-bit maps are accepted when the values are in range.
    """
    check_complete(data, name)
    if data[:len(_PNG_SIGNATURE)] == _PNG_SIGNATURE and len(data) > 25 and data[25] == 3:
        # PNG colour type 3 (palette): OpenCV would expand the palette to colours, the indices are the labels
        from PIL import Image
        labels = np.array(Image.open(io.BytesIO(data)))
    else:
        labels = imdecode_checked(data, name, orient=False)
    if labels.ndim == 3:
        colour = labels[..., :3]
        if not (colour == colour[..., :1]).all():
            raise ValueError(f'{name}: label map has {labels.shape[2]} channels with different values; expected a '
                             'single-channel map of class indices (a colour-coded mask is not a label map)')
        labels = colour[..., 0]
    if labels.dtype not in (np.uint8, np.uint16):
        raise ValueError(f'{name}: label map must be an 8- or 16-bit integer image, got {labels.dtype}')
    top = int(labels.max()) if labels.size else 0
    if top >= num_classes:
        bad = np.unique(labels[labels >= num_classes])
        raise ValueError(f'{name}: label values {bad[:10].tolist()} outside 0..{num_classes - 1}')
    return np.ascontiguousarray(labels.astype(np.uint8))


def read_labels(path, num_classes):
    """A label-map file → uint8 HW labels in ``0..num_classes-1`` (see ``decode_labels``)."""
    return decode_labels(read_bytes(path), path, num_classes)


# ------------------------------------------------------------------------------------------------ conversions
def to_uint8(img):
    """Float image in [0, 1] → uint8, clipped, rounded half up (every 8-bit quantisation of the project)."""
    return np.clip(np.floor(np.asarray(img, dtype=np.float32) * 255.0 + 0.5), 0, 255).astype(np.uint8)


def rgb_to_gray(img):
    """HWC RGB → HW luma (ITU-R BT.601), the mask generator's input (§3.4.2)."""
    return (img @ np.asarray(BT601, dtype=np.float32)).astype(np.float32)


def resize_image(img, height, width):
    """Area interpolation when shrinking (no aliasing), bicubic when enlarging (float images clipped to [0, 1];
    OpenCV saturates integer ones)."""
    if img.shape[:2] == (height, width):
        return img
    shrink = height <= img.shape[0] and width <= img.shape[1]
    out = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    return np.clip(out, 0.0, 1.0) if not shrink and out.dtype.kind == 'f' else out


def resize_labels(labels, height, width):
    """Nearest neighbour (pixel-centre exact), so labels stay class indices."""
    if labels.shape[:2] == (height, width):
        return labels
    return cv2.resize(labels, (width, height), interpolation=cv2.INTER_NEAREST_EXACT)


# ------------------------------------------------------------------------------------------------ writing
def imwrite_atomic(path, img, params=None):
    """Encode an OpenCV-order image (BGR, or HW gray/labels) by the file's extension and write it atomically."""
    ext = os.path.splitext(path)[1]
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(img), [] if params is None else list(params))
    if not ok:
        raise ValueError(f'{path}: OpenCV could not encode an image of shape {img.shape} as {ext}')
    atomic_write_bytes(path, buf.tobytes())


def write_image(path, img):
    """Write an RGB image (float in [0, 1], or uint8) or an HW uint8 map atomically; PNG when no extension."""
    img = img if img.dtype == np.uint8 else to_uint8(img)
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    imwrite_atomic(path if os.path.splitext(path)[1] else path + '.png', img)
