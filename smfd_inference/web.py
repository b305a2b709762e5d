"""The web page (``smfd-web``, ``scripts/web_demo.py``): deblur one photo in the browser, as GFPGAN/CodeFormer users
do (Gradio). Issue 13, item 1.

Upload a photo, choose "aligned face" (the crop the model was trained on, §3.4.2) or "detect faces in photo"
(detect → align → restore → paste back, as ``smfd-deblur --detect``), optionally upload a label map as the mask
(aligned mode; else the MaskGenerator predicts it, §3.4.6), and see blurry | mask | output side by side, with the
result as a download.

- Weights: the same resolution as the deblur command (``loading.load_cascade``: ``--weights``/``--opt``, else the
  newest trained experiment); what it reports (which files, warnings) is shown at the top of the page.
- Uploads: refused with one line on the page (never a traceback) when over ``--max-upload-mb`` (Gradio refuses those
  before storing them), over ``--max-pixels`` (read from the header, before decoding), or not a decodable image.
- Files: everything the page writes goes under ``--output`` (results atomically through ``smfd_data.image_io``;
  Gradio's upload/cache folder is ``OUTPUT/.gradio``), nowhere else. The face detector's weights are never
  downloaded from the page: when they are missing, the page says where to put them.

``DeblurPage`` is the engine (no Gradio import, unit-testable); ``build_app`` puts the page around it.
"""
import argparse
import os
import re
import sys
import threading
import time
import uuid

from smfd_data.face_labels import colorize
from smfd_data.image_io import (
    DEFAULT_MAX_PIXELS,
    check_pixels,
    read_image,
    resize_image,
    resize_labels,
    to_uint8,
    write_image,
)
from smfd_inference import restorer
from smfd_inference.deblur import MASK_CLASSES, read_user_mask
from smfd_inference.face_helper import DEFAULT_WEIGHTS_DIR, DETECTOR_URLS, build_face_detector
from smfd_inference.loading import InferenceError, load_cascade, log, resolve_device
from smfd_models.checkpoint import WeightsUnavailable, cached_weights
from smfd_models.visualize import side_by_side

MODE_ALIGNED = 'aligned face'
MODE_DETECT = 'detect faces in photo'
DEFAULT_MAX_UPLOAD_MB = 25.0
EXIT_USAGE = 2


class UploadRefused(ValueError):
    """An upload the page does not process; the message is shown on the page as it is."""


def _network(restore, *args, **kwargs):
    """``restore(*args, **kwargs)`` (a restorer function); its ValueError (NaN/inf outputs, refused by
    ``restore_faces``) becomes the page's one line."""
    try:
        return restore(*args, **kwargs)
    except ValueError as err:
        raise UploadRefused(f'Error: {err}.') from err


def _safe_stem(path):
    """A file-name stem that cannot leave the output folder (the browser chooses the upload's name)."""
    stem = os.path.splitext(os.path.basename(path or 'upload'))[0]
    return (re.sub(r'[^A-Za-z0-9_-]+', '_', stem).strip('_') or 'upload')[:60]


