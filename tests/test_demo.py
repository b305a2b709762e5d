"""make demo's own logic (smfd_eval/demo.py): the claims checked on a run's numbers, the concurrent trainings,
atomic writes without fsync for regenerable data. The full demo is too long for the suite (docs/tools.md)."""
import argparse
import os
import sys

import pytest

from smfd_data import atomic_io
from smfd_eval import demo


def result(**psnr):
    return {'rows': [{'method': m, 'psnr': v} for m, v in psnr.items()]}


def test_claims_are_checked_on_the_numbers():
    lines = demo.claims(result(input=22.0, smfd_nomask=23.0, smfd_generated_masks=23.5, smfd_gt_masks=24.0))
    assert len(lines) == 3
    assert 'yes (24.00 vs 22.00 dB, +2.00)' in lines[0]  # exactly 2 dB counts
    assert 'yes (23.50 vs 23.00 dB, +0.50)' in lines[1]
    assert 'yes (23.00 vs 22.00 dB, +1.00)' in lines[2]
    lines = demo.claims(result(input=22.0, smfd_nomask=21.0, smfd_generated_masks=20.5, smfd_gt_masks=23.99))
    assert all('**no**' in line for line in lines), lines
    lines = demo.claims({'rows': [{'method': 'input', 'psnr': 22.0}, {'method': 'smfd_nomask', 'error': 'boom'}]})
    assert all('not measured' in line for line in lines)


def fake_stage(tmp_path, name, code):
    """A training stage like demo.train_stage's whose command runs ``code``."""
    marker = tmp_path / f'{name}.done'

    def command(fresh):
        return [sys.executable, '-c', code + f'\nopen({str(marker)!r}, "w").write("x")'], str(tmp_path / f'{name}.log')

    def check(args):
        if not marker.exists():
            raise demo.StageFailed(f'{marker} missing')

    return demo.TrainingStage(lambda args: marker.exists(), command, check)


def test_trainings_run_concurrently_with_one_thread_each_and_a_failure_fails_its_stage_only(tmp_path):
    # each job writes its start time, then waits until the other has started: only concurrent runs finish
    code = ('import os, sys, time; open(os.path.join({d!r}, "{n}.start"), "w").write(os.environ["OMP_NUM_THREADS"]);'
            't = time.time()\nwhile not os.path.exists(os.path.join({d!r}, "{o}.start")):\n'
            '    time.sleep(0.05)\n    if time.time() - t > 20: sys.exit(3)')
    table = {'a': fake_stage(tmp_path, 'a', code.format(d=str(tmp_path), n='a', o='b')),
             'b': fake_stage(tmp_path, 'b', code.format(d=str(tmp_path), n='b', o='a')),
             'c': fake_stage(tmp_path, 'c', 'import sys; print("c broke"); sys.exit(5)')}
    records = demo.run_trainings(['a', 'b', 'c'], table, argparse.Namespace(jobs=3), dict.fromkeys('abc', True))
    assert records['a']['status'] == records['b']['status'] == 'ran'
    assert records['c']['status'] == 'failed'
    threads = str(max(1, (os.cpu_count() or 1) // 3))
    assert (tmp_path / 'a.start').read_text() == threads
    assert 'c broke' in (tmp_path / 'c.log').read_text()


def test_no_training_to_run_is_no_work(tmp_path):
    """A rerun of make demo finds every checkpoint: nothing starts (it once divided by zero here)."""
    assert demo.run_trainings([], {}, argparse.Namespace(jobs=2), {}) == {}


def test_fsync_off_keeps_writes_atomic_and_complete_but_skips_fsync(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(atomic_io.os, 'fsync', lambda fd: calls.append(fd))
    with atomic_io.fsync_off():
        atomic_io.atomic_write_bytes(str(tmp_path / 'a.bin'), b'abc')
    assert calls == [] and (tmp_path / 'a.bin').read_bytes() == b'abc'
    assert [n for n in os.listdir(tmp_path) if n.endswith('.tmp')] == []
    atomic_io.atomic_write_bytes(str(tmp_path / 'b.bin'), b'de')
    assert len(calls) == 2  # the file and its folder, as before


def test_fsync_off_restores_durable_writes_after_an_error(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(atomic_io.os, 'fsync', lambda fd: calls.append(fd))
    with pytest.raises(RuntimeError), atomic_io.fsync_off():
        raise RuntimeError('stage failed')
    atomic_io.atomic_write_bytes(str(tmp_path / 'c.bin'), b'x')
    assert len(calls) == 2


def test_run_command_logs_the_command_and_raises_with_the_log_tail(tmp_path):
    log_path = str(tmp_path / 'logs' / 'x.log')
    demo.run_command([sys.executable, '-c', 'import os; print(os.environ["SMFD_X"])'], log_path, {'SMFD_X': 'seen'})
    lines = open(log_path).read().splitlines()
    assert lines[0].startswith('$ ') and lines[0].endswith('print(os.environ["SMFD_X"])') and lines[1] == 'seen'
    with pytest.raises(demo.StageFailed, match=r'failed \(exit 4\); last lines of .*x.log:\n(.|\n)*broke here'):
        demo.run_command([sys.executable, '-c', 'import sys; print("broke here"); sys.exit(4)'], log_path)
