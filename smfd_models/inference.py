"""Deblurring faces with trained SMFD networks: the cascade of §3.4.6 and the ``deblur`` command.

The cascade (paper §3.4.6, Table 4.2 "Ours with Generated Masks"): the MaskGenerator predicts the semantic mask from
the blurry face, its softmax probabilities are the mask of SMFD-UNet, which restores the face. This module holds
what ``scripts/deblur.py`` and ``scripts/benchmark.py`` share:

* finding and loading weights safely (``weights_only``), with the architecture read from the experiment's option
  file that BasicSR copies next to its checkpoints (``experiments/<name>/<option>.yml``, ``network_g``);
* :class:`SMFDCascade` and batched restoration of aligned faces (``restore_faces``);
* reading any image a user may throw at it (grayscale, RGBA, 16-bit, huge, broken) with per-file errors;
* in-the-wild mode: a facexlib RetinaFace built directly (no ParseNet), 5-point alignment, seamless paste-back
  (:mod:`smfd_models.face_paste`).

``main`` is the ``deblur`` command line (``python scripts/deblur.py -h``); usage in docs/tools.md.
"""
import argparse
import glob
import os
import sys
import time
import urllib.error
import warnings

import cv2
import numpy as np
import torch
import yaml

from smfd_data.lmdb_io import imwrite_atomic
from smfd_models.face_paste import alignment_matrix, paste_face, warp_face

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')
DEFAULT_SIZE = 256  # the paper's input size (§3.4.2)
DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_WEIGHTS_DIR = os.path.join('~', '.cache', 'smfd', 'facexlib')
DETECTOR_URLS = {  # facexlib v0.1.0 release assets (plain state dicts)
    'retinaface_resnet50': 'https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_Resnet50_Final.pth',
    'retinaface_mobile0.25':
    'https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_mobilenet0.25_Final.pth',
}

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2


class InferenceError(RuntimeError):
    """A problem the user must fix (missing weights, unusable option file); the CLI prints it and exits 2."""


def log(message):
    print(message, file=sys.stderr, flush=True)


def register_basicsr():
    """Import basicsr with SMFD registered (the autoload hook may be disabled or absent)."""
    import smfd_autoload
    smfd_autoload.register()