class DeblurPage:
    """What the page does, without the page: load the cascade once, restore one upload, write the result.

    Args:
        output_dir: the only folder written (results in ``OUTPUT/results``).
        weights, mask_weights, opt, mask_opt, experiments_dir: as the deblur command's options.
        device: 'cpu' | 'cuda' | 'cuda:N' | 'auto'.
        size, resize: face size fed to the network (default: the training gt_size) and what happens to larger
            faces ('down' | 'none'), as the deblur command's --size and --resize.
        max_pixels, max_upload_mb: upload limits.
        detector, detector_weights_dir: RetinaFace variant and where its weights must already be.
        det_size, det_threshold, batch: as the deblur command's --det-size, --det-threshold, --batch.
    """

    def __init__(self, output_dir, weights=None, mask_weights=None, opt=None, mask_opt=None,
                 experiments_dir='experiments', device='auto', size=None, resize='down', max_pixels=DEFAULT_MAX_PIXELS,
                 max_upload_mb=DEFAULT_MAX_UPLOAD_MB, detector='retinaface_resnet50',
                 detector_weights_dir=DEFAULT_WEIGHTS_DIR, det_size=640, det_threshold=0.8, batch=4):
        if detector not in DETECTOR_URLS:
            raise InferenceError(f'--detector {detector!r}: choose one of {sorted(DETECTOR_URLS)}')
        if resize not in restorer.RESIZE_MODES:
            raise InferenceError(f'--resize {resize!r}: choose down or none')
        self.output_dir = os.path.abspath(output_dir)
        self.results_dir = os.path.join(self.output_dir, 'results')
        self.device = resolve_device(device)
        self.max_pixels, self.max_bytes = float(max_pixels), int(max_upload_mb * 1024 * 1024)
        self.detector_name, self.detector_weights_dir, self.batch = detector, detector_weights_dir, batch
        self.det_size, self.det_threshold = det_size, det_threshold
        # the deblur command's resolution: its notes and warnings go to the terminal and onto the page
        self.cascade, self.info = load_cascade(weights, mask_weights, opt, mask_opt, self.device, experiments_dir)
        self.size, self.resize = int(size or self.info['size']), resize
        self.num_classes = self.cascade.num_classes or 5
        self._detector = None
        self._lock = threading.Lock()  # one forward pass at a time: the networks are shared by all visitors

    # ------------------------------------------------------------------------------------------ what the page shows
    def detector_weights(self):
        """Path of the detector weights, or WeightsUnavailable saying where to put them (never downloads)."""
        return cached_weights(DETECTOR_URLS[self.detector_name], self.detector_weights_dir, download=False)

    def detect_status(self):
        try:
            self.detector_weights()
        except WeightsUnavailable as err:
            return f'unavailable: {err}'
        return 'available'

    def summary(self):
        """Markdown lines for the top of the page: weights, size, device, detection, the loading messages."""
        info = self.info
        lines = [f'**SMFD-UNet weights:** `{info["smfd_weights"]}`',
                 f'**MaskGenerator weights:** `{info.get("mask_weights") or "none (this model uses no mask)"}`',
                 f'**Face size:** {self.size}² · **device:** {self.device} · **detect faces in photo:** '
                 f'{self.detect_status()}']
        lines += [f'- **{line}**' for line in info.get('warnings', [])]
        lines += [f'- {line}' for line in info.get('notes', [])]
        return '\n\n'.join(lines)

    # ------------------------------------------------------------------------------------------ one request
    def _check_upload(self, path, what):
        """The upload's file name; refuses a missing upload or one over --max-upload-mb (nothing read yet)."""
        if not path:
            raise UploadRefused(f'Refused: no {what} uploaded.')
        name = os.path.basename(path)
        nbytes = os.path.getsize(path)
        if nbytes > self.max_bytes:
            raise UploadRefused(f'Refused: {name} is {nbytes / 2**20:.3g} MB; the limit is '
                                f'{self.max_bytes / 2**20:.3g} MB (--max-upload-mb).')
        return name

    @staticmethod
    def _refused(err, path, name, what=''):
        """The deblur command's error for ``path`` (Gradio's cache) as the page's line, naming the upload."""
        return UploadRefused(f'Refused: {what}{str(err).replace(path, name).rstrip(".")}.'.replace('--mask-classes',
                                                                                                   'mask classes'))

    def _load_photo(self, path):
        """The upload as float RGB, read as the deblur command reads its inputs (--max-pixels from the header)."""
        name = self._check_upload(path, 'photo')
        try:
            return read_image(path, self.max_pixels)
        except ValueError as err:
            raise self._refused(err, path, name) from err

    def _load_mask(self, path, shape, classes):
        """The uploaded label map in the network's classes (the deblur command's --mask rules), read once."""
        name = self._check_upload(path, 'mask')
        if not self.cascade.use_mask:
            raise UploadRefused(f'Refused: mask {name}: {self.info["smfd_weights"]} is an SMFD-UNet without mask '
                                'branch (use_mask: false); it takes no mask.')
        if classes not in MASK_CLASSES:
            raise UploadRefused(f'Refused: mask classes {classes!r}; choose one of {", ".join(MASK_CLASSES)}.')
        try:
            check_pixels(path, self.max_pixels)  # from the header: a huge map is never decoded
            labels = read_user_mask(path, shape, self.num_classes, classes)
        except ValueError as err:
            raise self._refused(err, path, name, 'mask ') from err
        return labels, f'mask: {name} ({"auto-detected" if classes == "auto" else classes} classes)'

    def _detector_or_refuse(self):
        if self._detector is None:
            try:
                self.detector_weights()
            except WeightsUnavailable as err:
                raise UploadRefused(f'Detect faces in photo is unavailable: the face detector weights are missing. '
                                    f'{err}. Or choose "{MODE_ALIGNED}".') from err
            self._detector = build_face_detector(self.detector_name, self.detector_weights_dir, self.device)
        return self._detector

    def restore(self, photo_path, mode=MODE_ALIGNED, mask_path=None, mask_classes='auto'):
        """Restore one upload. Returns ``(blurry uint8, mask picture uint8 | None, output uint8, result path,
        message)``; raises UploadRefused with the line to show."""
        img = self._load_photo(photo_path)
        notes = []
        with self._lock:
            if mode == MODE_DETECT:
                if mask_path:
                    notes.append('the uploaded mask is ignored: a mask applies to an aligned face only')
                detector = self._detector_or_refuse()
                out, faces = _network(restorer.restore_in_the_wild, self.cascade, img, detector, self.size, self.batch,
                                      self.device, det_size=self.det_size, threshold=self.det_threshold,
                                      resize=self.resize)
                outputs = [f['output'] for f in faces]
                masks = [colorize(f['labels'], num_classes=self.num_classes) for f in faces
                         if f['labels'] is not None]
                mask_rgb = side_by_side(masks) if masks else None
                notes.append(f'{len(faces)} face(s) restored' if faces else 'no face detected; the photo is unchanged')
                larger = restorer.larger_faces(faces, self.size)
                notes.append(restorer.larger_faces_note(larger, self.size, self.resize))
            elif mode == MODE_ALIGNED:
                h, w = img.shape[:2]
                given = None
                if mask_path:
                    given, note = self._load_mask(mask_path, (h, w), mask_classes)
                    notes.append(note)
                th, tw = restorer.processing_shape((h, w), self.size, self.resize)
                outputs, labels = _network(
                    restorer.restore_any_size, self.cascade, [resize_image(img, th, tw)], 1, self.device,
                    None if given is None else [resize_labels(given, th, tw)])
                out = resize_image(outputs[0], h, w)
                mask_rgb = None
                if labels[0] is not None:  # the uploaded map as given, else the prediction at the photo's size
                    shown = given if given is not None else resize_labels(labels[0], h, w)
                    mask_rgb = colorize(shown, num_classes=self.num_classes)
                    notes.append('mask: uploaded' if given is not None else 'mask: predicted by the MaskGenerator')
                larger = [(w, h)] if max(h, w) > self.size else []
                notes.append(restorer.larger_faces_note(larger, self.size, self.resize))
            else:
                raise UploadRefused(f'Refused: unknown mode {mode!r}; choose "{MODE_ALIGNED}" or "{MODE_DETECT}".')
        result = os.path.join(self.results_dir, f'{_safe_stem(photo_path)}-{uuid.uuid4().hex[:8]}.png')
        write_image(result, out)
        notes.append(f'result: {os.path.basename(result)} ({out.shape[1]}×{out.shape[0]})')
        return to_uint8(img), mask_rgb, to_uint8(out), result, '; '.join(n for n in notes if n)


