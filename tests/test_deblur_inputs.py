"""Odd inputs of the deblur command and its image IO (issue 14 items 2, 4, 6, 7 and the smaller ones): names that
never collide, non-finite pixels and weights, weight files that are no state dict, EXIF orientation, bytes after
the end marker, GIFs. Always: one line per bad input naming it, the others written, exit status non-zero, a summary.
"""
import io
import os

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from smfd_data.image_io import imdecode_checked, imread_checked, read_image
from smfd_inference import deblur
from smfd_inference.restorer import restore_faces
from smfd_models.checkpoint import atomic_torch_save, load_checkpoint_safely
from tests.test_deblur import MASK_TINY, SIZE, SMFD_TINY, _rgb, make_tiny_experiment


@pytest.fixture(scope='module')
def experiments(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('experiments'))
    mask = make_tiny_experiment(root, 'real_mask', MASK_TINY, seed=1)
    smfd = make_tiny_experiment(root, 'real_smfd', SMFD_TINY, seed=5)
    return root, smfd, mask


def _run(argv, capsys):
    code = deblur.main(argv)
    return code, capsys.readouterr().err


def _oriented_jpeg(orientation=6):
    """A 20×40 (h×w) JPEG, white left strip, stored with an EXIF orientation tag: upright it is 40×20."""
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :10] = 255
    im = Image.fromarray(img)
    exif = im.getexif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    im.save(buf, 'JPEG', exif=exif.tobytes(), quality=95)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------ names
def test_output_names_never_collide_with_a_real_stem():
    names = deblur.output_names(['a/x.png', 'a/x.jpg', 'a/x_2.png', 'b/x.png', 'x_3.tif'], 'png')
    assert names == ['x.png', 'x_4.png', 'x_2.png', 'x_5.png', 'x_3.png']
    assert len(set(names)) == len(names)


def test_x_png_x_jpg_x_2_png_give_three_files(tmp_path, experiments, capsys):
    inp = tmp_path / 'in'
    inp.mkdir()
    sizes = {'x.png': (32, 32), 'x.jpg': (40, 30), 'x_2.png': (24, 24)}  # each output keeps its input's size
    for i, (name, (h, w)) in enumerate(sizes.items()):
        cv2.imwrite(str(inp / name), _rgb(h, w, i))
    code, err = _run(['-i', str(inp), '-o', str(tmp_path / 'out'), '--experiments-dir', experiments[0],
                      '--device', 'cpu'], capsys)
    assert code == 0 and 'wrote 3 of 3' in err
    got = {n: cv2.imread(str(tmp_path / 'out' / n)).shape[:2] for n in sorted(os.listdir(tmp_path / 'out'))}
    # sorted inputs: x.jpg, x.png, x_2.png → x, x_3 (x_2 is a real stem), x_2
    assert got == {'x.png': (40, 30), 'x_3.png': (32, 32), 'x_2.png': (24, 24)}


# ------------------------------------------------------------------------------------------------ non-finite
def test_float_tiff_with_nan_or_inf_is_a_per_file_error(tmp_path, experiments, capsys):
    inp = tmp_path / 'in'
    inp.mkdir()
    for name, bad in (('nan.tif', np.nan), ('inf.tif', np.inf)):
        img = np.random.default_rng(0).random((SIZE, SIZE, 3)).astype(np.float32)
        img[3, 4, 1] = bad
        cv2.imwrite(str(inp / name), img)
    cv2.imwrite(str(inp / 'ok.tif'), np.random.default_rng(1).random((SIZE, SIZE, 3)).astype(np.float32))
    code, err = _run(['-i', str(inp), '-o', str(tmp_path / 'out'), '--experiments-dir', experiments[0],
                      '--device', 'cpu'], capsys)
    assert code == 1
    for name in ('nan.tif', 'inf.tif'):
        assert f'skipped {inp / name}: {inp / name}: the image holds NaN or infinite pixel values' in err
    assert 'wrote 1 of 3' in err and '2 failed' in err
    assert sorted(os.listdir(tmp_path / 'out')) == ['ok.png']


def test_weights_with_nan_are_one_clear_line(tmp_path, experiments, capsys):
    _, smfd, mask = experiments
    state = load_checkpoint_safely(smfd)['params']
    state[next(k for k, v in state.items() if v.is_floating_point())].view(-1)[0] = float('nan')
    bad = str(tmp_path / 'nan.pth')
    atomic_torch_save({'params': state}, bad)
    cv2.imwrite(str(tmp_path / 'x.png'), _rgb(SIZE, SIZE))
    opt = os.path.join(os.path.dirname(os.path.dirname(smfd)), 'real_smfd.yml')
    code, err = _run(['-i', str(tmp_path / 'x.png'), '-o', str(tmp_path / 'out'), '--weights', bad, '--opt', opt,
                      '--mask-weights', mask, '--device', 'cpu'], capsys)
    assert code == 2 and not (tmp_path / 'out').exists()
    assert err.strip().splitlines() == [f'deblur: error: {bad}: the weights hold NaN or infinite values (e.g. '
                                        f'{next(k for k in state)}); the training that wrote them diverged']


