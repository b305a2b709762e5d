"""Losses of the semantic mask generator (paper §3.4.6.4).

"The loss function consisted in dice loss. Every metric was computed channel wise independently before a mean
value was derived." :class:`SMFDDiceLoss` is that loss; :class:`SMFDCrossEntropyLoss` is an optional companion
(`ce_opt` of ``SMFDMaskGeneratorModel``). Both take ``(pred_logits, target)`` where ``pred_logits`` is (B,K,H,W)
and ``target`` is either integer labels (B,H,W) / (B,1,H,W) or a float one-hot / probability map (B,K,H,W).
"""
import torch
import torch.nn.functional as F
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn

_REDUCTIONS = ('none', 'mean', 'sum')


def target_labels(target, num_classes):
    """Check integer ``target`` labels (B,H,W) or (B,1,H,W) and return them as int64 (B,H,W)."""
    if target.dim() == 4 and target.shape[1] == 1:
        target = target[:, 0]
    if target.dim() != 3:
        raise ValueError(f'smfd_models/losses.py: integer target labels must be (B,H,W) or (B,1,H,W), '
                         f'got shape {tuple(target.shape)}')
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= num_classes):
        raise ValueError(f'smfd_models/losses.py: target labels must lie in [0, {num_classes - 1}], '
                         f'got [{int(target.min())}, {int(target.max())}]')
    return target.long()


def target_to_onehot(target, num_classes):
    """Return ``target`` as a float (B,K,H,W) map.

    Integer targets (B,H,W) or (B,1,H,W) are one-hot encoded; float targets (B,K,H,W) are returned as they are.
    """
    if target.is_floating_point():
        if target.dim() != 4 or target.shape[1] != num_classes:
            raise ValueError(f'smfd_models/losses.py: a float target must be one-hot (B,{num_classes},H,W), '
                             f'got shape {tuple(target.shape)}')
        return target
    return F.one_hot(target_labels(target, num_classes), num_classes).permute(0, 3, 1, 2).to(torch.float32)


@LOSS_REGISTRY.register()
class SMFDDiceLoss(nn.Module):
    """Channel-wise soft Dice loss (paper §3.4.6.4: Dice Loss = 1 − Dice, per channel, then averaged).

    For every class channel k, with probabilities p and one-hot target t summed over the batch and all pixels
    (the whole mini-batch is one "segmentation", as in the usual Keras ``dice_coef``)::

        dice_k = (2 Σ p_k t_k + smooth) / (Σ p_k + Σ t_k + smooth),    loss_k = 1 − dice_k

    A class absent from both prediction and target gives dice_k = smooth / smooth = 1 (no penalty).

    Args:
        loss_weight (float): Multiplier of the loss. Default: 1.0.
        smooth (float): Additive smoothing of numerator and denominator. Default: 1.0.
        softmax (bool): Apply softmax over channels to ``pred`` first (``pred`` are logits). With False, ``pred``
            must already be probabilities. Default: True.
        ignore_background (bool): Leave channel 0 out of the mean. Default: False.
        reduction (str): 'mean' (over channels, the paper's value), 'sum' (over channels) or 'none' (the (K,)
            vector of per-channel losses). Default: 'mean'.
    """

    def __init__(self, loss_weight=1.0, smooth=1.0, softmax=True, ignore_background=False, reduction='mean'):
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f'SMFDDiceLoss: unsupported reduction {reduction!r}; use one of {_REDUCTIONS}')
        if smooth < 0:
            raise ValueError(f'SMFDDiceLoss: smooth must be >= 0, got {smooth}')
        self.loss_weight = loss_weight
        self.smooth = smooth
        self.softmax = softmax
        self.ignore_background = ignore_background
        self.reduction = reduction

    def forward(self, pred, target, **kwargs):
        """pred: (B,K,H,W) logits (or probabilities with ``softmax=False``); target: labels or one-hot."""
        if pred.dim() != 4:
            raise ValueError(f'SMFDDiceLoss: pred must be (B,K,H,W), got shape {tuple(pred.shape)}')
        num_classes = pred.shape[1]
        prob = torch.softmax(pred, dim=1) if self.softmax else pred
        onehot = target_to_onehot(target, num_classes).to(prob.dtype)
        if onehot.shape != prob.shape:
            raise ValueError(f'SMFDDiceLoss: target {tuple(onehot.shape)} does not match pred {tuple(prob.shape)}')

        dims = (0, 2, 3)  # everything except the channel: each channel is scored independently
        intersection = (prob * onehot).sum(dims)
        cardinality = prob.sum(dims) + onehot.sum(dims)
        dice = (2 * intersection + self.smooth) / (cardinality + self.smooth).clamp_min(1e-12)
        loss = 1 - dice
        if self.ignore_background:
            loss = loss[1:]
        if self.reduction == 'mean':
            loss = loss.mean()
        elif self.reduction == 'sum':
            loss = loss.sum()
        return self.loss_weight * loss


@LOSS_REGISTRY.register()
class SMFDCrossEntropyLoss(nn.Module):
    """Pixel-wise (weighted) cross-entropy on mask logits, an optional term next to the Dice loss.

    Args:
        loss_weight (float): Multiplier of the loss. Default: 1.0.
        class_weights (list[float] | None): One weight per class (``weight`` of ``F.cross_entropy``), e.g. to
            up-weight the small facial components. Default: None (all 1).
        reduction (str): 'mean' | 'sum' | 'none' as in ``F.cross_entropy``. Default: 'mean'.

    Integer targets are class indices; float (B,K,H,W) targets are used as class probabilities (one-hot or soft).
    """

    def __init__(self, loss_weight=1.0, class_weights=None, reduction='mean'):
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f'SMFDCrossEntropyLoss: unsupported reduction {reduction!r}; use one of {_REDUCTIONS}')
        self.loss_weight = loss_weight
        self.reduction = reduction
        weight = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        self.register_buffer('class_weights', weight, persistent=False)

    def forward(self, pred, target, **kwargs):
        """pred: (B,K,H,W) logits; target: (B,H,W) / (B,1,H,W) labels or (B,K,H,W) probabilities."""
        if pred.dim() != 4:
            raise ValueError(f'SMFDCrossEntropyLoss: pred must be (B,K,H,W), got shape {tuple(pred.shape)}')
        num_classes = pred.shape[1]
        if self.class_weights is not None and self.class_weights.numel() != num_classes:
            raise ValueError(f'SMFDCrossEntropyLoss: {self.class_weights.numel()} class_weights for '
                             f'{num_classes} classes')
        if target.is_floating_point():
            target = target_to_onehot(target, num_classes).to(pred.dtype)  # validates the shape
        else:
            target = target_labels(target, num_classes)
        weight = None if self.class_weights is None else self.class_weights.to(pred.dtype)
        loss = F.cross_entropy(pred, target, weight=weight, reduction=self.reduction)
        return self.loss_weight * loss
