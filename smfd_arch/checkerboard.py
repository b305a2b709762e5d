"""A measure of checkerboard artifacts: how much of an image's energy sits at the 2×2 period.

PixelShuffle(2) upsampling from a random init gives every output pixel of a 2×2 cell its own filter, so a smooth
input comes out with a pattern that repeats every 2 pixels (Aitken et al. 2017); ICNR (`blocks.icnr_`) removes it.
In the 2-D spectrum that pattern is energy at the Nyquist points (½, 0), (0, ½), (½, ½) cycles/pixel.
"""
import torch


def periodic_energy(x, radius=0.0):
    """Fraction of the AC energy of `x` at the 2×2 period, in [0, 1].

    Args:
        x: (H, W), (C, H, W) or (B, C, H, W) tensor; the mean of each image and channel is removed, the energy is
            summed over all of them.
        radius: half-width, in cycles/pixel, of the frequency band counted around each Nyquist point. 0 counts
            the three Nyquist bins alone: then, for even H and W, the result is exactly the energy of the best
            2×2-periodic approximation of x (the four phase means x[i::2, j::2]) over the energy of x. A small
            radius (e.g. 1/16) also counts a 2-pixel pattern whose strength varies slowly over the image.
    """
    if x.dim() < 2:
        raise ValueError(f'periodic_energy: expected an (H, W), (C, H, W) or (B, C, H, W) tensor, got {tuple(x.shape)}')
    if not 0 <= radius < 0.25:
        raise ValueError(f'periodic_energy: radius must lie in [0, 0.25) cycles/pixel, got {radius!r}')
    x = x.detach().to(torch.float64)
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    power = torch.fft.fft2(x).abs().square()
    h, w = x.shape[-2:]
    # |f| in cycles/pixel ∈ [0, ½]; "near ½" on an axis means within `radius` of the Nyquist frequency
    fy = torch.fft.fftfreq(h, dtype=torch.float64).abs()[:, None]
    fx = torch.fft.fftfreq(w, dtype=torch.float64).abs()[None, :]
    eps = 1e-12  # a bin lies exactly at ½ only for even sizes; compare with a tolerance
    near_y, low_y = fy >= 0.5 - radius - eps, fy <= radius + eps
    near_x, low_x = fx >= 0.5 - radius - eps, fx <= radius + eps
    band = (near_y & low_x) | (low_y & near_x) | (near_y & near_x)
    total = power.sum()
    if total == 0:
        return 0.0
    return float((power * band).sum() / total)
