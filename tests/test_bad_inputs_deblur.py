"""Bad-input corpus, the deblur command (issue 14): odd and broken images, weight files, command lines.

Every case is generated here and run in-process through ``smfd_inference.deblur.main`` with tiny random networks.
Each checks: the exit status, no traceback on stderr, one line naming the bad file, no input changed (hashes), and
no silently wrong output (a refused input writes nothing; an accepted one is written at its own size, finite).
"""
import hashlib
import io
import os
import struct
import zlib

import cv2
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from smfd_basicsr import register

register()

from smfd_inference import deblur  # noqa: E402
from tests.test_deblur import (  # noqa: E402
    MASK_TINY,
    SMFD_TINY,
    experiments,  # noqa: E402,F401  (a fixture: tiny random networks)
    make_tiny_experiment,
)

RNG = np.random.default_rng(14)
FACE = RNG.integers(0, 256, (24, 20, 3), dtype=np.uint8)  # BGR, not square: a swapped axis would show


def _encode(ext, img=FACE, params=None):
    ok, buf = cv2.imencode(ext, img, params or [])
    assert ok
    return buf.tobytes()


def _pil(img_or_mode, fmt, size=(20, 24), **kw):
    im = Image.new(img_or_mode, size, 128) if isinstance(img_or_mode, str) else img_or_mode
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _png_chunk(kind, data):
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff)


def _huge_png():
    """A valid-looking PNG header claiming 100000×100000 pixels (a decompression bomb), with one tiny IDAT."""
    ihdr = struct.pack('>IIBBBBB', 100_000, 100_000, 8, 2, 0, 0, 0)
    return (b'\x89PNG\r\n\x1a\n' + _png_chunk(b'IHDR', ihdr) + _png_chunk(b'IDAT', zlib.compress(b'\0' * 64))
            + _png_chunk(b'IEND', b''))


def _float_tiff(value):
    img = (FACE.astype(np.float32) / 255)
    img[3, 4, 1] = value
    return _encode('.tiff', img)


def _exif_rotated_jpeg():
    im = Image.fromarray(FACE[..., ::-1])
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    return _pil(im, 'JPEG', exif=exif.tobytes())


def _animated_gif():
    frames = [Image.fromarray(np.full((24, 20, 3), v, np.uint8)) for v in (40, 200)]
    buf = io.BytesIO()
    frames[0].save(buf, 'GIF', save_all=True, append_images=frames[1:])
    return buf.getvalue()


