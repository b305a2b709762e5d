"""The ``deblur`` command (``smfd-deblur``, ``scripts/deblur.py``): deblur face images with the SMFD cascade.

Aligned face crops by default; ``--detect`` for photos with faces anywhere (detect → align → restore → paste
back); ``--mask DIR`` runs SMFD-UNet with the user's own label maps (the paper's "original mask" mode, §4.2).
Inputs: a file, a folder or a glob pattern; unreadable inputs are reported one by one and the run goes on;
exit status 0 when everything was written, 1 when some inputs failed, 2 for a usage or weights error. The output
folder may not hold an input, and no output path may be an input's. Usage and options: ``python scripts/deblur.py
-h`` and docs/tools.md.
"""
import argparse
import glob
import itertools
import os
import sys
import time

import cv2

from smfd_data.face_labels import NUM_CELEBAMASK_CLASSES, colorize, group_labels
from smfd_data.image_io import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    check_complete,
    list_images,
    read_bytes,
    read_image,
    read_labels,
    resize_image,
    resize_labels,
    to_uint8,
    write_image,
)
from smfd_data.video_io import VIDEO_EXTENSIONS, VideoReader, is_video_file, output_extension, write_video
from smfd_inference.face_helper import DEFAULT_WEIGHTS_DIR, DETECTOR_URLS, build_face_detector
from smfd_inference.loading import DEFAULT_SIZE, InferenceError, load_cascade, log, resolve_device
from smfd_inference.restorer import (
    RESIZE_MODES,
    larger_faces,
    larger_faces_note,
    processing_shape,
    restore_any_size,
    restore_faces,
    restore_in_the_wild,
)
from smfd_inference.sharding import Shard
from smfd_models.checkpoint import WeightsUnavailable
from smfd_models.fast_paths import add_fast_path_arguments, autocast_for, prepare_for_inference, to_channels_last
from smfd_models.visualize import side_by_side

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2
MASK_CLASSES = ('auto', '5', '19')  # --mask-classes: what a user's label maps hold
MEDIA_EXTENSIONS = IMAGE_EXTENSIONS + VIDEO_EXTENSIONS


def collect_inputs(spec, report=None):
    """Paths named by ``spec``: one file, a folder (its images and videos, not recursive) or a glob pattern.

    Other files of a folder are left out with one line to ``report`` (never silently). Raises FileNotFoundError
    when nothing matches.
    """
    if os.path.isdir(spec):
        # a broken symlink stays in the list, so it fails as that file's error instead of vanishing
        names = sorted(n for n in os.listdir(spec)
                       if os.path.isfile(os.path.join(spec, n)) or os.path.islink(os.path.join(spec, n)))
        paths = [os.path.join(spec, n) for n in names if n.lower().endswith(MEDIA_EXTENSIONS)]
        others = [n for n in names if not n.lower().endswith(MEDIA_EXTENSIONS) and not n.startswith('.')]
        if others and report is not None:
            report(f'deblur: {spec}: left out {len(others)} file(s) that are not images or videos '
                   f'({", ".join(MEDIA_EXTENSIONS)}): {", ".join(others[:5])}' + (', …' if len(others) > 5 else ''))
        if not paths:
            raise FileNotFoundError(f'{spec}: folder has no images or videos ({", ".join(MEDIA_EXTENSIONS)})')
        return paths
    if os.path.isfile(spec):
        return [spec]
    paths = sorted(p for p in glob.glob(os.path.expanduser(spec), recursive=True) if os.path.isfile(p))
    if not paths:
        raise FileNotFoundError(f'{spec}: no such file or folder, and no file matches it as a glob pattern')
    return paths


def output_names(paths, ext):
    """One output file name per input, never two alike: ``<stem>.<ext>`` (a video: ``<stem>.mp4|avi``); a stem seen
    again gets ``_2``, ``_3``…, skipping every suffix that is itself an input's stem (``x.png``, ``x.jpg``,
    ``x_2.png`` → x, x_3, x_2)."""
    stems = [os.path.splitext(os.path.basename(path))[0] for path in paths]
    taken, names = set(), []
    first = {}
    for i, stem in enumerate(stems):
        first.setdefault(stem, i)
    reserved = set(stems)
    for i, stem in enumerate(stems):
        name = stem
        if first[stem] != i:
            k = 2
            while f'{stem}_{k}' in reserved or f'{stem}_{k}' in taken:
                k += 1
            name = f'{stem}_{k}'
        taken.add(name)
        names.append(f'{name}.{output_extension(paths[i]) if is_video_file(paths[i]) else ext}')
    return names


