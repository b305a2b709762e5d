"""Segmentation baselines of Table 4.1: U-Net (Ronneberger et al., 2015) and UNet++ (Zhou et al., 2018).

The thesis compares its mask generator with "UNet" (31,401,605 parameters) and "UNet++" (36,643,333). Both
counts are reproduced exactly by the standard designs below with their defaults — widths 64 / 128 / 256 / 512 /
1024, two 3×3 conv → BN → ReLU per node, parameter-free ×2 upsampling, one gray input channel, 5 classes —
counted the Keras way (BN moving mean / variance included). See docs/architecture.md, "Segmentation baselines".

    U-Net        x ──► ConvBlock ─► [max-pool → ConvBlock] × 4 ──► [up → concat(skip) → ConvBlock] × 4 ──► 1×1

    UNet++       X(i,0) = ConvBlock(max-pool(X(i-1,0)))                      (the backbone, as in U-Net)
                 X(i,j) = ConvBlock(concat(X(i,0), ..., X(i,j-1), up(X(i+1,j-1))))   (nested dense skips)
                 logits = 1×1(X(0,L))  or, with deep supervision, the mean of 1×1(X(0,1)), ..., 1×1(X(0,L))

Interface as ``MaskGenerator``: ``forward(x)`` with x (B,1,H,W) gray or (B,3,H,W) RGB (converted to gray with
BT.601 when ``in_channels=1``), any H×W (reflect-padded to a multiple of 2^depth, cropped back), returns logits
(B,num_classes,H,W) (softmax / argmax outside the network).
"""
import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from smfd_arch.blocks import check_choice, check_positive_int, check_widths, crop_to, gray_input, pad_to_multiple

SEG_UPSAMPLE_KINDS = ('bilinear', 'nearest', 'transpose')
STANDARD_WIDTHS = (64, 128, 256, 512, 1024)  # Ronneberger et al. 2015, Fig. 1; UNet++ with the same backbone