# name, bytes, expected (H, W) of the output or None when the file must be refused
BAD_IMAGES = {
    'zero_bytes.png': b'',
    'truncated.png': _encode('.png')[:200],
    'truncated.jpg': _encode('.jpg')[:300],
    'truncated.webp': _encode('.webp')[:60],
    'truncated.bmp': _encode('.bmp')[:400],
    'truncated.tif': _encode('.tif')[:300],
    'text.png': b'this is not an image\n' * 10,
    'html.jpg': b'<html><body>404 not found</body></html>',
    'random.png': RNG.integers(0, 256, 500, dtype=np.uint8).tobytes(),
    'signature_only.png': b'\x89PNG\r\n\x1a\n',
    'jpeg_soi_only.jpg': b'\xff\xd8\xff',
    'huge_header.png': _huge_png(),
    'nan.tif': _float_tiff(np.nan),  # issue 14 item 4: was an all-black output with exit 0
    'inf.tif': _float_tiff(np.inf),
}
GOOD_IMAGES = {
    'grey.png': (_encode('.png', FACE[..., 0]), (24, 20)),
    'grey16.png': (_encode('.png', FACE[..., 0].astype(np.uint16) * 257), (24, 20)),
    'rgb16.png': (_encode('.png', FACE.astype(np.uint16) * 257), (24, 20)),
    'rgb16.tif': (_encode('.tif', FACE.astype(np.uint16) * 257), (24, 20)),
    'rgba.png': (_encode('.png', np.dstack([FACE, np.full((24, 20), 255, np.uint8)])), (24, 20)),
    'rgba_transparent.png': (_encode('.png', np.dstack([FACE, np.zeros((24, 20), np.uint8)])), (24, 20)),
    'grey_alpha.png': (_pil('LA', 'PNG'), (24, 20)),
    'palette.png': (_pil('P', 'PNG'), (24, 20)),
    'one_bit.png': (_pil('1', 'PNG'), (24, 20)),
    'cmyk.jpg': (_pil('CMYK', 'JPEG'), (24, 20)),
    'progressive.jpg': (_pil(Image.fromarray(FACE), 'JPEG', progressive=True), (24, 20)),
    'one_pixel.png': (_encode('.png', FACE[:1, :1]), (1, 1)),
    'strip.png': (_encode('.png', np.tile(FACE[:1], (1, 10, 1))), (1, 200)),
    'float.tif': (_encode('.tiff', FACE.astype(np.float32) / 255), (24, 20)),
    'jpeg_named.png': (_encode('.jpg'), (24, 20)),  # wrong extension: decoded by content
    'png_named.jpg': (_encode('.png'), (24, 20)),
    'UPPER.PNG': (_encode('.png'), (24, 20)),
    'fäce with spaces.png': (_encode('.png'), (24, 20)),
    'motion_photo.jpg': (_encode('.jpg') + b'\0\0ftypmp42' + bytes(300), (24, 20)),  # bytes after the end marker
    'trailing.png': (_encode('.png') + b'extra bytes after IEND', (24, 20)),
    'exif_rotated.jpg': (_exif_rotated_jpeg(), (20, 24)),  # shown upright: width and height swap
    'still.gif': (_pil(Image.fromarray(FACE), 'GIF'), (24, 20)),
    'animated.gif': (_animated_gif(), (24, 20)),
    'plain.bmp': (_encode('.bmp'), (24, 20)),
    'plain.webp': (_encode('.webp', params=[cv2.IMWRITE_WEBP_QUALITY, 101]), (24, 20)),
}


@pytest.fixture(scope='module')
def exp_dir(experiments):  # noqa: F811
    return experiments[0]


def _hashes(folder):
    return {name: hashlib.sha256(open(os.path.join(folder, name), 'rb').read()).hexdigest()
            for name in sorted(os.listdir(folder)) if os.path.isfile(os.path.join(folder, name))}


def _run(capsys, argv):
    code = deblur.main(argv)
    err = capsys.readouterr().err
    assert 'Traceback' not in err, err
    return code, err


def _folder_with(tmp_path, name, data):
    """An input folder holding the case and one good face, so the run must go on past the case."""
    folder = tmp_path / 'in'
    folder.mkdir()
    (folder / name).write_bytes(data)
    cv2.imwrite(str(folder / 'good_face.png'), FACE)
    return folder


def _output(tmp_path, stem):
    return tmp_path / 'out' / f'{stem}.png'


@pytest.mark.parametrize('name', sorted(BAD_IMAGES))
def test_broken_image_is_one_line_and_the_run_goes_on(tmp_path, capsys, exp_dir, name):
    folder = _folder_with(tmp_path, name, BAD_IMAGES[name])
    before = _hashes(folder)
    code, err = _run(capsys, ['-i', str(folder), '-o', str(tmp_path / 'out'), '--experiments-dir', exp_dir,
                              '--device', 'cpu'])
    assert code == deblur.EXIT_SOME_FAILED
    lines = [line for line in err.splitlines() if f'skipped {folder / name}' in line]
    assert len(lines) == 1, err
    assert _hashes(folder) == before
    stem = os.path.splitext(name)[0]
    assert not _output(tmp_path, stem).exists(), 'a refused input must write nothing'
    good = cv2.imread(str(_output(tmp_path, 'good_face')))
    assert good is not None and good.shape == FACE.shape
    assert 'wrote 1 of 2 image(s)' in err and '1 failed' in err


