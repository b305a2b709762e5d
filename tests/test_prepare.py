"""scripts/prepare_celebamask_hq.py, scripts/parse_face_masks.py and smfd_data/lmdb_io.py on tiny trees."""
import os
import urllib.error

import cv2
import numpy as np
import pytest

from smfd_data import celebamask_hq as prep  # noqa: E402
from smfd_data.face_labels import CLASS_INDEX
from smfd_data.image_io import imread_checked
from smfd_data.lmdb_io import read_lmdb_image, write_lmdb
from smfd_data.synthetic_faces import generate_face_parts, rng_for_face, write_celebamask_tree
from smfd_inference import face_parsing as parse_face_masks  # noqa: E402
from smfd_models.checkpoint import WeightsUnavailable

SEED = 11
MASKS = 'CelebAMask-HQ-mask-anno'


def _tree(tmp_path, n=6):
    root = str(tmp_path / 'tree')
    write_celebamask_tree(root, n, seed=SEED, img_size=64, mask_size=64, progress=False)
    return root


def _overwrite_case(root):
    """Replace the masks of id 1 by hand-made ones whose merge is known: skin < nose < cloth in the order."""
    mask_dir = os.path.join(root, MASKS, '0')
    for name in os.listdir(mask_dir):
        if name.startswith('00001_'):
            os.remove(os.path.join(mask_dir, name))
    skin, nose, cloth = (np.zeros((64, 64), np.uint8) for _ in range(3))
    skin[8:40, 8:40] = 255
    nose[20:30, 20:50] = 255  # over the skin, and sticking out of it
    cloth[26:64, :] = 255  # over the bottom of both skin and nose
    for part, mask in (('skin', skin), ('nose', nose), ('cloth', cloth)):
        cv2.imwrite(os.path.join(mask_dir, f'00001_{part}.png'), mask)
    expected = np.zeros((64, 64), np.uint8)
    expected[8:40, 8:40] = CLASS_INDEX['skin']
    expected[20:30, 20:50] = CLASS_INDEX['nose']
    expected[26:64, :] = CLASS_INDEX['cloth']
    return expected


def _read(path):
    return cv2.imread(path, cv2.IMREAD_UNCHANGED)


def test_prepare_merges_writes_and_splits(tmp_path):
    root = _tree(tmp_path)
    expected1 = _overwrite_case(root)
    out = str(tmp_path / 'out')
    splits = prep.main(['-i', root, '-o', out, '--workers', '2', '--seed', '3'])
    stems = [f'{i:05d}' for i in range(6)]
    assert sorted(os.listdir(os.path.join(out, 'labels'))) == [f'{s}.png' for s in stems]
    assert np.array_equal(_read(os.path.join(out, 'labels', '00001.png')), expected1)
    for i in (0, 2, 5):  # same size: labels are the generator's exact labels, the image is the decoded JPEG
        _, _, labels = generate_face_parts(rng_for_face(SEED, i), 64)
        assert np.array_equal(_read(os.path.join(out, 'labels', f'{i:05d}.png')), labels)
        assert np.array_equal(_read(os.path.join(out, 'images', f'{i:05d}.png')),
                              cv2.imread(os.path.join(root, 'CelebA-HQ-img', f'{i}.jpg')))

    # meta files: test ∪ trainval = all, disjoint, 80:20; the folds' val sets partition trainval
    meta = {}
    for name in os.listdir(os.path.join(out, 'meta_info')):
        with open(os.path.join(out, 'meta_info', name)) as f:
            meta[name[:-4]] = f.read().split()
    assert meta == splits
    trainval, test = set(meta['trainval']), set(meta['test'])
    assert trainval | test == set(stems) and not trainval & test and len(test) == 1
    vals = [set(meta[f'fold{k}_val']) for k in range(1, 6)]
    assert set().union(*vals) == trainval and sum(len(v) for v in vals) == len(trainval)
    for k in range(1, 6):
        assert set(meta[f'fold{k}_train']) == trainval - vals[k - 1]
    assert meta['train'] == meta['fold1_train'] and meta['val'] == meta['fold1_val']
    assert prep.make_splits(stems, seed=3) == splits  # seeded


