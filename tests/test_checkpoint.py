"""Atomic checkpoint writes and code-free checkpoint reads (smfd_models/checkpoint.py)."""
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import smfd_models.checkpoint
from smfd_data.atomic_io import atomic_write_json
from smfd_models.checkpoint import atomic_torch_save, load_state_dict_safely

CHECKPOINT_PY = smfd_models.checkpoint.__file__


class _Evil:
    """Unpickling this would run a shell command."""

    def __reduce__(self):
        return (os.system, ('echo pwned > should_not_exist.txt', ))


def test_round_trip_and_module_prefix(tmp_path):
    path = tmp_path / 'net_g_10.pth'
    params = {'module.conv.weight': torch.randn(2, 3), 'bias': torch.arange(3.)}
    atomic_torch_save({'params': params, 'params_ema': {'bias': torch.zeros(3)}}, path)
    loaded = load_state_dict_safely(path)
    assert list(loaded) == ['conv.weight', 'bias']
    assert torch.equal(loaded['conv.weight'], params['module.conv.weight'])
    assert torch.equal(load_state_dict_safely(path, 'params_ema')['bias'], torch.zeros(3))
    # no temporary files are left next to the checkpoint
    assert sorted(os.listdir(tmp_path)) == ['net_g_10.pth']


def test_load_weights_takes_the_ema_copy_and_reads_the_file_once(tmp_path, monkeypatch):
    net = torch.nn.Linear(3, 2)
    ema = {k: torch.full_like(v, 0.5) for k, v in net.state_dict().items()}
    path = tmp_path / 'net_g_10.pth'
    atomic_torch_save({'params': {f'module.{k}': v for k, v in net.state_dict().items()}, 'params_ema': ema}, path)
    loads = []
    real_load = torch.load
    monkeypatch.setattr(torch, 'load', lambda *args, **kwargs: loads.append(args[0]) or real_load(*args, **kwargs))
    assert smfd_models.checkpoint.load_weights(torch.nn.Linear(3, 2), path) is not None
    assert loads == [str(path)]  # 'auto' picks the entry from the one load
    target = torch.nn.Linear(3, 2)
    smfd_models.checkpoint.load_weights(target, path)
    assert all(torch.equal(v, ema[k]) for k, v in target.state_dict().items())  # params_ema over params
    smfd_models.checkpoint.load_weights(target, path, 'params')  # DDP's module. prefix stripped
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in target.state_dict().items())


def test_missing_key_lists_available_keys(tmp_path):
    path = tmp_path / 'a.pth'
    atomic_torch_save({'params': {'w': torch.ones(1)}}, path)
    with pytest.raises(KeyError, match=r"a.pth: no entry 'params_ema'.*available keys: \['params'\]"):
        load_state_dict_safely(path, 'params_ema')
    bare = tmp_path / 'bare.pth'
    atomic_torch_save({'w': torch.ones(1)}, bare)
    assert list(load_state_dict_safely(bare, None)) == ['w']


def test_refuses_pickled_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / 'evil.pth'
    torch.save({'params': _Evil()}, path)
    with pytest.raises(ValueError, match=r'evil.pth: refusing to load.*refuses to execute code from checkpoints'):
        load_state_dict_safely(path)
    assert not (tmp_path / 'should_not_exist.txt').exists()


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_state_dict_safely(tmp_path / 'nope.pth')
    path = tmp_path / 'trunc.pth'
    atomic_torch_save({'params': {'w': torch.ones(100)}}, path)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ValueError, match='trunc.pth: not a readable PyTorch checkpoint'):
        load_state_dict_safely(path)


def test_failed_write_keeps_old_file(tmp_path):
    path = tmp_path / 'x.pth'
    atomic_torch_save({'params': {'w': torch.ones(1)}}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError('boom')

    with pytest.raises(RuntimeError, match='boom'):
        atomic_torch_save({'params': Unpicklable()}, path)
    assert torch.equal(load_state_dict_safely(path)['w'], torch.ones(1))
    assert sorted(os.listdir(tmp_path)) == ['x.pth']


def test_sigkill_mid_write_leaves_old_file(tmp_path):
    """A process killed while writing never leaves a partial checkpoint under the real name."""
    path = tmp_path / '100.state'
    atomic_torch_save({'iter': 1}, path)
    script = textwrap.dedent(f"""
        import importlib.util, os, signal, torch
        spec = importlib.util.spec_from_file_location('ck', {CHECKPOINT_PY!r})  # this file alone, no basicsr
        ck = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(ck)
        real_save = torch.save
        def dying_save(obj, f):
            f.write(b'PARTIAL' * 1000); f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        torch.save = dying_save
        ck.atomic_torch_save({{'iter': 2}}, {str(path)!r})
    """)
    proc = subprocess.run([sys.executable, '-c', script], env=dict(os.environ, SMFD_NO_AUTOLOAD='1'))
    assert proc.returncode == -9
    assert torch.load(path, weights_only=True) == {'iter': 1}
    leftovers = [n for n in os.listdir(tmp_path) if n != '100.state']
    assert all(n.endswith('.tmp') and not n.endswith('.state') for n in leftovers)  # auto-resume ignores them


def test_atomic_json(tmp_path):
    path = tmp_path / 'sub' / 'best.json'
    atomic_write_json({'metric': 'ssim', 'value': 0.5, 'iter': 3}, path)
    assert json.loads(path.read_text()) == {'metric': 'ssim', 'value': 0.5, 'iter': 3}
