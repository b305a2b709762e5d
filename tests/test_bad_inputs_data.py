"""Bad-input corpus, data side: interrupted LMDB rebuilds, masks of another size, killed saves, permissions
(issue 14 item 3 and its "smaller ones"). Trees are made here, tiny; everything runs in-process."""
import os
import re
import stat
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest

from smfd_data import atomic_io
from smfd_data import celebamask_hq as prep
from smfd_data.lmdb_io import read_lmdb_image, write_lmdb
from smfd_data.synthetic_faces import write_celebamask_tree
from tests.helpers import REPO

MASKS = 'CelebAMask-HQ-mask-anno'


def _tree(tmp_path, n=3, img_size=32, mask_size=32):
    return write_celebamask_tree(str(tmp_path / 'tree'), n, seed=5, img_size=img_size, mask_size=mask_size,
                                 progress=False)


def _lmdb_matches_pngs(out, stems):
    return all(np.array_equal(read_lmdb_image(os.path.join(out, f'{sub}.lmdb'), s),
                              cv2.imread(os.path.join(out, sub, f'{s}.png'), cv2.IMREAD_UNCHANGED))
               for sub in ('images', 'labels') for s in stems)


class Interrupted(KeyboardInterrupt):
    pass


@pytest.mark.parametrize('when', ['before_build', 'after_build'])
def test_interrupted_lmdb_rebuild_is_redone_on_the_rerun(tmp_path, monkeypatch, when):
    """Issue 14 item 3: one sample re-prepared, the LMDB rebuild interrupted; the rerun must not keep the stale
    LMDB ("already holds these images; kept") nor leave *.tmp.lmdb behind."""
    from basicsr.utils import lmdb_util
    root = _tree(tmp_path)
    out = str(tmp_path / 'out')
    args = ['-i', root, '-o', out, '--workers', '1', '--folds', '2', '--lmdb']
    prep.main(args)
    stems = [f'{i:05d}' for i in range(3)]
    # the source of sample 1 changes (a corrected photo) and its outputs are removed: the next run re-prepares it
    jpg = os.path.join(root, 'CelebA-HQ-img', '1.jpg')
    cv2.imwrite(jpg, 255 - cv2.imread(jpg))
    for sub in ('images', 'labels'):
        os.remove(os.path.join(out, sub, '00001.png'))

    real = lmdb_util.make_lmdb_from_imgs

    def interrupted(*a, **kw):
        if when == 'after_build':
            real(*a, **kw)
        raise Interrupted()

    monkeypatch.setattr(lmdb_util, 'make_lmdb_from_imgs', interrupted)
    with pytest.raises(Interrupted):
        prep.main(args)
    assert not _lmdb_matches_pngs(out, stems), 'the test must leave a stale LMDB behind'
    monkeypatch.setattr(lmdb_util, 'make_lmdb_from_imgs', real)
    prep.main(args)  # nothing left to prepare: only the sources tell that the LMDB is stale
    assert _lmdb_matches_pngs(out, stems)
    assert sorted(n for n in os.listdir(out) if n.endswith('.lmdb')) == ['images.lmdb', 'labels.lmdb']
    stamp = os.stat(os.path.join(out, 'images.lmdb', 'data.mdb')).st_mtime_ns
    prep.main(args)  # now current: kept
    assert os.stat(os.path.join(out, 'images.lmdb', 'data.mdb')).st_mtime_ns == stamp


def test_write_lmdb_rebuilds_when_a_source_changes_and_cleans_leftovers(tmp_path, capsys):
    a, b = tmp_path / 'a.png', tmp_path / 'b.png'
    cv2.imwrite(str(a), np.zeros((8, 8, 3), np.uint8))
    cv2.imwrite(str(b), np.full((8, 8, 3), 7, np.uint8))
    items = {'a': str(a), 'b': str(b)}
    path = str(tmp_path / 'x.lmdb')
    (tmp_path / 'x.tmp.lmdb').mkdir()  # from a killed build
    (tmp_path / 'x.old.lmdb').mkdir()
    assert write_lmdb(path, items) is True
    assert not (tmp_path / 'x.tmp.lmdb').exists() and not (tmp_path / 'x.old.lmdb').exists()
    assert write_lmdb(path, items) is False and 'kept' in capsys.readouterr().out
    cv2.imwrite(str(b), np.full((8, 8, 3), 9, np.uint8))  # same name, same size, new content
    os.utime(b, ns=(os.stat(b).st_atime_ns, os.stat(b).st_mtime_ns + 10**9))
    assert write_lmdb(path, items) is True
    assert int(read_lmdb_image(path, 'b')[0, 0, 0]) == 9