def _outputs_of(args, name):
    """Every file the command writes for the output ``name`` (the image, and the extras asked for)."""
    stem = os.path.splitext(name)[0]
    files = [os.path.join(args.output, name)]
    if is_video_file(name):  # a video is one file (no masks or side-by-side pictures)
        return files
    if args.save_mask and not args.detect:
        files += [os.path.join(args.output, 'masks', f'{stem}.png'), os.path.join(args.output, 'labels', f'{stem}.png')]
    if args.side_by_side:
        files.append(os.path.join(args.output, 'side_by_side', f'{stem}.png'))
    return files


def gif_frames(path):
    """Number of frames of a GIF (PIL), 1 when PIL cannot tell."""
    from PIL import Image
    try:
        with Image.open(path) as im:
            return int(getattr(im, 'n_frames', 1))
    except Exception:  # the decoder already read it; a count is only for the note
        return 1


def check_output_folder(args, paths, names):
    """Refuse (InferenceError) an output folder that holds an input, or any output path that is an input."""
    out = os.path.realpath(args.output)
    inputs = {os.path.realpath(p) for p in paths}
    folders = {os.path.dirname(p) for p in inputs}
    if out in folders:
        raise InferenceError(f'-o {args.output} is the folder of the inputs: the outputs would overwrite or mix with '
                             'the originals; choose another output folder')
    for name in names:
        for path in _outputs_of(args, name):
            if os.path.realpath(path) in inputs:
                raise InferenceError(f'-o {args.output}: the output {path} would overwrite the input of that name; '
                                     'choose another output folder')


# ----------------------------------------------------------------------------------------------------------------
# User masks (--mask): the paper's "original mask" mode for real photos
# ----------------------------------------------------------------------------------------------------------------
def match_masks(mask_spec, paths):
    """``{input path: mask path}``: a mask folder matched by file stem, or one mask file for one input.

    Inputs without a mask are missing from the dict (reported per file later). Raises InferenceError for a
    missing folder or two mask files with one stem.
    """
    if os.path.isfile(mask_spec):
        if len(paths) != 1:
            raise InferenceError(f'--mask {mask_spec}: a single mask file goes with a single input; for several '
                                 'inputs pass a folder of label maps named like the inputs')
        return {paths[0]: mask_spec}
    try:
        masks = list_images(mask_spec)
    except (FileNotFoundError, ValueError) as err:
        raise InferenceError(f'--mask: {err}') from err
    found = {}
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        if stem in masks:
            found[path] = os.path.join(mask_spec, masks[stem])
    return found


