"""smfd_inference.onnx + scripts/export_onnx.py: graphs, parity with onnxruntime, OnnxRestorer, weights."""
import json

import numpy as np
import pytest
import torch

from smfd_basicsr import prepare_basicsr

prepare_basicsr()

from smfd_arch import MaskGenerator, SMFDUNet  # noqa: E402
from smfd_inference import onnx as onnx_export  # noqa: E402
from smfd_inference.cascade import SMFDCascade  # noqa: E402
from smfd_inference.onnx import PARITY_TOLERANCE, OnnxRestorer, build_networks, export_all, export_network  # noqa: E402
from smfd_models.checkpoint import atomic_torch_save  # noqa: E402
from tests.helpers import REPO, TINY_MASK, TINY_UNET, run_python, write_yaml  # noqa: E402


@pytest.fixture(scope='module')
def nets():
    torch.manual_seed(0)
    return MaskGenerator(**TINY_MASK).eval(), SMFDUNet(**TINY_UNET).eval()


@pytest.fixture(scope='module')
def exported(nets, tmp_path_factory):
    out = tmp_path_factory.mktemp('onnx')
    return out, export_all(*nets, out, size=32)


def test_export_all_writes_three_graphs_with_parity(exported):
    out, results = exported
    assert set(results) == {'mask_generator', 'smfd_unet', 'smfd_cascade'}
    for name, res in results.items():
        assert (out / f'{name}.onnx').is_file()
        assert res['dynamic_hw'] and res['parity_ok']
        assert res['max_abs_diff'] <= PARITY_TOLERANCE
        # checked at the traced size and at other sizes / batches
        assert {tuple(p['shape']) for p in res['parity']} == {(2, 3, 32, 32), (1, 3, 35, 37), (3, 3, 23, 16)}
    assert results['smfd_unet']['inputs'] == ['blurry', 'mask']
    assert results['mask_generator']['outputs'] == ['logits']
    assert not list(out.glob('*.tmp'))  # atomic writes leave no temporaries