@pytest.mark.parametrize('name', sorted(GOOD_IMAGES))
def test_odd_but_valid_image_is_restored_at_its_own_size(tmp_path, capsys, exp_dir, name):
    data, (h, w) = GOOD_IMAGES[name]
    folder = _folder_with(tmp_path, name, data)
    before = _hashes(folder)
    code, err = _run(capsys, ['-i', str(folder), '-o', str(tmp_path / 'out'), '--experiments-dir', exp_dir,
                              '--device', 'cpu'])
    assert code == deblur.EXIT_OK, err
    assert _hashes(folder) == before
    out = cv2.imread(str(_output(tmp_path, os.path.splitext(name)[0])), cv2.IMREAD_UNCHANGED)
    assert out is not None and out.shape == (h, w, 3) and out.dtype == np.uint8
    assert 'wrote 2 of 2 image(s)' in err
    if name == 'animated.gif':
        assert 'animated GIF with 2 frames: only the first is restored' in err


def _weights(tmp_path, kind):
    """A weights file of ``kind`` that must be refused (or, for NaN, give per-file errors)."""
    from basicsr.utils.registry import ARCH_REGISTRY
    path = tmp_path / f'{kind}.pth'
    torch.manual_seed(0)
    net = ARCH_REGISTRY.get('SMFDUNet')(**{k: v for k, v in SMFD_TINY.items() if k != 'type'})
    params = net.state_dict()
    if kind == 'list':
        torch.save([1, 2, 3], path)  # issue 14 item 6: was AttributeError: 'list' object has no attribute 'keys'
    elif kind == 'tensor':
        torch.save(torch.ones(3), path)
    elif kind == 'no_params':
        torch.save({'optimizer': {'lr': 1e-3}}, path)
    elif kind == 'params_list':
        torch.save({'params': [1, 2]}, path)
    elif kind == 'wrong_shapes':
        torch.save({'params': {k: torch.zeros([s + 1 for s in v.shape] or [2]) for k, v in params.items()}}, path)
    elif kind == 'missing_keys':
        torch.save({'params': dict(list(params.items())[:3])}, path)
    elif kind == 'mask_generator':
        mask = ARCH_REGISTRY.get('MaskGenerator')(**{k: v for k, v in MASK_TINY.items() if k != 'type'})
        torch.save({'params': mask.state_dict()}, path)
    elif kind == 'pickle_with_code':
        marker = tmp_path / 'pwned'

        class Payload:
            def __reduce__(self):
                return (os.system, (f'touch {marker}',))

        torch.save({'params': Payload()}, path)
    elif kind == 'truncated':
        torch.save({'params': params}, path)
        path.write_bytes(path.read_bytes()[:500])
    elif kind == 'zero_bytes':
        path.write_bytes(b'')
    elif kind == 'text':
        path.write_text('model weights here\n')
    elif kind == 'folder':
        path.mkdir()
    elif kind in ('nan', 'inf'):
        value = float(kind)
        torch.save({'params': {k: (v.float().fill_(value) if v.is_floating_point() else v) for k, v in
                               params.items()}}, path)
    return path


@pytest.mark.parametrize('kind', ['list', 'tensor', 'no_params', 'params_list', 'wrong_shapes', 'missing_keys',
                                  'mask_generator', 'pickle_with_code', 'truncated', 'zero_bytes', 'text', 'folder',
                                  'nan', 'inf'])
