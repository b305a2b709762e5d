"""Semantic mask generator (paper §3.4.4, Fig. 3.7, Table 3.1).

An approximation of the thesis network, built from the same blocks as SMFD-UNet: a single-branch U-Net of RDC
blocks with the four encoder levels of §3.4.4, a decoder of Attention Upsample → RDC 256, 128, 64, and a final
block of an attention module + RDC 32 followed by two 1×1 convolutions. The widths are fitted to Table 3.1
(5,414,751 trainable parameters, 704 BN channels) under a cost bound; see docs/architecture.md.

    gray blurry (B,1,H,W) ──► 4 × [RDC → max-pool] ──► 3 × [Attention Upsample(skip) → RDC]   (256, 128, 64)
        ──► Attention Upsample(full-resolution skip) → RDC 32 → 1×1 → 1×1 ──► logits (B,K,H,W)
                                                        (softmax / argmax outside the network)
"""
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from smfd_arch.blocks import (
    UPSAMPLE_CHANNELS,
    AttentionDecoder,
    AttentionUpsample,
    FusedRDCEncoder,
    RDCBlock,
    check_choice,
    check_positive_int,
    crop_to,
    gray_input,
    growth_for,
    pad_to_multiple,
)


class FinalAttentionBlock(nn.Module):
    """The final block of §3.4.4: "an attention module and a Residual Dense Convolution block with 32 channels",
    then "an extra 1×1 convolution" and the 1×1 classifier (linear: softmax is in the loss / at inference).

    Four pooling levels and three decoder stages leave the decoder at half resolution, so this block does the
    last ×2 upsampling: an Attention Upsample, whose CBAM on the full-resolution skip is the attention module.
    `upsample_channels`: 'stage' → the upsampler outputs `width`; 'input' → it keeps its input width.
    """

    def __init__(self, in_channels, skip_channels, width, head_channels, out_channels, upsample='pixelshuffle',
                 upsample_channels='stage', cbam_reduction=8, num_layers=2, growth=None, growth_ratio=None):
        super().__init__()
        owner = 'FinalAttentionBlock'
        check_choice(owner, 'final_upsample_channels', upsample_channels, UPSAMPLE_CHANNELS)
        for name, value in (('final_width', width), ('head_channels', head_channels), ('out_channels', out_channels)):
            check_positive_int(owner, name, value)
        up_width = width if upsample_channels == 'stage' else in_channels
        self.up = AttentionUpsample(in_channels, skip_channels, up_width, upsample, True, cbam_reduction)
        self.rdc = RDCBlock(self.up.out_channels, width, num_layers, growth_for(width, growth, growth_ratio, owner))
        self.head = nn.Sequential(nn.Conv2d(width, head_channels, 1), nn.Conv2d(head_channels, out_channels, 1))

    def forward(self, x, skip):
        return self.head(self.rdc(self.up(x, skip)))


@ARCH_REGISTRY.register()
class MaskGenerator(nn.Module):
    """Predict semantic face-mask logits from a blurry face.

    Args:
        in_channels: 1 (gray, as in §3.4.2) or 3. With 1, an RGB input is converted to gray (BT.601) here,
            so a cascade can feed the RGB blurry image.
        num_classes: K output classes (5 groups in the paper).
        encoder_widths: RDC widths of the encoder levels, each followed by a 2×2 max-pool (at least 2 levels).
        bottleneck_width: an extra RDC at the lowest resolution (None: none, the default).
        decoder_widths: RDC widths of the decoder stages, deepest first: one fewer than the encoder levels (the
            final block does the last upsampling).
        final_width: width of the final RDC block; head_channels: width between the two 1×1 convolutions.
        upsample_channels: upsampler width in the decoder stages, 'input' (keeps its input width, the literal
            §3.4.3.2 reading) | 'stage'; final_upsample_channels: the same for the final block.
        dense_layers, growth / growth_ratio, upsample, attention (the decoder's skip CBAMs; the final block's
        attention module stays), cbam_reduction: as in SMFDUNet.
    """

    def __init__(self, in_channels=1, num_classes=5, encoder_widths=(16, 32, 64, 128), bottleneck_width=None,
                 decoder_widths=(256, 128, 64), final_width=32, dense_layers=2, growth=None, growth_ratio=0.5,
                 upsample='pixelshuffle', upsample_channels='input', final_upsample_channels='stage', attention=True,
                 cbam_reduction=8, head_channels=32):
        super().__init__()
        owner = 'MaskGenerator'
        for name, value in (('in_channels', in_channels), ('num_classes', num_classes),
                            ('dense_layers', dense_layers), ('cbam_reduction', cbam_reduction)):
            check_positive_int(owner, name, value)
        self.in_channels = in_channels
        self.num_classes = num_classes
        rdc = dict(num_layers=dense_layers, growth=growth, growth_ratio=growth_ratio)
        self.encoder = FusedRDCEncoder([in_channels], encoder_widths, bottleneck_width, **rdc)
        levels = self.encoder.num_pools
        if levels < 2 or len(decoder_widths) != levels - 1:
            raise ValueError(f'{owner}: decoder_widths has {len(decoder_widths)} stages; with {levels} encoder levels '
                             f'it needs {levels - 1} (the final block does the last upsampling, §3.4.4), and the '
                             f'encoder needs at least 2 levels')
        skips = self.encoder.skip_channels
        self.decoder = AttentionDecoder(self.encoder.out_channels, skips[1:], decoder_widths, upsample,
                                        upsample_channels, attention, cbam_reduction, **rdc)
        self.final = FinalAttentionBlock(self.decoder.out_channels, skips[0], final_width, head_channels, num_classes,
                                         upsample, final_upsample_channels, cbam_reduction, **rdc)
        self.size_multiple = 2 ** levels

    def forward(self, x):
        padded, size = pad_to_multiple(gray_input(x, self.in_channels, 'MaskGenerator'), self.size_multiple)
        bottom, skips = self.encoder([padded])
        return crop_to(self.final(self.decoder(bottom, skips[1:]), skips[0]), size)