def read_user_mask(path, image_shape, num_classes, classes='auto'):
    """A user's label map → labels in the network's ``num_classes`` (5 groups or 19 CelebAMask-HQ classes).

    ``classes`` 'auto': a map with a value ≥ 5 is CelebAMask-HQ's 19 classes, grouped to the paper's 5 when the
    network takes 5 (§3.4.2); a map with values 0..4 is read as the 5 groups. The map must have the image's size
    (stretching a mask would misplace the face parts): ValueError naming the file otherwise.
    """
    labels = read_labels(path, NUM_CELEBAMASK_CLASSES)
    if labels.shape[:2] != tuple(image_shape[:2]):
        raise ValueError(f'{path}: mask is {labels.shape[1]}×{labels.shape[0]} but its image is '
                         f'{image_shape[1]}×{image_shape[0]}; masks must have the size of their image')
    top = int(labels.max()) if labels.size else 0
    kind = classes if classes != 'auto' else ('19' if top >= 5 else '5')
    if kind == '5' and top >= 5:
        raise ValueError(f'{path}: label value {top} in a 5-group mask (--mask-classes 5 expects 0..4)')
    if num_classes == 5:
        return group_labels(labels) if kind == '19' else labels
    if num_classes == NUM_CELEBAMASK_CLASSES and kind == '19':
        return labels
    raise ValueError(f'{path}: a {kind}-class mask cannot feed a network that takes {num_classes} mask classes')


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
    p.add_argument('-o', '--output', required=True, help='output folder (created; may not be the input folder)')
    p.add_argument('--weights', help='SMFDUNet checkpoint (BasicSR .pth with params/params_ema); default: the '
                   'newest one trained under --experiments-dir')
    p.add_argument('--mask-weights', help='MaskGenerator checkpoint (.pth); default: the SMFD option\'s '
                   'path.pretrain_network_mask, else the newest trained one')
    p.add_argument('--opt', help='option YAML whose network_g describes the SMFDUNet (default: the one BasicSR '
                   'copied next to the checkpoint, experiments/<name>/*.yml)')
    p.add_argument('--mask-opt', help='option YAML whose network_g describes the MaskGenerator')
    p.add_argument('--experiments-dir', default='experiments', help='where to look for trained models')
    p.add_argument('--mask', help='your own label maps instead of the MaskGenerator: a folder of maps named like '
                   'the inputs (any image format), or one file for one input; CelebAMask-HQ 19 classes or the 5 '
                   'groups (aligned mode)')
    p.add_argument('--mask-classes', default='auto', choices=MASK_CLASSES,
                   help='what the --mask maps hold (auto: a value >= 5 means 19 classes)')
    p.add_argument('--size', type=int, help='face size fed to the network (default: the training gt_size, else 256)')
    p.add_argument('--resize', default='down', choices=RESIZE_MODES,
                   help='faces larger than --size: down (default) = processed at --size² and scaled back, none = '
                   'processed at their own size (the networks take any size)')
    p.add_argument('--batch', type=int, default=4, help='faces per forward pass (default 4)')
    p.add_argument('--device', default='auto', help='cpu | cuda | cuda:N | mps | auto (default)')
    p.add_argument('--save-mask', action='store_true', help='also write the predicted masks (masks/: colour, '
                   'labels/: class indices usable as mask_root_pred)')
    p.add_argument('--side-by-side', action='store_true', help='also write side_by_side/<name>.png: input | '
                   '(mask |) output')
    p.add_argument('--ext', default='png', choices=['png', 'jpg', 'bmp', 'tif', 'webp'],
                   help='output format (default png)')
    p.add_argument('--resume', action='store_true', help='skip inputs whose outputs already exist and are complete '
                   '(a rerun after an interruption; also under torchrun)')
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


def load_restorer(args, device, report=log):
    """The cascade (PyTorch, or onnxruntime with --onnx) and its face size, from the command-line arguments."""
    if args.onnx:
        from smfd_inference.onnx import OnnxCascade
        restorer = OnnxCascade(args.onnx, args.mask_onnx)
        if args.mask and not restorer.use_mask:
            raise InferenceError(f'--mask: {args.onnx} takes no mask (smfd_cascade.onnx); use smfd_unet.onnx')
        return restorer, args.size or restorer.size or DEFAULT_SIZE, {'onnx': args.onnx, 'warnings': []}
    cascade, info = load_cascade(args.weights, args.mask_weights, args.opt, args.mask_opt, device,
                                 args.experiments_dir, need_generator=not args.mask, report=report)
    if args.mask and not cascade.use_mask:
        raise InferenceError(f'--mask: {info["smfd_weights"]} is an SMFD-UNet without mask branch (use_mask: false)')
    for name in ('smfd', 'mask_generator'):
        if getattr(cascade, name) is not None and (args.channels_last or args.compile):
            setattr(cascade, name, prepare_for_inference(getattr(cascade, name), args.channels_last, args.compile))

    def restorer(x, mask=None):
        with autocast_for(device, args.amp):
            out, labels = cascade.restore(to_channels_last(x) if args.channels_last else x, mask)
        return out.float(), labels

    restorer.num_classes = cascade.num_classes
    return restorer, args.size or info['size'], info


def _check_usage(args):
    if args.batch < 1 or (args.size is not None and args.size < 16):
        raise InferenceError('--batch must be >= 1 and --size >= 16')
    if args.mask and args.detect:
        raise InferenceError('--mask goes with aligned faces (one label map per face crop), not with --detect')


def _first_line(err):
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:300]


