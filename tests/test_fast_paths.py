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
from tests.helpers import TINY_MASK, TINY_UNET, tiny_batch, tiny_training_model  # noqa: E402

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
    with pytest.raises(ValueError, match=r"^train\.amp: 'int8' is not one of none\|bf16\|fp16$"):
        normalize_amp('int8', where='train.amp')


def test_fast_path_options_defaults_values_and_errors():
    assert fast_path_options(None) == {'amp': None, 'channels_last': False, 'compile': False}
    assert fast_path_options({'amp': 'bf16', 'channels_last': True, 'compile': True, 'ema_decay': 0.9}) == {
        'amp': 'bf16', 'channels_last': True, 'compile': True}
    with pytest.raises(ValueError, match=r"^train\.channels_last: 'yes' is not one of true\|false$"):
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


def test_grad_scaler_only_for_fp16():
    assert grad_scaler_for('cpu', 'fp16').is_enabled()
    assert not grad_scaler_for('cpu', 'bf16').is_enabled() and not grad_scaler_for('cpu', None).is_enabled()


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


# ------------------------------------------------------------------------------------------------ training models
def conv_output_dtypes(model):
    """Record the dtype of every Conv2d output of net_g during the next forward."""
    seen = []
    for m in model.net_g.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(lambda mod, inp, out: seen.append(out.dtype))
    return seen


@pytest.mark.parametrize('model_type', ['SMFDModel', 'SMFDMaskGeneratorModel'])
def test_training_bf16_step_runs_and_the_loss_falls(tmp_path, model_type):
    model = tiny_training_model(tmp_path, model_type, train={'amp': 'bf16', 'optim_g': {'type': 'Adam', 'lr': 1e-2}})
    assert model.fast['amp'] == 'bf16' and not model.grad_scaler.is_enabled()
    dtypes = conv_output_dtypes(model)
    data = tiny_batch()
    losses = []
    for it in range(1, 7):
        model.feed_data(data)
        model.optimize_parameters(it)
        losses.append(next(iter(model.log_dict.values())))
    assert set(dtypes) == {torch.bfloat16}  # autocast really ran the convolutions in bf16
    assert getattr(model, model._output_attr).dtype == torch.float32  # losses in fp32
    assert model.skipped_steps == 0 and losses[-1] < losses[0], losses


def test_training_fp16_step_uses_a_grad_scaler(tmp_path):
    model = tiny_training_model(tmp_path, train={'amp': 'fp16'})
    assert model.grad_scaler.is_enabled()
    before = [p.detach().clone() for p in model.net_g.parameters()]
    model.feed_data(tiny_batch())
    it = 0
    while model.skipped_steps == it and it < 20:  # overflows at the initial scale 2**16 skip, halving the scale
        it += 1
        model.optimize_parameters(it)
    assert model.grad_scaler.get_scale() == 2.0**(16 - model.skipped_steps)
    assert model._consecutive_skips == 0  # overflows of the scaled gradient are not counted towards the stop
    assert model.skipped_steps < it and any(not torch.equal(a, b) for a, b in zip(before, model.net_g.parameters()))
    # the learned scale travels with the training state: a resume does not start again at 2**16
    model.grad_scaler.update(1024.0)  # as if overflows had lowered it
    model.save_training_state(0, it)
    state = torch.load(tmp_path / 'states' / f'{it}.state', weights_only=True)
    resumed = tiny_training_model(tmp_path, train={'amp': 'fp16'})
    resumed.resume_training(state)
    assert resumed.grad_scaler.get_scale() == 1024.0


@pytest.mark.parametrize('model_type', ['SMFDModel', 'SMFDMaskGeneratorModel'])
def test_training_channels_last_step_matches_nchw(tmp_path, model_type):
    train = {'optim_g': {'type': 'SGD', 'lr': 0.5}}
    plain = tiny_training_model(tmp_path / 'a', model_type, train=train)
    fast = tiny_training_model(tmp_path / 'b', model_type, train=dict(train, channels_last=True))
    data = tiny_batch()
    for model in (plain, fast):
        model.feed_data(data)
        model.optimize_parameters(1)
    assert fast.lq.is_contiguous(memory_format=torch.channels_last)
    assert not plain.lq.is_contiguous(memory_format=torch.channels_last)
    convs = [m.weight for m in fast.net_g.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    for key, value in plain.log_dict.items():
        assert fast.log_dict[key] == pytest.approx(value, rel=1e-5)
    moved = 0.0
    for (name, a), b in zip(plain.net_g.state_dict().items(), fast.net_g.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-5, rtol=1e-4), name
    for a, b in zip(plain.net_g.parameters(), tiny_training_model(tmp_path / 'c', model_type).net_g.parameters()):
        moved = max(moved, float((a.detach() - b.detach()).abs().max()))
    assert moved > 1e-3  # the step did change the weights (the comparison above is not of untouched nets)


def test_training_fast_path_option_errors(tmp_path):
    with pytest.raises(ValueError, match=r"^train\.amp: 'fp8' is not one of none\|bf16\|fp16$"):
        tiny_training_model(tmp_path, train={'amp': 'fp8'})
    with pytest.raises(ValueError, match=r"^train\.compile: 'yes' is not one of true\|false$"):
        tiny_training_model(tmp_path, 'SMFDMaskGeneratorModel', train={'compile': 'yes'})


def test_training_compile_wraps_the_training_forward_only(tmp_path):
    # torch.compile is lazy: building the wrapper is cheap; compiling it (the first step) is not run here
    model = tiny_training_model(tmp_path, train={'compile': True})
    assert isinstance(model.train_net, torch._dynamo.eval_frame.OptimizedModule)
    assert model.train_net._orig_mod is model.net_g and not isinstance(model.net_g, type(model.train_net))
    model.save(0, 1)
    saved = torch.load(tmp_path / 'models' / 'net_g_1.pth', weights_only=True)['params']
    assert set(saved) == set(model.net_g.state_dict())  # no '_orig_mod.' prefixes in the checkpoint


def test_training_fast_paths_with_degrade_on_device(tmp_path):
    import json

    import numpy as np

    from smfd_data.degradation import DegradationConfig, sample_degradation
    from smfd_data.degradation_torch import degrade_batch

    model = tiny_training_model(tmp_path, train={'amp': 'bf16', 'channels_last': True},
                                datasets={'train': {'degrade_on_device': True}, 'val': {'name': 'val'}})
    data = tiny_batch()
    cfg = DegradationConfig.from_dict({'gaussian_sizes': [3, 5], 'motion_sizes': [3, 5]})
    data['degradation'] = [json.dumps(sample_degradation(cfg, np.random.default_rng(i))) for i in range(2)]
    data['lq'] = data['gt'].clone()
    data['degrade_on_device'] = torch.tensor([True, True])
    model.feed_data(data)
    assert model.lq.dtype == torch.float32 and model.lq.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(model.lq, degrade_batch(data['gt'], data['degradation']))
    model.optimize_parameters(1)
    assert model.skipped_steps == 0 and math.isfinite(model.log_dict['l_pix'])
