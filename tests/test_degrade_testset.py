"""scripts/degrade_testset.py (smfd_data.degraded_dataset) writes a seeded, byte-reproducible degraded set;
SMFDDegradedFolderDataset reads it."""
import filecmp
import json
import os

import cv2
import numpy as np
import pytest
import torch

from smfd_basicsr import prepare_basicsr

prepare_basicsr()

from smfd_data.degradation import blur_ops, kernel_for_op  # noqa: E402
from smfd_data.degraded_dataset import SMFDDegradedFolderDataset, write_degraded_set  # noqa: E402
from smfd_data.face_dataset import SMFDFaceDataset  # noqa: E402
from smfd_data.face_labels import colorize  # noqa: E402
from tests.helpers import REPO, run_python, write_yaml  # noqa: E402
from tests.test_face_dataset import dataset_opt, make_faces  # noqa: E402

SCRIPT = os.path.join(REPO, 'scripts', 'degrade_testset.py')


@pytest.fixture(scope='module')
def option_file(tmp_path_factory):
    root = make_faces(tmp_path_factory.mktemp('faces'), n=4)
    train = dataset_opt(root, deterministic=False)
    test = dataset_opt(root, name='test', augment={'rotation': 10}, seed=11, gray_lq=True)  # overridden by the script
    test.pop('phase')
    opt = {'name': 'tiny', 'datasets': {'train': train, 'val_1': dict(test, seed=12), 'test_1': test}}
    return write_yaml(tmp_path_factory.mktemp('opt') / 'opt.yml', opt), root


def tree(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, files in os.walk(folder) for f in files)