class _Run:
    """One run over the inputs: counters, the per-file error rule, the writers."""

    def __init__(self, args, restorer, size, device, detector, masks, report=log):
        self.args, self.restorer, self.size, self.device, self.detector = args, restorer, size, device, detector
        self.masks = masks
        self.report = report
        self.num_classes = getattr(restorer, 'num_classes', None) or 5
        self.failed = self.written = 0
        self.progress = True  # per-video frame bars (off in processes other than torchrun's first)
        self.larger = []  # (w, h) of faces larger than the network's face size

    def fail(self, path, err):
        self.failed += 1
        self.report(f'deblur: skipped {path}: {str(err).strip(chr(34))}')

    def save(self, path, name, inp, out, labels):
        args = self.args
        write_image(os.path.join(args.output, name), out)
        stem = os.path.splitext(name)[0]
        mask_rgb = None if labels is None else colorize(labels, num_classes=self.num_classes)
        if args.save_mask and labels is not None:
            write_image(os.path.join(args.output, 'masks', f'{stem}.png'), mask_rgb)
            write_image(os.path.join(args.output, 'labels', f'{stem}.png'), labels)
        if args.side_by_side:
            panels = [to_uint8(inp)] + ([] if mask_rgb is None else [mask_rgb]) + [to_uint8(out)]
            write_image(os.path.join(args.output, 'side_by_side', f'{stem}.png'), side_by_side(panels))
        self.written += 1

    def restore_one(self, face, mask):
        """(output, labels) of one face, or the reason it failed (str): the per-face retry of a batch whose output
        held NaN/inf, so only the faces that overflow fail."""
        try:
            outputs, labels = restore_faces(self.restorer, [face], 1, self.device, None if mask is None else [mask])
        except (RuntimeError, ValueError) as err:
            return _first_line(err)
        return outputs[0], labels[0]

    def read(self, path):
        """The input as float RGB; a GIF gives its first frame, with a note when it has more."""
        img = read_image(path, self.args.max_pixels)
        if path.lower().endswith('.gif'):
            frames = gif_frames(path)
            if frames > 1:
                self.report(f'deblur: {path}: animated GIF with {frames} frames: only the first is restored '
                            '(convert it to a video to restore every frame)')
        return img

    def target_shape(self, shape):
        """The shape a face of ``shape`` is processed at (--resize); a larger face is counted for the note."""
        h, w = shape[:2]
        if max(h, w) > self.size:
            self.larger.append((w, h))
        return processing_shape(shape, self.size, self.args.resize)

    def photos(self, jobs):
        """--detect: one photo at a time, all its faces in one batch."""
        args = self.args
        for path, name in jobs:
            try:
                img = self.read(path)
                out, faces = restore_in_the_wild(self.restorer, img, self.detector, self.size, args.batch,
                                                 self.device, args.only_center_face, args.det_size,
                                                 args.det_threshold, not args.no_color_match, args.resize)
                if not faces:
                    self.report(f'deblur: {path}: no face detected; written unchanged')
                self.larger += larger_faces(faces, self.size)
                self.save(path, name, img, out, None)
                if args.save_mask:
                    stem = os.path.splitext(name)[0]
                    for k, face in enumerate(faces):
                        if face['labels'] is not None:
                            write_image(os.path.join(args.output, 'masks', f'{stem}_face{k}.png'),
                                        colorize(face['labels'], num_classes=self.num_classes))
            except (ValueError, OSError, cv2.error) as err:
                self.fail(path, err)
            except RuntimeError as err:  # out of memory, a backend failure: this photo fails, the run goes on
                self.fail(path, f'the network failed: {_first_line(err)}')
            yield 1

    def aligned(self, jobs):
        """Aligned faces: each resized to its target shape (--resize), batches of equal shapes, resized back."""
        args = self.args
        for start in range(0, len(jobs), args.batch):
            chunk = jobs[start:start + args.batch]
            loaded = []
            for path, name in chunk:
                try:
                    img = self.read(path)
                    mask = None
                    if self.masks is not None:
                        if path not in self.masks:
                            raise ValueError(f'no mask named {os.path.splitext(os.path.basename(path))[0]}.* in '
                                             f'--mask {args.mask}')
                        mask = read_user_mask(self.masks[path], img.shape, self.num_classes, args.mask_classes)
                    loaded.append((path, name, img, mask))
                except (ValueError, OSError, cv2.error) as err:
                    self.fail(path, err)
            if loaded:
                shapes = [self.target_shape(img.shape) for _, _, img, _ in loaded]
                faces = [resize_image(img, h, w) for (_, _, img, _), (h, w) in zip(loaded, shapes)]
                masks = None
                if self.masks is not None:
                    masks = [resize_labels(m, h, w) for (_, _, _, m), (h, w) in zip(loaded, shapes)]
                try:
                    results = zip(*restore_any_size(self.restorer, faces, args.batch, self.device, masks))
                except RuntimeError as err:  # out of memory, a backend failure: one line per input of the batch
                    results = [f'the network failed on its batch: {_first_line(err)}'] * len(loaded)
                except ValueError:  # NaN/inf in the batch's output: find which faces, one at a time
                    results = [self.restore_one(face, None if masks is None else masks[i])
                               for i, face in enumerate(faces)]
                for (path, name, img, user_mask), result in zip(loaded, results):
                    if isinstance(result, str):
                        self.fail(path, result)
                        continue
                    out, lab = result
                    try:
                        h, w = img.shape[:2]
                        if user_mask is not None:  # the user's map as given, not a resized round trip of it
                            lab = user_mask
                        elif lab is not None:
                            lab = resize_labels(lab, h, w)
                        self.save(path, name, img, resize_image(out, h, w), lab)
                    except (ValueError, OSError, cv2.error) as err:
                        self.fail(path, err)
            yield len(chunk)

    def frames(self, reader):
        """Restored frames of ``reader``, in order: batches of --batch frames (aligned mode: each frame is a face
        crop, --resize applies) or one photo at a time (--detect). Non-finite outputs stop the video (ValueError
        from restore_faces)."""
        args = self.args
        if args.detect:
            for frame in reader:
                out, faces = restore_in_the_wild(self.restorer, frame, self.detector, self.size, args.batch,
                                                 self.device, args.only_center_face, args.det_size,
                                                 args.det_threshold, not args.no_color_match, args.resize)
                yield out
            return
        batch, target = [], None
        for frame in itertools.chain(reader, [None]):  # None flushes the last batch; frames stream, never all held
            if frame is not None:
                target = target or self.target_shape(frame.shape)  # once per video (the note counts it once)
                batch.append(frame)
            if batch and (frame is None or len(batch) == args.batch):
                h, w = batch[0].shape[:2]
                outputs, _ = restore_any_size(self.restorer, [resize_image(f, *target) for f in batch], args.batch,
                                              self.device)
                for out in outputs:
                    yield resize_image(out, h, w)
                batch = []

    def video(self, path, name, position=1):
        """Restore every frame of the video ``path`` and write ``name`` (audio-less, the source frame rate)."""
        from tqdm import tqdm
        out_path = os.path.join(self.args.output, name)
        try:
            if self.masks is not None:
                raise ValueError('--mask: a video takes no label maps (they are per image)')
            with VideoReader(path, self.args.max_pixels) as reader:
                if not reader.fps_known:
                    self.report(f'deblur: {path}: the container gives no frame rate; writing {reader.fps:g} fps')
                bar = tqdm(total=len(reader) or None, unit='frame', desc=os.path.basename(path), file=sys.stderr,
                           disable=None if self.progress else True, leave=False, position=position)

                def frames():
                    for out in self.frames(reader):
                        bar.update(1)
                        yield out

                try:
                    count = write_video(out_path, frames(), reader.fps)
                finally:
                    bar.close()
            note = '' if not len(reader) or count == len(reader) else f' (the container announced {len(reader)})'
            self.report(f'deblur: {path}: {count} frames at {reader.fps:g} fps → {out_path} (no audio){note}')
            self.written += 1
        except (ValueError, OSError, cv2.error) as err:
            self.fail(path, err)
        except RuntimeError as err:
            self.fail(path, f'the network failed: {_first_line(err)}')

    def size_note(self, larger):
        """One note when faces were larger than the network's face size (``larger``: their (w, h), all shards)."""
        note = larger_faces_note(larger, self.size, self.args.resize)
        if note:
            self.report(f'deblur: {note}')


