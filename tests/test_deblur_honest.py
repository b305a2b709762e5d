"""An honest deblur command (issue 12 item 3, issue 14 items 1 and 5): demo weights come with a warning, a run
that never trained is no default, faces larger than the network's size are said so (--resize), the user's own
masks (--mask), and the input folder is never an output folder.

Tiny random networks (tests/test_deblur.py): these tests check which files, messages, numbers and exit codes.
"""
import hashlib
import os

import cv2
import numpy as np
import pytest
import torch

from smfd_data.face_labels import group_labels
from smfd_data.image_io import read_image, resize_image, resize_labels, to_uint8
from smfd_inference import deblur
from smfd_inference.loading import find_trained_checkpoints, load_cascade, resolve_weights, training_iterations
from smfd_inference.restorer import images_to_batch, restore_any_size
from tests.test_deblur import MASK_TINY, SIZE, SMFD_TINY, _rgb, make_tiny_experiment

DEMO_DATA = {'datasets': {'train': {'gt_size': SIZE, 'dataroot_gt': 'datasets/demo/prepared/images'}}}


def _hashes(folder):
    return {n: hashlib.sha256(open(os.path.join(folder, n), 'rb').read()).hexdigest() for n in os.listdir(folder)}


def _set_mtime(path, t):
    os.utime(path, (t, t))


@pytest.fixture(scope='module')
def experiments(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('experiments'))
    mask = make_tiny_experiment(root, 'real_mask', MASK_TINY, seed=1)
    smfd = make_tiny_experiment(root, 'real_smfd', SMFD_TINY, seed=5)  # outputs inside (0, 1): comparable
    return root, smfd, mask


def _run(argv, capsys):
    code = deblur.main(argv)
    return code, capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ demo weights
def test_demo_weights_warn_what_they_are_good_for(tmp_path, capsys):
    root = str(tmp_path / 'experiments')
    make_tiny_experiment(root, 'demo_mask', MASK_TINY, seed=1, extra=DEMO_DATA)
    smfd = make_tiny_experiment(root, 'demo_smfd', SMFD_TINY, seed=2, extra=DEMO_DATA)
    (tmp_path / 'in').mkdir()
    cv2.imwrite(str(tmp_path / 'in' / 'x.png'), _rgb(SIZE, SIZE))
    code, err = _run(['-i', str(tmp_path / 'in'), '-o', str(tmp_path / 'out'), '--experiments-dir', root,
                      '--device', 'cpu'], capsys)
    assert code == 0
    warnings = [line for line in err.splitlines() if 'warning' in line and 'make demo' in line]
    assert len(warnings) == 2  # the SMFD-UNet and the MaskGenerator
    assert smfd in warnings[0] and 'synthetic faces' in warnings[0] and 'do not restore real faces' in warnings[0]
    # the same warnings, for any front end, without building anything
    choice = resolve_weights(experiments_dir=root)
    assert [w for w in choice['warnings'] if 'make demo' in w] == warnings


def test_real_weights_get_no_demo_warning(tmp_path, experiments, capsys):
    root, smfd, _ = experiments
    cv2.imwrite(str(tmp_path / 'x.png'), _rgb(SIZE, SIZE))
    code, err = _run(['-i', str(tmp_path / 'x.png'), '-o', str(tmp_path / 'out'), '--experiments-dir', root,
                      '--device', 'cpu'], capsys)
    assert code == 0 and smfd in err and 'warning' not in err


