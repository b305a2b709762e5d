"""SMFDFaceDataset / SMFDDegradedFolderDataset and the joint augmentation (§3.4.2, §3.4.6.1) on tiny faces."""
import hashlib
import json
import logging
import os

import cv2
import numpy as np
import pytest
import torch

from smfd_basicsr import prepare_basicsr

prepare_basicsr()

from smfd_data.augment import AugmentConfig, apply_geometric, geometric_matrix, sample_augmentation  # noqa: E402
from smfd_data.degradation import apply_degradation  # noqa: E402
from smfd_data.face_dataset import SMFDFaceDataset, decode_image  # noqa: E402
from smfd_data.face_labels import CLASS_INDEX, flip_lut, grouping_lut  # noqa: E402
from tests.helpers import REPO, run_python  # noqa: E402

L_EYE, R_EYE = CLASS_INDEX['l_eye'], CLASS_INDEX['r_eye']
# distinct colour per 19-class label (for images whose colour encodes the label)
LABEL_COLORS = np.array([((k * 37) % 256, (k * 91) % 256, (k * 151) % 256) for k in range(19)], dtype=np.uint8)


def face_labels(size, shift=0):
    """An asymmetric 19-class layout: skin, hair, nose, both eyes and brows, a hat."""
    labels = np.zeros((size, size), np.uint8)
    s = size / 40.0
    box = lambda y0, y1, x0, x1, c: labels.__setitem__(  # noqa: E731
        (slice(int(y0 * s), int(y1 * s)), slice(int(x0 * s) + shift, int(x1 * s) + shift)), c)
    box(0, 9, 4, 36, CLASS_INDEX['hair'])
    box(9, 38, 6, 34, CLASS_INDEX['skin'])
    box(12, 15, 9, 17, CLASS_INDEX['l_brow'])
    box(12, 15, 23, 31, CLASS_INDEX['r_brow'])
    box(16, 22, 9, 16, L_EYE)
    box(16, 22, 24, 31, R_EYE)
    box(20, 30, 18, 22, CLASS_INDEX['nose'])
    box(2, 8, 24, 33, CLASS_INDEX['hat'])  # off-centre: tells whether an augmented face was flipped
    return labels