def test_prepare_resizes(tmp_path):
    root = _tree(tmp_path, n=2)
    out = str(tmp_path / 'out')
    prep.main(['-i', root, '-o', out, '--size', '32', '--workers', '1', '--folds', '2', '--test-ratio', '0'])
    _, _, labels = generate_face_parts(rng_for_face(SEED, 0), 64)
    assert _read(os.path.join(out, 'images', '00000.png')).shape == (32, 32, 3)
    assert np.array_equal(_read(os.path.join(out, 'labels', '00000.png')),
                          cv2.resize(labels, (32, 32), interpolation=cv2.INTER_NEAREST_EXACT))


def test_prepare_keep_source_keeps_the_image_resolution(tmp_path):
    """CelebAMask-HQ's layout: 1024² images, 512² masks; here 64² images, 32² masks. --keep-source keeps the image
    size (for degrade_at: source) and enlarges the labels to it; the default follows the masks."""
    root = str(tmp_path / 'tree')
    write_celebamask_tree(root, 2, seed=SEED, img_size=64, mask_size=32, progress=False)
    out, default = str(tmp_path / 'source'), str(tmp_path / 'default')
    common = ['-i', root, '--workers', '1', '--folds', '2', '--test-ratio', '0']
    prep.main(common + ['-o', out, '--keep-source'])
    prep.main(common + ['-o', default])
    stored = _read(os.path.join(root, 'CelebA-HQ-img', '0.jpg'))
    img, labels = _read(os.path.join(out, 'images', '00000.png')), _read(os.path.join(out, 'labels', '00000.png'))
    assert img.shape == (64, 64, 3) and labels.shape == (64, 64)
    assert np.array_equal(img, stored)  # the decoded source, not resampled
    small = _read(os.path.join(default, 'labels', '00000.png'))
    assert small.shape == (32, 32) and _read(os.path.join(default, 'images', '00000.png')).shape == (32, 32, 3)
    assert np.array_equal(labels, cv2.resize(small, (64, 64), interpolation=cv2.INTER_NEAREST_EXACT))
    before = os.path.getmtime(os.path.join(out, 'images', '00000.png'))
    prep.main(common + ['-o', out, '--keep-source'])  # resumes: complete source-size outputs are kept
    assert os.path.getmtime(os.path.join(out, 'images', '00000.png')) == before
    prep.main(common + ['-o', default, '--keep-source'])  # over a --size run: its 32² outputs are redone at 64²
    assert _read(os.path.join(default, 'images', '00000.png')).shape == (64, 64, 3)
    assert _read(os.path.join(default, 'labels', '00000.png')).shape == (64, 64)
    with pytest.raises(SystemExit):  # --size and --keep-source exclude each other
        prep.parse_args(common + ['-o', out, '--keep-source', '--size', '32'])


