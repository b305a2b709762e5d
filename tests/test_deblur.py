"""The deblur command (smfd_inference.deblur): weights discovery, bad inputs, batching, --detect wiring, ONNX.

Networks are tiny and randomly initialised: these tests check the plumbing (which files, which sizes, which exit
codes, identical numbers through every path), not restoration quality.
"""
import os
import urllib.error

import cv2
import numpy as np
import pytest
import torch
import yaml

from smfd_basicsr import register

register()

from smfd_data.image_io import read_image, resize_image, to_uint8  # noqa: E402
from smfd_inference import deblur, face_helper  # noqa: E402
from smfd_inference.loading import load_cascade  # noqa: E402
from smfd_inference.restorer import images_to_batch, restore_in_the_wild  # noqa: E402
from smfd_models.checkpoint import WeightsUnavailable, atomic_torch_save  # noqa: E402

SIZE = 32
SMFD_TINY = dict(type='SMFDUNet', encoder_widths=[4, 8], bottleneck_width=8, decoder_widths=[8, 4], final_width=4,
                 dense_layers=1, growth=2, head_channels=4, cbam_reduction=2)
MASK_TINY = dict(type='MaskGenerator', encoder_widths=[4, 8], decoder_widths=[8], final_width=4, dense_layers=1,
                 growth=2, growth_ratio=None, head_channels=4, cbam_reduction=2)


def make_tiny_experiment(root, name, net_opt, seed=0, size=SIZE, extra=None, total_iter=10):
    """experiments/<name>/{<name>.yml, models/net_g_latest.pth} as BasicSR's training leaves them after
    ``total_iter`` iterations (random weights: the iterations are only recorded)."""
    from basicsr.utils.registry import ARCH_REGISTRY
    torch.manual_seed(seed)
    kwargs = {k: v for k, v in net_opt.items() if k != 'type'}
    net = ARCH_REGISTRY.get(net_opt['type'])(**kwargs)
    for module in net.modules():  # non-trivial BN statistics, so eval mode is exercised
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    folder = os.path.join(root, name)
    ckpt = os.path.join(folder, 'models', 'net_g_latest.pth')
    atomic_torch_save({'params': net.state_dict()}, ckpt)
    opt = {'name': name, 'model_type': 'SMFDModel', 'network_g': dict(net_opt),
           'datasets': {'train': {'gt_size': size}}, 'train': {'total_iter': total_iter}, **(extra or {})}
    with open(os.path.join(folder, f'{name}.yml'), 'w') as f:
        yaml.safe_dump(opt, f)
    return ckpt


@pytest.fixture(scope='module')
def experiments(tmp_path_factory):
    root = tmp_path_factory.mktemp('experiments')
    mask = make_tiny_experiment(root, 'demo_mask', MASK_TINY, seed=1)
    smfd = make_tiny_experiment(root, 'demo_smfd', SMFD_TINY, seed=2)
    return str(root), smfd, mask


def _rgb(h, w, seed=0):
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), 1.0)
    return (img * 255).astype(np.uint8)


def _write_inputs(folder):
    os.makedirs(folder)
    cv2.imwrite(os.path.join(folder, 'a_rgb.png'), _rgb(40, 30, 0))
    cv2.imwrite(os.path.join(folder, 'b_gray.png'), _rgb(SIZE, SIZE, 1)[..., 0])
    alpha = np.full((SIZE, SIZE), 7, np.uint8)
    cv2.imwrite(os.path.join(folder, 'c_rgba.png'), np.dstack([_rgb(SIZE, SIZE, 2), alpha]))
    cv2.imwrite(os.path.join(folder, 'd_16bit.png'), _rgb(24, 24, 3).astype(np.uint16) * 257)
    open(os.path.join(folder, 'e_empty.png'), 'wb').close()
    with open(os.path.join(folder, 'f_text.jpg'), 'w') as f:
        f.write('not an image')
    cv2.imwrite(os.path.join(folder, 'g_huge.png'), _rgb(100, 100, 4))