def make_faces(root, n=4, size=40, colour_coded=False, ext='.png'):
    """A prepared layout (docs/design.md): images/, labels/, meta_info/all.txt with stems 000..."""
    rng = np.random.default_rng(1)
    for sub in ('images', 'labels', 'meta_info'):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    stems = []
    for i in range(n):
        stem = f'{i:03d}'
        labels = face_labels(size, shift=i % 3)
        if colour_coded:
            rgb = LABEL_COLORS[labels]
        else:
            noise = rng.integers(0, 256, (size // 4, size // 4, 3), dtype=np.uint8)
            rgb = cv2.resize(noise, (size, size), interpolation=cv2.INTER_LINEAR)
        cv2.imwrite(os.path.join(root, 'images', stem + ext), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        cv2.imwrite(os.path.join(root, 'labels', stem + '.png'), labels)
        stems.append(stem)
    with open(os.path.join(root, 'meta_info', 'all.txt'), 'w') as f:
        f.write('\n'.join(stems) + '\n')
    return str(root)


def dataset_opt(root, **overrides):
    opt = {'name': 'test', 'type': 'SMFDFaceDataset', 'phase': 'train', 'dataroot_gt': os.path.join(root, 'images'),
           'dataroot_mask': os.path.join(root, 'labels'), 'io_backend': {'type': 'disk'}, 'gt_size': 32,
           'deterministic': True, 'seed': 3}
    opt.update(overrides)
    return opt


def sample_digest(sample):
    h = hashlib.sha256()
    for key in ('lq', 'gt', 'mask'):
        h.update(sample[key].numpy().tobytes())
    h.update(sample['degradation'].encode())
    return h.hexdigest()


@pytest.fixture(scope='module')
def faces(tmp_path_factory):
    return make_faces(tmp_path_factory.mktemp('faces'))


# ------------------------------------------------------------------------------------------------ augmentation
def test_flip_is_exact_and_swaps_left_right_classes():
    labels = face_labels(40)
    img = np.random.default_rng(0).random((40, 40, 3), dtype=np.float32)
    params = dict(sample_augmentation(AugmentConfig.from_option(False), np.random.default_rng(0)), hflip=True)
    out_img, out_labels = apply_geometric(img, labels, params, flip_lut())
    np.testing.assert_array_equal(out_img, img[:, ::-1])
    np.testing.assert_array_equal(out_labels, flip_lut()[labels[:, ::-1]])
    # the left eye's pixels are now labelled right eye (and vice versa): counts move with the swap
    assert (out_labels == R_EYE).sum() == (labels == L_EYE).sum() > 0
    assert (out_labels[:, :20] == R_EYE).sum() == 0  # l_eye was at the image's left; mirrored to the right half


@pytest.mark.parametrize('hflip', [False, True])
def test_rotation_flip_crop_keep_a_marked_blob_on_its_label(hflip):
    labels = face_labels(40)
    ys, xs = np.nonzero(labels == L_EYE)
    cy, cx = ys.mean(), xs.mean()
    img = np.zeros((40, 40, 3), np.float32)
    yy, xx = np.mgrid[:40, :40]
    img[(yy - cy) ** 2 + (xx - cx) ** 2 <= 2.0 ** 2] = 1.0  # a white blob inside the left eye
    params = {'hflip': hflip, 'angle': 25.0, 'crop_scale': 0.85, 'crop_x': 0.3, 'crop_y': 0.7, 'brightness': 1.0,
              'contrast': 1.0}
    out_img, out_labels = apply_geometric(img, labels, params, flip_lut())
    blob = out_img[..., 0] > 0.5
    assert blob.sum() >= 6
    expected = R_EYE if hflip else L_EYE
    assert (out_labels[blob] == expected).all()
    # the blob lands where the affine maps the (flipped) eye centre
    src_x = 39 - cx if hflip else cx
    want = geometric_matrix(params, 40, 40) @ np.array([src_x, cy, 1.0])
    got = np.array([np.nonzero(blob)[1].mean(), np.nonzero(blob)[0].mean()])
    np.testing.assert_allclose(got, want, atol=0.6)


def test_augment_options_validate_and_switch_off():
    assert not AugmentConfig.from_option(False).enabled
    cfg = AugmentConfig.from_option({'hflip': False, 'rotation': 0})
    assert cfg.crop_scale == (0.8, 1.0) and cfg.brightness == (0.7, 1.3) and not cfg.hflip
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['rotate'\]"):
        AugmentConfig.from_option({'rotate': 10})
    with pytest.raises(ValueError, match='crop_scale'):
        AugmentConfig.from_option({'crop_scale': [0.5, 1.5]})
    # one part switched off does not change the values drawn for the others
    a = sample_augmentation(AugmentConfig(), np.random.default_rng(5))
    b = sample_augmentation(AugmentConfig.from_option({'hflip': False}), np.random.default_rng(5))
    assert a['angle'] == b['angle'] and a['brightness'] == b['brightness'] and not b['hflip']


def test_dataset_augmentation_keeps_image_and_mask_aligned(tmp_path):
    root = make_faces(tmp_path, n=6, colour_coded=True)
    ds = SMFDFaceDataset(dataset_opt(root, num_classes=19, mask_encoding='label',
                                     augment={'brightness': False, 'contrast': False}))
    changed = flips = 0
    for i in range(len(ds)):
        sample = ds[i]
        gt = np.round(sample['gt'].numpy().transpose(1, 2, 0) * 255)
        labels = sample['mask'].numpy()
        # label whose colour is nearest to each gt pixel
        dist = ((gt[:, :, None, :] - LABEL_COLORS[None, None].astype(np.float64)) ** 2).sum(-1)
        colour_label = dist.argmin(-1)
        # compare inside labelled parts, away from part borders (bilinear image vs nearest labels); the reflected
        # margin of a rotation is covered by tests/test_augment.py
        padded = np.pad(labels, 1, mode='edge')
        interior = labels != 0
        for dy in range(3):
            for dx in range(3):
                interior &= padded[dy:dy + 32, dx:dx + 32] == labels
        hat_x = np.nonzero(colour_label == CLASS_INDEX['hat'])[1]
        assert hat_x.size >= 4
        flipped = hat_x.mean() < 15.5
        flips += flipped
        expected = flip_lut()[colour_label] if flipped else colour_label  # flip swaps left/right labels
        assert (expected == labels)[interior].mean() > 0.98, i
        assert ((colour_label == L_EYE) & (labels == (R_EYE if flipped else L_EYE))).sum() >= 4
        plain = cv2.resize(cv2.imread(os.path.join(root, 'images', f'{i:03d}.png')), (32, 32),
                           interpolation=cv2.INTER_AREA)[..., ::-1]
        changed += not np.allclose(plain, gt, atol=2)
    assert changed >= 5 and 0 < flips < len(ds)  # the augmentation really moved (and sometimes flipped) pixels


def test_photometric_augmentation_changes_gt_and_lq_is_its_degradation(faces):
    opt = dataset_opt(faces, augment={'rotation': 0, 'hflip': False, 'crop_scale': False})
    augmented = SMFDFaceDataset(opt)[1]
    plain = SMFDFaceDataset(dataset_opt(faces, augment=False))[1]
    assert torch.equal(augmented['mask'], plain['mask'])  # photometric only: labels untouched
    ratio = augmented['gt'].mean() / plain['gt'].mean()
    assert 0.5 < ratio < 1.5 and abs(ratio - 1) > 1e-3
    params = json.loads(augmented['degradation'])
    lq = apply_degradation(augmented['gt'].numpy().transpose(1, 2, 0), params)
    np.testing.assert_allclose(augmented['lq'].numpy().transpose(1, 2, 0), lq, atol=1e-6)


# ------------------------------------------------------------------------------------------------ sample format
def test_sample_keys_onehot_label_and_gray(faces):
    sample = SMFDFaceDataset(dataset_opt(faces))[0]
    assert sample['lq'].shape == sample['gt'].shape == (3, 32, 32)
    assert sample['mask'].shape == (5, 32, 32) and sample['mask'].dtype == torch.float32
    assert torch.equal(sample['mask'].sum(0), torch.ones(32, 32))
    assert sample['lq_path'].endswith('000.png') and sample['index'] == 0
    assert 0 <= sample['lq'].min() and sample['lq'].max() <= 1
    assert not torch.allclose(sample['lq'], sample['gt'], atol=0.02)  # degraded

    label = SMFDFaceDataset(dataset_opt(faces, mask_encoding='label'))[0]
    assert label['mask'].dtype == torch.int64 and label['mask'].shape == (32, 32)
    assert torch.equal(label['mask'], sample['mask'].argmax(0))
    assert set(label['mask'].unique().tolist()) == {0, 1, 2, 3, 4}  # hat → wearings (2), hair → 4

    gray = SMFDFaceDataset(dataset_opt(faces, gray_lq=True))[0]
    assert gray['lq'].shape == (1, 32, 32)
    bt601 = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
    torch.testing.assert_close(gray['lq'][0], (sample['lq'] * bt601).sum(0), atol=1e-6, rtol=0)


def test_group_labels_follow_the_paper_grouping_without_augmentation(faces):
    sample = SMFDFaceDataset(dataset_opt(faces, mask_encoding='label', augment=False, gt_size=40))[0]
    labels = cv2.imread(os.path.join(faces, 'labels', '000.png'), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(sample['mask'].numpy(), grouping_lut()[labels])


def test_degrade_on_device_returns_sharp_lq_and_the_params(faces):
    host = SMFDFaceDataset(dataset_opt(faces))[2]
    device = SMFDFaceDataset(dataset_opt(faces, degrade_on_device=True))[2]
    assert torch.equal(device['lq'], device['gt']) and torch.equal(device['gt'], host['gt'])
    assert device['degradation'] == host['degradation']
    lq = apply_degradation(device['gt'].numpy().transpose(1, 2, 0), json.loads(device['degradation']))
    np.testing.assert_array_equal(lq, host['lq'].numpy().transpose(1, 2, 0))


def test_mask_root_pred_replaces_the_masks(faces, tmp_path):
    pred = tmp_path / 'pred'
    pred.mkdir()
    for i in range(4):
        cv2.imwrite(str(pred / f'{i:03d}.png'), np.full((32, 32), i % 5, np.uint8))  # at gt_size
    sample = SMFDFaceDataset(dataset_opt(faces, mask_root_pred=str(pred), mask_encoding='label', augment=False))[3]
    assert (sample['mask'] == 3).all()
    cv2.imwrite(str(pred / '001.png'), np.full((32, 32), 7, np.uint8))
    with pytest.raises(ValueError, match=r'pred[/\\]001\.png: label values \[7\] outside 0\.\.4'):
        SMFDFaceDataset(dataset_opt(faces, mask_root_pred=str(pred)))[1]
    os.remove(pred / '002.png')
    with pytest.raises(FileNotFoundError, match=r'002\.png: predicted mask missing'):
        SMFDFaceDataset(dataset_opt(faces, mask_root_pred=str(pred)))[2]


# ------------------------------------------------------------------------------------------------ determinism
def test_deterministic_across_instances_and_a_subprocess(faces):
    digests = [sample_digest(SMFDFaceDataset(dataset_opt(faces))[i]) for i in range(3)]
    assert digests == [sample_digest(SMFDFaceDataset(dataset_opt(faces))[i]) for i in range(3)]
    assert len(set(digests)) == 3
    code = ('from smfd_basicsr import prepare_basicsr; prepare_basicsr()\n'
            'from smfd_data.face_dataset import SMFDFaceDataset\n'
            'from tests.test_face_dataset import dataset_opt, sample_digest\n'
            f'ds = SMFDFaceDataset(dataset_opt({faces!r}))\n'
            'print(",".join(sample_digest(ds[i]) for i in range(3)))\n')
    out = run_python(['-c', code], cwd=REPO, env={'SMFD_NO_AUTOLOAD': '1'}).stdout.strip().splitlines()[-1]
    assert out.split(',') == digests
    other_seed = SMFDFaceDataset(dataset_opt(faces, seed=4))[0]
    assert sample_digest(other_seed) != digests[0]


def test_dataloader_two_workers_equals_zero_workers(faces):
    ds = SMFDFaceDataset(dataset_opt(faces))

    def collect(workers):
        loader = torch.utils.data.DataLoader(ds, batch_size=2, shuffle=False, num_workers=workers)
        return [(b['lq'], b['mask'], b['degradation']) for b in loader]

    serial, parallel = collect(0), collect(2)
    assert len(serial) == 2
    for (lq_a, mask_a, deg_a), (lq_b, mask_b, deg_b) in zip(serial, parallel):
        assert torch.equal(lq_a, lq_b) and torch.equal(mask_a, mask_b) and deg_a == deg_b


def test_train_randomness_follows_torch_seed_and_differs_between_workers(faces):
    ds = SMFDFaceDataset(dataset_opt(faces, deterministic=False))

    def draw(seed):
        torch.manual_seed(seed)
        fresh = SMFDFaceDataset(dataset_opt(faces, deterministic=False))
        return [fresh[0]['degradation'], fresh[0]['degradation']]

    first = draw(7)
    assert first == draw(7) and first != draw(8)
    assert first[0] != first[1]  # a new draw per call, not per index
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(ds, batch_size=1, num_workers=2)
    batches = [b['degradation'][0] for b in loader]
    assert batches[0] != batches[1]  # worker 0 and worker 1 do not share a random stream


# ------------------------------------------------------------------------------------------------ lmdb backend
def test_lmdb_backend_gives_the_same_samples_as_disk(faces, tmp_path):
    from smfd_data.lmdb_io import write_lmdb
    for sub in ('images', 'labels'):
        folder = os.path.join(faces, sub)
        items = {os.path.splitext(n)[0]: os.path.join(folder, n) for n in os.listdir(folder)}
        write_lmdb(str(tmp_path / f'{sub}.lmdb'), items)
    disk = SMFDFaceDataset(dataset_opt(faces))
    lmdb = SMFDFaceDataset(dataset_opt(faces, dataroot_gt=str(tmp_path / 'images.lmdb'),
                                       dataroot_mask=str(tmp_path / 'labels.lmdb'), io_backend={'type': 'lmdb'}))
    assert lmdb.stems == disk.stems == ['000', '001', '002', '003']
    for i in range(len(disk)):
        assert sample_digest(lmdb[i]) == sample_digest(disk[i])
    assert os.path.splitext(os.path.basename(lmdb[2]['lq_path']))[0] == '002'  # BasicSR's picture name
    # forked workers inherit this process' open LMDB environment and must reopen it for themselves
    loader = torch.utils.data.DataLoader(lmdb, batch_size=None, num_workers=2)
    assert [sample_digest(s) for s in loader] == [sample_digest(disk[i]) for i in range(len(disk))]
    listed = SMFDFaceDataset(dataset_opt(faces, dataroot_gt=str(tmp_path / 'images.lmdb'),
                                         dataroot_mask=str(tmp_path / 'labels.lmdb'), io_backend={'type': 'lmdb'},
                                         meta_info_file=os.path.join(faces, 'meta_info', 'all.txt')))
    assert sample_digest(listed[3]) == sample_digest(disk[3])
    missing = SMFDFaceDataset(dict(listed.opt, meta_info_file=None))
    missing.stems = ['000', 'nope']
    with pytest.raises(FileNotFoundError, match=r"images\.lmdb\[nope\]: key 'nope' not in the lmdb"):
        missing[1]


# ------------------------------------------------------------------------------------------------ bad data
def _write_bytes(path, content):
    with open(path, 'wb') as f:
        f.write(content)


def test_meta_info_file_selects_and_orders_stems(faces, tmp_path):
    meta = tmp_path / 'meta.txt'
    meta.write_text('# comment\n002.png (40,40,3) 1\n\n000\n')
    ds = SMFDFaceDataset(dataset_opt(faces, meta_info_file=str(meta)))
    assert ds.stems == ['002', '000'] and len(ds) == 2
    assert ds[0]['gt_path'].endswith('002.png') and ds[1]['index'] == 1


@pytest.mark.parametrize('case', ['garbage', 'truncated_png', 'truncated_jpg', 'empty'])
def test_unreadable_or_truncated_image_names_the_file(tmp_path, case):
    root = make_faces(tmp_path, n=2, ext='.jpg' if case == 'truncated_jpg' else '.png')
    ext = '.jpg' if case == 'truncated_jpg' else '.png'
    path = os.path.join(root, 'images', '001' + ext)
    content = open(path, 'rb').read()
    bad = {'garbage': b'not an image at all', 'truncated_png': content[:len(content) // 2],
           'truncated_jpg': content[:len(content) // 2], 'empty': b''}[case]
    _write_bytes(path, bad)
    ds = SMFDFaceDataset(dataset_opt(root))
    ds[0]  # the good one still loads
    message = {'garbage': 'cannot decode the image', 'truncated_png': 'truncated or corrupt PNG',
               'truncated_jpg': 'truncated or corrupt JPEG', 'empty': 'empty file'}[case]
    with pytest.raises(ValueError, match=rf'images[/\\]001\{ext}: {message}'):
        ds[1]


def test_missing_mask_and_missing_image_name_the_file(tmp_path):
    root = make_faces(tmp_path, n=3)
    os.remove(os.path.join(root, 'labels', '001.png'))
    with pytest.raises(FileNotFoundError, match=r'images[/\\]001\.png: no label map 001\.png'):
        SMFDFaceDataset(dataset_opt(root))
    meta = tmp_path / 'meta.txt'
    meta.write_text('000\n042\n')
    with pytest.raises(FileNotFoundError, match=rf'042\.\*: image listed in {meta} not found'):
        SMFDFaceDataset(dataset_opt(root, meta_info_file=str(meta)))


def test_mask_size_mismatch_and_out_of_range_labels(tmp_path):
    root = make_faces(tmp_path, n=3)
    cv2.imwrite(os.path.join(root, 'labels', '001.png'), np.zeros((40, 36), np.uint8))
    bad = face_labels(40)
    bad[0, 0], bad[1, 1] = 19, 200
    cv2.imwrite(os.path.join(root, 'labels', '002.png'), bad)
    ds = SMFDFaceDataset(dataset_opt(root))
    with pytest.raises(ValueError, match=r'labels[/\\]001\.png: label map size \(40, 36\) differs from the image '
                                         r'.*000|labels[/\\]001\.png: label map size \(40, 36\) differs'):
        ds[1]
    with pytest.raises(ValueError, match=r'labels[/\\]002\.png: label values \[19, 200\] outside 0\.\.18'):
        ds[2]


def test_colour_label_maps_are_refused_unless_gray(tmp_path):
    root = make_faces(tmp_path, n=2)
    labels = face_labels(40)
    cv2.imwrite(os.path.join(root, 'labels', '000.png'), np.repeat(labels[..., None], 3, axis=2))  # gray as RGB
    cv2.imwrite(os.path.join(root, 'labels', '001.png'), LABEL_COLORS[labels])
    ds = SMFDFaceDataset(dataset_opt(root, mask_encoding='label', augment=False, gt_size=40))
    np.testing.assert_array_equal(ds[0]['mask'].numpy(), grouping_lut()[labels])
    with pytest.raises(ValueError, match=r'labels[/\\]001\.png: label map has 3 channels with different values'):
        ds[1]


def test_palette_label_maps_give_their_indices(tmp_path):
    from PIL import Image
    root = make_faces(tmp_path, n=1)
    labels = face_labels(40)
    im = Image.fromarray(labels, mode='P')
    im.putpalette(LABEL_COLORS.flatten().tolist())
    im.save(os.path.join(root, 'labels', '000.png'))
    sample = SMFDFaceDataset(dataset_opt(root, mask_encoding='label', augment=False, gt_size=40))[0]
    np.testing.assert_array_equal(sample['mask'].numpy(), grouping_lut()[labels])


def test_empty_split_is_an_error(tmp_path):
    root = make_faces(tmp_path, n=1)
    meta = tmp_path / 'empty.txt'
    meta.write_text('\n# nothing\n')
    with pytest.raises(ValueError, match=rf'{meta}: empty split'):
        SMFDFaceDataset(dataset_opt(root, meta_info_file=str(meta)))
    os.makedirs(tmp_path / 'none')
    with pytest.raises(ValueError, match=r'none: empty split'):
        SMFDFaceDataset(dataset_opt(root, dataroot_gt=str(tmp_path / 'none')))


def test_input_conversions_gray_rgba_16bit():
    rgb = np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    bgr = rgb[..., ::-1]
    encode = lambda a: cv2.imencode('.png', a)[1].tobytes()  # noqa: E731
    np.testing.assert_array_equal(decode_image(encode(bgr), 'x.png'), rgb / np.float32(255))
    gray = decode_image(encode(rgb[..., 0]), 'g.png')
    assert gray.shape == (6, 5, 3) and (gray == gray[..., :1]).all()
    np.testing.assert_array_equal(gray[..., 0], rgb[..., 0] / np.float32(255))
    rgba = np.dstack([bgr, np.full((6, 5), 17, np.uint8)])  # alpha is dropped, not composited
    np.testing.assert_array_equal(decode_image(encode(rgba), 'a.png'), rgb / np.float32(255))
    deep = bgr.astype(np.uint16) * 257 + 1
    np.testing.assert_allclose(decode_image(encode(deep), 'd.png'), (rgb * 257.0 + 1) / 65535, atol=1e-7)


# ------------------------------------------------------------------------------------- degrade_at and seeds
POINT_BLUR = {'num_layers': [1], 'sequences': ['M'], 'motion_sizes': [41], 'motion_directions': ['horizontal'],
              'scale_range': [1.0, 1.0], 'noise_range': [0.0, 0.0]}  # one 41-px motion, nothing else


def point_source_faces(root, size=1024, block=4, at=(512, 400)):
    """One black size² face with a white block² square (one pixel of the size/block grid) and blank labels."""
    for sub in ('images', 'labels'):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    img = np.zeros((size, size, 3), np.uint8)
    img[at[0]:at[0] + block, at[1]:at[1] + block] = 255
    cv2.imwrite(os.path.join(root, 'images', '000.png'), img)
    cv2.imwrite(os.path.join(root, 'labels', '000.png'), np.zeros((size, size), np.uint8))
    return str(root)


def test_degrade_at_source_blurs_before_resizing_a_point_becomes_the_quarter_kernel(tmp_path):
    from smfd_data.blur_kernels import motion_kernel
    from smfd_data.degradation import scale_kernel
    root = point_source_faces(tmp_path)
    common = dict(gt_size=256, degradation=POINT_BLUR, mask_encoding='label', augment=False)
    source = SMFDFaceDataset(dataset_opt(root, degrade_at='source', **common))[0]
    output = SMFDFaceDataset(dataset_opt(root, degrade_at='output', **common))[0]
    np.testing.assert_array_equal(source['gt'].numpy(), output['gt'].numpy())  # same sharp face at 256²
    lq_source, lq_output = source['lq'].numpy()[0], output['lq'].numpy()[0]
    assert lq_source.sum() == pytest.approx(1.0, abs=1e-4) and lq_output.sum() == pytest.approx(1.0, abs=1e-4)
    # output: the 41-px kernel itself on the 256² grid (the point is one pixel there, at (128, 100))
    cols = np.nonzero(lq_output.sum(0) > 1e-6)[0]
    assert (cols.min(), cols.max()) == (80, 120)
    np.testing.assert_allclose(lq_output[128, 80:121], motion_kernel(41, 'horizontal')[20], atol=1e-6)
    # source: the kernel at 1024² scaled by 1/4: 11 columns, of the hand-computed weights 10/164 and 16/164
    cols = np.nonzero(lq_source.sum(0) > 1e-6)[0]
    assert (cols.min(), cols.max()) == (95, 105) and np.nonzero(lq_source.sum(1) > 1e-6)[0].tolist() == [128]
    np.testing.assert_allclose(lq_source[128, 95:106], scale_kernel(motion_kernel(41, 'horizontal'), 0.25)[5],
                               atol=1e-6)
    np.testing.assert_allclose(lq_source[128, [95, 100, 105]], [10 / 164, 16 / 164, 10 / 164], atol=1e-6)

    def spread(row):  # standard deviation of the horizontal profile in pixels
        x = np.arange(row.size)
        mean = (x * row).sum() / row.sum()
        return np.sqrt(((x - mean) ** 2 * row).sum() / row.sum())

    ratio = spread(lq_source[128]) / spread(lq_output[128])
    assert 0.24 < ratio < 0.26  # the blur is a quarter as wide
    params = json.loads(source['degradation'])
    assert params['source_shape'] == [1024, 1024] and params['output_shape'] == [256, 256]


def test_degrade_at_source_with_augmentation_moves_blurry_sharp_and_mask_together(tmp_path):
    root = make_faces(tmp_path, n=2, size=64, colour_coded=True)
    noise_free = {'num_layers': [1], 'sequences': ['M'], 'motion_sizes': [3], 'scale_range': [1.0, 1.0],
                  'noise_range': [0.0, 0.0]}
    opt = dataset_opt(root, degrade_at='source', num_classes=19, mask_encoding='label', degradation=noise_free,
                      augment={'rotation': 20, 'crop_scale': [0.8, 0.9], 'hflip': True, 'brightness': False,
                               'contrast': False})
    plain = SMFDFaceDataset(dict(opt, augment=False))
    augmented = SMFDFaceDataset(opt)
    for i in range(2):
        a = augmented[i]
        # the mask still describes the sharp face: each pixel's colour is its label's colour (interior pixels)
        gt = np.rint(a['gt'].numpy().transpose(1, 2, 0) * 255).astype(np.int32)
        labels = a['mask'].numpy().astype(np.uint8)
        box = np.ones((5, 5), np.uint8)
        interior = cv2.erode(labels, box) == cv2.dilate(labels, box)  # 5x5 neighbourhood of one label
        assert interior.sum() > 200
        assert (np.abs(gt[interior] - LABEL_COLORS[labels[interior]].astype(np.int32)).max(axis=1) <= 40).mean() > 0.97
        # blurry and sharp moved with the same warp: they stay as close as the unaugmented pair
        err_plain = np.abs(plain[i]['lq'].numpy() - plain[i]['gt'].numpy()).mean()
        err_aug = np.abs(a['lq'].numpy() - a['gt'].numpy()).mean()
        assert err_aug < 1.5 * err_plain + 1e-3


def test_degrade_at_option_is_checked(faces):
    with pytest.raises(ValueError, match=r"degrade_at must be one of \('source', 'output'\), got 'input'"):
        SMFDFaceDataset(dataset_opt(faces, degrade_at='input'))
    with pytest.raises(ValueError, match='degrade_at: source and degrade_on_device'):
        SMFDFaceDataset(dataset_opt(faces, degrade_at='source', degrade_on_device=True))


def test_degrade_at_output_is_the_default_and_unchanged(faces):
    a = SMFDFaceDataset(dataset_opt(faces))[1]
    b = SMFDFaceDataset(dataset_opt(faces, degrade_at='output'))[1]
    assert sample_digest(a) == sample_digest(b) and 'source_shape' not in json.loads(a['degradation'])


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_val_and_test_default_to_distinct_seeds_and_the_log_names_the_seed(faces):
    handler = _Records()
    logger = logging.getLogger('basicsr')
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)  # as basicsr.train's init_loggers sets it
    try:
        opt = {k: v for k, v in dataset_opt(faces).items() if k not in ('seed', 'deterministic')}
        val = SMFDFaceDataset(dict(opt, phase='val', name='my_val'))
        test = SMFDFaceDataset(dict(opt, phase='test', name='my_test'))
        fixed = SMFDFaceDataset(dict(opt, phase='test', name='fixed', seed=7))
        train = SMFDFaceDataset(dict(opt, phase='train', name='my_train'))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert (val.seed, test.seed, fixed.seed) == (0, 1, 7)
    assert val[0]['degradation'] != test[0]['degradation']  # image 0 gets a different blur in val and test
    log = '\n'.join(handler.lines)
    assert 'my_val [val]: 4 images, degradation seed 0 (default of the val phase)' in log
    assert 'my_test [test]: 4 images, degradation seed 1 (default of the test phase)' in log
    assert 'fixed [test]: 4 images, degradation seed 7 (option seed)' in log
    assert 'my_train [train]: 4 images, degradation drawn per load from the worker seed' in log
    assert train.seed == 0


def test_degrade_once_fixes_each_images_blur_while_augmentation_stays_per_load(faces):
    """The thesis' one generated blurred set (§3.4), augmented in real time (§3.4.6.1)."""
    augment = {'rotation': 30, 'hflip': True}
    once = SMFDFaceDataset(dataset_opt(faces, deterministic=False, degrade_once=True, augment=augment))
    fresh = SMFDFaceDataset(dataset_opt(faces, deterministic=False, augment=augment))
    torch.manual_seed(0)
    first, second = once[1], once[1]
    assert first['degradation'] == second['degradation']  # same blur for image 1 on every load
    assert not torch.equal(first['gt'], second['gt'])  # ... but a new augmentation each time
    assert fresh[1]['degradation'] != fresh[1]['degradation']
    assert once[1]['degradation'] != once[2]['degradation']
    # Without augmentation the sample is the deterministic (frozen-set) sample of the same seed, bit for bit.
    plain_once = SMFDFaceDataset(dataset_opt(faces, deterministic=False, degrade_once=True, augment=False))
    frozen = SMFDFaceDataset(dataset_opt(faces, augment=False))
    assert sample_digest(plain_once[2]) == sample_digest(frozen[2])
    with pytest.raises(ValueError, match='degrade_once and degrade_on_device'):
        SMFDFaceDataset(dataset_opt(faces, degrade_once=True, degrade_on_device=True))