def test_prepare_resumes_and_redoes_corrupt_outputs(tmp_path):
    root = _tree(tmp_path, n=3)
    out = str(tmp_path / 'out')
    args = ['-i', root, '-o', out, '--workers', '1', '--folds', '2']
    prep.main(args)
    files = [os.path.join(out, sub, f'{i:05d}.png') for sub in ('images', 'labels') for i in range(3)]
    good = {p: _read(p) for p in files}
    stamps = {p: os.stat(p).st_mtime_ns for p in files}
    prep.main(args)
    assert {p: os.stat(p).st_mtime_ns for p in files} == stamps  # nothing rewritten
    broken = os.path.join(out, 'labels', '00002.png')
    with open(broken, 'r+b') as f:
        f.truncate(os.path.getsize(broken) // 2)
    with pytest.raises(ValueError, match='truncated'):
        imread_checked(broken)
    prep.main(args)
    assert np.array_equal(_read(broken), good[broken])
    assert os.stat(broken).st_mtime_ns != stamps[broken]
    assert all(os.stat(p).st_mtime_ns == stamps[p] for p in files if not p.endswith('labels/00002.png')
               and not p.endswith('images/00002.png'))


def test_prepare_lmdb_round_trip(tmp_path):
    root = _tree(tmp_path, n=3)
    out = str(tmp_path / 'out')
    args = ['-i', root, '-o', out, '--workers', '1', '--folds', '2', '--lmdb']
    prep.main(args)
    for sub in ('images', 'labels'):
        assert os.path.isfile(os.path.join(out, f'{sub}.lmdb', 'meta_info.txt'))
        for i in range(3):
            stem = f'{i:05d}'
            assert np.array_equal(read_lmdb_image(os.path.join(out, f'{sub}.lmdb'), stem),
                                  _read(os.path.join(out, sub, f'{stem}.png')))
    assert not any(name.endswith('.tmp.lmdb') for name in os.listdir(out))
    stamp = os.stat(os.path.join(out, 'images.lmdb', 'data.mdb')).st_mtime_ns
    prep.main(args)  # nothing new: the complete LMDBs are kept
    assert os.stat(os.path.join(out, 'images.lmdb', 'data.mdb')).st_mtime_ns == stamp


def test_write_lmdb_mixed_sizes_and_existing_target(tmp_path):
    small = np.zeros((8, 8, 3), np.uint8)  # BasicSR would size the map from this first image only
    big = np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)  # incompressible
    cv2.imwrite(str(tmp_path / 'a.png'), small)
    cv2.imwrite(str(tmp_path / 'b.png'), big)
    items = {'a': str(tmp_path / 'a.png'), 'b': str(tmp_path / 'b.png')}
    path = str(tmp_path / 'x.lmdb')
    assert write_lmdb(path, items) is True
    assert np.array_equal(read_lmdb_image(path, 'b'), big)
    assert write_lmdb(path, items) is False  # kept, no sys.exit
    assert write_lmdb(path, items, overwrite=True) is True
    assert np.array_equal(read_lmdb_image(path, 'a'), small)
    with pytest.raises(KeyError, match="no key 'c'"):
        read_lmdb_image(path, 'c')
    with pytest.raises(ValueError, match='must end with'):
        write_lmdb(str(tmp_path / 'x'), items)


