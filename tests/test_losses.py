"""SMFDDiceLoss / SMFDCrossEntropyLoss (paper §3.4.6.4) against hand-computed values."""
import math

import pytest
import torch

from smfd_models.losses import SMFDCrossEntropyLoss, SMFDDiceLoss

# Two classes, one row of two pixels: labels [0, 1]; predicted probabilities per pixel [0.8, 0.2] and [0.4, 0.6].
LABELS = torch.tensor([[[0, 1]]])  # (B=1, H=1, W=2)
PROBS = torch.tensor([[[[0.8, 0.4]], [[0.2, 0.6]]]])  # (B=1, K=2, H=1, W=2)
# channel 0: ∩ = 0.8, Σp = 1.2, Σt = 1;  channel 1: ∩ = 0.6, Σp = 0.8, Σt = 1
DICE_SMOOTH1 = [(2 * 0.8 + 1) / (2.2 + 1), (2 * 0.6 + 1) / (1.8 + 1)]  # 0.8125, 0.785714...
DICE_SMOOTH0 = [1.6 / 2.2, 1.2 / 1.8]


def test_dice_loss_known_value_from_probabilities_and_from_logits():
    expected = 1 - sum(DICE_SMOOTH1) / 2  # 0.200893
    from_probs = SMFDDiceLoss(softmax=False)(PROBS, LABELS)
    from_logits = SMFDDiceLoss()(PROBS.log(), LABELS)  # softmax(log p) = p
    assert from_probs.item() == pytest.approx(expected, abs=1e-6)
    assert from_logits.item() == pytest.approx(expected, abs=1e-6)
    no_smooth = SMFDDiceLoss(smooth=0.0, softmax=False)(PROBS, LABELS)
    assert no_smooth.item() == pytest.approx(1 - sum(DICE_SMOOTH0) / 2, abs=1e-6)


def test_dice_loss_reductions_background_and_weight():
    per_channel = SMFDDiceLoss(softmax=False, reduction='none')(PROBS, LABELS)
    assert per_channel.shape == (2, )
    assert per_channel.tolist() == pytest.approx([1 - d for d in DICE_SMOOTH1], abs=1e-6)
    summed = SMFDDiceLoss(softmax=False, reduction='sum', loss_weight=3.0)(PROBS, LABELS)
    assert summed.item() == pytest.approx(3 * sum(1 - d for d in DICE_SMOOTH1), abs=1e-6)
    foreground = SMFDDiceLoss(softmax=False, ignore_background=True)(PROBS, LABELS)
    assert foreground.item() == pytest.approx(1 - DICE_SMOOTH1[1], abs=1e-6)


def test_dice_loss_is_zero_for_perfect_logits_with_any_target_form():
    labels = torch.randint(0, 5, (2, 8, 8), generator=torch.Generator().manual_seed(0))
    onehot = torch.nn.functional.one_hot(labels, 5).permute(0, 3, 1, 2).float()
    logits = 40.0 * onehot  # large margin: softmax is one-hot up to e^-40
    loss = SMFDDiceLoss()
    assert loss(logits, labels).item() == pytest.approx(0.0, abs=1e-6)
    assert loss(logits, labels[:, None]).item() == pytest.approx(0.0, abs=1e-6)  # (B,1,H,W)
    assert loss(logits, onehot).item() == pytest.approx(0.0, abs=1e-6)
    # the opposite prediction is heavily penalised, and the loss has a gradient
    wrong = (40.0 * (1 - onehot)).requires_grad_()
    value = loss(wrong, labels)
    value.backward()
    assert value.item() > 0.9
    assert torch.isfinite(wrong.grad).all() and wrong.grad.abs().sum() > 0


def test_dice_loss_rejects_bad_targets():
    with pytest.raises(ValueError, match=r'labels must lie in \[0, 1\]'):
        SMFDDiceLoss()(PROBS, torch.tensor([[[0, 2]]]))
    with pytest.raises(ValueError, match='one-hot'):
        SMFDDiceLoss()(PROBS, torch.zeros(1, 3, 1, 2))
    with pytest.raises(ValueError, match='reduction'):
        SMFDDiceLoss(reduction='avg')


def test_cross_entropy_known_values_plain_weighted_and_onehot():
    plain = SMFDCrossEntropyLoss()(PROBS.log(), LABELS)
    assert plain.item() == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2, abs=1e-6)
    weighted = SMFDCrossEntropyLoss(loss_weight=2.0, class_weights=[1.0, 3.0])(PROBS.log(), LABELS)
    assert weighted.item() == pytest.approx(2 * -(math.log(0.8) + 3 * math.log(0.6)) / 4, abs=1e-6)
    onehot = torch.nn.functional.one_hot(LABELS, 2).permute(0, 3, 1, 2).float()
    assert SMFDCrossEntropyLoss()(PROBS.log(), onehot).item() == pytest.approx(plain.item(), abs=1e-6)
    with pytest.raises(ValueError, match='3 class_weights for 2 classes'):
        SMFDCrossEntropyLoss(class_weights=[1, 1, 1])(PROBS.log(), LABELS)


def test_losses_are_registered_and_buildable_by_basicsr():
    from basicsr.losses import build_loss
    from basicsr.utils.registry import LOSS_REGISTRY

    assert LOSS_REGISTRY.get('SMFDDiceLoss') is SMFDDiceLoss
    assert LOSS_REGISTRY.get('SMFDCrossEntropyLoss') is SMFDCrossEntropyLoss
    built = build_loss({'type': 'SMFDDiceLoss', 'loss_weight': 0.5, 'softmax': False})
    assert built(PROBS, LABELS).item() == pytest.approx(0.5 * (1 - sum(DICE_SMOOTH1) / 2), abs=1e-6)
