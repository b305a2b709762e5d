"""Video files for the deblur command: frames in through OpenCV, frames out to an audio-less video at the source
frame rate, written atomically (a reader sees the old file or the complete new one).

Frames in memory are float32 RGB HWC in [0, 1], like images (``smfd_data.image_io``). OpenCV's FFmpeg backend
reads the video stream only: the audio track is not read and the output has none.
"""
import math
import os

import cv2
import numpy as np

from smfd_data.atomic_io import atomic_write_named
from smfd_data.image_io import to_float_rgb, to_uint8

VIDEO_EXTENSIONS = ('.mp4', '.m4v', '.mov', '.avi', '.mkv', '.webm')
# Output container per input extension, and its codec: ones every OpenCV build writes (no licence-bound H.264).
_CONTAINER = {'.mp4': '.mp4', '.m4v': '.mp4', '.mov': '.mp4', '.webm': '.mp4', '.avi': '.avi', '.mkv': '.avi'}
_FOURCC = {'.mp4': 'mp4v', '.avi': 'MJPG'}  # MPEG-4 part 2; Motion JPEG
DEFAULT_FPS = 25.0  # when the container does not say


def is_video_file(name):
    return os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS


def output_extension(path):
    """The output container for the video ``path`` (without dot): mp4 (MPEG-4 part 2) or avi (Motion JPEG)."""
    return _CONTAINER[os.path.splitext(path)[1].lower()][1:]


class VideoReader:
    """Frames of a video file: ``len`` (the container's count, may be approximate), ``fps``, ``size`` (w, h) and
    iteration over float RGB frames. ValueError naming the file when OpenCV cannot open it."""

    def __init__(self, path, max_pixels=None):
        if not os.path.isfile(path):
            raise FileNotFoundError(f'{path}: file not found')
        self.path = path
        self.capture = cv2.VideoCapture(path)
        if not self.capture.isOpened():
            raise ValueError(f'{path}: cannot open the video (unreadable, unsupported codec or not a video file)')
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        self.fps_known = bool(fps and math.isfinite(fps) and fps > 0)
        self.fps = float(fps) if self.fps_known else DEFAULT_FPS
        self.size = (int(self.capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self.capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self.count = max(0, int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT)))
        if max_pixels is not None and self.size[0] * self.size[1] > max_pixels:
            self.close()
            raise ValueError(f'{path}: {self.size[0]}×{self.size[1]} frames exceed the limit of '
                             f'{max_pixels / 1e6:.1f} MP (--max-pixels)')

    def __len__(self):
        return self.count

    def __iter__(self):
        while True:
            ok, frame = self.capture.read()
            if not ok:
                return
            yield to_float_rgb(frame, self.path)

    def close(self):
        self.capture.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def write_video(path, frames, fps):
    """Encode float RGB (or uint8) frames into ``path`` (.mp4: MPEG-4 part 2, .avi: Motion JPEG) at ``fps``,
    atomically; returns the number of frames.

    ``frames`` is any iterable (a generator keeps memory flat); all frames must have the first one's size. An
    empty iterable or an encoder that cannot open raises ValueError naming ``path`` and leaves nothing behind.
    """
    ext = os.path.splitext(path)[1].lower()
    if ext not in _FOURCC:
        raise ValueError(f'{path}: write_video writes .mp4 or .avi')
    fourcc = _FOURCC[ext]
    written = [0]

    def encode(tmp_path):
        writer = None
        try:
            for frame in frames:
                frame = frame if frame.dtype == np.uint8 else to_uint8(frame)
                if writer is None:
                    size = (frame.shape[1], frame.shape[0])
                    writer = cv2.VideoWriter(tmp_path, cv2.VideoWriter_fourcc(*fourcc), float(fps), size)
                    if not writer.isOpened():
                        raise ValueError(f'{path}: OpenCV cannot encode {fourcc} video of {size[0]}×{size[1]}')
                elif (frame.shape[1], frame.shape[0]) != size:
                    raise ValueError(f'{path}: frame {written[0]} is {frame.shape[1]}×{frame.shape[0]}, not '
                                     f'{size[0]}×{size[1]}')
                writer.write(cv2.cvtColor(np.ascontiguousarray(frame[..., :3]), cv2.COLOR_RGB2BGR))
                written[0] += 1
        finally:
            if writer is not None:
                writer.release()
        if not written[0]:
            raise ValueError(f'{path}: no frames to write')

    atomic_write_named(path, encode)
    return written[0]
