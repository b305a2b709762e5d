"""The cascade of §3.4.6 (Fig. 3.2): MaskGenerator → softmax → (one-hot | soft) mask → SMFD-UNet; the one cascade
class of the project.

Used by the deblur command, the benchmark, the speed benchmark and the ONNX export (``forward`` takes only the
blurry batch, so the whole cascade traces to one graph: "Ours with Generated Masks", Table 4.2).
"""
import torch
from torch import nn

from smfd_models.mask_source import check_mask_handoff, handoff_mask


class SMFDCascade(nn.Module):
    """SMFD-UNet with its mask from the MaskGenerator, from the caller (ground truth) or none (no-mask ablation).

    Args:
        smfd: an ``SMFDUNet`` (with or without mask branch).
        mask_generator: a ``MaskGenerator`` (or any net blurry → mask logits); None when masks are given. A
            19-class generator is grouped to SMFD-UNet's 5 classes (§3.4.2).
        mask_handoff: ``soft`` (softmax probabilities; this class's default, tie-free for ONNX parity) or
            ``onehot`` (one-hot of the argmax, what a net trained on GT masks saw). ``load_cascade`` passes the
            option's ``mask_handoff`` (default ``onehot``).

    ``forward(x, mask=None)``: ``x`` (B,3,H,W) RGB in [0, 1] → restored (B,3,H,W) clamped to [0, 1].
    ``restore(x, mask=None)`` → ``(restored, labels (B,H,W) long | None)``. ``mask``: integer labels (B,H,W) or
    float one-hot / probabilities (B,K,H,W); it overrides the generator.
    """

    def __init__(self, smfd, mask_generator=None, mask_handoff='soft'):
        super().__init__()
        self.smfd = smfd
        self.mask_generator = mask_generator
        self.mask_handoff = check_mask_handoff(mask_handoff)
        self.use_mask = getattr(smfd, 'use_mask', True)
        self.num_classes = getattr(smfd, 'num_mask_classes', None) or getattr(mask_generator, 'num_classes', None)

    def predict_mask(self, x):
        """The generator's mask (B,K,H,W) as ``mask_handoff`` says (probabilities or one-hot), grouped to K."""
        if self.mask_generator is None:
            raise ValueError('SMFDCascade: this SMFD-UNet needs a mask: load a MaskGenerator (--mask-weights) or '
                             'pass ground-truth masks')
        return handoff_mask(self.mask_generator(x), self.mask_handoff, self.num_classes)

    def restore(self, x, mask=None):
        return self._restore(x, mask, with_labels=True)

    def _restore(self, x, mask, with_labels):
        labels = None
        if self.use_mask:
            onehot = mask is None and self.mask_handoff == 'onehot'
            if mask is None:
                mask = self.predict_mask(x)
            if with_labels:
                labels = mask_labels(mask, onehot)
        out = self.smfd(x, mask) if self.use_mask else self.smfd(x)
        return out.clamp(0, 1), labels

    def forward(self, x, mask=None):
        # the labels are not returned: no argmax over the mask (one reduction per call, issue 9)
        return self._restore(x, mask, with_labels=False)[0]


def mask_labels(mask, onehot=False):
    """(B,H,W) integer labels of a mask: the argmax of a float (B,K,H,W) one-hot / probabilities (first class on
    ties, as ``argmax``), the labels themselves when integer ((B,H,W) or (B,1,H,W)).

    ``onehot=True`` says the float mask is an exact one-hot (the generator's ``onehot`` hand-off): its labels are
    Σ_k k·mask_k, a matrix product, instead of a second argmax (a slow reduction over the class axis on CPU)."""
    if not mask.is_floating_point():
        return mask.reshape(mask.shape[0], *mask.shape[-2:])
    if onehot:
        classes = torch.arange(mask.shape[1], dtype=mask.dtype, device=mask.device)
        return torch.einsum('bkhw,k->bhw', mask, classes).long()
    return mask.argmax(dim=1)
