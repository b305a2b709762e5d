"""The cascade of §3.4.6 (Fig. 3.2): MaskGenerator → softmax → SMFD-UNet; the one cascade class of the project.

Used by the deblur command, the benchmark, the speed benchmark and the ONNX export (``forward`` takes only the
blurry batch, so the whole cascade traces to one graph: "Ours with Generated Masks", Table 4.2).
"""
import torch
from torch import nn


class SMFDCascade(nn.Module):
    """SMFD-UNet with its mask from the MaskGenerator, from the caller (ground truth) or none (no-mask ablation).

    Args:
        smfd: an ``SMFDUNet`` (with or without mask branch).
        mask_generator: a ``MaskGenerator`` (or any net blurry → mask logits); None when masks are given.

    ``forward(x, mask=None)``: ``x`` (B,3,H,W) RGB in [0, 1] → restored (B,3,H,W) clamped to [0, 1].
    ``restore(x, mask=None)`` → ``(restored, labels (B,H,W) long | None)``. ``mask``: integer labels (B,H,W) or
    float one-hot / probabilities (B,K,H,W); it overrides the generator.
    """

    def __init__(self, smfd, mask_generator=None):
        super().__init__()
        self.smfd = smfd
        self.mask_generator = mask_generator
        self.use_mask = getattr(smfd, 'use_mask', True)
        self.num_classes = getattr(mask_generator, 'num_classes', None) or getattr(smfd, 'num_mask_classes', None)

    def predict_mask(self, x):
        """Mask probabilities (B,K,H,W) from the generator (softmax over the logits)."""
        if self.mask_generator is None:
            raise ValueError('SMFDCascade: this SMFD-UNet needs a mask: load a MaskGenerator (--mask-weights) or '
                             'pass ground-truth masks')
        return torch.softmax(self.mask_generator(x), dim=1)

    def restore(self, x, mask=None):
        labels = None
        if self.use_mask:
            if mask is None:
                mask = self.predict_mask(x)
            labels = mask.argmax(dim=1) if mask.is_floating_point() else mask.reshape(mask.shape[0], *mask.shape[-2:])
        out = self.smfd(x, mask) if self.use_mask else self.smfd(x)
        return out.clamp(0, 1), labels

    def forward(self, x, mask=None):
        return self.restore(x, mask)[0]