# ----------------------------------------------------------------------------------------------------------------
# Option files and checkpoints
# ----------------------------------------------------------------------------------------------------------------
def read_option(path):
    """A BasicSR option YAML as a dict; errors name the file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path}: option file not found')
    try:
        with open(path, 'r') as f:
            opt = yaml.safe_load(f)
    except yaml.YAMLError as err:
        raise ValueError(f'{path}: not a valid YAML file: {err}') from err
    if not isinstance(opt, dict):
        raise ValueError(f'{path}: expected a mapping of options, got {type(opt).__name__}')
    return opt


def experiment_option(checkpoint):
    """The option YAML BasicSR copied into ``experiments/<name>/`` for ``experiments/<name>/models/X.pth``, or None."""
    models_dir = os.path.dirname(os.path.abspath(checkpoint))
    for folder in (os.path.dirname(models_dir), models_dir):
        ymls = sorted(glob.glob(os.path.join(folder, '*.yml')) + glob.glob(os.path.join(folder, '*.yaml')))
        if ymls:
            return max(ymls, key=os.path.getmtime)
    return None


def pick_checkpoint(models_dir, prefix='net_g'):
    """Best → latest → highest-iteration ``<prefix>_*.pth`` of a BasicSR ``models/`` folder, or None."""
    for name in (f'{prefix}_best.pth', f'{prefix}_latest.pth'):
        if os.path.isfile(os.path.join(models_dir, name)):
            return os.path.join(models_dir, name)
    iters = []
    for path in glob.glob(os.path.join(models_dir, f'{prefix}_*.pth')):
        tail = os.path.basename(path)[len(prefix) + 1:-len('.pth')]
        if tail.isdigit():
            iters.append((int(tail), path))
    return max(iters)[1] if iters else None


def _experiment_kind(opt):
    net = opt.get('network_g') or {}
    if net.get('type') == 'MaskGenerator':
        return 'mask'
    if net.get('type') == 'SMFDUNet':
        return 'smfd' if net.get('use_mask', True) else 'smfd_nomask'
    return None


def find_trained_checkpoints(experiments_dir='experiments'):
    """Newest trained SMFD-UNet (with mask branch; image-only if none) and MaskGenerator under ``experiments_dir``.

    Returns ``{'smfd': (checkpoint, option), 'mask': (checkpoint, option)}`` with the entries that exist.
    Archived runs (``*_archived_*``, BasicSR's rename on re-runs) are skipped.
    """
    found = {}
    if not os.path.isdir(experiments_dir):
        return found
    for name in sorted(os.listdir(experiments_dir)):
        folder = os.path.join(experiments_dir, name)
        if '_archived_' in name or not os.path.isdir(os.path.join(folder, 'models')):
            continue
        ckpt = pick_checkpoint(os.path.join(folder, 'models'))
        opt_path = experiment_option(ckpt) if ckpt else None
        if ckpt is None or opt_path is None:
            continue
        try:
            kind = _experiment_kind(read_option(opt_path))
        except (OSError, ValueError):
            continue
        if kind is not None:
            found.setdefault(kind, []).append((os.path.getmtime(ckpt), ckpt, opt_path))
    result = {}
    for kind in ('smfd', 'mask'):
        if found.get(kind):
            result[kind] = max(found[kind])[1:]
    if 'smfd' not in result and found.get('smfd_nomask'):
        result['smfd'] = max(found['smfd_nomask'])[1:]
    return result


def network_option(opt, key='network_g', source='options'):
    net = opt.get(key)
    if not isinstance(net, dict) or 'type' not in net:
        raise InferenceError(f'{source}: no `{key}` with a `type` in the option file')
    return dict(net)


def model_size(opt, default=DEFAULT_SIZE):
    """The face size a model was trained at: ``datasets.train.gt_size`` (else any phase's), else ``default``."""
    datasets = opt.get('datasets') or {}
    phases = sorted(datasets, key=lambda phase: phase != 'train')
    for phase in phases:
        if isinstance(datasets[phase], dict) and datasets[phase].get('gt_size'):
            return int(datasets[phase]['gt_size'])
    return default


def build_network(net_opt, weights=None, param_key=None, device='cpu'):
    """Build a registered arch from ``{'type': ..., **kwargs}`` and load BasicSR-format weights safely.

    ``param_key`` None picks ``params_ema`` when the file has it (BasicSR's EMA copy), else ``params``, else treats
    the file as a bare state dict. Strict loading: a mismatch lists the missing/unexpected keys and names the file.
    """
    register_basicsr()
    from basicsr.utils.registry import ARCH_REGISTRY

    from smfd_models.checkpoint import load_checkpoint_safely, load_state_dict_safely

    net_opt = dict(net_opt)
    arch = net_opt.pop('type')
    try:
        net = ARCH_REGISTRY.get(arch)(**net_opt)
    except KeyError as err:
        raise InferenceError(f'unknown arch {arch!r}: {err}') from err
    if weights is not None:
        if param_key is None:
            keys = load_checkpoint_safely(weights).keys()
            param_key = next((k for k in ('params_ema', 'params') if k in keys), None)
        state = load_state_dict_safely(weights, param_key)
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise InferenceError(f'{weights}: the weights do not fit {arch} as configured by its option file '
                                 f'({err})') from err
    return net.to(device).eval()


class SMFDCascade(torch.nn.Module):
    """MaskGenerator → softmax → SMFD-UNet (§3.4.6), or SMFD-UNet alone with a given / no mask.

    ``forward(x, mask=None)`` with ``x`` (B,3,H,W) in [0, 1] returns ``(restored in [0, 1], labels (B,H,W) or
    None)``. ``mask`` (GT labels or probabilities) overrides the generator.
    """

    def __init__(self, smfd, mask_generator=None):
        super().__init__()
        self.smfd = smfd
        self.mask_generator = mask_generator
        self.use_mask = getattr(smfd, 'use_mask', True)
        self.num_classes = getattr(mask_generator, 'num_classes', None) or getattr(smfd, 'num_mask_classes', None)

    def forward(self, x, mask=None):
        labels = None
        if self.use_mask:
            if mask is None:
                if self.mask_generator is None:
                    raise ValueError('SMFDCascade: this SMFD-UNet needs a mask: load a MaskGenerator '
                                     '(--mask-weights) or pass ground-truth masks')
                mask = torch.softmax(self.mask_generator(x), dim=1)
            labels = mask.argmax(dim=1) if mask.is_floating_point() and mask.dim() == 4 and mask.shape[1] > 1 \
                else mask.reshape(mask.shape[0], *mask.shape[-2:])
        out = self.smfd(x, mask if self.use_mask else None)
        return out.clamp(0, 1), labels


class OnnxCascade:
    """The cascade run by onnxruntime on graphs written by ``scripts/export_onnx.py`` (same call as SMFDCascade).

    ``graph``: ``smfd_cascade.onnx`` (blurry → restored, one graph; no mask comes out) or ``smfd_unet.onnx``
    (blurry + mask → restored) together with ``mask_graph`` = ``mask_generator.onnx`` (blurry → logits).
    """

    def __init__(self, graph, mask_graph=None, threads=None):
        from smfd_models.onnx_export import OnnxRestorer
        self.restorer = OnnxRestorer(graph, threads=threads)
        self.mask_generator = OnnxRestorer(mask_graph, threads=threads) if mask_graph else None
        self.use_mask = len(self.restorer.inputs) == 2
        if self.use_mask and self.mask_generator is None:
            raise InferenceError(f'{graph}: this graph takes (blurry, mask); pass --mask-onnx mask_generator.onnx, '
                                 'or use smfd_cascade.onnx (mask generator inside)')
        shape = self.restorer.inputs[0].shape
        self.size = shape[2] if isinstance(shape[2], int) else None
        k = self.restorer.inputs[1].shape[1] if self.use_mask else None
        self.num_classes = k if isinstance(k, int) else 5

    def __call__(self, x, mask=None):
        if not self.use_mask:
            return self.restorer.restore(x).clamp(0, 1), None
        if mask is None:
            probs = torch.softmax(self.mask_generator.restore(x), dim=1)
        elif mask.is_floating_point():
            probs = mask
        else:
            probs = torch.nn.functional.one_hot(mask.long(), self.num_classes).permute(0, 3, 1, 2).float()
        return self.restorer.restore(x, probs).clamp(0, 1), probs.argmax(dim=1)


def resolve_device(name='auto'):
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if name.startswith('cuda') and not torch.cuda.is_available():
        raise InferenceError(f'--device {name}: CUDA is not available on this machine (use --device cpu)')
    return torch.device(name)


def load_cascade(weights=None, mask_weights=None, opt_path=None, mask_opt_path=None, device='cpu',
                 experiments_dir='experiments', need_generator=True):
    """Build the cascade from explicit files or from the newest ``make demo`` experiments.

    Returns ``(cascade, info)`` where ``info`` has ``smfd_weights``, ``mask_weights``, ``smfd_option``, ``size``.
    Raises InferenceError (with how to get/pass weights) when nothing usable is found.
    """
    found = find_trained_checkpoints(experiments_dir) if weights is None or (need_generator and
                                                                             mask_weights is None) else {}
    if weights is None:
        if 'smfd' not in found:
            raise InferenceError(
                f'no SMFD-UNet weights given and none found under {os.path.abspath(experiments_dir)}/*/models. '
                'Pass --weights NET_G.pth (a BasicSR checkpoint of SMFDUNet, with --opt OPTION.yml when it does '
                'not sit in experiments/<name>/models/), or train the demo models with `make demo`.')
        weights, found_opt = found['smfd']
        opt_path = opt_path or found_opt
        log(f'smfd: using the newest trained SMFD-UNet {weights} (options {opt_path})')
    opt_path = opt_path or experiment_option(weights)
    if opt_path is None:
        raise InferenceError(f'{weights}: no option file next to the checkpoint (experiments/<name>/*.yml); pass '
                             '--opt OPTION.yml whose network_g describes the SMFDUNet')
    opt = read_option(opt_path)
    smfd = build_network(network_option(opt, 'network_g', opt_path), weights, device=device)
    mask_generator = None
    if getattr(smfd, 'use_mask', True) and need_generator:
        mask_weights, mask_net_opt = _mask_generator_source(weights, opt, opt_path, mask_weights, mask_opt_path,
                                                            found, experiments_dir)
        mask_generator = build_network(mask_net_opt, mask_weights, device=device)
    info = {'smfd_weights': weights, 'smfd_option': opt_path, 'mask_weights': mask_weights,
            'size': model_size(opt), 'option': opt}
    return SMFDCascade(smfd, mask_generator).to(device).eval(), info


def _mask_generator_source(smfd_weights, opt, opt_path, mask_weights, mask_opt_path, found, experiments_dir):
    """(checkpoint, network option) of the MaskGenerator: --mask-weights, else the SMFD option's
    ``path.pretrain_network_mask`` + ``network_mask``, else the newest trained MaskGenerator."""
    if mask_weights is None:
        pretrained = (opt.get('path') or {}).get('pretrain_network_mask')
        if pretrained and os.path.isfile(pretrained) and opt.get('network_mask'):
            log(f'smfd: using the MaskGenerator {pretrained} (path.pretrain_network_mask of {opt_path})')
            return pretrained, network_option(opt, 'network_mask', opt_path)
        if 'mask' not in found:
            raise InferenceError(
                f'{smfd_weights}: this SMFD-UNet needs masks but no MaskGenerator weights were given or found under '
                f'{os.path.abspath(experiments_dir)}/*/models. Pass --mask-weights MASK_G.pth (with --mask-opt '
                'when it is not in experiments/<name>/models/), or run `make demo`.')
        mask_weights, mask_opt_path = found['mask'][0], mask_opt_path or found['mask'][1]
        log(f'smfd: using the newest trained MaskGenerator {mask_weights} (options {mask_opt_path})')
    mask_opt_path = mask_opt_path or experiment_option(mask_weights)
    if mask_opt_path is not None:
        return mask_weights, network_option(read_option(mask_opt_path), 'network_g', mask_opt_path)
    if opt.get('network_mask'):
        return mask_weights, network_option(opt, 'network_mask', opt_path)
    raise InferenceError(f'{mask_weights}: no option file next to the checkpoint; pass --mask-opt OPTION.yml '
                         'whose network_g describes the MaskGenerator')


def count_parameters(module):
    return sum(p.numel() for p in module.parameters())


# ----------------------------------------------------------------------------------------------------------------
# Reading and writing images
# ----------------------------------------------------------------------------------------------------------------
def collect_inputs(spec):
    """Paths named by ``spec``: one file, a folder (its images, not recursive) or a glob pattern.

    Raises FileNotFoundError when nothing matches.
    """
    if os.path.isdir(spec):
        paths = sorted(os.path.join(spec, n) for n in os.listdir(spec) if n.lower().endswith(IMAGE_EXTENSIONS))
        if not paths:
            raise FileNotFoundError(f'{spec}: folder has no images ({", ".join(IMAGE_EXTENSIONS)})')
        return paths
    if os.path.isfile(spec):
        return [spec]
    paths = sorted(p for p in glob.glob(os.path.expanduser(spec), recursive=True) if os.path.isfile(p))
    if not paths:
        raise FileNotFoundError(f'{spec}: no such file or folder, and no file matches it as a glob pattern')
    return paths


def _header_size(path):
    """(width, height) from the file header without decoding the pixels (PIL, lazy), or None if PIL cannot tell."""
    from PIL import Image
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            with Image.open(path) as im:
                return im.size
    except Image.DecompressionBombError as err:  # > 2 × PIL's limit (~179 MP): refuse before decoding
        raise ValueError(f'{path}: {err} Refused; downscale it first') from err
    except Exception:  # not a format PIL knows (or broken): the decoder decides
        return None


def read_image(path, max_pixels=DEFAULT_MAX_PIXELS):
    """Any image file → float32 RGB HWC in [0, 1] (gray → 3 channels, alpha dropped, 16-bit scaled).

    Raises ValueError naming the file: empty/truncated/unreadable/non-image, or more than ``max_pixels`` pixels
    (checked from the header before decoding when PIL knows the format).
    """
    from smfd_data.face_dataset import decode_image
    if os.path.getsize(path) == 0:
        raise ValueError(f'{path}: empty file (0 bytes)')
    size = _header_size(path)
    if size is not None and size[0] * size[1] > max_pixels:
        raise ValueError(f'{path}: {size[0]}×{size[1]} = {size[0] * size[1] / 1e6:.1f} MP exceeds --max-pixels '
                         f'{max_pixels / 1e6:.1f} MP; downscale it first or raise --max-pixels')
    with open(path, 'rb') as f:
        content = f.read()
    img = decode_image(content, path)
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f'{path}: zero-size image')
    if img.shape[0] * img.shape[1] > max_pixels:
        raise ValueError(f'{path}: {img.shape[1]}×{img.shape[0]} exceeds --max-pixels {max_pixels}')
    return img


def to_uint8(img):
    return np.clip(np.rint(np.asarray(img, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def write_image(path, img):
    """Write an RGB image (float [0, 1] or uint8) as PNG/JPEG atomically (temporary file + os.replace)."""
    img = img if img.dtype == np.uint8 else to_uint8(img)
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    imwrite_atomic(path if os.path.splitext(path)[1] else path + '.png', img)


def resize_to(img, height, width):
    """Area when shrinking, bicubic when enlarging (clipped), as the datasets resize."""
    if img.shape[:2] == (height, width):
        return img
    shrink = height <= img.shape[0] and width <= img.shape[1]
    out = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    return out if shrink else np.clip(out, 0.0, 1.0)


# ----------------------------------------------------------------------------------------------------------------
# Restoring aligned faces
# ----------------------------------------------------------------------------------------------------------------
def images_to_batch(images, device):
    return torch.from_numpy(np.stack([np.ascontiguousarray(i.transpose(2, 0, 1)) for i in images])).float().to(device)


@torch.no_grad()
def restore_faces(restorer, faces, batch_size=4, device='cpu', masks=None):
    """Restore a list of equally sized float RGB faces in batches.

    ``restorer`` is an :class:`SMFDCascade` (or any callable ``(x, mask) -> (out, labels)``, e.g. the ONNX one).
    Returns ``(outputs, labels)``: lists of float32 HWC images and uint8 HW label maps (None without masks).
    """
    outputs, labels = [], []
    for start in range(0, len(faces), batch_size):
        x = images_to_batch(faces[start:start + batch_size], device)
        mask = None
        if masks is not None:
            mask = torch.from_numpy(np.stack(masks[start:start + batch_size])).long().to(device)
        out, lab = restorer(x, mask)
        outputs.extend(list(out.permute(0, 2, 3, 1).float().cpu().numpy()))
        labels.extend([None] * len(out) if lab is None else list(lab.to(torch.uint8).cpu().numpy()))
    return outputs, labels


# ----------------------------------------------------------------------------------------------------------------
# In-the-wild mode: face detection (facexlib RetinaFace, built without ParseNet)
# ----------------------------------------------------------------------------------------------------------------
def detector_weights_path(name, weights_dir):
    return os.path.join(os.path.expanduser(weights_dir), os.path.basename(DETECTOR_URLS[name]))


def build_face_detector(name='retinaface_resnet50', weights_dir=DEFAULT_WEIGHTS_DIR, device='cpu', pretrained=True):
    """facexlib's RetinaFace, weights loaded safely from ``weights_dir`` (downloaded there on first use).

    Unlike ``FaceRestoreHelper`` this builds only the detector (no ParseNet download) and never writes into
    site-packages or the current directory. Offline without the file: InferenceError naming where to put it.
    ``pretrained=False`` keeps random weights (tests of the wiring only).
    """
    if name not in DETECTOR_URLS:
        raise InferenceError(f'unknown detector {name!r}; choose one of {sorted(DETECTOR_URLS)}')
    from facexlib.detection.retinaface import RetinaFace

    from smfd_models.checkpoint import load_state_dict_safely
    with warnings.catch_warnings():  # torchvision's deprecation notes about facexlib's `pretrained=False`
        warnings.simplefilter('ignore', UserWarning)
        detector = RetinaFace(network_name=name.split('_', 1)[1], half=False, device=torch.device(device))
    if pretrained:
        path = detector_weights_path(name, weights_dir)
        if not os.path.isfile(path):
            url = DETECTOR_URLS[name]
            os.makedirs(os.path.dirname(path), exist_ok=True)
            log(f'deblur: downloading the face detector weights {url} → {path}')
            tmp = path + '.part'
            try:
                torch.hub.download_url_to_file(url, tmp, progress=False)
                os.replace(tmp, path)
            except (urllib.error.URLError, OSError, ConnectionError, TimeoutError) as err:
                if os.path.exists(tmp):
                    os.remove(tmp)
                raise InferenceError(
                    f'face detector weights missing: {path} does not exist and the download from {url} failed '
                    f'({type(err).__name__}: {err}). On a machine with internet, download that file and place it '
                    f'at {path} (or in the folder given by --weights-dir).') from err
        detector.load_state_dict(load_state_dict_safely(path, param_key=None), strict=True)
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


def restore_in_the_wild(restorer, img, detector, size, batch_size=4, device='cpu', only_center_face=False,
                        det_size=640, threshold=0.8, match_color=True):
    """Detect, align, restore (batched) and paste back every face of ``img``.

    Returns ``(restored image, list of per-face dicts {box, score, crop, output, labels})``.
    """
    faces = detect_faces(detector, img, det_size, threshold)
    if only_center_face and faces:
        faces = [center_face(faces, *img.shape[:2])]
    affines, crops, kept = [], [], []
    for face in faces:
        try:
            affine = alignment_matrix(face[2], size)
        except ValueError:
            continue
        affines.append(affine)
        crops.append(warp_face(img, affine, size))
        kept.append(face)
    outputs, labels = restore_faces(restorer, crops, batch_size, device) if crops else ([], [])
    result = img
    for affine, output in zip(affines, outputs):
        result = paste_face(result, output, affine, match_color=match_color)
    details = [{'box': f[0], 'score': f[1], 'crop': c, 'output': o, 'labels': lab}
               for f, c, o, lab in zip(kept, crops, outputs, labels)]
    return result, details


# ----------------------------------------------------------------------------------------------------------------
# The command line
# ----------------------------------------------------------------------------------------------------------------
def build_parser():
    p = argparse.ArgumentParser(
        prog='deblur',
        description='Deblur faces with SMFD-UNet (mask generator → SMFD-UNet cascade). Aligned face crops by '
        'default; --detect for photos with faces anywhere. Exit status: 0 all written, 1 some inputs failed, '
        '2 usage/weights error.')
    p.add_argument('-i', '--input', required=True, help='image file, folder or glob pattern ("photos/*.jpg")')
    p.add_argument('-o', '--output', required=True, help='output folder (created)')
    p.add_argument('--weights', help='SMFDUNet checkpoint (BasicSR .pth with params/params_ema); default: the '
                   'newest one trained under --experiments-dir')
    p.add_argument('--mask-weights', help='MaskGenerator checkpoint (.pth); default: the SMFD option\'s '
                   'path.pretrain_network_mask, else the newest trained one')
    p.add_argument('--opt', help='option YAML whose network_g describes the SMFDUNet (default: the one BasicSR '
                   'copied next to the checkpoint, experiments/<name>/*.yml)')
    p.add_argument('--mask-opt', help='option YAML whose network_g describes the MaskGenerator')
    p.add_argument('--experiments-dir', default='experiments', help='where to look for trained models')
    p.add_argument('--size', type=int, help='face size fed to the network (default: the training gt_size, else 256)')
    p.add_argument('--batch', type=int, default=4, help='faces per forward pass (default 4)')
    p.add_argument('--device', default='auto', help='cpu | cuda | cuda:N | auto (default)')
    p.add_argument('--save-mask', action='store_true', help='also write the predicted masks (masks/: colour, '
                   'labels/: class indices usable as mask_root_pred)')
    p.add_argument('--side-by-side', action='store_true', help='also write side_by_side/<name>.png: input | '
                   '(mask |) output')
    p.add_argument('--ext', default='png', choices=['png', 'jpg', 'bmp', 'tif', 'webp'],
                   help='output format (default png)')
    p.add_argument('--max-pixels', type=float, default=DEFAULT_MAX_PIXELS,
                   help=f'refuse inputs larger than this many pixels (default {DEFAULT_MAX_PIXELS:.0e})')
    p.add_argument('--onnx', help='run with onnxruntime instead of PyTorch: smfd_cascade.onnx, or smfd_unet.onnx '
                   'with --mask-onnx (written by scripts/export_onnx.py)')
    p.add_argument('--mask-onnx', help='mask_generator.onnx, for --onnx smfd_unet.onnx')
    from smfd_models.fast_paths import add_fast_path_arguments
    add_fast_path_arguments(p)
    g = p.add_argument_group('in-the-wild mode')
    g.add_argument('--detect', action='store_true', help='detect faces (RetinaFace), align, restore, paste back')
    g.add_argument('--detector', default='retinaface_resnet50', choices=sorted(DETECTOR_URLS))
    g.add_argument('--weights-dir', default=DEFAULT_WEIGHTS_DIR,
                   help='face detector weights folder (downloaded on first use; default %(default)s)')
    g.add_argument('--only-center-face', action='store_true', help='restore only the face nearest the centre')
    g.add_argument('--det-size', type=int, default=640, help='longer image side used for detection (default 640)')
    g.add_argument('--det-threshold', type=float, default=0.8, help='detection confidence threshold')
    g.add_argument('--no-color-match', action='store_true',
                   help='paste restored faces without matching their low-frequency colour to the photo')
    return p


def load_restorer(args, device):
    """The cascade (PyTorch, or onnxruntime with --onnx) and its face size, from the command-line arguments."""
    if args.onnx:
        restorer = OnnxCascade(args.onnx, args.mask_onnx)
        return restorer, args.size or restorer.size or DEFAULT_SIZE, {'onnx': args.onnx}
    from smfd_models.fast_paths import autocast_for, prepare_for_inference, to_channels_last
    cascade, info = load_cascade(args.weights, args.mask_weights, args.opt, args.mask_opt, device,
                                 args.experiments_dir)
    for name in ('smfd', 'mask_generator'):
        if getattr(cascade, name) is not None and (args.channels_last or args.compile):
            setattr(cascade, name, prepare_for_inference(getattr(cascade, name), args.channels_last, args.compile))

    def restorer(x, mask=None):
        with autocast_for(device, args.amp):
            out, labels = cascade(to_channels_last(x) if args.channels_last else x, mask)
        return out.float(), labels

    restorer.num_classes = cascade.num_classes
    return restorer, args.size or info['size'], info


def _output_names(paths, ext):
    """Output file names by stem; a stem seen twice gets ``_2``, ``_3``… so no output overwrites another."""
    seen, names = {}, []
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        seen[stem] = seen.get(stem, 0) + 1
        names.append(f'{stem}.{ext}' if seen[stem] == 1 else f'{stem}_{seen[stem]}.{ext}')
    return names


def _mask_picture(labels, num_classes):
    from smfd_data.face_labels import colorize
    return colorize(labels, num_classes=num_classes)


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if args.batch < 1 or (args.size is not None and args.size < 16):
            raise InferenceError('--batch must be >= 1 and --size >= 16')
        device = resolve_device(args.device)
        paths = collect_inputs(args.input)
        restorer, size, info = load_restorer(args, device)
        detector = build_face_detector(args.detector, args.weights_dir, device) if args.detect else None
    except (InferenceError, FileNotFoundError, ValueError, KeyError) as err:
        log(f'deblur: error: {err}')
        return EXIT_USAGE
    from tqdm import tqdm

    num_classes = getattr(restorer, 'num_classes', None) or 5
    names = _output_names(paths, args.ext)
    failed = 0
    started = time.time()

    def save(name, inp, out, labels):
        write_image(os.path.join(args.output, name), out)
        stem = os.path.splitext(name)[0]
        mask_rgb = None if labels is None else _mask_picture(labels, num_classes)
        if args.save_mask and labels is not None:
            write_image(os.path.join(args.output, 'masks', f'{stem}.png'), mask_rgb)
            write_image(os.path.join(args.output, 'labels', f'{stem}.png'), labels)
        if args.side_by_side:
            from smfd_models.visualize import side_by_side
            panels = [to_uint8(inp)] + ([] if mask_rgb is None else [mask_rgb]) + [to_uint8(out)]
            write_image(os.path.join(args.output, 'side_by_side', f'{stem}.png'), side_by_side(panels))

    def fail(path, err):
        nonlocal failed
        failed += 1
        log(f'deblur: skipped {path}: {err}')

    progress = tqdm(total=len(paths), unit='img', desc='deblur', file=sys.stderr, disable=None)
    if args.detect:
        for path, name in zip(paths, names):
            try:
                img = read_image(path, args.max_pixels)
                out, faces = restore_in_the_wild(restorer, img, detector, size, args.batch, device,
                                                 args.only_center_face, args.det_size, args.det_threshold,
                                                 not args.no_color_match)
                if not faces:
                    log(f'deblur: {path}: no face detected; written unchanged')
                save(name, img, out, None)
                if args.save_mask:
                    stem = os.path.splitext(name)[0]
                    for k, face in enumerate(faces):
                        if face['labels'] is not None:
                            write_image(os.path.join(args.output, 'masks', f'{stem}_face{k}.png'),
                                        _mask_picture(face['labels'], num_classes))
            except (ValueError, OSError, cv2.error) as err:
                fail(path, err)
            progress.update(1)
    else:
        # Aligned mode: every image is resized to size² (one batch shape) and the output back to its size.
        for start in range(0, len(paths), args.batch):
            chunk = list(zip(paths[start:start + args.batch], names[start:start + args.batch]))
            loaded = []
            for path, name in chunk:
                try:
                    loaded.append((path, name, read_image(path, args.max_pixels)))
                except (ValueError, OSError, cv2.error) as err:
                    fail(path, err)
            if loaded:
                outputs, labels = restore_faces(restorer, [resize_to(img, size, size) for _, _, img in loaded],
                                                args.batch, device)
                for (path, name, img), out, lab in zip(loaded, outputs, labels):
                    try:
                        h, w = img.shape[:2]
                        if lab is not None and lab.shape != (h, w):
                            lab = cv2.resize(lab, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)
                        save(name, img, resize_to(out, h, w), lab)
                    except (ValueError, OSError, cv2.error) as err:
                        fail(path, err)
            progress.update(len(chunk))
    progress.close()
    done = len(paths) - failed
    log(f'deblur: wrote {done} of {len(paths)} image(s) to {args.output} in {time.time() - started:.1f} s'
        + (f'; {failed} failed' if failed else ''))
    return EXIT_SOME_FAILED if failed else EXIT_OK


if __name__ == '__main__':
    sys.exit(main())