# ------------------------------------------------------------------------------------------------ never trained
def test_a_run_that_never_trained_is_no_default(tmp_path, capsys):
    root = str(tmp_path / 'experiments')
    trained = make_tiny_experiment(root, 'a_trained', SMFD_TINY, seed=2)
    zero = make_tiny_experiment(root, 'b_zero', SMFD_TINY, seed=3, total_iter=0)
    unknown = make_tiny_experiment(root, 'c_unknown', SMFD_TINY, seed=4, total_iter=None)
    mask = make_tiny_experiment(root, 'mask', MASK_TINY, seed=1)
    _set_mtime(trained, 1000)  # the untrained ones are newer: without the rule they would win
    assert training_iterations(trained, {'train': {'total_iter': 10}}) == 10
    assert training_iterations(zero, {'train': {'total_iter': 0}}) == 0
    assert training_iterations(unknown, {'train': {'total_iter': None}}) is None
    skipped = []
    assert find_trained_checkpoints(root, skipped)['smfd'][0] == trained
    assert sorted(line.split(':')[0] for line in skipped) == [zero, unknown]
    cv2.imwrite(str(tmp_path / 'x.png'), _rgb(SIZE, SIZE))
    code, err = _run(['-i', str(tmp_path / 'x.png'), '-o', str(tmp_path / 'out'), '--experiments-dir', root,
                      '--device', 'cpu'], capsys)
    assert code == 0
    assert f'newest trained SMFD-UNet {trained}' in err and f'newest trained MaskGenerator {mask}' in err
    assert f'{zero}: not used as a default: its run never trained' in err
    assert f'{unknown}: not used as a default: no training iterations recorded' in err
    # numbered checkpoints and training states record iterations too
    os.makedirs(os.path.join(root, 'c_unknown', 'training_states'))
    open(os.path.join(root, 'c_unknown', 'training_states', '5.state'), 'wb').close()
    assert training_iterations(unknown, {}) == 5
    # only untrained SMFD-UNets: exit 2, saying why each was left out
    os.remove(trained)
    os.remove(os.path.join(root, 'c_unknown', 'training_states', '5.state'))
    code, err = _run(['-i', str(tmp_path / 'x.png'), '-o', str(tmp_path / 'out2'), '--experiments-dir', root,
                      '--device', 'cpu'], capsys)
    assert code == 2 and 'never trained' in err and 'no training iterations recorded' in err
    assert not (tmp_path / 'out2').exists()
    # passed explicitly, it is used, with a warning
    code, err = _run(['-i', str(tmp_path / 'x.png'), '-o', str(tmp_path / 'out3'), '--weights', zero,
                      '--mask-weights', mask, '--device', 'cpu'], capsys)
    assert code == 0 and f'warning: {zero}: its run never trained' in err


