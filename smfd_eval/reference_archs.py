"""Reference networks for speed comparisons (scripts/bench_inference.py, docs/performance.md).

Timing only: every reference is built with random weights (no downloads here), at its own native input size.

* `PlainUNet`: the Ronneberger U-Net layout (2 × [3×3 conv, BN, ReLU] per level, 2×2 max-pool, 2×2 transposed
  conv up, concatenated skips) with the width chosen so its parameter count matches a given network
  (`plain_unet_like`). Same depth as SMFD-UNet (4 pools), so it isolates what SMFD's blocks (dense RDC layers,
  two encoder branches, CBAM, pixel-shuffle) cost against plain convolutions of equal size.
* `build_gfpgan_v1_clean`: GFPGAN v1.3/1.4's generator (`GFPGANv1Clean`, 512², the configuration GFPGANer
  builds), from `pip install --no-deps gfpgan==1.3.8`.
* `build_nafnet`: NAFNet-width32 as released for GoPro deblurring (`enc_blk_nums=[1,1,1,28]`,
  `middle_blk_num=1`, `dec_blk_nums=[1,1,1,1]`), from nafnetlib==0.1.0 (installed `--no-deps` by `make venv`,
  like gfpgan), or BasicSR's own `NAFNet` arch when the installed BasicSR has one (1.4.2 does not).
"""
import importlib

import torch
from torch import nn

from smfd_arch.blocks import count_parameters
from smfd_basicsr import prepare_basicsr

__all__ = ['PlainUNet', 'plain_unet_like', 'build_gfpgan_v1_clean', 'build_nafnet',
           'NAFNET_GOPRO_WIDTH32']

# NAFNet-GoPro-width32 (NAFNet/options/test/GoPro/NAFNet-width32.yml)
NAFNET_GOPRO_WIDTH32 = dict(img_channel=3, width=32, middle_blk_num=1, enc_blk_nums=[1, 1, 1, 28],
                            dec_blk_nums=[1, 1, 1, 1])


def _double_conv(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class PlainUNet(nn.Module):
    """U-Net (Ronneberger et al. 2015) with BN; widths base·2^i, `depth` pooling levels; H, W multiples of 2^depth."""

    def __init__(self, in_channels=3, out_channels=3, base_width=32, depth=4):
        super().__init__()
        widths = [base_width * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        cin = in_channels
        for w in widths[:-1]:
            self.down.append(_double_conv(cin, w))
            cin = w
        self.bottom = _double_conv(widths[-2], widths[-1])
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in range(depth))
        self.dec = nn.ModuleList(_double_conv(2 * widths[i], widths[i]) for i in range(depth))
        self.head = nn.Conv2d(widths[0], out_channels, 1)
        self.size_multiple = 2**depth

    def forward(self, x):
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = nn.functional.max_pool2d(x, 2)
        x = self.bottom(x)
        for i in reversed(range(len(self.up))):
            x = self.dec[i](torch.cat([self.up[i](x), skips[i]], dim=1))
        return self.head(x)


def plain_unet_like(num_params, in_channels=3, out_channels=3, depth=4):
    """The `PlainUNet` whose parameter count is closest to `num_params` (searching the base width)."""
    best = None
    for base in range(1, 257):
        net = PlainUNet(in_channels, out_channels, base, depth)
        gap = abs(count_parameters(net) - num_params)
        if best is not None and gap > best[0]:
            break  # the count grows with the width: past the minimum
        best = (gap, net)
    return best[1]


class _GFPGANInference(nn.Module):
    """Call GFPGANv1Clean the way GFPGANer does: `net(x, return_rgb=False)[0]`."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x, return_rgb=False)[0]


def build_gfpgan_v1_clean(out_size=512, channel_multiplier=2, num_style_feat=512, narrow=1):
    """GFPGANv1Clean with random weights, as GFPGANer builds it for v1.3/v1.4 (defaults); input (B,3,S,S) in [-1,1].

    Smaller `out_size` / `narrow` / `num_style_feat` only serve the test-suite's smoke runs.

    Raises ImportError with the install command when gfpgan is missing.
    """
    prepare_basicsr()  # gfpgan imports basicsr (torchvision functional_tensor stand-in)
    try:
        module = importlib.import_module('gfpgan.archs.gfpganv1_clean_arch')
    except ImportError as err:
        raise ImportError(f'GFPGAN reference needs `pip install --no-deps gfpgan==1.3.8` ({err})') from err
    net = module.GFPGANv1Clean(out_size=out_size, num_style_feat=num_style_feat, channel_multiplier=channel_multiplier,
                               decoder_load_path=None, fix_decoder=False, num_mlp=8, input_is_latent=True,
                               different_w=True, narrow=narrow, sft_half=True)
    return _GFPGANInference(net)


def build_nafnet(config=None):
    """NAFNet (default: GoPro width32) with random weights; returns (net, source) where source names the package.

    Raises ImportError with the install command when neither nafnetlib nor a BasicSR NAFNet arch is present.
    """
    config = dict(NAFNET_GOPRO_WIDTH32 if config is None else config)
    errors = []
    for module_name, source in (('nafnetlib.models.nafnet', 'nafnetlib==0.1.0'),
                                ('basicsr.archs.NAFNet_arch', 'basicsr NAFNet_arch'),
                                ('basicsr.archs.nafnet_arch', 'basicsr nafnet_arch')):
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            errors.append(f'{module_name}: {err}')
            continue
        return module.NAFNet(**config), source
    raise ImportError('NAFNet reference needs `pip install --no-deps nafnetlib==0.1.0` (or a BasicSR with NAFNet): '
                      + '; '.join(errors))
