"""smfd_models.fast_paths: option parsing and numerical parity of channels_last / bf16 autocast / compile."""
import argparse
import copy
import math
import shutil

import pytest
import torch

from smfd_basicsr import prepare_basicsr

prepare_basicsr()

from smfd_arch import MaskGenerator, SMFDUNet  # noqa: E402
from smfd_models.fast_paths import (  # noqa: E402
    add_fast_path_arguments,
    autocast_for,
    fast_path_options,
    grad_scaler_for,
    normalize_amp,
    prepare_for_inference,
    to_channels_last,
)
from tests.helpers import TINY_MASK, TINY_UNET  # noqa: E402

# bf16 keeps 8 mantissa bits (~2-3 significant digits): documented tolerance in docs/performance.md
BF16_MIN_PSNR_DB = 30.0


@pytest.fixture(scope='module')
def nets():
    torch.manual_seed(0)
    unet, mask_generator = SMFDUNet(**TINY_UNET).eval(), MaskGenerator(**TINY_MASK).eval()
    # non-trivial BN statistics so eval-mode BN does something
    for net in (unet, mask_generator):
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 40, 24, generator=gen)  # not a multiple of 16: exercises pad + crop
    mask = torch.softmax(4 * torch.randn(2, 5, 40, 24, generator=gen), dim=1)
    return {'unet': (unet, (x, mask)), 'mask_generator': (mask_generator, (x,))}


def psnr(a, b, peak=1.0):
    return 10 * math.log10(peak**2 / float(((a.float() - b.float())**2).mean()))


def test_normalize_amp_aliases_and_errors():
    assert normalize_amp('bf16') == 'bf16' and normalize_amp('BFloat16') == 'bf16'
    assert normalize_amp('fp16') == 'fp16' and normalize_amp('half') == 'fp16'
    assert normalize_amp(None) is None and normalize_amp('none') is None and normalize_amp(False) is None
    with pytest.raises(ValueError, match=r"train\.amp: unknown autocast dtype 'int8'.*bf16, fp16, none"):
        normalize_amp('int8', where='train.amp')


def test_fast_path_options_defaults_values_and_errors():
    assert fast_path_options(None) == {'amp': None, 'channels_last': False, 'compile': False}
    assert fast_path_options({'amp': 'bf16', 'channels_last': True, 'compile': True, 'ema_decay': 0.9}) == {
        'amp': 'bf16', 'channels_last': True, 'compile': True}
    with pytest.raises(ValueError, match=r'train\.channels_last: expected true or false'):
        fast_path_options({'channels_last': 'yes'})
    with pytest.raises(ValueError, match=r'train\.amp'):
        fast_path_options({'amp': 'fp8'})


def test_cli_flags():
    parser = add_fast_path_arguments(argparse.ArgumentParser())
    args = parser.parse_args(['--channels-last', '--amp', 'bf16', '--compile'])
    assert (args.channels_last, args.amp, args.compile) == (True, 'bf16', True)
    args = parser.parse_args([])
    assert (args.channels_last, args.amp, args.compile) == (False, 'none', False)
    with pytest.raises(SystemExit):
        parser.parse_args(['--amp', 'int8'])


def test_autocast_for_switches_dtype_and_none_is_a_no_op():
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with autocast_for('cpu', 'bf16'):
        assert torch.mm(a, b).dtype == torch.bfloat16
    with autocast_for(torch.device('cpu'), None):
        assert torch.mm(a, b).dtype == torch.float32
    with autocast_for('cpu', 'none'):
        assert torch.mm(a, b).dtype == torch.float32


def test_grad_scaler_only_for_fp16_on_cuda():
    assert not grad_scaler_for('cpu', 'fp16').is_enabled()
    assert not grad_scaler_for('cpu', 'bf16').is_enabled()


def test_to_channels_last_keeps_values():
    x = torch.randn(2, 3, 5, 7)
    y = to_channels_last(x)
    assert y.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous(
        memory_format=torch.channels_last)
    assert torch.equal(x, y)
    v = torch.randn(3, 5)
    assert to_channels_last(v) is v


def test_prepare_for_inference_sets_eval_mode(nets):
    net = copy.deepcopy(nets['unet'][0]).train()
    out = prepare_for_inference(net, channels_last=True)
    assert out is net and not net.training
    weights = [m.weight for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.weight.shape[-1] > 1]
    assert weights and all(w.is_contiguous(memory_format=torch.channels_last) for w in weights)


@pytest.mark.parametrize('name', ['unet', 'mask_generator'])
def test_channels_last_matches_fp32_eager(nets, name):
    net, inputs = nets[name]
    with torch.no_grad():
        expected = net(*inputs)
        fast = prepare_for_inference(copy.deepcopy(net), channels_last=True)
        got = fast(*[to_channels_last(t) for t in inputs])
    assert got.shape == expected.shape
    assert float((got - expected).abs().max()) <= 1e-5


@pytest.mark.parametrize('name', ['unet', 'mask_generator'])
def test_bf16_autocast_within_documented_tolerance(nets, name):
    net, inputs = nets[name]
    with torch.no_grad():
        expected = net(*inputs)
        with autocast_for('cpu', 'bf16'):
            got = net(*inputs)
    assert got.dtype == torch.bfloat16  # autocast really ran in bf16 (else the test below proves nothing)
    peak = max(1.0, float(expected.abs().max()))
    assert psnr(got, expected, peak) > BF16_MIN_PSNR_DB
    assert float((got.float() - expected).abs().max()) > 0  # and it is not bit-identical to fp32


@pytest.mark.skipif(shutil.which('cc') is None and shutil.which('gcc') is None,
                    reason='torch.compile (inductor) needs a C compiler on CPU; none on PATH')
def test_compile_matches_eager():
    # one level (with CBAM, RDC, pixel-shuffle, post-process): a cold inductor compile of the 4-level tiny net
    # takes ~90 s on 2 busy cores, this one ~20 s; the kernels it generates are the same kinds
    torch.manual_seed(0)
    net = SMFDUNet(**dict(TINY_UNET, encoder_widths=(4,), bottleneck_width=None, decoder_widths=(4,))).eval()
    gen = torch.Generator().manual_seed(2)
    inputs = (torch.rand(2, 3, 20, 12, generator=gen), torch.softmax(torch.randn(2, 5, 20, 12, generator=gen), 1))
    with torch.no_grad():
        expected = net(*inputs)
        compiled = prepare_for_inference(copy.deepcopy(net), compile=True)
        got = compiled(*inputs)
    assert float((got - expected).abs().max()) <= 1e-4