def test_no_weights_exits_2_with_instructions(tmp_path, capsys):
    cv2.imwrite(str(tmp_path / 'x.png'), _rgb(SIZE, SIZE))
    code = deblur.main(['-i', str(tmp_path / 'x.png'), '-o', str(tmp_path / 'out'), '--experiments-dir',
                           str(tmp_path / 'nothing'), '--device', 'cpu'])
    err = capsys.readouterr().err
    assert code == 2
    assert '--weights' in err and 'make demo' in err and str(tmp_path / 'nothing') in err
    assert not (tmp_path / 'out').exists()


def test_read_image_conversions(tmp_path):
    folder = str(tmp_path / 'in')
    _write_inputs(folder)
    gray = read_image(os.path.join(folder, 'b_gray.png'))
    assert gray.shape == (SIZE, SIZE, 3) and np.array_equal(gray[..., 0], gray[..., 2])
    rgba = read_image(os.path.join(folder, 'c_rgba.png'))
    assert rgba.shape == (SIZE, SIZE, 3)
    np.testing.assert_allclose(rgba, _rgb(SIZE, SIZE, 2)[..., ::-1] / 255.0, atol=1e-6)  # alpha dropped, BGR → RGB
    deep = read_image(os.path.join(folder, 'd_16bit.png'))
    np.testing.assert_allclose(deep, _rgb(24, 24, 3)[..., ::-1] / 255.0, atol=1e-6)  # 16-bit scaled to [0, 1]
    with pytest.raises(ValueError, match='empty file'):
        read_image(os.path.join(folder, 'e_empty.png'))
    with pytest.raises(ValueError, match='f_text.jpg'):
        read_image(os.path.join(folder, 'f_text.jpg'))
    with pytest.raises(ValueError, match='max-pixels'):
        read_image(os.path.join(folder, 'g_huge.png'), max_pixels=5000)


def test_collect_inputs(tmp_path):
    folder = str(tmp_path / 'in')
    _write_inputs(folder)
    assert len(deblur.collect_inputs(folder)) == 7
    assert [os.path.basename(p) for p in deblur.collect_inputs(os.path.join(folder, '*_rgb.*'))] == ['a_rgb.png']
    with pytest.raises(FileNotFoundError, match='no file matches'):
        deblur.collect_inputs(os.path.join(folder, 'zzz*'))


def test_aligned_mode_outputs_bad_inputs_and_batching(tmp_path, experiments, capsys):
    root, smfd_ckpt, mask_ckpt = experiments
    folder = str(tmp_path / 'in')
    _write_inputs(folder)
    out1, out3 = str(tmp_path / 'out1'), str(tmp_path / 'out3')
    common = ['-i', folder, '--experiments-dir', root, '--device', 'cpu', '--max-pixels', '5000']
    code = deblur.main(common + ['-o', out3, '--batch', '3', '--save-mask', '--side-by-side'])
    err = capsys.readouterr().err
    assert code == 1  # some inputs failed, the rest was written
    assert smfd_ckpt in err and mask_ckpt in err  # says which weights it found
    for bad in ('e_empty.png', 'f_text.jpg', 'g_huge.png'):
        assert f'skipped {os.path.join(folder, bad)}' in err
    assert 'wrote 4 of 7' in err
    written = sorted(os.listdir(out3))
    assert [n for n in written if n.endswith('.png')] == ['a_rgb.png', 'b_gray.png', 'c_rgba.png', 'd_16bit.png']
    a = cv2.imread(os.path.join(out3, 'a_rgb.png'))
    assert a.shape == (40, 30, 3)  # back at the input size
    labels = cv2.imread(os.path.join(out3, 'labels', 'a_rgb.png'), cv2.IMREAD_UNCHANGED)
    assert labels.shape == (40, 30) and labels.max() < 5
    assert cv2.imread(os.path.join(out3, 'masks', 'a_rgb.png')).shape == (40, 30, 3)
    assert cv2.imread(os.path.join(out3, 'side_by_side', 'a_rgb.png')).shape == (40, 3 * 30 + 2 * 2, 3)

    # the same numbers as running the cascade by hand: resize to the model size, forward, resize back
    cascade, info = load_cascade(smfd_ckpt, mask_ckpt, device='cpu')
    assert info['size'] == SIZE
    img = read_image(os.path.join(folder, 'a_rgb.png'))
    with torch.no_grad():
        out, _ = cascade.restore(images_to_batch([resize_image(img, SIZE, SIZE)], 'cpu'))
    expected = to_uint8(resize_image(out[0].permute(1, 2, 0).numpy(), 40, 30))
    got = cv2.cvtColor(a, cv2.COLOR_BGR2RGB)
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1

    # batch size does not change results (eval-mode BN, per-image post-processing)
    assert deblur.main(common + ['-o', out1, '--batch', '1']) == 1
    capsys.readouterr()
    for name in ('a_rgb.png', 'b_gray.png', 'c_rgba.png', 'd_16bit.png'):
        x, y = cv2.imread(os.path.join(out1, name)), cv2.imread(os.path.join(out3, name))
        assert np.abs(x.astype(int) - y.astype(int)).max() <= 1, name