def test_bad_weights_file_is_one_line(tmp_path, capsys, exp_dir, kind):
    weights = _weights(tmp_path, kind)
    opt = tmp_path / 'smfd.yml'
    opt.write_text(yaml.safe_dump({'name': 'x', 'network_g': dict(SMFD_TINY)}))
    folder = tmp_path / 'in'
    folder.mkdir()
    cv2.imwrite(str(folder / 'a.png'), FACE)
    before = _hashes(folder)
    weights_before = None if weights.is_dir() else hashlib.sha256(weights.read_bytes()).hexdigest()
    code, err = _run(capsys, ['-i', str(folder), '-o', str(tmp_path / 'out'), '--weights', str(weights), '--opt',
                              str(opt), '--experiments-dir', exp_dir, '--device', 'cpu'])
    assert not (tmp_path / 'pwned').exists(), 'loading weights executed code from the file'
    assert _hashes(folder) == before
    assert weights_before is None or hashlib.sha256(weights.read_bytes()).hexdigest() == weights_before
    assert not (tmp_path / 'out' / 'a.png').exists(), 'no output from weights that are not an SMFD-UNet'
    # NaN/inf weights (issue 14 item 4) are refused when loaded, like every other file that is no SMFD-UNet
    assert code == deblur.EXIT_USAGE
    assert len([line for line in err.splitlines() if 'deblur: error:' in line]) == 1, err
    assert str(weights) in err or weights.name in err, err


def _photos(tmp_path):
    folder = tmp_path / 'in'
    folder.mkdir()
    for name in ('x.png', 'x.jpg', 'x_2.png'):
        (folder / name).write_bytes(_encode(os.path.splitext(name)[1]))
    return folder


@pytest.mark.parametrize('case, expected', [
    ('device_tpu', 'deblur: error: --device tpu'),  # issue 14 item 7: was a torch traceback
    ('output_is_input', 'is the folder of the inputs'),  # issue 14 item 1: was overwriting the photos
    ('batch_0', '--batch must be >= 1'),
    ('size_8', '--size >= 16'),
    ('missing_input', 'no such file or folder'),
    ('empty_folder', 'folder has no images'),
    ('glob_nothing', 'no file matches it as a glob pattern'),
    ('mask_with_detect', '--mask goes with aligned faces'),
    ('no_experiments', 'deblur: error:'),
])
def test_bad_command_line_is_one_line_and_writes_nothing(tmp_path, capsys, exp_dir, case, expected):
    folder = _photos(tmp_path)
    before = _hashes(folder)
    out = str(tmp_path / 'out')
    base = ['-i', str(folder), '-o', out, '--experiments-dir', exp_dir, '--device', 'cpu']
    argv = {
        'device_tpu': base[:-1] + ['tpu'],
        'output_is_input': ['-i', str(folder), '-o', str(folder), '--experiments-dir', exp_dir],
        'batch_0': base + ['--batch', '0'],
        'size_8': base + ['--size', '8'],
        'missing_input': ['-i', str(tmp_path / 'nowhere'), '-o', out, '--experiments-dir', exp_dir],
        'empty_folder': ['-i', str((tmp_path / 'empty').mkdir() or tmp_path / 'empty'), '-o', out,
                         '--experiments-dir', exp_dir],
        'glob_nothing': ['-i', str(tmp_path / 'in' / '*.tiff'), '-o', out, '--experiments-dir', exp_dir],
        'mask_with_detect': base + ['--mask', str(folder), '--detect'],
        'no_experiments': ['-i', str(folder), '-o', out, '--experiments-dir', str(tmp_path / 'no_experiments')],
    }[case]
    code, err = _run(capsys, argv)
    assert code == deblur.EXIT_USAGE and expected in err, err
    assert len([line for line in err.splitlines() if 'deblur: error:' in line]) == 1
    assert _hashes(folder) == before and not os.path.exists(out)


@pytest.mark.parametrize('argv_tail', [['--ext', 'gif'], ['--batch', 'two'], ['--resize', 'up'], ['--bogus']])
def test_argparse_mistakes_exit_2_without_traceback(tmp_path, capsys, exp_dir, argv_tail):
    folder = _photos(tmp_path)
    with pytest.raises(SystemExit) as info:
        deblur.main(['-i', str(folder), '-o', str(tmp_path / 'out'), *argv_tail])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert 'Traceback' not in err and 'error:' in err


