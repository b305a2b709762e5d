"""The web page (smfd_inference.web): the engine in-process, then the real page in headless Chromium.

Networks are tiny and randomly initialised (tests/test_deblur.py's experiments): these tests check what the page
does with uploads and files, not restoration quality.
"""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import cv2
import numpy as np
import pytest

from smfd_data.face_labels import colorize, group_labels
from smfd_data.image_io import read_image, resize_labels
from smfd_inference import deblur, web
from tests.test_deblur import MASK_TINY, SIZE, SMFD_TINY, make_tiny_experiment

CHROMIUM = shutil.which('chromium') or '/usr/bin/chromium'


@pytest.fixture(scope='module')
def experiments(tmp_path_factory):
    """Two runs as ``make demo`` leaves them (trained on datasets/demo/): the page must warn about them."""
    root = tmp_path_factory.mktemp('experiments')
    demo = {'datasets': {'train': {'gt_size': SIZE, 'dataroot_gt': 'datasets/demo/train/images'}}}
    make_tiny_experiment(root, 'demo_mask', MASK_TINY, seed=1, extra=demo)
    make_tiny_experiment(root, 'demo_smfd', SMFD_TINY, seed=2, extra=demo)
    return str(root)


@pytest.fixture(scope='module')
def page(experiments, tmp_path_factory):
    out = tmp_path_factory.mktemp('web_out')
    return web.DeblurPage(str(out), experiments_dir=experiments, device='cpu', max_pixels=5000, max_upload_mb=0.05,
                          detector_weights_dir=str(tmp_path_factory.mktemp('no_detector')))


def _photo(path, h=40, w=30, seed=0):
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur((rng.random((h, w, 3)) * 255).astype(np.uint8), (0, 0), 1.0)
    cv2.imwrite(str(path), img)
    return str(path)


def _files_under(folder):
    return sorted(os.path.relpath(os.path.join(d, n), folder) for d, _, names in os.walk(folder) for n in names)


def test_aligned_result_matches_the_deblur_command(page, experiments, tmp_path, capsys):
    photo = _photo(tmp_path / 'face.png')
    blurry, mask_rgb, out, result, message = page.restore(photo, web.MODE_ALIGNED)
    assert blurry.shape == out.shape == mask_rgb.shape == (40, 30, 3) and out.dtype == np.uint8
    assert os.path.dirname(result) == page.results_dir and os.path.basename(result).startswith('face-')
    assert 'predicted by the MaskGenerator' in message and os.path.basename(result) in message
    # the deblur command's --resize note (restorer.larger_faces_note): the 30×40 photo is larger than SIZE²
    assert f'note: the network works on {SIZE}² faces and 1 face(s) were larger (up to 30×40)' in message
    # the same weights as the deblur command: the same numbers, and its masks are the ones shown
    assert deblur.main(['-i', photo, '-o', str(tmp_path / 'cli'), '--experiments-dir', experiments,
                        '--device', 'cpu', '--save-mask']) == 0
    cli = cv2.imread(str(tmp_path / 'cli' / 'face.png'))[..., ::-1]
    np.testing.assert_array_equal(cv2.imread(result)[..., ::-1], cli)
    np.testing.assert_array_equal(out, cli)
    np.testing.assert_array_equal(mask_rgb, cv2.imread(str(tmp_path / 'cli' / 'masks' / 'face.png'))[..., ::-1])
    # the loading messages the deblur command prints are on the page
    summary = page.summary()
    assert 'using the newest trained SMFD-UNet' in summary and 'demo_smfd' in summary
    assert 'using the newest trained MaskGenerator' in summary
    for what in ('SMFD-UNet', 'MaskGenerator'):  # the deblur command's demo-weights warnings, in bold
        assert f'these {what} weights were trained by `make demo` on procedural synthetic faces' in summary
    assert summary.count('- **smfd: warning:') == 2