def output_complete(args, name):
    """True when every file the run would write for ``name`` exists and is complete (--resume): written
    atomically, a present file is whole, and a PNG/JPEG is also checked for its end marker."""
    for path in _outputs_of(args, name):
        if is_video_file(path):  # written atomically: present means whole (and too big to read just to check)
            if not os.path.isfile(path) or os.path.getsize(path) == 0:
                return False
            continue
        try:
            check_complete(read_bytes(path), path)
        except (FileNotFoundError, ValueError):
            return False
    return True


def _set_up(args, shard, report):
    """Inputs, names, masks, restorer and detector: ``(paths, names, run)``; raises the usage/weights errors."""
    _check_usage(args)
    device = shard.device(resolve_device(args.device))
    paths = collect_inputs(args.input, report)
    names = output_names(paths, args.ext)
    check_output_folder(args, paths, names)
    masks = match_masks(args.mask, paths) if args.mask else None
    restorer, size, _ = load_restorer(args, device, report)
    return paths, names, _Run(args, restorer, size, device, None, masks)


_SETUP_ERRORS = (InferenceError, WeightsUnavailable, FileNotFoundError, ValueError, KeyError)


def _agree(shard, err):
    """Every process learns whether any failed its set-up; the main one prints each distinct error once."""
    errors = [e for e in shard.gather(None if err is None else str(err).strip('"')) if e is not None]
    if shard.main:
        for message in dict.fromkeys(errors):
            log(f'deblur: error: {message}')
    return not errors


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        shard = Shard.from_env()
    except (RuntimeError, ValueError) as err:
        log(f'deblur: error: cannot join the torchrun process group: {err}')
        return EXIT_USAGE
    try:
        return _main(args, shard)
    finally:
        shard.close()