def test_two_runs_are_byte_identical_and_match_the_dataset(option_file, tmp_path):
    opt_path, root = option_file
    first, second = tmp_path / 'a', tmp_path / 'b'
    run_python([SCRIPT, '-opt', opt_path, '-o', str(first), '--limit', '3'], cwd=tmp_path)
    write_degraded_set(opt_path, str(second), limit=3, num_workers=2)
    files = tree(first)
    assert files == tree(second)
    assert files == sorted(f'{sub}/{i:03d}.{ext}' for i in range(3) for sub, ext in
                           [('lq', 'png'), ('gt', 'png'), ('labels', 'png'), ('labels_color', 'png'),
                            ('kernels', 'npz')]) + ['params.json']
    _, mismatch, errors = filecmp.cmpfiles(first, second, files, shallow=False)
    assert not mismatch and not errors
    assert not [n for n in os.listdir(tmp_path) if '.tmp-' in n or '.old-' in n]  # no staging left behind

    # same pixels as the deterministic, unaugmented dataset of the test phase (8-bit rounding only)
    meta = json.loads((first / 'params.json').read_text())
    assert meta['num_classes'] == 5 and meta['seed'] == 11 and meta['source']['dataset'] == 'test_1'
    reference = SMFDFaceDataset(dataset_opt(root, phase='test', seed=11, mask_encoding='label'))
    for i, record in enumerate(meta['images']):
        sample = reference[i]
        assert record['stem'] == f'{i:03d}' and record['index'] == i and record['seed'] == 11
        assert json.loads(sample['degradation']) == record['degradation']
        lq = cv2.imread(str(first / 'lq' / f'{i:03d}.png'))[..., ::-1] / 255.0
        np.testing.assert_allclose(lq.transpose(2, 0, 1), sample['lq'].numpy(), atol=0.5 / 255 + 1e-6)
        labels = cv2.imread(str(first / 'labels' / f'{i:03d}.png'), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(labels, sample['mask'].numpy())
        color = cv2.imread(str(first / 'labels_color' / f'{i:03d}.png'))[..., ::-1]
        np.testing.assert_array_equal(color, colorize(labels, num_classes=5))
        with np.load(first / 'kernels' / f'{i:03d}.npz') as kernels:
            ops = blur_ops(record['degradation'])
            assert sorted(kernels.files) == sorted([f'k{j:02d}' for j in range(len(ops))] + ['composed'])
            for j, op in enumerate(ops):
                np.testing.assert_array_equal(kernels[f'k{j:02d}'], kernel_for_op(op))
            composed = kernels['composed']
            assert composed.shape[0] == sum(kernel_for_op(op).shape[0] - 1 for op in ops) + 1
            assert abs(float(composed.sum()) - 1) < 1e-4


def test_rerun_replaces_a_set_and_val_phase_uses_its_own_options(option_file, tmp_path):
    opt_path, _ = option_file
    out = tmp_path / 'set'
    write_degraded_set(opt_path, str(out), limit=4, kernels=False)
    assert len(os.listdir(out / 'lq')) == 4 and not (out / 'kernels').exists()
    write_degraded_set(opt_path, str(out), phase='val', limit=2)
    meta = json.loads((out / 'params.json').read_text())
    assert meta['seed'] == 12 and meta['source']['dataset'] == 'val_1'
    assert sorted(os.listdir(out / 'lq')) == ['000.png', '001.png']  # the old, larger set is gone


def test_refuses_foreign_folders_and_missing_phase(option_file, tmp_path):
    opt_path, _ = option_file
    foreign = tmp_path / 'photos'
    foreign.mkdir()
    (foreign / 'keep.jpg').write_bytes(b'x')
    refused = run_python([SCRIPT, '-opt', opt_path, '-o', str(foreign)], check=False)
    assert refused.returncode == 1 and 'is not a degraded set' in refused.stderr and (foreign / 'keep.jpg').exists()
    only_train = write_yaml(tmp_path / 'train_only.yml', {'datasets': {'train': {'type': 'SMFDFaceDataset'}}})
    with pytest.raises(ValueError, match="no datasets.<name> starting with 'test'"):
        write_degraded_set(only_train, str(tmp_path / 'x'))


def test_degraded_folder_dataset_reads_the_set(option_file, tmp_path):
    opt_path, _ = option_file
    out = tmp_path / 'set'
    write_degraded_set(opt_path, str(out), limit=3, kernels=False)
    meta = json.loads((out / 'params.json').read_text())
    ds = SMFDDegradedFolderDataset({'dataroot': str(out), 'phase': 'test'})
    assert len(ds) == 3
    sample = ds[2]
    assert sample['lq'].shape == sample['gt'].shape == (3, 32, 32) and sample['mask'].shape == (5, 32, 32)
    assert torch.equal(sample['mask'].sum(0), torch.ones(32, 32))
    assert json.loads(sample['degradation']) == meta['images'][2]['degradation']
    assert sample['lq_path'].endswith(os.path.join('lq', '002.png')) and sample['index'] == 2
    lq = cv2.imread(str(out / 'lq' / '002.png'))[..., ::-1].transpose(2, 0, 1) / np.float32(255)
    np.testing.assert_array_equal(sample['lq'].numpy(), lq)
    labels = cv2.imread(str(out / 'labels' / '002.png'), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(sample['mask'].argmax(0).numpy(), labels)

    gray = SMFDDegradedFolderDataset({'dataroot': str(out), 'gray_lq': True, 'mask_encoding': 'label'})[2]
    assert gray['lq'].shape == (1, 32, 32) and gray['mask'].dtype == torch.int64

    meta_file = tmp_path / 'subset.txt'
    meta_file.write_text('001\n')
    subset = SMFDDegradedFolderDataset({'dataroot': str(out), 'meta_info_file': str(meta_file)})
    assert len(subset) == 1 and subset[0]['gt_path'].endswith('001.png')

    pred = tmp_path / 'pred'
    pred.mkdir()
    for i in range(3):
        cv2.imwrite(str(pred / f'{i:03d}.png'), np.full((32, 32), 4, np.uint8))
    predicted = SMFDDegradedFolderDataset({'dataroot': str(out), 'mask_root_pred': str(pred), 'mask_encoding': 'label'})
    assert (predicted[1]['mask'] == 4).all()

    os.remove(out / 'gt' / '001.png')
    with pytest.raises(FileNotFoundError, match=r'gt[/\\]001\.png: file not found'):
        ds[1]
    with pytest.raises(FileNotFoundError, match=r'params\.json: not a degraded set'):
        SMFDDegradedFolderDataset({'dataroot': str(tmp_path)})
    with pytest.raises(ValueError, match='num_classes=19 but .*params.json was written with 5 classes'):
        SMFDDegradedFolderDataset({'dataroot': str(out), 'num_classes': 19})


# ------------------------------------------------------------------------- the frozen training set (issue 10)
def test_frozen_training_set_two_builds_are_bit_identical_and_one_copy_per_index(option_file, tmp_path):
    opt_path, root = option_file
    first, second = tmp_path / 'a', tmp_path / 'b'
    run_python([SCRIPT, '-opt', opt_path, '--phase', 'train', '-o', str(first), '--no-kernels'], cwd=tmp_path)
    write_degraded_set(opt_path, str(second), phase='train', kernels=False, num_workers=2, resume=True)
    files = tree(first)
    assert files == tree(second) and 'params.json' in files and '.smfd-build.json' not in files
    assert sorted(f for f in files if f.startswith('records/')) == [f'records/{i:03d}.json' for i in range(4)]
    _, mismatch, errors = filecmp.cmpfiles(first, second, files, shallow=False)
    assert not mismatch and not errors
    # image i is degraded once, with rng_for_sample(seed, i) of the train dataset (deterministic, unaugmented)
    meta = json.loads((first / 'params.json').read_text())
    assert meta['source']['phase'] == 'train' and meta['seed'] == 3 and meta['build']['phase'] == 'train'
    reference = SMFDFaceDataset(dataset_opt(root, augment=False, mask_encoding='label'))
    for i, record in enumerate(meta['images']):
        assert json.loads(reference[i]['degradation']) == record['degradation'] and record['index'] == i


def test_an_interrupted_frozen_build_resumes_to_the_same_bytes(option_file, tmp_path, monkeypatch):
    from smfd_data import degraded_dataset
    opt_path, _ = option_file
    clean, broken = tmp_path / 'clean', tmp_path / 'broken'
    write_degraded_set(opt_path, str(clean), phase='train', resume=True)
    real = degraded_dataset.write_sample
    calls = []

    def dies_on_the_third(folder, stem, *args):
        if len(calls) == 2:
            # what a save killed mid-write leaves: atomic_io's temporary of a process that is gone
            (tmp_path / 'broken' / 'lq' / f'.{stem}.png.{2 ** 22 + 7}.abcd1234.tmp').write_bytes(b'half')
            raise KeyboardInterrupt
        calls.append(stem)
        return real(folder, stem, *args)

    monkeypatch.setattr(degraded_dataset, 'write_sample', dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        write_degraded_set(opt_path, str(broken), phase='train', resume=True)
    monkeypatch.setattr(degraded_dataset, 'write_sample', real)
    assert (broken / '.smfd-build.json').exists() and not (broken / 'params.json').exists()
    assert sorted(os.listdir(broken / 'records')) == ['000.json', '001.json']  # what was finished is kept
    # another seed must not continue this build
    with pytest.raises(ValueError, match='was built from other options'):
        write_degraded_set(opt_path, str(broken), phase='train', seed=99, resume=True)
    (broken / 'gt' / '001.png').write_bytes(b'\x89PNG broken')  # and a damaged finished sample is redone
    written = []
    monkeypatch.setattr(degraded_dataset, 'write_sample', lambda folder, stem, *a: written.append(stem) or
                        real(folder, stem, *a))
    write_degraded_set(opt_path, str(broken), phase='train', resume=True)
    assert written == ['001', '002', '003']
    files = tree(clean)
    assert files == tree(broken)
    _, mismatch, errors = filecmp.cmpfiles(clean, broken, files, shallow=False)
    assert not mismatch and not errors
    written.clear()
    write_degraded_set(opt_path, str(broken), phase='train', resume=True)  # a finished set: nothing to redo
    assert written == []


def test_frozen_set_reader_augments_blurry_sharp_and_mask_jointly(tmp_path):
    from smfd_data.augment import AugmentConfig, augment_degraded
    from smfd_data.face_labels import flip_lut
    from tests.test_face_dataset import LABEL_COLORS
    root = make_faces(tmp_path / 'faces', n=2, size=48, colour_coded=True)
    train = dataset_opt(root, gt_size=48, num_classes=19, degradation={
        'num_layers': [1], 'sequences': ['M'], 'motion_sizes': [3], 'scale_range': [1.0, 1.0],
        'noise_range': [0.0, 0.0]})
    opt_path = write_yaml(tmp_path / 'opt.yml', {'datasets': {'train': train}})
    out = tmp_path / 'frozen'
    write_degraded_set(opt_path, str(out), phase='train', kernels=False, resume=True)
    augment = {'rotation': 20, 'hflip': True, 'crop_scale': [0.8, 0.9], 'brightness': False, 'contrast': False}
    plain = SMFDDegradedFolderDataset({'dataroot': str(out), 'phase': 'test', 'mask_encoding': 'label'})
    ds = SMFDDegradedFolderDataset({'dataroot': str(out), 'phase': 'train', 'mask_encoding': 'label',
                                    'augment': augment})
    assert ds.flip_lut is not None and (ds.flip_lut == flip_lut()).all()  # 19 stored classes swap left/right
    torch.manual_seed(5)
    a, b = ds[0], ds[0]
    assert not torch.equal(a['gt'], b['gt'])  # a new draw per load, the same frozen blur underneath
    # the same call by hand: one draw moves blurry, sharp and labels
    p = plain[0]
    rng = np.random.default_rng(torch.initial_seed())
    lq, gt, labels, _ = augment_degraded(p['lq'].numpy().transpose(1, 2, 0), p['gt'].numpy().transpose(1, 2, 0),
                                         p['mask'].numpy().astype(np.uint8), AugmentConfig.from_option(augment), rng,
                                         flip_lut())
    np.testing.assert_array_equal(a['lq'].numpy(), lq.transpose(2, 0, 1))
    np.testing.assert_array_equal(a['gt'].numpy(), gt.transpose(2, 0, 1))
    np.testing.assert_array_equal(a['mask'].numpy(), labels)
    # and the mask still describes the sharp picture (colour-coded faces: colour = label colour, up to a flip swap)
    gt8 = np.rint(a['gt'].numpy().transpose(1, 2, 0) * 255).astype(np.int32)
    lab = a['mask'].numpy().astype(np.uint8)
    box = np.ones((5, 5), np.uint8)
    inside = cv2.erode(lab, box) == cv2.dilate(lab, box)
    colours = np.stack([LABEL_COLORS[lab], LABEL_COLORS[flip_lut()[lab]]]).astype(np.int32)
    close = (np.abs(gt8[None] - colours).max(-1) <= 40).any(0)
    assert close[inside].mean() > 0.97
    # validation/test phases read the frozen copy as it is
    assert torch.equal(SMFDDegradedFolderDataset({'dataroot': str(out), 'phase': 'val', 'augment': augment})[0]['gt'],
                       SMFDDegradedFolderDataset({'dataroot': str(out)})[0]['gt'])