def _huge_weights(tmp_path, experiments):
    """Weights that pass the load check but overflow to NaN in the forward pass, and their option file."""
    _, smfd, _ = experiments
    state = load_checkpoint_safely(smfd)['params']
    for key, value in state.items():
        if value.is_floating_point() and value.dim() == 4:
            value.mul_(1e30)
    huge = str(tmp_path / 'huge.pth')
    atomic_torch_save({'params': state}, huge)
    return huge, os.path.join(os.path.dirname(os.path.dirname(smfd)), 'real_smfd.yml')


def test_finite_weights_that_overflow_give_no_black_output(tmp_path, experiments, capsys):
    """Weights that pass the load check but overflow to NaN in the forward pass: a per-file error, not a black
    picture with exit status 0."""
    mask = experiments[2]
    huge, opt = _huge_weights(tmp_path, experiments)
    (tmp_path / 'in').mkdir()
    cv2.imwrite(str(tmp_path / 'in' / 'x.png'), _rgb(SIZE, SIZE))
    code, err = _run(['-i', str(tmp_path / 'in'), '-o', str(tmp_path / 'out'), '--weights', huge, '--opt', opt,
                      '--mask-weights', mask, '--device', 'cpu'], capsys)
    assert code == 1
    assert f'skipped {tmp_path / "in" / "x.png"}: the network produced NaN or infinite values' in err
    assert 'wrote 0 of 1' in err
    assert not (tmp_path / 'out').exists() or not os.listdir(tmp_path / 'out')


@pytest.mark.parametrize('bad', [float('nan'), float('inf')])
def test_restore_faces_refuses_non_finite_outputs(bad):
    """The one NaN/inf check of every front end (deblur images, photos, videos, the web page): restore_faces."""
    faces = [np.full((8, 8, 3), v, np.float32) for v in (0.1, 0.2, 0.3)]

    def network(x, mask=None):  # the second face of the second batch overflows
        out = x.clone()
        if torch.isclose(x[0, 0, 0, 0], torch.tensor(0.3)):
            out[0, 1, 2, 3] = bad
        return out, None

    outputs, _ = restore_faces(network, faces[:2], batch_size=2)
    np.testing.assert_allclose(outputs[1], faces[1])
    with pytest.raises(ValueError, match=r'^the network produced NaN or infinite values \(diverged weights\?\); '
                       'nothing written$'):
        restore_faces(network, faces, batch_size=2)


def test_non_finite_outputs_fail_their_faces_and_the_run_goes_on(tmp_path, experiments, capsys):
    huge, opt = _huge_weights(tmp_path, experiments)
    inp = tmp_path / 'in'
    inp.mkdir()
    for i in range(3):
        cv2.imwrite(str(inp / f'f{i}.png'), _rgb(SIZE, SIZE, i))
    code, err = _run(['-i', str(inp), '-o', str(tmp_path / 'out'), '--weights', huge, '--opt', opt,
                      '--mask-weights', experiments[2], '--device', 'cpu', '--batch', '2'], capsys)
    assert code == deblur.EXIT_SOME_FAILED and 'Traceback' not in err
    nan = 'the network produced NaN or infinite values (diverged weights?); nothing written'
    for name in ('f0.png', 'f1.png', 'f2.png'):  # one line per input, batched (f0, f1) or alone (f2)
        assert f'skipped {inp / name}: {nan}\n' in err
    assert 'wrote 0 of 3' in err and '3 failed' in err
    assert not (tmp_path / 'out').exists() or not os.listdir(tmp_path / 'out')