@pytest.mark.parametrize('img_size, mask_size, refused', [
    ((32, 32), (16, 16), False),  # CelebAMask-HQ itself: 1024² images, 512² masks → resized
    ((32, 32), (16, 24), True),   # another aspect ratio: stretching would move the parts
    ((32, 48), (32, 32), True),
])
def test_mask_of_another_size_than_its_image(tmp_path, img_size, mask_size, refused, capsys):
    root = _tree(tmp_path, n=4)
    jpg = os.path.join(root, 'CelebA-HQ-img', '0.jpg')
    cv2.imwrite(jpg, cv2.resize(cv2.imread(jpg), img_size[::-1]))
    mask_dir = os.path.join(root, MASKS, '0')
    for name in os.listdir(mask_dir):
        if name.startswith('00000_'):
            p = os.path.join(mask_dir, name)
            cv2.imwrite(p, cv2.resize(cv2.imread(p, cv2.IMREAD_UNCHANGED), mask_size[::-1],
                                      interpolation=cv2.INTER_NEAREST))
    out = str(tmp_path / 'out')
    if refused:
        with pytest.raises(ValueError, match=r'00000_\w+\.png: mask is \d+x\d+, its image .*0\.jpg is \d+x\d+ '
                                             r'\(another aspect ratio\): refusing to stretch it'):
            prep.main(['-i', root, '-o', out, '--workers', '1', '--folds', '2'])
        assert not os.path.exists(os.path.join(out, 'images', '00000.png'))
        prep.main(['-i', root, '-o', out, '--workers', '1', '--folds', '2', '--skip-bad'])
        assert sorted(os.listdir(os.path.join(out, 'images'))) == ['00001.png', '00002.png', '00003.png']
    else:
        prep.main(['-i', root, '-o', out, '--workers', '1', '--folds', '2'])
        assert cv2.imread(os.path.join(out, 'images', '00000.png')).shape == (*mask_size, 3)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize('umask', [0o022, 0o002, 0o077])
def test_written_files_get_umask_permissions(tmp_path, umask, monkeypatch):
    atomic_io._default_mode.cache_clear()
    old = os.umask(umask)
    try:
        atomic_io.atomic_write_text(tmp_path / 'report.txt', 'x')
        from smfd_models.checkpoint import atomic_torch_save
        atomic_torch_save({'a': 1}, tmp_path / 'net.pth')
        from smfd_data.image_io import imwrite_atomic
        imwrite_atomic(str(tmp_path / 'out.png'), np.zeros((4, 4, 3), np.uint8))
        # a named writer, also one that puts a new file (mode 0600) at the temporary name, durable or not
        atomic_io.atomic_write_named(tmp_path / 'named.mp4', lambda p: open(p, 'wb').write(b'video'))
        atomic_io.atomic_write_named(tmp_path / 'swapped.bin', lambda p: _replace_with_private_file(p, b'new'))
        with atomic_io.fsync_off():
            atomic_io.atomic_write_named(tmp_path / 'fast.bin', lambda p: _replace_with_private_file(p, b'fast'))
    finally:
        os.umask(old)
        atomic_io._default_mode.cache_clear()
    for name in ('report.txt', 'net.pth', 'out.png', 'named.mp4', 'swapped.bin', 'fast.bin'):
        assert _mode(tmp_path / name) == 0o666 & ~umask, name
    assert (tmp_path / 'swapped.bin').read_bytes() == b'new' and (tmp_path / 'fast.bin').read_bytes() == b'fast'
    assert [n for n in os.listdir(tmp_path) if '.tmp' in n] == []


def _replace_with_private_file(path, data):
    other = f'{path}.other'
    with open(os.open(other, os.O_WRONLY | os.O_CREAT, 0o600), 'wb') as f:
        f.write(data)
    os.replace(other, path)


def test_a_failing_writer_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    for write in (lambda p: atomic_io.atomic_write(p, lambda f: (f.write(b'PART'), 1 / 0)),
                  lambda p: atomic_io.atomic_write_named(p, lambda name: (open(name, 'wb').write(b'PART'), 1 / 0))):
        target = tmp_path / 'weights.pth'
        atomic_io.atomic_write_bytes(target, b'old')
        with pytest.raises(ZeroDivisionError):
            write(target)
        assert target.read_bytes() == b'old' and os.listdir(tmp_path) == ['weights.pth']


def _dead_pid():
    proc = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], capture_output=True, text=True)
    return int(proc.stdout)


