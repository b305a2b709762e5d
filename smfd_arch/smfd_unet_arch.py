"""SMFD-UNet: Semantic Mask Fusion Deblurring UNet (paper §3.4.5, Fig. 3.8, Table 3.2).

An approximation of the thesis network: the text fixes the blocks and their order, not every width; the
defaults below are fitted to Table 3.2 (7,531,641 trainable parameters, 480 BN channels). See
docs/architecture.md for the fit and for the Table 4.3 ablation switches.

    blurry (B,3,H,W) ──► image branch ─┐  RDC + max-pool per level; at every level the two
    mask (B,K,H,W)   ──► mask branch  ─┘  branch outputs are concatenated (skip + next input)
        ──► bottleneck RDC per branch ──► 4 × [Attention Upsample(skip) → RDC]
        ──► CBAM → RDC → 1×1 → 1×1 ──► post-processing (contrast 2.0, brightness +0.1)
"""
import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from smfd_arch.blocks import (
    AttentionDecoder,
    FinalLayers,
    FusedRDCEncoder,
    PostProcess,
    check_choice,
    check_positive_int,
    crop_to,
    pad_to_multiple,
)

MASK_ENCODINGS = ('onehot', 'label')


@ARCH_REGISTRY.register()
class SMFDUNet(nn.Module):
    """Deblur a face image guided by its semantic mask.

    Args:
        in_channels: channels of the blurry image.
        num_mask_classes: K, the number of mask classes (5 groups in the paper, §3.4.2).
        mask_encoding: 'onehot' (K mask channels) or 'label' (1 channel = label / (K − 1)).
        out_channels: channels of the output image.
        encoder_widths: RDC widths of the pooled encoder levels (per branch).
        bottleneck_width: width of the per-branch RDC at the lowest resolution (None: no bottleneck block).
        decoder_widths: RDC widths of the decoder stages, deepest first (one per pooled level).
        final_width: width of the final RDC block (§3.4.5.3).
        dense_layers: L, dense layers per RDC block.
        growth / growth_ratio: RDC growth rate, fixed or as a fraction of the block width (give one).
        upsample: 'pixelshuffle' | 'transpose' | 'bilinear'.
        upsample_channels: 'stage' (upsampler outputs the stage width) | 'input' (keeps its input width).
        attention: CBAM on the skip connections of the decoder (Attention Upsample, §3.4.3.3).
        use_mask: False builds the "backbone without semantic mask branch" of Table 4.3.
        post_process / pp_contrast / pp_brightness: the §3.4.3.5 output adjustment.
        cbam_reduction: r of the CBAM channel MLP (c → c/r → c).
        head_channels: width between the two final 1×1 convolutions.
    """

    def __init__(self, in_channels=3, num_mask_classes=5, mask_encoding='onehot', out_channels=3,
                 encoder_widths=(16, 32, 64, 128), bottleneck_width=256, decoder_widths=(256, 128, 64, 32),
                 final_width=32, dense_layers=2, growth=16, growth_ratio=None, upsample='pixelshuffle',
                 upsample_channels='stage', attention=True, use_mask=True, post_process=True, pp_contrast=2.0,
                 pp_brightness=0.1, cbam_reduction=8, head_channels=32):
        super().__init__()
        check_choice('SMFDUNet', 'mask_encoding', mask_encoding, MASK_ENCODINGS)
        for name, value in (('in_channels', in_channels), ('out_channels', out_channels),
                            ('num_mask_classes', num_mask_classes), ('dense_layers', dense_layers),
                            ('cbam_reduction', cbam_reduction)):
            check_positive_int('SMFDUNet', name, value)
        if num_mask_classes < 2:
            raise ValueError(f'SMFDUNet: num_mask_classes must be >= 2, got {num_mask_classes}')
        self.in_channels = in_channels
        self.num_mask_classes = num_mask_classes
        self.mask_encoding = mask_encoding
        self.use_mask = bool(use_mask)
        rdc = dict(num_layers=dense_layers, growth=growth, growth_ratio=growth_ratio)

        branch_inputs = [in_channels]
        if self.use_mask:
            branch_inputs.append(num_mask_classes if mask_encoding == 'onehot' else 1)
        self.encoder = FusedRDCEncoder(branch_inputs, encoder_widths, bottleneck_width, **rdc)
        self.decoder = AttentionDecoder(self.encoder.out_channels, self.encoder.skip_channels, decoder_widths,
                                        upsample, upsample_channels, attention, cbam_reduction, **rdc)
        self.final = FinalLayers(self.decoder.out_channels, final_width, head_channels, out_channels,
                                 cbam_reduction, **rdc)
        self.post_process = PostProcess(pp_contrast, pp_brightness) if post_process else nn.Identity()
        self.size_multiple = 2 ** self.encoder.num_pools

    def encode_mask(self, mask, size):
        """Convert a float (B,K,H,W) one-hot/probability mask or integer (B,H,W)/(B,1,H,W) labels to the
        arch's encoding: K one-hot channels, or 1 channel = label / (K − 1)."""
        k = self.num_mask_classes
        if mask.dim() == 3:
            mask = mask.unsqueeze(1)
        if mask.dim() != 4 or tuple(mask.shape[-2:]) != tuple(size):
            raise ValueError(f'SMFDUNet: mask of shape {tuple(mask.shape)} does not match the image size '
                             f'{tuple(size)}; expected (B,{k},H,W) floats or (B,H,W) / (B,1,H,W) integer labels')
        if not mask.is_floating_point():  # integer class labels
            if mask.shape[1] != 1:
                raise ValueError(f'SMFDUNet: integer mask labels must be (B,H,W) or (B,1,H,W), got {tuple(mask.shape)}')
            if mask.numel() and (int(mask.min()) < 0 or int(mask.max()) >= k):
                raise ValueError(f'SMFDUNet: mask labels must lie in [0, {k - 1}], got range '
                                 f'[{int(mask.min())}, {int(mask.max())}]')
            labels = mask[:, 0].long()
        elif mask.shape[1] == k:  # one-hot or probabilities
            if self.mask_encoding == 'onehot':
                return mask
            labels = mask.argmax(dim=1)
        elif mask.shape[1] == 1 and self.mask_encoding == 'label':  # already encoded as label / (K - 1)
            if mask.numel() and (float(mask.min()) < 0 or float(mask.max()) > 1):
                raise ValueError('SMFDUNet: a float 1-channel mask is taken as label / (K - 1) and must lie in '
                                 '[0, 1]; pass integer labels instead')
            return mask
        else:
            raise ValueError(f'SMFDUNet: float mask has {mask.shape[1]} channels; expected {k} (one-hot or '
                             f'probabilities) for num_mask_classes={k}, or integer labels')
        if self.mask_encoding == 'onehot':
            return F.one_hot(labels, k).permute(0, 3, 1, 2).to(torch.float32)
        return (labels.to(torch.float32) / (k - 1)).unsqueeze(1)

    def forward(self, x, mask=None):
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'SMFDUNet: expected x of shape (B,{self.in_channels},H,W), got {tuple(x.shape)}')
        inputs = [x]
        if self.use_mask:
            if mask is None:
                raise ValueError('SMFDUNet: use_mask=True needs a mask: forward(x, mask) with (B,K,H,W) one-hot / '
                                 'probabilities or (B,H,W) integer labels; build with use_mask=False for the '
                                 'image-only backbone')
            inputs.append(self.encode_mask(mask, x.shape[-2:]).to(x.dtype))
        padded = [pad_to_multiple(t, self.size_multiple)[0] for t in inputs]
        bottom, skips = self.encoder(padded)
        out = self.final(self.decoder(bottom, skips))
        return self.post_process(crop_to(out, x.shape[-2:]))