def test_a_face_that_overflows_fails_alone_not_its_batch(tmp_path, experiments, capsys, monkeypatch):
    """Only the face whose output holds NaN fails; the other face of its batch is written (retried on its own)."""
    real_load_cascade = deblur.load_cascade

    def load_cascade(*args, **kwargs):
        cascade, info = real_load_cascade(*args, **kwargs)
        restore = cascade.restore

        def overflowing_on_white(x, mask=None):  # the network "overflows" on a white face only
            out, labels = restore(x, mask)
            return torch.where(x.mean(dim=(1, 2, 3), keepdim=True) > 0.99, float('nan'), out), labels

        cascade.restore = overflowing_on_white
        return cascade, info

    monkeypatch.setattr(deblur, 'load_cascade', load_cascade)
    inp = tmp_path / 'in'
    inp.mkdir()
    cv2.imwrite(str(inp / 'a.png'), _rgb(SIZE, SIZE, 0))
    cv2.imwrite(str(inp / 'b.png'), np.full((SIZE, SIZE, 3), 255, np.uint8))
    cv2.imwrite(str(inp / 'c.png'), _rgb(SIZE, SIZE, 2))
    code, err = _run(['-i', str(inp), '-o', str(tmp_path / 'out'), '--weights', experiments[1], '--mask-weights',
                      experiments[2], '--device', 'cpu', '--batch', '2'], capsys)
    assert code == deblur.EXIT_SOME_FAILED and 'Traceback' not in err
    assert f'skipped {inp / "b.png"}: the network produced NaN or infinite values' in err
    assert 'skipped' not in err.replace(f'skipped {inp / "b.png"}', '')
    assert sorted(os.listdir(tmp_path / 'out')) == ['a.png', 'c.png'] and 'wrote 2 of 3' in err


class _OneFaceDetector:
    """Finds one upright face in the middle of any picture (a stand-in for RetinaFace)."""
    LANDMARKS = np.array([[22, 26], [42, 26], [32, 36], [24, 46], [40, 46]], np.float32) / 64  # eyes, nose, mouth

    def detect_faces(self, bgr, conf_threshold=0.8, use_origin_size=True):
        h, w = bgr.shape[:2]
        return np.concatenate([[0.1 * w, 0.1 * h, 0.9 * w, 0.9 * h, 0.99], (self.LANDMARKS * [w, h]).ravel()])[None]


def test_non_finite_outputs_in_detect_mode_fail_their_photo(tmp_path, experiments, capsys, monkeypatch):
    huge, opt = _huge_weights(tmp_path, experiments)
    monkeypatch.setattr(deblur, 'build_face_detector', lambda *args, **kwargs: _OneFaceDetector())
    (tmp_path / 'in').mkdir()
    cv2.imwrite(str(tmp_path / 'in' / 'photo.png'), _rgb(64, 64))
    argv = ['-i', str(tmp_path / 'in'), '-o', str(tmp_path / 'out'), '--opt', opt, '--mask-weights', experiments[2],
            '--device', 'cpu', '--detect']
    code, err = _run(argv + ['--weights', experiments[1]], capsys)
    assert code == 0 and 'no face detected' not in err, err  # the stand-in detector finds its face
    code, err = _run(argv + ['--weights', huge, '-o', str(tmp_path / 'out_huge')], capsys)
    assert code == deblur.EXIT_SOME_FAILED and 'Traceback' not in err
    assert (f'skipped {tmp_path / "in" / "photo.png"}: the network produced NaN or infinite values (diverged '
            'weights?); nothing written\n') in err
    assert not (tmp_path / 'out_huge').exists() or not os.listdir(tmp_path / 'out_huge')


@pytest.mark.parametrize('content', [[1, 2, 3], {'params': [1, 2]}, {'params': {'w': 3}}])
def test_weights_that_are_no_state_dict_are_one_clear_line(tmp_path, experiments, capsys, content):
    _, smfd, mask = experiments
    bad = str(tmp_path / 'bad.pth')
    torch.save(content, bad)
    cv2.imwrite(str(tmp_path / 'x.png'), _rgb(SIZE, SIZE))
    opt = os.path.join(os.path.dirname(os.path.dirname(smfd)), 'real_smfd.yml')
    code, err = _run(['-i', str(tmp_path / 'x.png'), '-o', str(tmp_path / 'out'), '--weights', bad, '--opt', opt,
                      '--mask-weights', mask, '--device', 'cpu'], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f'deblur: error: {bad}: ') and 'Traceback' not in err


# ------------------------------------------------------------------------------------------------ decoding
def test_exif_orientation_applied_once_whatever_the_flags(tmp_path):
    data = _oriented_jpeg(6)
    path = str(tmp_path / 'phone.jpg')
    with open(path, 'wb') as f:
        f.write(data)
    upright = read_image(path)
    assert upright.shape == (40, 20, 3)
    # orientation 6 = turn 90° clockwise to display: the white left strip becomes the top rows
    assert upright[:8].mean() > 0.9 and upright[12:].mean() < 0.1
    for flags in (cv2.IMREAD_UNCHANGED, cv2.IMREAD_COLOR, cv2.IMREAD_GRAYSCALE):
        img = imread_checked(path, flags)
        assert img.shape[:2] == (40, 20), flags  # OpenCV's own rotation is not added to ours
        assert img[:8].mean() > 230 and img[12:].mean() < 25, flags
    assert imdecode_checked(data, 'x', cv2.IMREAD_COLOR, orient=False).shape[:2] == (20, 40)