class ConvBlock(nn.Sequential):
    """The U-Net unit: two 3×3 convolutions (padding 1), each followed by BN (optional) and ReLU.

    Args:
        in_channels, out_channels: channels before / after the block.
        batch_norm: BN after each convolution (the convolutions keep their bias, as Keras' default).
    """

    def __init__(self, in_channels, out_channels, batch_norm=True):
        layers = []
        for cin in (in_channels, out_channels):
            layers.append(nn.Conv2d(cin, out_channels, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class Upsample(nn.Module):
    """×2 upsampling of the deeper features before they are concatenated with a skip.

    Args:
        in_channels: channels of the deeper features.
        out_channels: output channels of the 'transpose' kind (Ronneberger's "2×2 up-convolution that halves
            the number of feature channels"); the parameter-free kinds keep ``in_channels``.
        kind: 'bilinear' | 'nearest' (parameter-free, Keras' UpSampling2D) | 'transpose' (2×2 stride-2
            transposed convolution).
    """

    def __init__(self, in_channels, out_channels, kind='bilinear'):
        super().__init__()
        check_choice('Upsample', 'upsample', kind, SEG_UPSAMPLE_KINDS)
        self.kind = kind
        self.conv = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2) if kind == 'transpose' else None
        self.out_channels = out_channels if kind == 'transpose' else in_channels

    def forward(self, x):
        if self.conv is not None:
            return self.conv(x)
        if self.kind == 'nearest':
            return F.interpolate(x, scale_factor=2, mode='nearest')
        return F.interpolate(x, scale_factor=2, mode='bilinear', align_corners=False)

    def extra_repr(self):
        return f'kind={self.kind}'


def _check_common(owner, in_channels, num_classes, widths, upsample):
    check_positive_int(owner, 'in_channels', in_channels)
    check_positive_int(owner, 'num_classes', num_classes)
    check_widths(owner, 'widths', widths)
    if len(widths) < 2:
        raise ValueError(f'{owner}: widths needs at least 2 levels (one pooling step), got {list(widths)}')
    check_choice(owner, 'upsample', upsample, SEG_UPSAMPLE_KINDS)


class _GraySegmentationNet(nn.Module):
    """Input handling shared by both baselines: gray conversion, channel check, pad to 2^depth / crop back."""

    label = 'SegmentationNet'  # the name in error messages

    def _prepare(self, x):
        return pad_to_multiple(gray_input(x, self.in_channels, self.label), self.size_multiple)


@ARCH_REGISTRY.register()
class UNet(_GraySegmentationNet):
    """U-Net (Ronneberger, Fischer, Brox, MICCAI 2015) for K-class face parsing, Table 4.1's "UNet" row.

    Encoder: ConvBlock(widths[0]), then per level max-pool 2×2 → ConvBlock(widths[i]). Decoder, deepest first:
    upsample ×2 → concat with the encoder features of that level → ConvBlock(widths[i]). Head: 1×1 conv → K.
    Convolutions are padded (output size = input size), unlike the paper's valid convolutions and tiling.

    Args:
        in_channels: 1 (gray, as the mask generator's input, §3.4.2) or 3. With 1, an RGB input is converted
            to gray (BT.601) here.
        num_classes: K output classes (5 groups, or the 19 CelebAMask-HQ classes).
        widths: channels per level, shallow to deep; len(widths) − 1 pooling steps. Default: the standard
            64 / 128 / 256 / 512 / 1024.
        upsample: 'bilinear' (default; parameter-free, which reproduces Table 4.1's 31,401,605 exactly) |
            'nearest' (Keras' UpSampling2D default, same count) | 'transpose' (the original 2×2 up-convolution
            halving the channels).
        batch_norm: BN after every 3×3 convolution (default True; the 2015 paper predates BN: False).
    """

    label = 'UNet'

    def __init__(self, in_channels=1, num_classes=5, widths=STANDARD_WIDTHS, upsample='bilinear', batch_norm=True):
        super().__init__()
        _check_common('UNet', in_channels, num_classes, widths, upsample)
        self.in_channels = in_channels
        self.num_classes = num_classes
        widths = [int(w) for w in widths]
        self.encoder = nn.ModuleList()
        cin = in_channels
        for w in widths:
            self.encoder.append(ConvBlock(cin, w, batch_norm))
            cin = w
        self.ups, self.decoder = nn.ModuleList(), nn.ModuleList()
        for w in reversed(widths[:-1]):
            up = Upsample(cin, w, upsample)
            self.ups.append(up)
            self.decoder.append(ConvBlock(up.out_channels + w, w, batch_norm))
            cin = w
        self.head = nn.Conv2d(cin, num_classes, 1)
        self.depth = len(widths) - 1
        self.size_multiple = 2 ** self.depth

    def forward(self, x):
        x, size = self._prepare(x)
        skips = []
        for level, block in enumerate(self.encoder):
            x = block(x if level == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for up, block in zip(self.ups, self.decoder):
            x = block(torch.cat([up(x), skips.pop()], dim=1))
        return crop_to(self.head(x), size)


@ARCH_REGISTRY.register()
class UNetPlusPlus(_GraySegmentationNet):
    """UNet++ (Zhou, Rahman Siddiquee, Tajbakhsh, Liang, DLMIA 2018), Table 4.1's "UNet++" row.

    Nodes X(i,j), level i (resolution 1/2^i, width widths[i]) and column j: X(i,0) is the U-Net encoder;
    X(i,j) = ConvBlock(concat(X(i,0), ..., X(i,j−1), up(X(i+1,j−1)))) — the nested, dense skip pathways.
    The output is a 1×1 conv of X(0,L) (L = len(widths) − 1), or, with deep supervision, one 1×1 head on each
    of X(0,1), ..., X(0,L).

    Args:
        in_channels, num_classes, batch_norm: as in ``UNet``.
        widths: channels per level, shallow to deep (default 64 / 128 / 256 / 512 / 1024, the U-Net backbone
            the thesis compares; Zhou et al.'s own code uses 32 / 64 / 128 / 256 / 512).
        upsample: 'bilinear' (default; reproduces Table 4.1's 36,643,333 exactly) | 'nearest' | 'transpose'
            (a 2×2 stride-2 transposed conv widths[i+1] → widths[i] per node, as in Zhou et al.'s Keras code).
        deep_supervision: off by default. On: four heads; ``forward`` returns the mean of their logits (the
            paper's "accurate mode"), ``forward_heads`` the list (for one loss per head).
    """

    label = 'UNetPlusPlus'

    def __init__(self, in_channels=1, num_classes=5, widths=STANDARD_WIDTHS, upsample='bilinear', batch_norm=True,
                 deep_supervision=False):
        super().__init__()
        _check_common('UNetPlusPlus', in_channels, num_classes, widths, upsample)
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.deep_supervision = bool(deep_supervision)
        widths = [int(w) for w in widths]
        depth = len(widths) - 1
        self.backbone = nn.ModuleList(
            ConvBlock(in_channels if i == 0 else widths[i - 1], widths[i], batch_norm) for i in range(depth + 1))
        # nodes[f'{i}_{j}'] = X(i, j) for j >= 1, with its upsampling ups[f'{i}_{j}'] of X(i+1, j-1)
        self.ups, self.nodes = nn.ModuleDict(), nn.ModuleDict()
        for j in range(1, depth + 1):
            for i in range(depth + 1 - j):
                up = Upsample(widths[i + 1], widths[i], upsample)
                self.ups[f'{i}_{j}'] = up
                self.nodes[f'{i}_{j}'] = ConvBlock(j * widths[i] + up.out_channels, widths[i], batch_norm)
        heads = depth if self.deep_supervision else 1
        self.heads = nn.ModuleList(nn.Conv2d(widths[0], num_classes, 1) for _ in range(heads))
        self.depth = depth
        self.size_multiple = 2 ** depth

    def _features(self, x):
        """X(0, 1), ..., X(0, L) of a padded input."""
        columns = []  # columns[i] = [X(i,0), X(i,1), ...]
        for i, block in enumerate(self.backbone):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            columns.append([x])
        for j in range(1, self.depth + 1):
            for i in range(self.depth + 1 - j):
                up = self.ups[f'{i}_{j}'](columns[i + 1][j - 1])
                columns[i].append(self.nodes[f'{i}_{j}'](torch.cat([*columns[i], up], dim=1)))
        return columns[0][1:]

    def forward_heads(self, x):
        """The list of logits of every head (one without deep supervision), each (B,num_classes,H,W)."""
        x, size = self._prepare(x)
        top = self._features(x)
        outputs = top if self.deep_supervision else top[-1:]
        return [crop_to(head(feat), size) for head, feat in zip(self.heads, outputs)]

    def forward(self, x):
        logits = self.forward_heads(x)
        return logits[0] if len(logits) == 1 else torch.stack(logits).mean(dim=0)