def test_explicit_weights_need_an_option_file(tmp_path, experiments, capsys):
    _, smfd_ckpt, mask_ckpt = experiments
    lone = str(tmp_path / 'lone.pth')
    with open(smfd_ckpt, 'rb') as src, open(lone, 'wb') as dst:
        dst.write(src.read())
    cv2.imwrite(str(tmp_path / 'x.png'), _rgb(SIZE, SIZE))
    code = deblur.main(['-i', str(tmp_path / 'x.png'), '-o', str(tmp_path / 'o'), '--weights', lone,
                           '--mask-weights', mask_ckpt, '--device', 'cpu'])
    assert code == 2 and '--opt' in capsys.readouterr().err
    opt = os.path.join(os.path.dirname(os.path.dirname(smfd_ckpt)), 'demo_smfd.yml')
    code = deblur.main(['-i', str(tmp_path / 'x.png'), '-o', str(tmp_path / 'o'), '--weights', lone, '--opt', opt,
                           '--mask-weights', mask_ckpt, '--device', 'cpu'])
    assert code == 0 and os.path.isfile(tmp_path / 'o' / 'x.png')


def test_detector_wiring_with_random_retinaface(experiments):
    root, smfd_ckpt, mask_ckpt = experiments
    torch.manual_seed(0)
    detector = face_helper.build_face_detector('retinaface_mobile0.25', pretrained=False, device='cpu')
    img = _rgb(48, 64, 5).astype(np.float32) / 255.0
    faces = face_helper.detect_faces(detector, img, det_size=128, threshold=0.0)
    assert faces, 'a random detector with threshold 0 keeps boxes after NMS'
    box, score, landmarks = faces[0]
    assert box.shape == (4, ) and landmarks.shape == (5, 2) and 0.0 <= score <= 1.0
    # coordinates are mapped back from the 128-px detection copy to the 64-px image
    big = cv2.resize(img, (128, 96), interpolation=cv2.INTER_LINEAR)
    raw = detector.detect_faces(to_uint8(big)[..., ::-1].copy(), conf_threshold=0.0)
    np.testing.assert_allclose(landmarks, raw[0, 5:15].reshape(5, 2) / 2.0, rtol=1e-5, atol=1e-4)

    cascade, _ = load_cascade(smfd_ckpt, mask_ckpt, device='cpu')
    out, details = restore_in_the_wild(cascade, img, detector, SIZE, det_size=128, threshold=0.0,
                                                 only_center_face=True)
    assert out.shape == img.shape and len(details) == 1  # --only-center-face
    assert details[0]['crop'].shape == (SIZE, SIZE, 3) and details[0]['labels'].shape == (SIZE, SIZE)
    assert np.abs(out - img).max() > 0  # the restored face was pasted