def test_exif_orientation_through_the_command(tmp_path, experiments, capsys):
    (tmp_path / 'in').mkdir()
    with open(tmp_path / 'in' / 'phone.jpg', 'wb') as f:
        f.write(_oriented_jpeg(8))
    code, _ = _run(['-i', str(tmp_path / 'in'), '-o', str(tmp_path / 'out'), '--experiments-dir', experiments[0],
                    '--device', 'cpu', '--side-by-side'], capsys)
    assert code == 0
    assert cv2.imread(str(tmp_path / 'out' / 'phone.png')).shape == (40, 20, 3)
    side = cv2.imread(str(tmp_path / 'out' / 'side_by_side' / 'phone.png'))
    assert side[:, :20].mean() > 0 and side[:8, :20].mean() < side[32:, :20].mean()  # orientation 8: strip at bottom


def test_bytes_after_the_end_marker_decode_and_cut_files_do_not(tmp_path, experiments, capsys):
    inp = tmp_path / 'in'
    inp.mkdir()
    img = _rgb(SIZE, SIZE, 3)
    for ext in ('.png', '.jpg'):
        data = cv2.imencode(ext, img)[1].tobytes()
        (inp / f'motion{ext}').write_bytes(data + b'\x00\x00\x00\x18ftypmp42' + bytes(range(256)) * 4)
        (inp / f'cut{ext}').write_bytes(data[:len(data) * 2 // 3])
    np.testing.assert_array_equal(read_image(str(inp / 'motion.png')), img[..., ::-1] / np.float32(255))
    code, err = _run(['-i', str(inp), '-o', str(tmp_path / 'out'), '--experiments-dir', experiments[0],
                      '--device', 'cpu'], capsys)
    assert code == 1 and 'wrote 2 of 4' in err
    assert f'skipped {inp / "cut.png"}' in err and 'truncated or corrupt PNG' in err
    assert f'skipped {inp / "cut.jpg"}' in err and 'truncated or corrupt JPEG' in err
    assert sorted(os.listdir(tmp_path / 'out')) == ['motion.png', 'motion_2.png']


def test_gifs_are_read_and_other_files_reported(tmp_path, experiments, capsys):
    inp = tmp_path / 'in'
    inp.mkdir()
    Image.fromarray(_rgb(SIZE, SIZE, 0)).save(inp / 'still.gif')
    frames = [Image.fromarray(np.full((24, 24, 3), 40 * i, np.uint8)) for i in range(3)]
    frames[0].save(inp / 'anim.gif', save_all=True, append_images=frames[1:], duration=100)
    (inp / 'notes.txt').write_text('not an image')
    first = read_image(str(inp / 'anim.gif'))
    assert first.shape == (24, 24, 3) and np.abs(first).max() == 0  # the first frame (black)
    code, err = _run(['-i', str(inp), '-o', str(tmp_path / 'out'), '--experiments-dir', experiments[0],
                      '--device', 'cpu'], capsys)
    assert code == 0 and 'wrote 2 of 2' in err
    assert sorted(os.listdir(tmp_path / 'out')) == ['anim.png', 'still.png']
    assert f'{inp / "anim.gif"}: animated GIF with 3 frames: only the first is restored' in err
    assert 'left out 1 file(s) that are not images' in err and 'notes.txt' in err


def test_a_network_failure_fails_its_batch_and_the_run_goes_on(tmp_path, experiments, capsys, monkeypatch):
    inp = tmp_path / 'in'
    inp.mkdir()
    for i in range(3):
        cv2.imwrite(str(inp / f'f{i}.png'), _rgb(SIZE, SIZE, i))
    calls = []
    real = deblur.restore_any_size

    def flaky(restorer, faces, *args, **kwargs):
        calls.append(len(faces))
        if len(calls) == 2:
            raise RuntimeError('CUDA out of memory. Tried to allocate 2.00 GiB\nmore details')
        return real(restorer, faces, *args, **kwargs)

    monkeypatch.setattr(deblur, 'restore_any_size', flaky)
    code, err = _run(['-i', str(inp), '-o', str(tmp_path / 'out'), '--experiments-dir', experiments[0],
                      '--device', 'cpu', '--batch', '1'], capsys)
    assert code == 1 and calls == [1, 1, 1]
    assert f'skipped {inp / "f1.png"}: the network failed on its batch: CUDA out of memory. Tried to allocate' in err
    assert 'more details' not in err and 'Traceback' not in err
    assert 'wrote 2 of 3' in err and sorted(os.listdir(tmp_path / 'out')) == ['f0.png', 'f2.png']