# ------------------------------------------------------------------------------------------------ --mask
def _labels19(h, w, seed):
    """A 19-class map with skin, hair and components (values ≥ 5 appear, so 'auto' reads it as 19 classes)."""
    rng = np.random.default_rng(seed)
    labels = np.ones((h, w), np.uint8)  # skin
    labels[: h // 4] = 13  # hair
    labels[h // 2:h // 2 + 3, 3:9] = rng.choice([4, 5, 10, 11, 12], size=(3, 6))  # eyes, nose, lips
    labels[-3:] = 0
    return labels


def test_user_masks_drive_smfd_unet(tmp_path, experiments, capsys, monkeypatch):
    root, smfd, _ = experiments
    inp, masks = tmp_path / 'in', tmp_path / 'masks'
    inp.mkdir()
    masks.mkdir()
    cv2.imwrite(str(inp / 'a.png'), _rgb(40, 30, 0))  # resized to SIZE², its mask with nearest neighbour
    cv2.imwrite(str(inp / 'b.jpg'), _rgb(SIZE, SIZE, 1))
    cv2.imwrite(str(inp / 'c.png'), _rgb(SIZE, SIZE, 2))  # no mask: a per-file error
    cv2.imwrite(str(inp / 'd.png'), _rgb(SIZE, SIZE, 3))  # mask of another size: refused, never stretched
    a19 = _labels19(40, 30, 0)
    cv2.imwrite(str(masks / 'a.png'), a19)
    b5 = group_labels(_labels19(SIZE, SIZE, 1))
    cv2.imwrite(str(masks / 'b.png'), b5)  # the 5 groups, another extension than its image
    cv2.imwrite(str(masks / 'd.png'), _labels19(SIZE + 2, SIZE, 3))
    out = tmp_path / 'out'
    # no MaskGenerator anywhere: --mask does not need one
    only_smfd = str(tmp_path / 'only_smfd')
    make_tiny_experiment(only_smfd, 'real_smfd', SMFD_TINY, seed=5)
    code, err = _run(['-i', str(inp), '-o', str(out), '--experiments-dir', only_smfd, '--mask', str(masks),
                      '--device', 'cpu', '--save-mask'], capsys)
    assert code == 1
    assert 'MaskGenerator' not in err
    assert f'skipped {inp / "c.png"}: no mask named c.*' in err
    assert f'skipped {inp / "d.png"}' in err and 'masks must have the size of their image' in err
    assert 'wrote 2 of 4' in err
    # the outputs are SMFD-UNet's with exactly these masks (19 classes grouped to 5, §3.4.2)
    cascade, _ = load_cascade(smfd, need_generator=False, report=None)
    for name, labels in (('a', group_labels(a19)), ('b', b5)):
        img = read_image(str(next(inp.glob(name + '.*'))))
        h, w = img.shape[:2]
        x = images_to_batch([resize_image(img, SIZE, SIZE)], 'cpu')
        with torch.no_grad():
            expected, _ = cascade.restore(x, torch.from_numpy(resize_labels(labels, SIZE, SIZE)[None]).long())
        expected = to_uint8(resize_image(expected[0].permute(1, 2, 0).numpy(), h, w))
        got = cv2.cvtColor(cv2.imread(str(out / f'{name}.png')), cv2.COLOR_BGR2RGB)
        assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1, name
        saved = cv2.imread(str(out / 'labels' / f'{name}.png'), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(saved, labels), name  # the masks used are the user's, written back as given
    # the network received exactly these masks (a random tiny net hardly depends on its mask: check the wiring)
    seen = []

    def spy(restorer, faces, batch_size, device, masks=None):
        seen.extend(masks)
        return restore_any_size(restorer, faces, batch_size, device, masks)

    monkeypatch.setattr(deblur, 'restore_any_size', spy)
    code, _ = _run(['-i', str(inp / '[ab].*'), '-o', str(tmp_path / 'out2'), '--weights', smfd, '--mask',
                    str(masks), '--device', 'cpu'], capsys)
    assert code == 0 and len(seen) == 2
    assert np.array_equal(seen[0], resize_labels(group_labels(a19), SIZE, SIZE)) and np.array_equal(seen[1], b5)


def test_mask_usage_errors(tmp_path, experiments, capsys):
    root, smfd, _ = experiments
    cv2.imwrite(str(tmp_path / 'x.png'), _rgb(SIZE, SIZE))
    common = ['-i', str(tmp_path / 'x.png'), '-o', str(tmp_path / 'out'), '--experiments-dir', root, '--device',
              'cpu']
    code, err = _run(common + ['--mask', str(tmp_path / 'nowhere')], capsys)
    assert code == 2 and 'nowhere' in err
    code, err = _run(common + ['--mask', str(tmp_path), '--detect'], capsys)
    assert code == 2 and '--mask goes with aligned faces' in err
    cv2.imwrite(str(tmp_path / 'm.png'), np.full((SIZE, SIZE), 7, np.uint8))
    code, err = _run(common + ['--mask', str(tmp_path / 'm.png'), '--mask-classes', '5'], capsys)
    assert code == 1 and 'label value 7 in a 5-group mask' in err


# ------------------------------------------------------------------------------------------------ --resize
def test_faces_larger_than_the_network_are_said_so(tmp_path, experiments, capsys, monkeypatch):
    root, smfd, mask = experiments
    big = _rgb(2 * SIZE, 2 * SIZE, 4)
    cv2.imwrite(str(tmp_path / 'big.png'), big)
    common = ['-i', str(tmp_path / 'big.png'), '--experiments-dir', root, '--device', 'cpu']
    code, err = _run(common + ['-o', str(tmp_path / 'down')], capsys)
    assert code == 0
    assert f'the network works on {SIZE}² faces and 1 face(s) were larger (up to {2 * SIZE}×{2 * SIZE})' in err
    assert '--resize none' in err
    code, err = _run(common + ['-o', str(tmp_path / 'none'), '--resize', 'none'], capsys)
    assert code == 0 and 'at their own, larger size' in err
    # --resize none is the network at the input size
    cascade, _ = load_cascade(smfd, mask, report=None)
    img = read_image(str(tmp_path / 'big.png'))
    with torch.no_grad():
        expected, _ = cascade.restore(images_to_batch([img], 'cpu'))
    got = cv2.cvtColor(cv2.imread(str(tmp_path / 'none' / 'big.png')), cv2.COLOR_BGR2RGB)
    assert np.abs(got.astype(int) - to_uint8(expected[0].permute(1, 2, 0).numpy()).astype(int)).max() <= 1
    # the shapes the network saw (a random tiny net is nearly flat: compare the wiring, not the pixels)
    seen = []

    def spy(restorer, faces, batch_size, device, masks=None):
        seen.extend(face.shape[:2] for face in faces)
        return restore_any_size(restorer, faces, batch_size, device, masks)

    monkeypatch.setattr(deblur, 'restore_any_size', spy)
    for resize in ('down', 'none'):
        assert _run(common + ['-o', str(tmp_path / resize), '--resize', resize], capsys)[0] == 0
    assert seen == [(SIZE, SIZE), (2 * SIZE, 2 * SIZE)]
    # a face at the network's size gets no note
    cv2.imwrite(str(tmp_path / 'small.png'), _rgb(SIZE, SIZE, 5))
    code, err = _run(['-i', str(tmp_path / 'small.png'), '-o', str(tmp_path / 's'), '--experiments-dir', root,
                      '--device', 'cpu'], capsys)
    assert code == 0 and 'note' not in err


# ------------------------------------------------------------------------------------------------ the input folder
@pytest.mark.parametrize('how', ['same folder', 'same folder via glob', 'file in the output folder'])
def test_output_folder_may_not_be_the_input_folder(tmp_path, experiments, capsys, how):
    root = experiments[0]
    photos = tmp_path / 'photos'
    photos.mkdir()
    for i, name in enumerate(('a.png', 'b.jpg')):
        cv2.imwrite(str(photos / name), _rgb(SIZE, SIZE, i))
    before = _hashes(photos)
    spec = {'same folder': str(photos), 'same folder via glob': str(photos / '*.png'),
            'file in the output folder': str(photos / 'a.png')}[how]
    out = str(photos) if how != 'same folder' else str(tmp_path / '.' / 'photos')  # another spelling of it
    code, err = _run(['-i', spec, '-o', out, '--experiments-dir', root, '--device', 'cpu'], capsys)
    assert code == 2
    assert len([line for line in err.splitlines() if 'error' in line]) == 1
    assert 'is the folder of the inputs' in err
    assert _hashes(photos) == before  # nothing overwritten, nothing added


def test_an_output_that_would_be_an_input_is_refused(tmp_path, experiments, capsys):
    root = experiments[0]
    (tmp_path / 'in').mkdir()
    (tmp_path / 'in' / 'side_by_side').mkdir()
    cv2.imwrite(str(tmp_path / 'in' / 'a.png'), _rgb(SIZE, SIZE))
    cv2.imwrite(str(tmp_path / 'in' / 'side_by_side' / 'a.png'), _rgb(SIZE, SIZE, 1))
    before = _hashes(tmp_path / 'in' / 'side_by_side')
    code, err = _run(['-i', str(tmp_path / 'in' / 'side_by_side' / 'a.png'), '-o', str(tmp_path / 'in'),
                      '--side-by-side', '--experiments-dir', root, '--device', 'cpu'], capsys)
    assert code == 2 and 'would overwrite the input' in err
    assert _hashes(tmp_path / 'in' / 'side_by_side') == before


def test_unknown_device_is_one_clear_line(tmp_path, experiments, capsys):
    cv2.imwrite(str(tmp_path / 'x.png'), _rgb(SIZE, SIZE))
    for device in ('tpu', 'cuda:99' if torch.cuda.is_available() else 'cuda'):
        code, err = _run(['-i', str(tmp_path / 'x.png'), '-o', str(tmp_path / 'out'), '--experiments-dir',
                          experiments[0], '--device', device], capsys)
        assert code == 2
        assert err.strip().splitlines() == [err.strip()] and f'--device {device}' in err and 'Traceback' not in err
