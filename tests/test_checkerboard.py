"""Checkerboard artifacts (issue 12): the 2×2-period energy measure and the ICNR init of the PixelShuffle convs."""
import math

import pytest
import torch

from smfd_basicsr import prepare_basicsr

prepare_basicsr()

from smfd_arch import MaskGenerator, SMFDUNet  # noqa: E402
from smfd_arch.blocks import PixelShuffleUpsample, icnr_  # noqa: E402
from smfd_arch.checkerboard import periodic_energy  # noqa: E402

SIZE = 64


def smooth_image(size=SIZE):
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing='ij')
    return (0.5 + 0.3 * torch.sin(2 * math.pi * xx) * torch.cos(math.pi * yy) + 0.1 * yy).expand(1, 3, size, size)


def checkerboard(h, w):
    return ((torch.arange(h)[:, None] + torch.arange(w)[None, :]) % 2).to(torch.float32) * 2 - 1


# ---- the measure ----
def test_periodic_energy_by_hand():
    board = checkerboard(8, 6)
    assert periodic_energy(board) == pytest.approx(1.0)
    assert periodic_energy(torch.full((8, 8), 3.0)) == 0.0  # no AC energy at all
    # a cosine of period 8 (variance 1/2, its phase means are all 0) plus a checkerboard of amplitude 1/2
    wave = torch.cos(2 * math.pi * torch.arange(8.0) / 8).repeat(8, 1)
    assert periodic_energy(wave) == pytest.approx(0.0, abs=1e-12)
    assert periodic_energy(wave + 0.5 * checkerboard(8, 8)) == pytest.approx(0.25 / (0.5 + 0.25))
    # a ramp 0..7 over the columns (variance 5.25): even columns average 3, odd ones 4, a ±0.5 column pattern
    assert periodic_energy(torch.arange(8.0).repeat(8, 1)) == pytest.approx(0.25 / 5.25)
    # radius 0 = the energy of the four 2×2 phase means, for any 2-periodic pattern
    torch.manual_seed(0)
    x = torch.rand(2, 3, 10, 12, dtype=torch.float64)
    phases = torch.zeros_like(x)
    for i in (0, 1):
        for j in (0, 1):
            phases[..., i::2, j::2] = x[..., i::2, j::2].mean(dim=(-2, -1), keepdim=True)
    centred = x - x.mean(dim=(-2, -1), keepdim=True)
    periodic = phases - phases.mean(dim=(-2, -1), keepdim=True)
    assert periodic_energy(x) == pytest.approx(float(periodic.square().sum() / centred.square().sum()), rel=1e-9)


def test_periodic_energy_radius_counts_a_slowly_varying_pattern():
    envelope = torch.linspace(0, 1, 32)[:, None].expand(32, 32)
    modulated = envelope * checkerboard(32, 32)
    assert periodic_energy(modulated) < 0.8 < periodic_energy(modulated, radius=1 / 16)
    with pytest.raises(ValueError, match=r'radius must lie in \[0, 0.25\)'):
        periodic_energy(modulated, radius=0.3)
    with pytest.raises(ValueError, match='expected an'):
        periodic_energy(torch.rand(5))


# ---- ICNR ----
def test_icnr_makes_pixel_shuffle_nearest_neighbour_at_init():
    torch.manual_seed(0)
    up = PixelShuffleUpsample(6, 5)
    y = up(torch.rand(2, 6, 7, 9))
    for i, j in ((0, 1), (1, 0), (1, 1)):
        assert torch.equal(y[..., i::2, j::2], y[..., 0::2, 0::2])
    # the sub-kernel keeps PyTorch's default init scale: the weights are not constant and within its bound
    w, bound = up[0].weight, 1 / math.sqrt(6 * 9)
    assert w.std() > bound / 4 and w.abs().max() <= bound and up[0].bias.abs().max() <= bound
    with pytest.raises(ValueError, match='not a multiple of scale'):
        icnr_(torch.nn.Conv2d(4, 6, 3))


def _plain_init(net):
    """The same network with PyTorch's default init of the PixelShuffle convs (what ICNR replaces)."""
    for module in net.modules():
        if isinstance(module, PixelShuffleUpsample):
            module[0].reset_parameters()
    return net


@pytest.mark.parametrize('name', ['SMFDUNet', 'MaskGenerator'])
def test_untrained_network_output_has_no_checkerboard(name):
    x = smooth_image()
    assert periodic_energy(x) < 1e-4
    mask = torch.zeros(1, SIZE, SIZE, dtype=torch.long)
    mask[:, 16:48, 12:52] = 1

    def output(plain):
        torch.manual_seed(0)
        net = SMFDUNet() if name == 'SMFDUNet' else MaskGenerator()
        net = (_plain_init(net) if plain else net).eval()
        with torch.no_grad():
            return net(x, mask) if name == 'SMFDUNet' else net(x)

    with_icnr, plain = periodic_energy(output(False)), periodic_energy(output(True))
    assert with_icnr < 0.01, with_icnr
    assert plain > 0.1 and plain > 20 * with_icnr, (plain, with_icnr)