def test_detector_offline_error_names_the_cache(tmp_path, monkeypatch, experiments, capsys):
    def offline(*args, **kwargs):
        raise urllib.error.URLError('no network')

    monkeypatch.setattr(torch.hub, 'download_url_to_file', offline)
    weights_dir = str(tmp_path / 'cache')
    with pytest.raises(WeightsUnavailable) as info:
        face_helper.build_face_detector('retinaface_mobile0.25', weights_dir=weights_dir)
    message = str(info.value)
    assert os.path.join(weights_dir, 'detection_mobilenet0.25_Final.pth') in message
    assert 'download' in message and face_helper.DETECTOR_URLS['retinaface_mobile0.25'] in message
    cv2.imwrite(str(tmp_path / 'x.png'), _rgb(SIZE, SIZE))
    code = deblur.main(['-i', str(tmp_path / 'x.png'), '-o', str(tmp_path / 'o'), '--experiments-dir',
                           experiments[0], '--detect', '--detector', 'retinaface_mobile0.25', '--weights-dir',
                           weights_dir, '--device', 'cpu'])
    assert code == 2 and weights_dir in capsys.readouterr().err
    assert not os.listdir(weights_dir)  # no partial download left behind


def test_onnx_path_matches_pytorch(tmp_path, experiments):
    pytest.importorskip('onnxruntime')
    from smfd_inference.onnx import export_network
    _, smfd_ckpt, mask_ckpt = experiments
    cascade, _ = load_cascade(smfd_ckpt, mask_ckpt, device='cpu')
    unet_path, mask_path = str(tmp_path / 'smfd_unet.onnx'), str(tmp_path / 'mask_generator.onnx')
    export_network(cascade.smfd, unet_path, 'unet', size=SIZE, dynamic_hw=False)
    export_network(cascade.mask_generator, mask_path, 'mask_generator', size=SIZE, dynamic_hw=False)
    folder = tmp_path / 'in'
    folder.mkdir()
    cv2.imwrite(str(folder / 'x.png'), _rgb(SIZE, SIZE, 9))
    assert deblur.main(['-i', str(folder), '-o', str(tmp_path / 'onnx'), '--onnx', unet_path, '--mask-onnx',
                           mask_path, '--save-mask']) == 0
    x = images_to_batch([read_image(str(folder / 'x.png'))], 'cpu')
    with torch.no_grad():
        expected, labels = cascade.restore(x)
    got = cv2.cvtColor(cv2.imread(str(tmp_path / 'onnx' / 'x.png')), cv2.COLOR_BGR2RGB)
    assert np.abs(got.astype(int) - to_uint8(expected[0].permute(1, 2, 0).numpy()).astype(int)).max() <= 1
    got_labels = cv2.imread(str(tmp_path / 'onnx' / 'labels' / 'x.png'), cv2.IMREAD_UNCHANGED)
    assert (got_labels == labels[0].numpy()).mean() > 0.99


def test_detect_mode_cli_with_placed_weights(tmp_path, experiments, capsys):
    """--detect end to end: weights placed in --weights-dir are loaded (weights_only), faces pasted back."""
    from facexlib.detection.retinaface import RetinaFace
    torch.manual_seed(0)
    weights_dir = tmp_path / 'cache'
    random_detector = RetinaFace(network_name='mobile0.25', device='cpu')
    atomic_torch_save(random_detector.state_dict(), str(weights_dir / 'detection_mobilenet0.25_Final.pth'))
    photo = _rgb(48, 64, 5)
    cv2.imwrite(str(tmp_path / 'photo.png'), photo)
    code = deblur.main(['-i', str(tmp_path / 'photo.png'), '-o', str(tmp_path / 'o'), '--experiments-dir',
                           experiments[0], '--detect', '--detector', 'retinaface_mobile0.25', '--weights-dir',
                           str(weights_dir), '--det-threshold', '0', '--only-center-face', '--det-size', '128',
                           '--device', 'cpu', '--save-mask', '--side-by-side'])
    assert code == 0, capsys.readouterr().err
    out = cv2.imread(str(tmp_path / 'o' / 'photo.png'))
    assert out.shape == photo.shape  # (random landmarks may map the face onto a pixel or two: no pixel check)
    assert cv2.imread(str(tmp_path / 'o' / 'masks' / 'photo_face0.png')).shape == (SIZE, SIZE, 3)  # one face
    assert not os.path.exists(tmp_path / 'o' / 'masks' / 'photo_face1.png')  # --only-center-face
    assert cv2.imread(str(tmp_path / 'o' / 'side_by_side' / 'photo.png')).shape == (48, 2 * 64 + 2, 3)
