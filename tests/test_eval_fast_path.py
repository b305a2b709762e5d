"""The eval fast path of RDCBlock (issue 9): BN folded into cached conv weights, the cache invalidated when the
weights change, training untouched; and the cascade's forward without the labels' argmax."""
import copy

import pytest
import torch
import torch.nn.functional as F

from smfd_basicsr import prepare_basicsr

prepare_basicsr()

from smfd_arch import MaskGenerator  # noqa: E402
from smfd_arch.blocks import RDCBlock  # noqa: E402
from smfd_inference import cascade as cascade_module  # noqa: E402
from smfd_inference.cascade import SMFDCascade, mask_labels  # noqa: E402
from tests.helpers import TINY_MASK, TINY_UNET  # noqa: E402


def _randomize_bn(module, seed=0):
    """Running statistics and affine parameters that are not the defaults, so folding BN does something."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=gen) * 2 - 1)
                m.running_var.copy_(torch.rand(n, generator=gen) * 1.5 + 0.3)
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.rand(n, generator=gen) - 0.5)
    return module


def _block(layers=2, seed=0):
    torch.manual_seed(seed)
    return _randomize_bn(RDCBlock(6, 10, num_layers=layers, growth=3), seed)


def _old_forward(self, x):
    """RDCBlock.forward before the eval fast path, op for op (the formula training must keep bit for bit)."""
    cin, layers = self.residual.in_channels, list(self.dense)
    g = layers[0][0].out_channels
    weight = torch.cat([layer[0].weight[:, :cin] for layer in layers])
    shared = F.conv2d(x, weight, torch.cat([layer[0].bias for layer in layers]), padding=1)
    feats = []
    for i, (conv, bn, relu) in enumerate(layers):
        z = shared.narrow(1, i * g, g)
        if i > 0:
            z = z + F.conv2d(feats[0] if i == 1 else torch.cat(feats, 1), conv.weight[:, cin:], None, padding=1)
        feats.append(relu(bn(z)))
    grown_part = F.conv2d(feats[0] if len(feats) == 1 else torch.cat(feats, 1), self.fuse.weight[:, cin:])
    x_part = F.conv2d(x, self.fuse.weight[:, :cin] + self.residual.weight, self.fuse.bias + self.residual.bias)
    return F.relu_(x_part.add_(grown_part))


def _assert_rel_close(a, b, rel=1e-5):
    assert a.shape == b.shape
    err = float((a - b).abs().max()) / max(float(b.abs().max()), 1e-12)
    assert err <= rel, err


def _no_bn(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError('BatchNorm ran in the eval fast path')
    monkeypatch.setattr(torch.nn.BatchNorm2d, 'forward', fail)


@pytest.mark.parametrize('channels_last', [False, True])
@pytest.mark.parametrize('layers', [1, 2, 4])
def test_eval_fast_path_equals_the_reference_without_running_bn(monkeypatch, layers, channels_last):
    block = _block(layers).eval()
    x = torch.randn(2, 6, 9, 7, generator=torch.Generator().manual_seed(1))
    if channels_last:
        block, x = block.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        ref = block.forward_reference(x)
        other = _randomize_bn(copy.deepcopy(block), 5).forward_reference(x)
    assert float((ref - other).abs().max()) > 1e-2  # the BN statistics matter
    calls = []
    prepare = RDCBlock.prepare_eval_weights
    monkeypatch.setattr(RDCBlock, 'prepare_eval_weights', lambda self, *a: calls.append(a) or prepare(self, *a))
    _no_bn(monkeypatch)
    for grad_off in (torch.no_grad, torch.inference_mode, torch.no_grad):
        with grad_off():
            out = block(x)
        _assert_rel_close(out, ref)
        assert out.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    assert len(calls) == 1  # prepared once, then cached
    w = block.eval_weights(x)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    assert w[0].shape == (layers * 3, 6, 3, 3) and w[0].is_contiguous(memory_format=fmt)
    assert w[2][0] is None and all(v.shape == (3, 3 * i, 3, 3) for i, v in enumerate(w[2][1:], 1))


def test_cache_follows_optimizer_steps_load_state_dict_and_conversions():
    block = _block(2).eval()
    x = torch.randn(2, 6, 8, 8, generator=torch.Generator().manual_seed(2))

    def fast():
        with torch.no_grad():
            return block(x)

    def check():
        out = fast()
        with torch.no_grad():
            _assert_rel_close(out, block.forward_reference(x))
        return out

    before = check()
    opt = torch.optim.SGD(block.parameters(), lr=0.1)
    block.train()
    block(x).square().mean().backward()  # also updates the BN running statistics
    opt.step()
    block.eval()
    after_step = check()
    assert float((after_step - before).abs().max()) > 1e-3

    other = _block(2, seed=7)
    block.load_state_dict(other.state_dict())
    loaded = check()
    with torch.no_grad():
        _assert_rel_close(loaded, other.eval().forward_reference(x))

    with torch.no_grad():
        block.dense[1][1].running_var.mul_(4)  # a buffer changed in place
    assert float((check() - loaded).abs().max()) > 1e-3

    block.double()  # replaced tensors of another dtype
    x = x.double()
    assert check().dtype == torch.float64
    block.dense[0][0].weight.data = torch.zeros_like(block.dense[0][0].weight)  # replaced storage, same version
    check()


def test_training_and_grad_enabled_calls_keep_the_old_formula_bit_for_bit():
    block = _block(3)
    x = torch.randn(2, 6, 9, 7, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        block.eval()(x)  # fill the cache; training must not use it
    old = copy.deepcopy(block)
    for mode in ('train', 'eval'):  # eval with grad enabled: BN on running stats, not folded
        getattr(block, mode)(), getattr(old, mode)()
        out, expected = block(x), _old_forward(old, x)
        assert torch.equal(out, expected) and out.requires_grad
        grads = torch.autograd.grad(out.sum(), list(block.parameters()))
        grads_old = torch.autograd.grad(expected.sum(), list(old.parameters()))
        assert all(torch.equal(a, b) for a, b in zip(grads, grads_old))
    for a, b in zip(block.buffers(), old.buffers()):
        assert torch.equal(a, b)  # same running-statistics updates


def test_state_dict_is_unchanged_by_the_cache():
    block = _block(2).eval()
    keys = list(block.state_dict())
    with torch.no_grad():
        block(torch.rand(1, 6, 5, 5))
    assert block.__dict__.get('_eval_cache') is not None
    assert list(block.state_dict()) == keys
    copied = copy.deepcopy(block)  # a copy gets its own cache (its tensors live elsewhere)
    with torch.no_grad():
        assert torch.equal(copied(torch.ones(1, 6, 5, 5)), block(torch.ones(1, 6, 5, 5)))
    assert copied.__dict__['_eval_cache'][1][0].data_ptr() != block.__dict__['_eval_cache'][1][0].data_ptr()


def test_inference_mode_parameters_are_folded_every_call_and_not_cached():
    with torch.inference_mode():
        block = _block(2).eval()
        x = torch.randn(1, 6, 7, 7)
        _assert_rel_close(block(x), block.forward_reference(x))
    assert block.__dict__.get('_eval_cache') is None


@pytest.mark.parametrize('channels_last', [False, True])
def test_mask_generator_eval_fast_path_equals_the_bn_path(channels_last):
    net = _randomize_bn(MaskGenerator(**TINY_MASK), 3).eval()
    x = torch.rand(2, 3, 40, 24, generator=torch.Generator().manual_seed(4))
    if channels_last:
        net, x = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    expected = net(x).detach()  # grad enabled: the unfolded path
    with torch.inference_mode():
        _assert_rel_close(net(x), expected)


def test_cascade_forward_skips_the_labels(monkeypatch):
    from smfd_arch import SMFDUNet
    torch.manual_seed(0)
    cascade = SMFDCascade(SMFDUNet(**TINY_UNET), MaskGenerator(**TINY_MASK), 'onehot').eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        restored, labels = cascade.restore(x)
        assert labels.shape == (1, 32, 32) and labels.dtype == torch.long
        assert torch.equal(labels, cascade.predict_mask(x).argmax(1))

        def fail(*args):
            raise AssertionError('forward computed labels')
        monkeypatch.setattr(cascade_module, 'mask_labels', fail)
        assert torch.equal(cascade(x), restored)


@pytest.mark.parametrize('k', [5, 19])
def test_labels_of_a_one_hot_are_its_argmax(k):
    gen = torch.Generator().manual_seed(k)
    idx = torch.randint(0, k, (2, 1, 6, 9), generator=gen)
    onehot = (idx == torch.arange(k).view(1, k, 1, 1)).float()
    assert torch.equal(mask_labels(onehot, onehot=True), idx[:, 0])
    assert torch.equal(mask_labels(onehot.contiguous(memory_format=torch.channels_last), onehot=True), idx[:, 0])
    probs = torch.softmax(torch.randn(2, k, 6, 9, generator=gen), 1)
    assert torch.equal(mask_labels(probs), probs.argmax(1))
    assert torch.equal(mask_labels(idx), idx[:, 0]) and torch.equal(mask_labels(idx[:, 0]), idx[:, 0])