def test_restorer_runs_cascade_at_new_size_torch_and_numpy(nets, exported):
    out, _ = exported
    mask_generator, unet = nets
    cascade = SMFDCascade(unet, mask_generator).eval()
    restorer = OnnxRestorer(out / 'smfd_cascade.onnx', threads=1)
    x = torch.rand(2, 3, 48, 40, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = cascade(x)
    got = restorer.restore(x)
    assert torch.is_tensor(got) and got.shape == (2, 3, 48, 40)
    assert float((got - expected).abs().max()) <= PARITY_TOLERANCE
    got_np = restorer.restore(x.numpy())
    assert isinstance(got_np, np.ndarray) and np.allclose(got_np, got.numpy())


def test_cascade_graph_equals_mask_generator_then_unet(nets):
    mask_generator, unet = nets
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        manual = unet(x, torch.softmax(mask_generator(x), dim=1)).clamp(0, 1)
        assert torch.equal(SMFDCascade(unet, mask_generator)(x), manual)


def test_restorer_errors(exported, tmp_path):
    out, _ = exported
    unet = OnnxRestorer(out / 'smfd_unet.onnx')
    with pytest.raises(ValueError, match=r'smfd_unet\.onnx.*blurry.*mask.*restore\(batch, mask\)'):
        unet.restore(torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match=r"input 'blurry' must be \(B,C,H,W\)"):
        unet.restore(torch.rand(3, 32, 32), torch.rand(5, 32, 32))
    with pytest.raises(FileNotFoundError, match='missing.onnx'):
        OnnxRestorer(tmp_path / 'missing.onnx')
    bad = tmp_path / 'bad.onnx'
    bad.write_bytes(b'not a model')
    with pytest.raises(ValueError, match=r'bad\.onnx: onnxruntime cannot load'):
        OnnxRestorer(bad)


def test_fixed_size_export_rejects_other_sizes(nets, tmp_path):
    res = export_network(nets[0], tmp_path / 'mg.onnx', 'mask_generator', size=32, dynamic_hw=False)
    assert not res['dynamic_hw'] and res['parity_ok']
    restorer = OnnxRestorer(tmp_path / 'mg.onnx')
    assert restorer.restore(torch.rand(3, 3, 32, 32)).shape == (3, 5, 32, 32)  # batch stays dynamic
    with pytest.raises(ValueError, match=r'mg\.onnx.*fixed H×W'):
        restorer.restore(torch.rand(1, 3, 40, 32))


def test_dynamic_export_falls_back_to_fixed_size_when_parity_fails(nets, tmp_path, monkeypatch):
    real = onnx_export.onnx_parity
    calls = []

    def flaky(net, path, sets, session=None):
        calls.append(len(sets))
        results = real(net, path, sets, session)
        if len(calls) == 1:  # pretend the dynamic graph is wrong at another size
            results[-1].update(max_abs_diff=1.0, scaled_diff=1.0)
        return results

    monkeypatch.setattr(onnx_export, 'onnx_parity', flaky)
    with pytest.warns(UserWarning, match='re-exporting at a fixed 32x32'):
        res = export_network(nets[0], tmp_path / 'mg.onnx', 'mask_generator', size=32)
    assert len(calls) == 2 and not res['dynamic_hw'] and res['parity_ok']
    assert OnnxRestorer(tmp_path / 'mg.onnx').inputs[0].shape[2:] == [32, 32]


def test_build_networks_loads_weights_and_warns_without(tmp_path):
    torch.manual_seed(5)
    unet, mask_generator = SMFDUNet(**TINY_UNET), MaskGenerator(**TINY_MASK)
    atomic_torch_save({'params': unet.state_dict()}, tmp_path / 'g.pth')
    atomic_torch_save({'params_ema': mask_generator.state_dict(), 'params': {}}, tmp_path / 'm.pth')
    opt = {'network_g': dict(type='SMFDUNet', **TINY_UNET), 'network_mask': dict(type='MaskGenerator', **TINY_MASK)}
    mg, g = build_networks(opt, str(tmp_path / 'g.pth'), str(tmp_path / 'm.pth'))
    assert all(torch.equal(a, b) for a, b in zip(g.state_dict().values(), unet.state_dict().values()))
    assert all(torch.equal(a, b) for a, b in zip(mg.state_dict().values(), mask_generator.state_dict().values()))
    assert not g.training and not mg.training
    with pytest.warns(UserWarning, match='No weights given for MaskGenerator'):
        build_networks(opt, str(tmp_path / 'g.pth'), None)
    with pytest.raises(ValueError, match=r'g\.pth: the weights do not fit SMFDUNet'):
        build_networks({'network_mask': opt['network_mask']}, str(tmp_path / 'g.pth'), str(tmp_path / 'm.pth'))
    with pytest.raises(ValueError, match="network_g: type is 'MaskGenerator'"):
        build_networks({'network_g': {'type': 'MaskGenerator'}})


def test_export_script_end_to_end(tmp_path):
    opt = write_yaml(tmp_path / 'opt.yml', {'network_g': dict(type='SMFDUNet', **TINY_UNET),
                                            'network_mask': dict(type='MaskGenerator', **TINY_MASK)})
    result = run_python([f'{REPO}/scripts/export_onnx.py', '--opt', opt, '-o', str(tmp_path / 'out'), '--size', '32',
                         '--only', 'smfd_cascade'])
    assert 'max|Δ| vs PyTorch fp32' in result.stdout and 'OK' in result.stdout
    assert 'randomly initialised' in result.stderr
    summary = json.loads((tmp_path / 'out' / 'export.json').read_text())
    assert summary['random_init'] and list(summary['graphs']) == ['smfd_cascade']
    assert summary['graphs']['smfd_cascade']['max_abs_diff'] <= PARITY_TOLERANCE
    bad = run_python([f'{REPO}/scripts/export_onnx.py', '-o', str(tmp_path / 'x'), '--only', 'nope'], check=False)
    assert bad.returncode == 2 and "unknown graph(s) ['nope']" in bad.stderr


def test_parity_is_relative_to_the_output_magnitude(tmp_path):
    """Logits of magnitude ~100 may differ by ~1e-3 in fp32; images in [0, 1] must agree to 1e-4 absolute."""

    class Scale(torch.nn.Module):
        def __init__(self, factor):
            super().__init__()
            self.factor = factor

        def forward(self, x):
            return x * self.factor

    for factor in (1.0, 200.0):
        net = Scale(factor)
        x = torch.rand(1, 3, 8, 8)
        torch.onnx.export(net, (x,), str(tmp_path / 'scale.onnx'), dynamo=False, input_names=['x'])
        (result,) = onnx_export.onnx_parity(net, str(tmp_path / 'scale.onnx'), [(x,)])
        assert result['max_abs_output'] == pytest.approx(max(1.0, float((x * factor).abs().max())))
        assert result['scaled_diff'] == pytest.approx(result['max_abs_diff'] / result['max_abs_output'])


def test_export_command_with_a_missing_or_bad_weights_file_is_one_line(tmp_path, capsys):
    bad = tmp_path / 'list.pth'
    torch.save([1, 2, 3], bad)
    for weights, expected in ((tmp_path / 'missing.pth', 'not found'), (bad, str(bad))):
        assert onnx_export.main(['--weights', str(weights), '-o', str(tmp_path / 'out')]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith('export_onnx: error:') and expected in err[0], err
    assert not (tmp_path / 'out').exists()