def test_imread_checked_detects_truncation(tmp_path):
    img = np.random.default_rng(1).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    for ext in ('jpg', 'png'):
        path = str(tmp_path / f'a.{ext}')
        cv2.imwrite(path, img)
        data = open(path, 'rb').read()
        with open(path, 'wb') as f:
            f.write(data + b'trailing bytes')  # still complete: accepted
        assert imread_checked(path).shape == (24, 24, 3)
        with open(path, 'wb') as f:
            f.write(data[:len(data) * 2 // 3])
        with pytest.raises(ValueError, match=f'a.{ext}: truncated'):
            imread_checked(path)
    with pytest.raises(FileNotFoundError, match='missing.png: file not found'):
        imread_checked(str(tmp_path / 'missing.png'))


def test_bad_inputs_name_the_file(tmp_path):
    root = _tree(tmp_path)
    out = str(tmp_path / 'out')
    os.remove(os.path.join(root, 'CelebA-HQ-img', '3.jpg'))
    with pytest.raises(ValueError, match=r'00003_\w+\.png: no image .*3\.jpg'):
        prep.main(['-i', root, '-o', out, '--workers', '1'])
    jpg = os.path.join(root, 'CelebA-HQ-img', '4.jpg')
    with open(jpg, 'r+b') as f:
        f.truncate(os.path.getsize(jpg) - 100)
    mask = os.path.join(root, MASKS, '0', '00002_skin.png')
    with open(mask, 'wb') as f:
        f.write(b'not a png at all')
    with pytest.raises(ValueError, match='--skip-bad'):
        prep.main(['-i', root, '-o', out, '--workers', '1'])
    stem, status, message = prep.prepare_sample(
        ('00004', jpg, {'skin': os.path.join(root, MASKS, '0', '00004_skin.png')}, out, None))
    assert status == 'error' and message.startswith(f'{jpg}: truncated')
    splits = prep.main(['-i', root, '-o', out, '--workers', '2', '--skip-bad', '--folds', '2'])
    assert sorted(splits['trainval'] + splits['test']) == ['00000', '00001', '00005']
    with open(os.path.join(out, 'meta_info', 'bad_samples.txt')) as f:
        listing = f.read()
    assert '3.jpg' in listing and '4.jpg: truncated' in listing and '00002_skin.png' in listing


# --- scripts/parse_face_masks.py: wiring with a randomly initialised facexlib net (no weights here) ---

def _faces(tmp_path, sizes=((40, 48), (40, 48))):
    folder = tmp_path / 'faces'
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(sizes):
        cv2.imwrite(str(folder / f'face_{i}.png'), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    return str(folder)


def test_parse_folder_with_random_bisenet(tmp_path):
    net = parse_face_masks.build_parsing_net('bisenet', pretrained=False)
    faces = parse_face_masks.list_faces(_faces(tmp_path))
    out = str(tmp_path / 'out')
    ok, counts, bad = parse_face_masks.parse_folder(faces, out, net, 'bisenet', parse_size=64, batch_size=2)
    assert ok == ['face_0', 'face_1'] and counts == {'done': 2, 'skipped': 0} and not bad
    labels = _read(os.path.join(out, 'labels', 'face_0.png'))
    assert labels.shape == (40, 48) and labels.max() < 19
    assert _read(os.path.join(out, 'images', 'face_0.png')).shape == (40, 48, 3)
    splits = prep.finish_prepared(out, ok, folds=2, test_ratio=0)
    assert splits['trainval'] == ok
    _, counts, _ = parse_face_masks.parse_folder(faces, out, net, 'bisenet', parse_size=64)
    assert counts == {'done': 0, 'skipped': 2}  # resumable


def test_bisenet_classes_are_remapped_to_celebamask(tmp_path):
    import torch

    class Constant(torch.nn.Module):  # always predicts one BiSeNet class
        def __init__(self, cls):
            super().__init__()
            self.cls = cls

        def forward(self, x):
            logits = torch.zeros(x.shape[0], 19, x.shape[2], x.shape[3])
            logits[:, self.cls] = 1
            return logits, None, None

    img = np.zeros((16, 16, 3), np.uint8)
    for bisenet_class, name in ((17, 'hair'), (2, 'l_brow'), (10, 'nose'), (15, 'neck_l')):
        labels = parse_face_masks.parse_batch(Constant(bisenet_class), [img], 'bisenet', parse_size=32)[0]
        assert labels.shape == (16, 16) and (labels == CLASS_INDEX[name]).all(), name
    labels = parse_face_masks.parse_batch(Constant(13), [img], 'parsenet', parse_size=512)[0]
    assert (labels == 13).all()  # ParseNet already uses CelebAMask-HQ's order


def test_offline_weights_error_names_url_and_cache(tmp_path, monkeypatch):
    import torch.hub

    def offline(url, dst, *args, **kwargs):
        raise urllib.error.URLError('no network')

    monkeypatch.setattr(torch.hub, 'download_url_to_file', offline)
    cache = str(tmp_path / 'cache')
    with pytest.raises(WeightsUnavailable) as err:
        parse_face_masks.build_parsing_net('bisenet', weights_dir=cache)
    message = str(err.value)
    assert parse_face_masks.PARSING_MODELS['bisenet']['url'] in message
    assert os.path.join(cache, 'parsing_bisenet.pth') in message
    assert not os.listdir(cache)  # nothing half-written
