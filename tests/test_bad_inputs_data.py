"""Bad-input corpus, data side: interrupted LMDB rebuilds, masks of another size, killed saves, permissions
(issue 14 item 3 and its "smaller ones"). Trees are made here, tiny; everything runs in-process."""
import os
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
    finally:
        os.umask(old)
        atomic_io._default_mode.cache_clear()
    for name in ('report.txt', 'net.pth', 'out.png'):
        assert _mode(tmp_path / name) == 0o666 & ~umask, name


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