def test_killed_save_leftovers_are_cleaned_but_not_live_ones(tmp_path):
    folder = tmp_path / 'models'
    folder.mkdir()
    dead = _dead_pid()
    stale = folder / f'.net_g_4.pth.{dead}.abcd1234.tmp'
    live = folder / f'.net_g_4.pth.{os.getppid()}.abcd1234.tmp'  # pytest's parent: alive
    legacy_old = folder / '.net_g_2.pth.k3j_9x0q.tmp'  # written before pids were recorded, before this run
    foreign = folder / '.notes.tmp'
    user = folder / 'keep.tmp'
    for p in (stale, live, legacy_old, foreign, user):
        p.write_bytes(b'')
    os.utime(legacy_old, (atomic_io._STARTED - 60, atomic_io._STARTED - 60))
    atomic_io._cleaned_folders.discard(str(folder))
    atomic_io.atomic_write_bytes(folder / 'net_g_6.pth', b'new')
    assert sorted(os.listdir(folder)) == sorted([live.name, foreign.name, user.name, 'net_g_6.pth'])


def test_sigkill_during_save_keeps_the_old_file_and_the_next_run_cleans_up(tmp_path):
    target = tmp_path / 'net_g_latest.pth'
    atomic_io.atomic_write_bytes(target, b'old complete weights')
    script = textwrap.dedent(f"""
        import os, signal
        from smfd_data import atomic_io
        def dying(f):
            f.write(b'PART'); f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        atomic_io.atomic_write({str(target)!r}, dying)
    """)
    proc = subprocess.run([sys.executable, '-c', script], cwd=REPO, env=dict(os.environ, SMFD_NO_AUTOLOAD='1',
                                                                            PYTHONPATH=REPO))
    assert proc.returncode == -9
    assert target.read_bytes() == b'old complete weights'
    leftovers = [n for n in os.listdir(tmp_path) if n.endswith('.tmp')]
    assert len(leftovers) == 1
    atomic_io._cleaned_folders.discard(str(tmp_path))
    atomic_io.atomic_write_bytes(tmp_path / 'report.json', b'{}')  # a later run writing into the folder
    assert sorted(os.listdir(tmp_path)) == ['net_g_latest.pth', 'report.json']


# ------------------------------------------------------------------------------------------------ data trees
def _hash_tree(root):
    import hashlib
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            found[os.path.relpath(path, root)] = hashlib.sha256(open(path, 'rb').read()).hexdigest()
    return found


