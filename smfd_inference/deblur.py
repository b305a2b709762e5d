"""The ``deblur`` command (``smfd-deblur``, ``scripts/deblur.py``): deblur face images with the SMFD cascade.

Aligned face crops by default; ``--detect`` for photos with faces anywhere (detect → align → restore → paste
back). Inputs: a file, a folder or a glob pattern; unreadable inputs are reported one by one and the run goes on;
exit status 0 when everything was written, 1 when some inputs failed, 2 for a usage or weights error. Usage and
options: ``python scripts/deblur.py -h`` and docs/tools.md.
"""
import argparse
import glob
import os
import sys
import time

import cv2

from smfd_data.face_labels import colorize
from smfd_data.image_io import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    read_image,
    resize_image,
    resize_labels,
    to_uint8,
    write_image,
)
from smfd_inference.face_helper import DEFAULT_WEIGHTS_DIR, DETECTOR_URLS, build_face_detector
from smfd_inference.loading import DEFAULT_SIZE, InferenceError, load_cascade, log, resolve_device
from smfd_inference.restorer import restore_faces, restore_in_the_wild
from smfd_models.checkpoint import WeightsUnavailable
from smfd_models.fast_paths import add_fast_path_arguments, autocast_for, prepare_for_inference, to_channels_last
from smfd_models.visualize import side_by_side

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2


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
        from smfd_inference.onnx import OnnxCascade
        restorer = OnnxCascade(args.onnx, args.mask_onnx)
        return restorer, args.size or restorer.size or DEFAULT_SIZE, {'onnx': args.onnx}
    cascade, info = load_cascade(args.weights, args.mask_weights, args.opt, args.mask_opt, device,
                                 args.experiments_dir)
    for name in ('smfd', 'mask_generator'):
        if getattr(cascade, name) is not None and (args.channels_last or args.compile):
            setattr(cascade, name, prepare_for_inference(getattr(cascade, name), args.channels_last, args.compile))

    def restorer(x, mask=None):
        with autocast_for(device, args.amp):
            out, labels = cascade.restore(to_channels_last(x) if args.channels_last else x, mask)
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
    except (InferenceError, WeightsUnavailable, FileNotFoundError, ValueError, KeyError) as err:
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
                outputs, labels = restore_faces(restorer, [resize_image(img, size, size) for _, _, img in loaded],
                                                args.batch, device)
                for (path, name, img), out, lab in zip(loaded, outputs, labels):
                    try:
                        h, w = img.shape[:2]
                        if lab is not None:
                            lab = resize_labels(lab, h, w)
                        save(name, img, resize_image(out, h, w), lab)
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