# ----------------------------------------------------------------------------------------------------------------
# The page
# ----------------------------------------------------------------------------------------------------------------
def prepare_gradio_environment(output_dir):
    """Keep Gradio's uploads and cache inside the output folder and its telemetry off; call before importing it."""
    cache = os.path.join(os.path.abspath(output_dir), '.gradio')
    os.makedirs(cache, exist_ok=True)
    os.environ['GRADIO_TEMP_DIR'] = cache  # Gradio reads it at import time
    os.environ['GRADIO_ANALYTICS_ENABLED'] = 'False'
    os.environ.setdefault('MPLCONFIGDIR', os.path.join(cache, 'matplotlib'))
    return cache


def build_app(page):
    """The Gradio Blocks around ``page`` (a :class:`DeblurPage`)."""
    import gradio as gr

    def run(photo, mode, mask, mask_classes):
        started = time.time()
        try:
            blurry, mask_rgb, out, result, message = page.restore(photo, mode, mask, mask_classes)
        except UploadRefused as err:
            return None, None, None, None, f'**{err}**'
        except Exception as err:  # the visitor gets one line, the terminal the traceback
            import traceback
            traceback.print_exc()
            return None, None, None, None, f'**Error:** {type(err).__name__}: {err}'
        return blurry, mask_rgb, out, result, f'Done in {time.time() - started:.1f} s: {message}'

    # uploads and served copies live in OUTPUT/.gradio; Gradio removes those older than a day, hourly
    with gr.Blocks(title='SMFD face deblurring', delete_cache=(3600, 86400)) as app:
        gr.Markdown('# SMFD-UNet face deblurring\nUpload a blurry face photo. *Aligned face*: the photo is one face '
                    'crop (as in CelebAMask-HQ); *detect faces in photo*: faces are found, restored and pasted back.')
        gr.Markdown(page.summary(), elem_id='weights')
        with gr.Row():
            photo = gr.File(label='Photo', type='filepath', elem_id='photo')
            mask = gr.File(label='Mask (optional label map, same size as the photo; aligned face only)',
                           type='filepath', elem_id='mask')
        with gr.Row():
            mode = gr.Radio([MODE_ALIGNED, MODE_DETECT], value=MODE_ALIGNED, label='Mode', elem_id='mode')
            mask_classes = gr.Radio(list(MASK_CLASSES), value='auto', elem_id='mask_classes',
                                    label='Mask classes (auto: a value ≥ 5 means CelebAMask-HQ\'s 19)')
        button = gr.Button('Deblur', variant='primary', elem_id='deblur')
        status = gr.Markdown('', elem_id='status')
        picture = dict(type='numpy', format='png', interactive=False, height=320,
                       buttons=['download', 'fullscreen'])  # no 'share': that uploads to Hugging Face
        with gr.Row():
            blurry = gr.Image(label='Blurry', elem_id='blurry', **picture)
            mask_out = gr.Image(label='Mask', elem_id='mask_out', **picture)
            output = gr.Image(label='Output', elem_id='output', **picture)
        result = gr.File(label='Download the result', interactive=False, elem_id='result')
        button.click(run, [photo, mode, mask, mask_classes], [blurry, mask_out, output, result, status])
    return app


