"""Video input of the deblur command (issue 13 item 3): frames through OpenCV, restored per frame, written back
audio-less at the source frame rate with the same frame count, a progress bar; bad videos are per-file errors."""
import io
import os
import sys

import cv2
import numpy as np
import pytest
import torch

from smfd_data.image_io import resize_image
from smfd_data.video_io import VideoReader, write_video
from smfd_inference import deblur
from smfd_inference.loading import load_cascade
from smfd_inference.restorer import images_to_batch
from tests.test_deblur import MASK_TINY, SIZE, SMFD_TINY, _rgb, make_tiny_experiment


def _write(path, fourcc, fps, frames=5, size=(40, 30)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    assert writer.isOpened()
    for i in range(frames):
        writer.write(_rgb(size[1], size[0], i))
    writer.release()


def _frames(path):
    with VideoReader(str(path)) as reader:
        return reader.fps, list(reader)


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('video')
    root = str(tmp / 'experiments')
    mask = make_tiny_experiment(root, 'real_mask', MASK_TINY, seed=1)
    smfd = make_tiny_experiment(root, 'real_smfd', SMFD_TINY, seed=5)
    inp = tmp / 'in'
    inp.mkdir()
    _write(inp / 'clip.avi', 'MJPG', 7.0)
    _write(inp / 'clip.mp4', 'mp4v', 12.5, frames=4)  # same stem as clip.avi: named clip_2.mp4
    cv2.imwrite(str(inp / 'face.png'), _rgb(SIZE, SIZE, 9))
    return tmp, root, smfd, mask, inp


class _Terminal(io.StringIO):
    def isatty(self):  # tqdm draws only on terminals
        return True


def test_video_frames_fps_and_pixels(setup, monkeypatch):
    tmp, root, smfd, mask, inp = setup
    out = tmp / 'out'
    terminal = _Terminal()
    monkeypatch.setattr(sys, 'stderr', terminal)
    code = deblur.main(['-i', str(inp), '-o', str(out), '--experiments-dir', root, '--device', 'cpu', '--batch', '2'])
    err = terminal.getvalue()
    assert code == 0, err
    assert sorted(os.listdir(out)) == ['clip.avi', 'clip_2.mp4', 'face.png']
    assert 'wrote 3 of 3 input(s)' in err
    assert f'{inp / "clip.avi"}: 5 frames at 7 fps → {out / "clip.avi"} (no audio)' in err
    assert 'clip.avi:   0%' in err and '0/5 [' in err and 'frame/s' in err  # clip.avi's per-frame progress bar
    for name, source, fps, count in (('clip.avi', 'clip.avi', 7.0, 5), ('clip_2.mp4', 'clip.mp4', 12.5, 4)):
        got_fps, frames = _frames(out / name)
        assert got_fps == pytest.approx(fps) and len(frames) == count, name
        assert frames[0].shape == (30, 40, 3)
        # each frame is the cascade's output for that frame (resized to the model size and back), up to codecs
        _, inputs = _frames(inp / source)
        cascade, _ = load_cascade(smfd, mask, report=None)
        with torch.no_grad():
            expected, _ = cascade.restore(images_to_batch([resize_image(f, SIZE, SIZE) for f in inputs], 'cpu'))
        for k, (got, want) in enumerate(zip(frames, expected.permute(0, 2, 3, 1).numpy())):
            assert np.abs(got - resize_image(want, 30, 40)).mean() < 0.03, (name, k)


def test_bad_videos_are_per_file_errors_and_resume_skips_done_ones(setup, capsys):
    tmp, root, _, _, inp = setup
    bad = tmp / 'bad'
    bad.mkdir()
    (bad / 'text.mp4').write_text('not a video')
    (bad / 'empty.avi').write_bytes(b'')
    _write(bad / 'good.avi', 'MJPG', 5.0, frames=3)
    out = tmp / 'out_bad'
    common = ['-i', str(bad), '-o', str(out), '--experiments-dir', root, '--device', 'cpu']
    assert deblur.main(common) == 1
    err = capsys.readouterr().err
    assert f'skipped {bad / "text.mp4"}: {bad / "text.mp4"}: cannot open the video' in err
    assert f'skipped {bad / "empty.avi"}' in err
    assert 'wrote 1 of 3 input(s)' in err and '2 failed' in err
    assert sorted(os.listdir(out)) == ['good.avi']  # no partial or temporary file of the bad ones
    stat = os.stat(out / 'good.avi')
    assert deblur.main(common + ['--resume']) == 1
    err = capsys.readouterr().err
    assert 'wrote 0 of 3 input(s)' in err and '1 already complete' in err
    assert os.stat(out / 'good.avi').st_mtime_ns == stat.st_mtime_ns
    # --mask goes with images only
    masks = tmp / 'masks'
    masks.mkdir()
    assert deblur.main(['-i', str(inp / 'clip.avi'), '-o', str(tmp / 'm'), '--experiments-dir', root, '--device',
                        'cpu', '--mask', str(masks)]) == 1
    assert 'a video takes no label maps' in capsys.readouterr().err


def test_write_video_is_atomic(tmp_path):
    target = tmp_path / 'v.mp4'
    assert write_video(str(target), (np.full((16, 16, 3), i / 4, np.float32) for i in range(3)), 9.0) == 3
    assert _frames(target)[0] == pytest.approx(9.0) and len(_frames(target)[1]) == 3
    before = target.read_bytes()

    def broken():
        yield np.zeros((16, 16, 3), np.float32)
        raise ValueError('the network failed at frame 1')

    with pytest.raises(ValueError, match='frame 1'):
        write_video(str(target), broken(), 9.0)
    assert target.read_bytes() == before and os.listdir(tmp_path) == ['v.mp4']  # old file kept, no temporary
    with pytest.raises(ValueError, match='no frames'):
        write_video(str(tmp_path / 'w.avi'), iter(()), 9.0)
    assert os.listdir(tmp_path) == ['v.mp4']


def test_video_in_the_wild_mode(setup, tmp_path, capsys):
    """--detect on a video: faces detected, restored and pasted back frame by frame (random RetinaFace)."""
    from facexlib.detection.retinaface import RetinaFace

    from smfd_models.checkpoint import atomic_torch_save
    _, root, _, _, inp = setup
    torch.manual_seed(0)
    weights_dir = tmp_path / 'cache'
    atomic_torch_save(RetinaFace(network_name='mobile0.25', device='cpu').state_dict(),
                      str(weights_dir / 'detection_mobilenet0.25_Final.pth'))
    code = deblur.main(['-i', str(inp / 'clip.avi'), '-o', str(tmp_path / 'o'), '--experiments-dir', root,
                        '--detect', '--detector', 'retinaface_mobile0.25', '--weights-dir', str(weights_dir),
                        '--det-threshold', '0', '--only-center-face', '--det-size', '64', '--device', 'cpu'])
    assert code == 0, capsys.readouterr().err
    fps, frames = _frames(tmp_path / 'o' / 'clip.avi')
    assert fps == pytest.approx(7.0) and len(frames) == 5 and frames[0].shape == (30, 40, 3)


def test_non_finite_frames_fail_the_video_and_write_nothing(setup, tmp_path, capsys):
    """NaN/inf outputs (restore_faces refuses them) stop the video: one line, no output file, exit status 1."""
    from tests.test_deblur_inputs import _huge_weights
    _, _, smfd, mask, inp = setup
    huge, opt = _huge_weights(tmp_path, (None, smfd, mask))
    code = deblur.main(['-i', str(inp / 'clip.avi'), '-o', str(tmp_path / 'o'), '--weights', huge, '--opt', opt,
                        '--mask-weights', mask, '--device', 'cpu', '--batch', '2'])
    err = capsys.readouterr().err
    assert code == deblur.EXIT_SOME_FAILED and 'Traceback' not in err
    assert (f'skipped {inp / "clip.avi"}: the network produced NaN or infinite values (diverged weights?); nothing '
            'written\n') in err
    assert not (tmp_path / 'o').exists() or not os.listdir(tmp_path / 'o')


def test_a_killed_video_save_leaves_no_temporary_for_long(tmp_path):
    """The temporary of a video save killed mid-write (``.<name>.<pid>.<random>.tmp.mp4``) is removed by the
    next write into its folder once its process is gone, like every other atomic write's."""
    stale = tmp_path / '.v.mp4.999999999.abcd1234.tmp.mp4'
    stale.write_bytes(b'half a video')
    keep = tmp_path / '.notes.tmp.mp4'  # not a temporary of ours
    keep.write_bytes(b'x')
    write_video(str(tmp_path / 'w.avi'), (np.zeros((16, 16, 3), np.float32) for _ in range(2)), 5.0)
    assert sorted(os.listdir(tmp_path)) == ['.notes.tmp.mp4', 'w.avi']
