"""Sharded inference (issue 13 item 2): ``torchrun --nproc_per_node=2 -m smfd_inference.deblur`` with 2 CPU
processes (gloo) writes every output exactly once, counts all of them in one summary, and resumes (--resume)."""
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from smfd_inference import deblur
from smfd_inference.sharding import Shard
from tests.helpers import REPO
from tests.test_deblur import MASK_TINY, SMFD_TINY, _rgb, make_tiny_experiment


def test_shards_are_disjoint_and_cover_everything():
    items = list(range(11))
    shards = [Shard(rank, 3).take(items) for rank in range(3)]
    assert shards == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8]]
    assert sorted(sum(shards, [])) == items
    assert Shard().take(items) == items and Shard().gather('x') == ['x']


def _torchrun(args, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    env.pop('WORLD_SIZE', None)
    return subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
                           '-m', 'smfd_inference.deblur', *args], cwd=str(tmp_path), env=env, capture_output=True,
                          text=True, timeout=300)


def _state(folder):
    return {n: (os.stat(os.path.join(folder, n)).st_ino, os.stat(os.path.join(folder, n)).st_mtime_ns)
            for n in os.listdir(folder) if os.path.isfile(os.path.join(folder, n))}


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp('sharded')
    experiments = str(tmp_path / 'experiments')
    make_tiny_experiment(experiments, 'real_mask', MASK_TINY, seed=1)
    make_tiny_experiment(experiments, 'real_smfd', SMFD_TINY, seed=5)
    inp = tmp_path / 'in'
    inp.mkdir()
    for i in range(7):  # distinct sizes: each output shows which input it came from
        cv2.imwrite(str(inp / f'f{i}.png'), _rgb(24 + 2 * i, 30, i))
    (inp / 'f7_broken.png').write_bytes(b'\x89PNG\r\n\x1a\n' + b'\x00' * 10)
    return tmp_path, inp, ['-i', str(inp), '--experiments-dir', experiments, '--device', 'cpu', '--batch', '2']


def test_resume_skips_complete_outputs_only(setup, capsys):
    tmp_path, inp, common = setup
    out = tmp_path / 'resume'
    assert deblur.main(common + ['-o', str(out)]) == 1
    os.remove(out / 'f1.png')
    data = (out / 'f2.png').read_bytes()
    (out / 'f2.png').write_bytes(data[:len(data) // 2])  # cut off (another tool, a disk full): redone
    before = _state(out)
    capsys.readouterr()
    assert deblur.main(common + ['-o', str(out), '--resume']) == 1
    err = capsys.readouterr().err
    assert 'wrote 2 of 8 image(s)' in err and '5 already complete (--resume)' in err and '1 failed' in err
    after = _state(out)
    assert sorted(after) == [f'f{i}.png' for i in range(7)]
    assert {n: after[n] for n in before if n != 'f2.png'} == {n: v for n, v in before.items() if n != 'f2.png'}
    assert cv2.imread(str(out / 'f2.png')) is not None


def test_torchrun_two_cpu_processes_write_every_output_once(setup, capsys):
    tmp_path, inp, common = setup
    single, out = tmp_path / 'single', tmp_path / 'out'
    assert deblur.main(common + ['-o', str(single)]) == 1  # the reference: one process
    capsys.readouterr()
    out.mkdir()
    shutil.copy(single / 'f0.png', out / 'f0.png')  # complete from an earlier run: kept as it is
    data = (single / 'f2.png').read_bytes()
    (out / 'f2.png').write_bytes(data[:len(data) // 2])  # cut off: redone
    before = _state(out)
    result = _torchrun(common + ['-o', str(out), '--resume'], tmp_path)
    assert result.returncode != 0, result.stderr[-3000:]  # one input failed
    err = result.stderr
    summary = [line for line in err.splitlines() if line.startswith('deblur: wrote')]
    assert len(summary) == 1, err[-3000:]  # one summary, from rank 0, counting both processes
    assert 'wrote 6 of 8 image(s)' in summary[0] and '1 already complete (--resume)' in summary[0]
    assert '1 failed' in summary[0]
    # 8 inputs → 4 per process; rank 0 skipped f0, rank 1's broken f7 failed
    assert '2 processes wrote 3, 3' in summary[0]
    assert err.count('newest trained SMFD-UNet') == 1  # notes once, not once per process
    assert err.count(f'skipped {inp / "f7_broken.png"}') == 1
    # 6 writes, 6 new distinct files, f0 untouched: every output exactly once
    after = _state(out)
    assert sorted(after) == [f'f{i}.png' for i in range(7)] and after['f0.png'] == before['f0.png']
    for i in range(7):  # the same pixels as one process
        a, b = cv2.imread(str(out / f'f{i}.png')), cv2.imread(str(single / f'f{i}.png'))
        assert a.shape == (24 + 2 * i, 30, 3) and np.abs(a.astype(int) - b.astype(int)).max() <= 1