def build_parser():
    p = argparse.ArgumentParser(
        prog='smfd-web', description='Web page for SMFD face deblurring (Gradio): upload a photo, see blurry | mask '
        '| output, download the result. Weights are resolved as by the deblur command.')
    p.add_argument('-o', '--output', default='results/web', help='the only folder the page writes to: results/ '
                   'and Gradio\'s uploads/cache .gradio/ (default %(default)s)')
    p.add_argument('--host', default='127.0.0.1', help='address to listen on (default %(default)s: this machine '
                   'only; 0.0.0.0 serves the network)')
    p.add_argument('--port', type=int, default=7860, help='port (default %(default)s; 0: a free one)')
    p.add_argument('--weights', help='SMFDUNet checkpoint; default: the newest one trained under --experiments-dir')
    p.add_argument('--mask-weights', help='MaskGenerator checkpoint (default as in the deblur command)')
    p.add_argument('--opt', help='option YAML whose network_g describes the SMFDUNet')
    p.add_argument('--mask-opt', help='option YAML whose network_g describes the MaskGenerator')
    p.add_argument('--experiments-dir', default='experiments', help='where to look for trained models')
    p.add_argument('--size', type=int, help='face size fed to the network (default: the training gt_size)')
    p.add_argument('--resize', default='down', choices=restorer.RESIZE_MODES,
                   help='faces larger than --size: down (default) = processed at --size² and scaled back, none = '
                   'processed at their own size')
    p.add_argument('--device', default='auto', help='cpu | cuda | cuda:N | auto (default)')
    p.add_argument('--max-pixels', type=float, default=DEFAULT_MAX_PIXELS,
                   help=f'refuse uploads larger than this many pixels (default {DEFAULT_MAX_PIXELS:.0e})')
    p.add_argument('--max-upload-mb', type=float, default=DEFAULT_MAX_UPLOAD_MB,
                   help='refuse uploads larger than this many MB (default %(default)s)')
    p.add_argument('--detector', default='retinaface_resnet50', choices=sorted(DETECTOR_URLS))
    p.add_argument('--weights-dir', default=DEFAULT_WEIGHTS_DIR, help='folder holding the face detector weights '
                   '(the page never downloads them; `smfd-deblur --detect` does; default %(default)s)')
    p.add_argument('--det-size', type=int, default=640, help='longer image side used for detection (default 640)')
    p.add_argument('--det-threshold', type=float, default=0.8, help='detection confidence threshold')
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.port < 0 or args.max_upload_mb <= 0 or args.max_pixels <= 0 or (args.size is not None and args.size < 16):
        log('smfd-web: error: --port must be >= 0, --max-upload-mb and --max-pixels > 0, --size >= 16')
        return EXIT_USAGE
    prepare_gradio_environment(args.output)
    try:
        import gradio  # noqa: F401  (before the weights load: a missing package is said at once)
    except ImportError as err:
        log(f'smfd-web: error: {err}; the page needs Gradio: pip install -r requirements.txt (or smfd[web])')
        return EXIT_USAGE
    try:
        page = DeblurPage(args.output, args.weights, args.mask_weights, args.opt, args.mask_opt,
                          args.experiments_dir, args.device, args.size, args.resize, args.max_pixels,
                          args.max_upload_mb, args.detector, args.weights_dir, args.det_size, args.det_threshold)
    except (InferenceError, FileNotFoundError, ValueError, KeyError) as err:
        log(f'smfd-web: error: {err}')
        return EXIT_USAGE
    app = build_app(page)
    app.queue(default_concurrency_limit=1)
    # Gradio refuses larger uploads before storing them; results are served from the output folder only
    app.launch(server_name=args.host, server_port=args.port or _free_port(args.host), share=False, ssr_mode=False,
               max_file_size=int(args.max_upload_mb * 1024 * 1024), allowed_paths=[page.results_dir],
               show_error=False, quiet=False, run_history=False, footer_links=['gradio', 'settings'])
    return 0


def _free_port(host):
    import socket
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


if __name__ == '__main__':
    sys.exit(main())