def _first_mask(root, idx):
    sub = os.path.join(root, MASKS, str(idx // 2000))
    return os.path.join(sub, sorted(n for n in os.listdir(sub) if n.startswith(f'{idx:05d}_'))[0])


def _break_tree(root, case):
    """Make sample 2 (or the tree) bad in one way; returns the part of the message naming the bad file."""
    img = os.path.join(root, 'CelebA-HQ-img', '2.jpg')
    mask = _first_mask(root, 2)
    if case == 'image_missing':
        os.remove(img)
        return r'00002_\w+\.png: no image .*2\.jpg'
    if case == 'masks_missing':
        for name in os.listdir(os.path.dirname(mask)):
            if name.startswith('00002_'):
                os.remove(os.path.join(os.path.dirname(mask), name))
        return r'2\.jpg: no part masks'
    if case == 'image_zero_bytes':
        open(img, 'wb').close()
        return r'2\.jpg: '
    if case == 'image_truncated':
        data = open(img, 'rb').read()
        open(img, 'wb').write(data[:len(data) // 2])
        return r'2\.jpg: truncated'
    if case == 'image_text':
        open(img, 'w').write('not a jpeg')
        return r'2\.jpg: '
    if case == 'image_is_a_folder':
        os.remove(img)
        os.mkdir(img)
        return r'2\.jpg'
    if case == 'mask_zero_bytes':
        open(mask, 'wb').close()
        return re.escape(os.path.basename(mask))
    if case == 'mask_truncated':
        data = open(mask, 'rb').read()
        open(mask, 'wb').write(data[:len(data) // 2])
        return re.escape(os.path.basename(mask)) + ': truncated'
    if case == 'masks_differ_in_size':
        cv2.imwrite(mask, np.zeros((16, 16), np.uint8))
        return r'00002_\w+\.png: mask size .* differs from the other masks'
    if case == 'image_name_not_an_id':
        cv2.imwrite(os.path.join(root, 'CelebA-HQ-img', 'face.jpg'), np.zeros((32, 32, 3), np.uint8))
        return r'face\.jpg: image name is not an integer id'
    if case == 'two_images_one_id':
        cv2.imwrite(os.path.join(root, 'CelebA-HQ-img', '2.png'), np.zeros((32, 32, 3), np.uint8))
        return r'two images with id 2'
    if case == 'unknown_part_name':
        cv2.imwrite(os.path.join(os.path.dirname(mask), '00002_third_eye.png'), np.zeros((32, 32), np.uint8))
        return r'00002_third_eye\.png: not a CelebAMask-HQ part mask name'
    raise AssertionError(case)


TREE_CASES = ['image_missing', 'masks_missing', 'image_zero_bytes', 'image_truncated', 'image_text',
              'image_is_a_folder', 'mask_zero_bytes', 'mask_truncated', 'masks_differ_in_size',
              'image_name_not_an_id', 'two_images_one_id', 'unknown_part_name']


@pytest.mark.parametrize('case', TREE_CASES)
def test_bad_sample_is_named_and_skip_bad_goes_on(tmp_path, case):
    root = _tree(tmp_path, n=5)
    out = str(tmp_path / 'out')
    args = ['-i', root, '-o', out, '--workers', '1', '--folds', '2']
    prep.main(args)  # an earlier complete run; sample 2 is then to be prepared again (its outputs removed)
    for sub in ('images', 'labels'):
        os.remove(os.path.join(out, sub, '00002.png'))
    earlier = _hash_tree(out)
    pattern = _break_tree(root, case)
    tree = _hash_tree(root)
    with pytest.raises((ValueError, FileNotFoundError), match=pattern) as info:
        prep.main(args)
    assert '\n' not in str(info.value)
    assert _hash_tree(root) == tree, 'the input tree changed'
    assert _hash_tree(out) == earlier, 'a refused run changed earlier outputs'
    prep.main(args + ['--skip-bad'])
    listing = open(os.path.join(out, 'meta_info', 'bad_samples.txt')).read()
    assert re.search(pattern, listing), listing
    assert _hash_tree(root) == tree
    for i in (0, 1, 3, 4):  # the good samples are still there, unchanged
        assert _hash_tree(out)[f'images/{i:05d}.png'] == earlier[f'images/{i:05d}.png']


@pytest.mark.parametrize('case, expected', [
    ('no_layout', 'CelebA-HQ-img: folder not found (expected the CelebAMask-HQ layout'),
    ('empty_layout', 'no usable samples'),
    ('size_zero', '--size must be positive, got 0'),
    ('too_many_folds', '--folds must be between 2 and the number of train/val samples'),
])
def test_bad_tree_or_arguments(tmp_path, case, expected):
    root = str(tmp_path / 'tree')
    os.makedirs(root)
    args = ['-i', root, '-o', str(tmp_path / 'out'), '--workers', '1']
    if case == 'empty_layout':
        os.makedirs(os.path.join(root, 'CelebA-HQ-img'))
        os.makedirs(os.path.join(root, MASKS))
    elif case in ('size_zero', 'too_many_folds'):
        root = _tree(tmp_path, n=3)
        args[1] = root
        args += ['--size', '0'] if case == 'size_zero' else ['--folds', '9']
    with pytest.raises((ValueError, FileNotFoundError)) as info:
        prep.main(args)
    assert expected in str(info.value) and '\n' not in str(info.value)


@pytest.mark.parametrize('case', ['rgb_masks', 'grey_image', 'png_image'])
def test_odd_but_valid_samples_are_prepared(tmp_path, case):
    root = _tree(tmp_path, n=3)
    img = os.path.join(root, 'CelebA-HQ-img', '1.jpg')
    if case == 'rgb_masks':  # some CelebAMask-HQ masks are stored with 3 channels
        mask = _first_mask(root, 1)
        cv2.imwrite(mask, cv2.cvtColor(cv2.imread(mask, cv2.IMREAD_GRAYSCALE), cv2.COLOR_GRAY2BGR))
    elif case == 'grey_image':
        cv2.imwrite(img, cv2.imread(img, cv2.IMREAD_GRAYSCALE))
    else:
        cv2.imwrite(img[:-4] + '.png', cv2.imread(img))
        os.remove(img)
    out = str(tmp_path / 'out')
    prep.main(['-i', root, '-o', out, '--workers', '1', '--folds', '2'])
    face = cv2.imread(os.path.join(out, 'images', '00001.png'), cv2.IMREAD_UNCHANGED)
    labels = cv2.imread(os.path.join(out, 'labels', '00001.png'), cv2.IMREAD_UNCHANGED)
    assert face.shape == (32, 32, 3) and labels.shape == (32, 32) and labels.max() > 0


# ------------------------------------------------------------------------------------------------ interruptions
def _writers():
    from smfd_data.image_io import imwrite_atomic, write_image
    from smfd_models.checkpoint import atomic_torch_save
    return {
        'text': ('meta.txt', lambda p, v: atomic_io.atomic_write_text(p, f'{v}\n')),
        'json': ('report.json', lambda p, v: atomic_io.atomic_write_json({'v': v}, p)),
        'png': ('out.png', lambda p, v: imwrite_atomic(str(p), np.full((4, 4, 3), v, np.uint8))),
        'jpg': ('out.jpg', lambda p, v: write_image(str(p), np.full((4, 4, 3), v / 255, np.float32))),
        'checkpoint': ('net_g_4.pth', lambda p, v: atomic_torch_save({'params': {'w': v}}, p)),
    }


@pytest.mark.parametrize('point', ['fchmod', 'fsync', 'replace'])
@pytest.mark.parametrize('writer', ['text', 'json', 'png', 'jpg', 'checkpoint'])
def test_interruption_at_every_step_of_a_write_keeps_the_old_file(tmp_path, monkeypatch, writer, point):
    """A kill at each step of the atomic write (as KeyboardInterrupt): the old file, whole, and no temporary."""
    name, write = _writers()[writer]
    path = tmp_path / name
    write(path, 10)
    old = path.read_bytes()
    mode = _mode(path)
    real = getattr(os, point)
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(args)
        raise Interrupted()

    monkeypatch.setattr(os, point, interrupted)
    with pytest.raises(Interrupted):
        write(path, 200)
    monkeypatch.setattr(os, point, real)
    assert calls, f'{writer} never reached os.{point}'
    assert path.read_bytes() == old and _mode(path) == mode
    assert sorted(os.listdir(tmp_path)) == [name], 'a temporary file was left behind'
    write(path, 200)
    assert path.read_bytes() != old


@pytest.mark.parametrize('point', ['build', 'first_rename', 'second_rename'])
def test_interrupted_lmdb_write_keeps_the_old_lmdb_or_rebuilds(tmp_path, monkeypatch, point):
    from basicsr.utils import lmdb_util

    from smfd_data import lmdb_io
    a = tmp_path / 'a.png'
    cv2.imwrite(str(a), np.full((8, 8, 3), 1, np.uint8))
    path = str(tmp_path / 'x.lmdb')
    write_lmdb(path, {'a': str(a)})
    cv2.imwrite(str(a), np.full((8, 8, 3), 2, np.uint8))
    os.utime(a, ns=(os.stat(a).st_atime_ns, os.stat(a).st_mtime_ns + 10**9))
    if point == 'build':
        monkeypatch.setattr(lmdb_util, 'make_lmdb_from_imgs', lambda *a, **k: (_ for _ in ()).throw(Interrupted()))
    else:
        real, seen = os.replace, []

        def replace(src, dst):
            if str(src).endswith('.lmdb'):  # the folder swap, not the files written inside
                seen.append(src)
                if len(seen) == (1 if point == 'first_rename' else 2):
                    raise Interrupted()
            return real(src, dst)

        monkeypatch.setattr(lmdb_io.os, 'replace', replace)
    with pytest.raises(Interrupted):
        write_lmdb(path, {'a': str(a)})
    monkeypatch.undo()
    if os.path.isdir(path):  # the old LMDB is intact when the kill came before the swap
        assert int(read_lmdb_image(path, 'a')[0, 0, 0]) in (1, 2)
    assert write_lmdb(path, {'a': str(a)}) is True  # the rerun sees the changed source and rebuilds
    assert int(read_lmdb_image(path, 'a')[0, 0, 0]) == 2
    assert sorted(n for n in os.listdir(tmp_path) if n.endswith('.lmdb')) == ['x.lmdb']


def test_onnx_export_gets_umask_permissions_and_leaves_no_temporary(tmp_path):
    """The ONNX exporter writes through a file name: its temporary used to keep mkstemp's 0600."""
    import torch

    from smfd_arch import MaskGenerator
    from smfd_inference.onnx import export_network
    from tests.helpers import TINY_MASK
    torch.manual_seed(0)
    old = os.umask(0o022)
    atomic_io._default_mode.cache_clear()
    try:
        result = export_network(MaskGenerator(**TINY_MASK).eval(), tmp_path / 'mask.onnx', 'mask_generator', size=16,
                                dynamic_hw=False)
    finally:
        os.umask(old)
        atomic_io._default_mode.cache_clear()
    assert result['parity_ok'] and _mode(tmp_path / 'mask.onnx') == 0o644
    assert os.listdir(tmp_path) == ['mask.onnx']