def _main(args, shard):
    quiet = log if shard.main else (lambda message: None)  # notes and warnings once, not once per process
    err = None
    try:
        paths, names, run = _set_up(args, shard, quiet)
        if args.detect and shard.main:  # the main process downloads the detector weights, the others then read them
            run.detector = build_face_detector(args.detector, args.weights_dir, run.device)
    except _SETUP_ERRORS as error:
        err = error
    if not _agree(shard, err):
        return EXIT_USAGE
    if args.detect and not shard.main:
        try:
            run.detector = build_face_detector(args.detector, args.weights_dir, run.device)
        except _SETUP_ERRORS as error:
            err = error
        if not _agree(shard, err):
            return EXIT_USAGE
    from tqdm import tqdm

    started = time.time()
    jobs = shard.take(zip(paths, names))
    skipped = 0
    if args.resume:
        todo = [(path, name) for path, name in jobs if not output_complete(args, name)]
        skipped, jobs = len(jobs) - len(todo), todo
    desc = f'deblur {shard.rank}/{shard.world}' if shard.distributed else 'deblur'
    progress = tqdm(total=len(jobs), unit='input', desc=desc, file=sys.stderr, disable=None if shard.main else True)
    run.progress = shard.main
    images = [job for job in jobs if not is_video_file(job[0])]
    for done in (run.photos(images) if args.detect else run.aligned(images)):
        progress.update(done)
    for path, name in jobs:
        if is_video_file(path):
            run.video(path, name)
            progress.update(1)
    progress.close()
    counts = shard.gather({'written': run.written, 'failed': run.failed, 'skipped': skipped, 'larger': run.larger})
    failed = sum(c['failed'] for c in counts)
    if shard.main:
        run.report = log
        run.size_note([s for c in counts for s in c['larger']])
        written = sum(c['written'] for c in counts)
        noun = 'input(s)' if any(is_video_file(p) for p in paths) else 'image(s)'
        summary = f'deblur: wrote {written} of {len(paths)} {noun} to {args.output} in {time.time() - started:.1f} s'
        if any(c['skipped'] for c in counts):
            summary += f'; {sum(c["skipped"] for c in counts)} already complete (--resume)'
        if failed:
            summary += f'; {failed} failed'
        if shard.distributed:
            summary += f'; {shard.world} processes wrote ' + ', '.join(str(c['written']) for c in counts)
        log(summary)
    return EXIT_SOME_FAILED if failed else EXIT_OK


if __name__ == '__main__':
    sys.exit(main())
