"""The cascade hand-off (issue 10): ``mask_handoff: onehot | soft``, and a 19-class generator grouped to 5 (§3.4.2)."""
import pytest
import torch

from smfd_basicsr import prepare_basicsr

prepare_basicsr()

from smfd_data.face_labels import grouping_lut  # noqa: E402
from smfd_inference.cascade import SMFDCascade  # noqa: E402
from smfd_models.mask_source import check_mask_source, handoff_mask  # noqa: E402


def test_onehot_is_the_one_hot_of_the_argmax_and_soft_the_softmax():
    logits = torch.randn(2, 5, 6, 7, generator=torch.Generator().manual_seed(0))
    soft = handoff_mask(logits, 'soft')
    torch.testing.assert_close(soft, torch.softmax(logits, 1))
    onehot = handoff_mask(logits, 'onehot')
    assert onehot.dtype == torch.float32 and set(onehot.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(onehot.sum(1), torch.ones(2, 6, 7))
    assert torch.equal(onehot.argmax(1), logits.argmax(1))
    with pytest.raises(ValueError, match="'mask_handoff': 'hard' is not valid. Valid: onehot, soft"):
        handoff_mask(logits, 'hard')


def test_19_classes_are_grouped_to_5_before_the_hand_off():
    logits = torch.randn(1, 19, 4, 4, generator=torch.Generator().manual_seed(1))
    probs = torch.softmax(logits, 1)
    lut = torch.as_tensor(grouping_lut(), dtype=torch.long)
    expected = torch.zeros(1, 5, 4, 4).index_add_(1, lut, probs)  # sum of the classes of each group
    soft = handoff_mask(logits, 'soft', num_classes=5)
    torch.testing.assert_close(soft, expected)
    assert torch.equal(handoff_mask(logits, 'onehot', num_classes=5).argmax(1), expected.argmax(1))
    with pytest.raises(ValueError, match='predicts 7 classes but SMFD-UNet takes 5'):
        handoff_mask(torch.zeros(1, 7, 2, 2), 'soft', num_classes=5)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64, torch.bfloat16])
def test_the_cached_group_matrix_gives_the_uncached_formula_bit_for_bit(dtype):
    """handoff_mask builds the 19 → 5 matrix once per (classes, device, dtype), not on every forward pass."""
    from smfd_models import mask_source
    logits = torch.randn(2, 19, 5, 6, generator=torch.Generator().manual_seed(3)).to(dtype)
    probs = torch.softmax(logits, 1)
    old_soft = torch.einsum('bchw,ck->bkhw', probs, mask_source.group_matrix(19, 5).to(probs))  # before the cache
    old_onehot = (old_soft.argmax(1, keepdim=True) == torch.arange(5).view(1, 5, 1, 1)).to(dtype)
    mask_source._cached_group_matrix.cache_clear()
    with torch.inference_mode():  # the first build under inference_mode (as in the deblur command) ...
        first = handoff_mask(logits, 'soft', 5)
    for _ in range(2):
        assert torch.equal(handoff_mask(logits, 'soft', 5), old_soft) and torch.equal(first, old_soft)
        assert torch.equal(handoff_mask(logits, 'onehot', 5), old_onehot)
    info = mask_source._cached_group_matrix.cache_info()
    assert info.currsize == 1 and info.misses == 1 and info.hits == 4
    # ... still serves a pass that needs gradients (an inference tensor could not be saved for backward)
    trainable = logits.float().requires_grad_()
    handoff_mask(trainable, 'soft', 5).sum().backward()
    assert trainable.grad is not None
    assert mask_source._cached_group_matrix.cache_info().currsize == (1 if dtype == torch.float32 else 2)


class _Spy(torch.nn.Module):
    """An SMFD-UNet stand-in that records the mask it gets."""
    use_mask, num_mask_classes = True, 5

    def forward(self, x, mask):
        self.mask = mask
        return x


class _Generator(torch.nn.Module):
    def __init__(self, k):
        super().__init__()
        self.num_classes = k
        self.bias = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return torch.randn(x.shape[0], self.num_classes, *x.shape[-2:], generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize('k', [5, 19])
def test_cascade_hands_off_as_told(k):
    x = torch.rand(1, 3, 8, 8)
    for mode in ('onehot', 'soft'):
        spy = _Spy()
        _, labels = SMFDCascade(spy, _Generator(k), mode).restore(x)
        assert spy.mask.shape == (1, 5, 8, 8)
        expected = handoff_mask(_Generator(k)(x), mode, 5)
        assert torch.equal(spy.mask, expected) and torch.equal(labels, expected.argmax(1))
        assert set(spy.mask.unique().tolist()) == {0.0, 1.0} if mode == 'onehot' else spy.mask.max() < 1
    with pytest.raises(ValueError, match="'mask_handoff'"):
        SMFDCascade(_Spy(), _Generator(5), 'probabilities')


def test_option_check_accepts_onehot_soft_and_a_19_class_generator():
    opt = {'mask_source': 'generator', 'network_g': {'num_mask_classes': 5}, 'network_mask': {'num_classes': 19},
           'path': {'pretrain_network_mask': 'mask.pth'}}
    assert check_mask_source(opt)[0] == 'generator'  # 19 → 5 grouped
    assert check_mask_source(dict(opt, mask_handoff='soft'))[0] == 'generator'
    with pytest.raises(ValueError, match="'mask_handoff': 'argmax' is not valid"):
        check_mask_source(dict(opt, mask_handoff='argmax'))
    with pytest.raises(ValueError, match=r'network_mask.num_classes \(7\) differs'):
        check_mask_source(dict(opt, network_mask={'num_classes': 7}))