def test_same_stems_give_one_output_each(tmp_path, capsys, exp_dir):
    """Issue 14 item 2: x.png, x.jpg, x_2.png printed "wrote 3 of 3" and left 2 files."""
    folder = _photos(tmp_path)
    code, err = _run(capsys, ['-i', str(folder), '-o', str(tmp_path / 'out'), '--experiments-dir', exp_dir,
                              '--device', 'cpu'])
    assert code == deblur.EXIT_OK and 'wrote 3 of 3' in err
    assert len(os.listdir(tmp_path / 'out')) == 3


def test_max_pixels_refuses_per_file(tmp_path, capsys, exp_dir):
    folder = tmp_path / 'in'
    folder.mkdir()
    cv2.imwrite(str(folder / 'small.png'), FACE[:8, :8])
    cv2.imwrite(str(folder / 'big.png'), np.zeros((64, 64, 3), np.uint8))
    code, err = _run(capsys, ['-i', str(folder), '-o', str(tmp_path / 'out'), '--experiments-dir', exp_dir,
                              '--device', 'cpu', '--max-pixels', '1000'])
    assert code == deblur.EXIT_SOME_FAILED and f'skipped {folder / "big.png"}' in err
    assert (tmp_path / 'out' / 'small.png').exists() and not (tmp_path / 'out' / 'big.png').exists()


def test_rerun_over_earlier_outputs_replaces_them_whole(tmp_path, capsys, exp_dir):
    """A second run into the same output folder: each output is replaced atomically, with normal permissions."""
    folder = tmp_path / 'in'
    folder.mkdir()
    cv2.imwrite(str(folder / 'a.png'), FACE)
    argv = ['-i', str(folder), '-o', str(tmp_path / 'out'), '--experiments-dir', exp_dir, '--device', 'cpu']
    assert _run(capsys, argv)[0] == 0
    first = _hashes(tmp_path / 'out')
    assert _run(capsys, argv)[0] == 0
    assert _hashes(tmp_path / 'out') == first  # deterministic, nothing left beside it
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(tmp_path / 'out' / 'a.png').st_mode & 0o777 == 0o666 & ~umask


def test_untrained_weights_are_not_picked_as_trained(tmp_path, capsys):
    """Issue 14 item 5, the deblur side: a checkpoint of 0 iterations is never "the newest trained" one."""
    root = tmp_path / 'experiments'
    make_tiny_experiment(root, 'demo_mask', MASK_TINY, seed=1, total_iter=0)
    make_tiny_experiment(root, 'demo_smfd', SMFD_TINY, seed=2, total_iter=0)
    folder = tmp_path / 'in'
    folder.mkdir()
    cv2.imwrite(str(folder / 'a.png'), FACE)
    code, err = _run(capsys, ['-i', str(folder), '-o', str(tmp_path / 'out'), '--experiments-dir', str(root),
                              '--device', 'cpu'])
    assert code == deblur.EXIT_USAGE and not (tmp_path / 'out' / 'a.png').exists()
    assert 'demo_smfd/models/net_g_latest.pth: not used as a default: its run never trained' in err


def test_broken_symlink_in_a_folder_is_a_failed_input_not_a_silent_skip(tmp_path, capsys, exp_dir):
    folder = _folder_with(tmp_path, 'kept.txt', b'not an image')
    os.symlink(tmp_path / 'gone.png', folder / 'link.png')
    code, err = _run(capsys, ['-i', str(folder), '-o', str(tmp_path / 'out'), '--experiments-dir', exp_dir,
                              '--device', 'cpu'])
    assert code == deblur.EXIT_SOME_FAILED
    assert len([line for line in err.splitlines() if f'skipped {folder / "link.png"}' in line]) == 1, err
    assert 'wrote 1 of 2 image(s)' in err
