"""Semantic mask generator (paper §3.4.4, Fig. 3.7, Table 3.1).

An approximation of the thesis network, built from the same blocks as SMFD-UNet: a single-branch U-Net
of RDC blocks whose decoder (Attention Upsample → RDC 256, 128, 64) is followed by the final attention
module + RDC 32 and two 1×1 convolutions. The defaults are fitted to Table 3.1 (5,414,751 trainable
parameters, 704 BN channels); see docs/architecture.md.

    gray blurry (B,1,H,W) ──► 3 × [RDC → max-pool] ──► 3 × [Attention Upsample(skip) → RDC]
        ──► CBAM → RDC 32 → 1×1 → 1×1 ──► logits (B,K,H,W)   (softmax / argmax outside the network)
"""
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from smfd_arch.blocks import (
    BT601,
    AttentionDecoder,
    FinalLayers,
    FusedRDCEncoder,
    check_positive_int,
    crop_to,
    pad_to_multiple,
)


@ARCH_REGISTRY.register()
class MaskGenerator(nn.Module):
    """Predict semantic face-mask logits from a blurry face.

    Args:
        in_channels: 1 (gray, as in §3.4.2) or 3. With 1, an RGB input is converted to gray (BT.601) here,
            so a cascade can feed the RGB blurry image.
        num_classes: K output classes (5 groups in the paper).
        encoder_widths, bottleneck_width, decoder_widths, final_width, dense_layers, growth / growth_ratio,
        upsample, upsample_channels, attention, cbam_reduction, head_channels: as in SMFDUNet.
    """

    def __init__(self, in_channels=1, num_classes=5, encoder_widths=(32, 64, 128), bottleneck_width=None,
                 decoder_widths=(256, 128, 64), final_width=32, dense_layers=4, growth=None, growth_ratio=0.25,
                 upsample='pixelshuffle', upsample_channels='input', attention=True, cbam_reduction=8,
                 head_channels=32):
        super().__init__()
        for name, value in (('in_channels', in_channels), ('num_classes', num_classes),
                            ('dense_layers', dense_layers), ('cbam_reduction', cbam_reduction)):
            check_positive_int('MaskGenerator', name, value)
        self.in_channels = in_channels
        self.num_classes = num_classes
        rdc = dict(num_layers=dense_layers, growth=growth, growth_ratio=growth_ratio)
        self.encoder = FusedRDCEncoder([in_channels], encoder_widths, bottleneck_width, **rdc)
        self.decoder = AttentionDecoder(self.encoder.out_channels, self.encoder.skip_channels, decoder_widths,
                                        upsample, upsample_channels, attention, cbam_reduction, **rdc)
        self.final = FinalLayers(self.decoder.out_channels, final_width, head_channels, num_classes,
                                 cbam_reduction, **rdc)
        self.size_multiple = 2 ** self.encoder.num_pools

    def forward(self, x):
        if x.dim() != 4:
            raise ValueError(f'MaskGenerator: expected a (B,C,H,W) tensor, got shape {tuple(x.shape)}')
        if x.shape[1] == 3 and self.in_channels == 1:
            r, g, b = BT601
            x = r * x[:, 0:1] + g * x[:, 1:2] + b * x[:, 2:3]
        if x.shape[1] != self.in_channels:
            raise ValueError(f'MaskGenerator: expected {self.in_channels} input channels'
                             f'{" (or 3, converted to gray)" if self.in_channels == 1 else ""}, got {x.shape[1]}')
        padded, size = pad_to_multiple(x, self.size_multiple)
        bottom, skips = self.encoder([padded])
        return crop_to(self.final(self.decoder(bottom, skips)), size)