def test_uploaded_mask_is_used_and_a_19_class_map_is_grouped(page, tmp_path, monkeypatch):
    photo = _photo(tmp_path / 'face.png')
    labels19 = np.zeros((40, 30), np.uint8)
    labels19[5:35, 5:25] = 1  # skin
    labels19[12:16, 8:12] = 4  # l_eye
    labels19[12:16, 14:22] = 3  # eye_g
    labels19[25:30, 10:20] = 12  # l_lip
    labels19[:5] = 13  # hair
    cv2.imwrite(str(tmp_path / 'mask19.png'), labels19)
    cv2.imwrite(str(tmp_path / 'mask5.png'), group_labels(labels19))
    seen = []
    restore = page.cascade.restore

    def spy(x, mask=None):  # what reaches the network
        seen.append(None if mask is None else mask.numpy().copy())
        return restore(x, mask)

    monkeypatch.setattr(page.cascade, 'restore', spy)
    _, mask_rgb, _, _, message = page.restore(photo, web.MODE_ALIGNED, str(tmp_path / 'mask19.png'))
    assert 'mask: mask19.png (auto-detected classes)' in message and 'mask: uploaded' in message
    np.testing.assert_array_equal(mask_rgb, colorize(group_labels(labels19), num_classes=5))  # grouped 19 → 5
    expected = resize_labels(group_labels(labels19), SIZE, SIZE)
    assert np.unique(expected).tolist() == [0, 1, 2, 3, 4]  # every group reaches the network
    np.testing.assert_array_equal(seen[-1], expected[None])
    for classes in ('auto', '5'):  # a 5-group map is used as it is
        _, mask5_rgb, _, _, message5 = page.restore(photo, web.MODE_ALIGNED, str(tmp_path / 'mask5.png'), classes)
        np.testing.assert_array_equal(seen[-1], expected[None])
        np.testing.assert_array_equal(mask5_rgb, mask_rgb)
    page.restore(photo, web.MODE_ALIGNED)
    assert seen[-1] is None  # no upload: the MaskGenerator's mask
    with pytest.raises(web.UploadRefused, match=r'mask19.png: label value 13 in a 5-group mask \(mask classes 5'):
        page.restore(photo, web.MODE_ALIGNED, str(tmp_path / 'mask19.png'), '5')
    cv2.imwrite(str(tmp_path / 'small_mask.png'), labels19[:20])
    with pytest.raises(web.UploadRefused, match='^Refused: mask small_mask.png: mask is 30×20 but its image is 30×40'):
        page.restore(photo, web.MODE_ALIGNED, str(tmp_path / 'small_mask.png'))
    (tmp_path / 'colour.png').write_bytes(cv2.imencode('.png', np.dstack([labels19, labels19 * 2, labels19]))[1])
    with pytest.raises(web.UploadRefused, match='colour.png: label map has 3 channels'):
        page.restore(photo, web.MODE_ALIGNED, str(tmp_path / 'colour.png'))
    assert len(seen) == 4  # refused masks never reach the network


def test_refusals_name_the_upload_and_write_nothing(page, tmp_path):
    before = _files_under(page.output_dir)
    (tmp_path / 'notes.png').write_text('not an image')
    with pytest.raises(web.UploadRefused, match=r'^Refused: notes.png: cannot decode the image'):
        page.restore(str(tmp_path / 'notes.png'))
    big = _photo(tmp_path / 'big.png', 100, 100)  # 10,000 px > max_pixels 5000: refused from the header
    with pytest.raises(web.UploadRefused, match=r'^Refused: big.png: 100×100 = 0.01 MP; the limit is 0.005 MP '
                       r'\(--max-pixels\)'):
        page.restore(big)
    with pytest.raises(web.UploadRefused, match=r'^Refused: mask big.png: 100×100 = 0.01 MP; the limit is 0.005 MP'):
        page.restore(_photo(tmp_path / 'face.png'), web.MODE_ALIGNED, big)  # from its header, never decoded
    (tmp_path / 'heavy.png').write_bytes(b'\0' * 60_000)  # > 0.05 MB
    with pytest.raises(web.UploadRefused, match=r'heavy.png is 0.0572 MB; the limit is 0.05 MB \(--max-upload-mb\)'):
        page.restore(str(tmp_path / 'heavy.png'))
    (tmp_path / 'empty.jpg').write_bytes(b'')
    with pytest.raises(web.UploadRefused, match=r'^Refused: empty.jpg: empty file \(0 bytes\)'):
        page.restore(str(tmp_path / 'empty.jpg'))
    whole = open(_photo(tmp_path / 'whole.png'), 'rb').read()
    (tmp_path / 'cut.png').write_bytes(whole[:len(whole) // 2])
    with pytest.raises(web.UploadRefused, match=r'^Refused: cut.png: truncated or corrupt PNG'):
        page.restore(str(tmp_path / 'cut.png'))
    with pytest.raises(web.UploadRefused, match='no photo uploaded'):
        page.restore(None)
    photo = _photo(tmp_path / 'face.png')
    with pytest.raises(web.UploadRefused, match='detector weights are missing.*detection_Resnet50_Final.pth'):
        page.restore(photo, web.MODE_DETECT)
    assert 'detect faces in photo:** unavailable' in page.summary()
    assert _files_under(page.output_dir) == before


def test_non_finite_outputs_are_one_line_and_write_nothing(page, tmp_path, monkeypatch):
    photo = _photo(tmp_path / 'face.png')
    before = _files_under(page.output_dir)
    restore = page.cascade.restore
    monkeypatch.setattr(page.cascade, 'restore', lambda x, mask=None: (restore(x, mask)[0] * float('inf'), None))
    with pytest.raises(web.UploadRefused, match=r'^Error: the network produced NaN or infinite values \(diverged '
                       r'weights\?\); nothing written\.$'):
        page.restore(photo, web.MODE_ALIGNED)
    assert _files_under(page.output_dir) == before


def test_detect_mode_matches_the_deblur_command(experiments, tmp_path):
    """Detector weights placed in the folder (random ones): the page restores like ``deblur.py --detect``."""
    import torch
    from facexlib.detection.retinaface import RetinaFace

    from smfd_models.checkpoint import atomic_torch_save
    torch.manual_seed(0)
    weights_dir = tmp_path / 'detector'
    atomic_torch_save(RetinaFace(network_name='mobile0.25', device='cpu').state_dict(),
                      str(weights_dir / 'detection_mobilenet0.25_Final.pth'))
    page = web.DeblurPage(str(tmp_path / 'out'), experiments_dir=experiments, device='cpu',
                          detector='retinaface_mobile0.25', detector_weights_dir=str(weights_dir), det_size=128,
                          det_threshold=0.0)
    assert 'detect faces in photo:** available' in page.summary()
    photo = _photo(tmp_path / 'photo.png', 48, 64, seed=5)
    blurry, mask_rgb, out, result, message = page.restore(photo, web.MODE_DETECT, photo)
    assert out.shape == blurry.shape == (48, 64, 3)
    assert 'the uploaded mask is ignored' in message and 'face(s) restored' in message
    faces = int(message.split(' face(s) restored')[0].split('; ')[-1])
    assert faces >= 1 and mask_rgb.shape == (SIZE, faces * SIZE + (faces - 1) * 2, 3)  # one mask per face
    assert deblur.main(['-i', photo, '-o', str(tmp_path / 'cli'), '--experiments-dir', experiments, '--detect',
                        '--detector', 'retinaface_mobile0.25', '--weights-dir', str(weights_dir), '--det-size',
                        '128', '--det-threshold', '0', '--device', 'cpu']) == 0
    np.testing.assert_array_equal(cv2.imread(result), cv2.imread(str(tmp_path / 'cli' / 'photo.png')))


def test_upload_names_cannot_leave_the_output_folder(page, tmp_path):
    photo = _photo(tmp_path / 'x y$(z);..png')  # the browser chooses the name; it only lends the stem
    result = page.restore(photo)[3]
    assert os.path.dirname(result) == page.results_dir
    assert os.path.basename(result).startswith('x_y_z-')
    assert web._safe_stem('/a/../../etc/passwd') == 'passwd'
    assert web._safe_stem('a/..') == web._safe_stem('') == 'upload'
    np.testing.assert_array_equal(read_image(result).shape, (40, 30, 3))


def test_command_line_errors_exit_2_before_serving(tmp_path, monkeypatch, capsys):
    for name in ('GRADIO_TEMP_DIR', 'GRADIO_ANALYTICS_ENABLED', 'MPLCONFIGDIR'):  # main() sets them: undo after
        monkeypatch.setenv(name, os.environ.get(name, ''))
    assert web.main(['--port', '-1']) == 2
    assert '--port must be >= 0' in capsys.readouterr().err
    out = tmp_path / 'out'
    assert web.main(['-o', str(out), '--experiments-dir', str(tmp_path / 'none'), '--device', 'cpu']) == 2
    err = capsys.readouterr().err
    assert 'smfd-web: error: no SMFD-UNet weights given' in err and 'make demo' in err
    assert os.environ['GRADIO_TEMP_DIR'] == str(out / '.gradio')
    assert _files_under(out) == []  # only the (empty) Gradio folder was made
    with open(os.path.join(os.path.dirname(os.path.dirname(web.__file__)), 'setup.py')) as f:
        assert "'smfd-web=smfd_inference.web:main'" in f.read()  # the console entry runs this main


# ----------------------------------------------------------------------------------------------------------------
# The page in a real browser
# ----------------------------------------------------------------------------------------------------------------
def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _wait_until_up(url, server, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.poll() is not None:
            raise AssertionError(f'the server exited with {server.returncode}:\n{server.stdout.read()[-4000:]}')
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f'the server did not answer {url} within {timeout} s')


def test_page_in_headless_chromium(experiments, tmp_path):
    missing = None if os.path.exists(CHROMIUM) else 'Debian\'s chromium is not installed (apt-get install chromium)'
    try:
        import playwright.sync_api as playwright
    except ImportError:
        missing = missing or 'the playwright package is not installed (pip install -r requirements.txt)'
    if missing:  # .ci/run installs both: in CI the browser test must run
        (pytest.fail if os.environ.get('CI') else pytest.skip)(missing)
    out, home, tmp, cwd = (tmp_path / name for name in ('out', 'home', 'tmp', 'cwd'))
    for folder in (home, tmp, cwd):
        folder.mkdir()
    photo = _photo(tmp_path / 'face.png', 40, 30)
    big = str(tmp_path / 'big.png')
    cv2.imwrite(big, np.full((100, 100, 3), 128, np.uint8))  # 10,000 px but only a few hundred bytes
    heavy = str(tmp_path / 'heavy.png')
    cv2.imwrite(heavy, np.random.default_rng(0).integers(0, 256, (200, 200, 3), np.uint8))  # ~120 KB
    (tmp_path / 'notes.txt').write_text('not an image')
    port = _free_port()
    # HOME, TMPDIR and the working folder are empty folders of their own: afterwards they must still be empty
    env = dict(os.environ, HOME=str(home), TMPDIR=str(tmp), OMP_NUM_THREADS='1', PYTHONDONTWRITEBYTECODE='1')
    server = subprocess.Popen(
        [sys.executable, '-m', 'smfd_inference.web', '-o', str(out), '--port', str(port), '--device', 'cpu',
         '--experiments-dir', experiments, '--max-pixels', '5000', '--max-upload-mb', '0.05',
         '--weights-dir', str(tmp_path / 'no_detector')],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f'http://127.0.0.1:{port}/'
        _wait_until_up(url, server)
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=['--no-sandbox'])
            tab = browser.new_page(viewport={'width': 1280, 'height': 1000})
            tab.goto(url)
            top = tab.inner_text('#weights')
            assert 'using the newest trained SMFD-UNet' in top and 'trained by `make demo`' not in top
            assert 'these SMFD-UNet weights were trained by make demo on procedural synthetic faces' in top

            def deblur_upload(path, mode=web.MODE_ALIGNED):
                tab.set_input_files('#photo input[type=file]', str(path))
                # uploaded: the file list links to the server's copy (the name alone shows while uploading)
                tab.wait_for_selector(f'#photo a[download="{os.path.basename(path)}"]')
                tab.get_by_label(mode).check()
                message = '#status [data-testid="markdown"]'  # the text, not the progress timer beside it
                before = tab.inner_text(message).strip()
                tab.click('#deblur')
                tab.wait_for_function(
                    '([sel, before]) => { const t = document.querySelector(sel).innerText.trim(); '
                    'return t.length > 0 && t !== before && !document.querySelector("#status .pending"); }',
                    arg=[message, before])
                return tab.inner_text(message).strip()

            status = deblur_upload(photo)
            assert status.startswith('Done in') and 'predicted by the MaskGenerator' in status
            tab.wait_for_selector('#output img')
            src, width, height = tab.eval_on_selector(
                '#output img', 'e => e.decode().then(() => [e.src, e.naturalWidth, e.naturalHeight])')
            assert (width, height) == (30, 40)
            with urllib.request.urlopen(src) as response:  # the picture the browser shows is the model's output
                shown = cv2.imdecode(np.frombuffer(response.read(), np.uint8), cv2.IMREAD_COLOR)
            results = _files_under(out / 'results')
            assert len(results) == 1
            np.testing.assert_array_equal(shown, cv2.imread(str(out / 'results' / results[0])))
            assert tab.eval_on_selector('#mask_out img', 'e => e.decode().then(() => e.naturalWidth)') == 30
            link = tab.query_selector('#result a[download]')  # the download: the result file itself
            assert link.get_attribute('download') == results[0]
            with urllib.request.urlopen(link.get_attribute('href')) as response:
                assert response.read() == (out / 'results' / results[0]).read_bytes()
            tab.screenshot(path=str(tmp_path / 'page.png'), full_page=True)

            labels19 = np.zeros((40, 30), np.uint8)  # a CelebAMask-HQ map: skin, hair on top
            labels19[5:35, 5:25], labels19[:5] = 1, 13
            cv2.imwrite(str(tmp_path / 'mask.png'), labels19)
            tab.set_input_files('#mask input[type=file]', str(tmp_path / 'mask.png'))
            tab.wait_for_selector('#mask a[download="mask.png"]')
            tab.click('#photo button[aria-label="Clear"]')
            assert 'mask: uploaded' in deblur_upload(photo)
            mask_src = tab.eval_on_selector('#mask_out img', 'e => e.decode().then(() => e.src)')
            with urllib.request.urlopen(mask_src) as response:
                shown = cv2.imdecode(np.frombuffer(response.read(), np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
            np.testing.assert_array_equal(shown, colorize(group_labels(labels19), num_classes=5))
            tab.click('#mask button[aria-label="Clear"]')
            results = _files_under(out / 'results')
            assert len(results) == 2

            tab.click('#photo button[aria-label="Clear"]')  # a refusal clears the pictures of the last run
            assert deblur_upload(tmp_path / 'notes.txt').startswith('Refused: notes.txt: cannot decode the image')
            assert tab.query_selector('#output img') is None
            tab.click('#photo button[aria-label="Clear"]')
            assert 'the limit is 0.005 MP (--max-pixels)' in deblur_upload(big)
            tab.click('#photo button[aria-label="Clear"]')
            assert 'detector weights are missing' in deblur_upload(photo, web.MODE_DETECT)
            tab.click('#photo button[aria-label="Clear"]')
            tab.set_input_files('#photo input[type=file]', heavy)  # Gradio refuses it before storing it
            tab.wait_for_selector(':text("exceed the maximum allowed size of 51.2 Kb")')
            tab.screenshot(path=str(tmp_path / 'refused.png'), full_page=True)
            browser.close()
        assert _files_under(out / 'results') == results
        assert not [name for name in _files_under(out) if name.endswith('heavy.png')]
    finally:
        server.terminate()
        log = server.communicate(timeout=30)[0]
    assert 'Traceback' not in log, log
    assert (tmp_path / 'page.png').stat().st_size > 10_000
    assert [_files_under(folder) for folder in (home, tmp, cwd)] == [[], [], []], log
