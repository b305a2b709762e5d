"""Building blocks shared by the SMFD networks (paper §3.4.3), plus the encoder / decoder / final layers
that both networks assemble from them (§3.4.4, §3.4.5).

The thesis gives the blocks' structure but not every width; what is fitted (growth, head width, ...) is
documented in docs/architecture.md. Every block here takes its widths as arguments.
"""
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

# ITU-R BT.601 luma weights (gray_input), defined once with the image IO
from smfd_data.image_io import BT601

UPSAMPLE_KINDS = ('pixelshuffle', 'transpose', 'bilinear')
UPSAMPLE_CHANNELS = ('stage', 'input')


def check_choice(owner, name, value, valid):
    """Raise a ValueError naming `owner`, the argument and its valid values."""
    if value not in valid:
        raise ValueError(f'{owner}: {name}={value!r} is not valid; choose one of {", ".join(map(repr, valid))}')


def check_positive_int(owner, name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'{owner}: {name} must be a positive int, got {value!r}')


def check_widths(owner, name, widths):
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence) or len(widths) == 0:
        raise ValueError(f'{owner}: {name} must be a non-empty list of positive ints, got {widths!r}')
    for w in widths:
        check_positive_int(owner, name, w)


def growth_for(width, growth=None, growth_ratio=None, owner='RDCBlock'):
    """Growth rate g of an RDC block of output width `width`: a fixed `growth`, or `width * growth_ratio`."""
    if (growth is None) == (growth_ratio is None):
        raise ValueError(f'{owner}: give exactly one of growth (fixed int) or growth_ratio (fraction of the '
                         f'block width), got growth={growth!r}, growth_ratio={growth_ratio!r}')
    if growth is not None:
        check_positive_int(owner, 'growth', growth)
        return growth
    if isinstance(growth_ratio, bool) or not isinstance(growth_ratio, (int, float)) or growth_ratio <= 0:
        raise ValueError(f'{owner}: growth_ratio must be a positive number, got {growth_ratio!r}')
    return max(1, int(round(width * growth_ratio)))


class RDCBlock(nn.Module):
    """Residual Dense Convolution block (§3.4.3.1).

    L dense layers, each 3×3 conv on concat(x0, x1, ..., x_{i-1}) → BN → ReLU with `growth` channels;
    1×1 fusion of concat(x0, ..., x_L); 1×1 projection of x0 as the residual; add; ReLU.
    """

    def __init__(self, in_channels, out_channels, num_layers=2, growth=16):
        super().__init__()
        for name, value in (('in_channels', in_channels), ('out_channels', out_channels),
                            ('num_layers', num_layers), ('growth', growth)):
            check_positive_int('RDCBlock', name, value)
        self.dense = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(in_channels + i * growth, growth, 3, padding=1),
                nn.BatchNorm2d(growth),
                nn.ReLU(inplace=True)) for i in range(num_layers))
        self.fuse = nn.Conv2d(in_channels + num_layers * growth, out_channels, 1)
        self.residual = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x):
        """The same function as `forward_reference`, without concatenating x: a convolution of
        concat(x, x1, ...) is the sum of convolutions of x and of concat(x1, ...) with the matching weight slices.
        x's share of every dense layer is one convolution (cin → L·g), and x's share of the 1×1 fusion and the
        1×1 residual are one 1×1 convolution with the summed weights. Only the growth features (g channels each)
        are ever concatenated; the parameters (and checkpoints) are those of the plain layout.

        In eval mode with grad disabled the weights are prepared once (`eval_weights`: slices concatenated, BN
        folded in) instead of on every call; training and grad-enabled calls slice the parameters on every call and
        apply BN."""
        if not (self.training or torch.is_grad_enabled()) and self._bn_foldable():
            return self._forward_split(x, self.eval_weights(x))
        return self._forward_split(x, self._split_weights(), [layer[1] for layer in self.dense])

    def _bn_foldable(self):
        # eval-mode BN uses the running statistics only when it tracks them
        return all(layer[1].running_mean is not None and layer[1].running_var is not None for layer in self.dense)

    def _split_weights(self):
        """The weights of `_forward_split` as slices and sums of the parameters (BN applied separately): (shared
        weight (L·g, cin, 3, 3), shared bias, per-layer grown-feature weights (None for layer 0), 1×1
        fusion+residual weight of x, its bias, 1×1 fusion weight of the grown features)."""
        cin = self.residual.in_channels
        convs = [layer[0] for layer in self.dense]
        return (torch.cat([c.weight[:, :cin] for c in convs]), torch.cat([c.bias for c in convs]),
                [None] + [c.weight[:, cin:] for c in convs[1:]], self.fuse.weight[:, :cin] + self.residual.weight,
                self.fuse.bias + self.residual.bias, self.fuse.weight[:, cin:])

    def _forward_split(self, x, weights, norms=None):
        """`forward` from `_split_weights` with the BN modules ``norms``, or from the prepared weights of
        `prepare_eval_weights` (BN folded in, ``norms`` None): each dense layer is conv(s) (+ BN) + ReLU."""
        shared_w, shared_b, grown_ws, fuse_x_w, fuse_b, fuse_g_w = weights
        g, padding = self.dense[0][0].out_channels, self.dense[0][0].padding
        shared = F.conv2d(x, shared_w, shared_b, padding=padding)
        features = []
        for i, grown_w in enumerate(grown_ws):
            z = shared[:, i * g:(i + 1) * g]
            if i:
                z = z + F.conv2d(_cat_channels(features), grown_w, None, padding=padding)
            if norms is not None:
                z = norms[i](z)
            # in place on a fresh tensor; layer 0 without BN is a view of `shared`, whose other slices are still read
            features.append(F.relu(z) if norms is None and not i else F.relu_(z))
        out = F.conv2d(x, fuse_x_w, fuse_b)
        return F.relu_(out.add_(F.conv2d(_cat_channels(features), fuse_g_w)))

    def prepare_eval_weights(self, memory_format=torch.contiguous_format):
        """The weights of `_forward_split` without BN modules, from the current parameters and BN running statistics.

        BN(z) = z·s + t with s = γ / sqrt(var + eps), t = β − mean·s, so BN(conv(x; W, b) + conv(grown; V)) =
        conv(x; s·W, s·b + t) + conv(grown; s·V). Returns (shared weight (L·g, cin, 3, 3), shared bias,
        per-layer grown-feature weights (None for layer 0), 1×1 fusion+residual weight of x, its bias, 1×1 fusion
        weight of the grown features), in `memory_format` (the input's: a conv converts a weight in the other
        format on every call)."""
        cin = self.residual.in_channels
        with torch.no_grad():
            dtype = self.fuse.weight.dtype
            work = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype  # fold in ≥ fp32

            def fmt(t):
                return t.to(dtype).contiguous(memory_format=memory_format)

            shared_w, shared_b, grown_ws = [], [], []
            for conv, bn, _ in self.dense:
                s = torch.rsqrt(bn.running_var.to(work) + bn.eps)
                if bn.weight is not None:
                    s = s * bn.weight.to(work)
                t = -bn.running_mean.to(work) * s
                if bn.bias is not None:
                    t = t + bn.bias.to(work)
                w = conv.weight.to(work) * s.view(-1, 1, 1, 1)
                shared_w.append(w[:, :cin])
                shared_b.append(t if conv.bias is None else conv.bias.to(work) * s + t)
                grown_ws.append(fmt(w[:, cin:]) if grown_ws else None)
            fuse_b = self.fuse.bias + self.residual.bias
            return (fmt(torch.cat(shared_w)), torch.cat(shared_b).to(dtype), grown_ws,
                    fmt(self.fuse.weight[:, :cin] + self.residual.weight), fuse_b, fmt(self.fuse.weight[:, cin:]))

    def eval_weights(self, x):
        """`prepare_eval_weights` for input `x`, cached on the module (a plain attribute: not in state_dict).

        The cache is rebuilt when any parameter or buffer changes: in place (optimizer step, load_state_dict bump
        the tensor's version), replaced (`.to()`, `.data =`: another storage; the cache holds the old one so its
        address cannot be reused) or another dtype / device / memory format. Not cached while tracing or compiling
        (the graph records the folding from the parameters) nor for inference-mode parameters (no version)."""
        channels_last = x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        tensors = list(self.parameters()) + list(self.buffers())
        if torch.jit.is_tracing() or torch.compiler.is_compiling() or any(t.is_inference() for t in tensors):
            return self.prepare_eval_weights(memory_format)
        key = (memory_format, [(t.data_ptr(), t._version, t.dtype, t.device, t.shape, t.stride()) for t in tensors])
        cache = self.__dict__.get('_eval_cache')
        if cache is None or cache[0] != key:
            cache = (key, self.prepare_eval_weights(memory_format), [t.detach() for t in tensors])
            self.__dict__['_eval_cache'] = cache
        return cache[1]

    def forward_reference(self, x):
        """§3.4.3.1 as written: dense layers on the running concatenation, 1×1 fusion + 1×1 residual, ReLU."""
        features = [x]
        for layer in self.dense:
            features.append(layer(torch.cat(features, dim=1)))
        return F.relu(self.fuse(torch.cat(features, dim=1)) + self.residual(x))


class CBAM(nn.Module):
    """Convolutional Block Attention Module (§3.4.3.4): channel attention, then spatial attention.

    Channel: a shared MLP c → c/r → c (1×1 convs ≡ Keras Dense) on the average- and max-pooled vectors,
    summed, sigmoid. Spatial: a 7×7 conv on [mean, max] over channels, sigmoid.
    """

    def __init__(self, channels, reduction=8):
        super().__init__()
        check_positive_int('CBAM', 'channels', channels)
        check_positive_int('CBAM', 'reduction', reduction)
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1))
        self.spatial = nn.Conv2d(2, 1, 7, padding=3)

    def forward(self, x):
        # amax over H, W instead of adaptive_max_pool2d (which also computes argmax indices); the shared MLP runs
        # once on the two pooled vectors stacked along the batch axis.
        b = x.shape[0]
        pooled = torch.cat([x.mean(dim=(2, 3), keepdim=True), x.amax(dim=(2, 3), keepdim=True)], dim=0)
        gate = self.mlp(pooled)
        x = x * torch.sigmoid(gate[:b] + gate[b:])
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(pooled))


def icnr_(conv, scale=2):
    """ICNR init (Aitken et al. 2017, "Checkerboard artifact free sub-pixel convolution") of a conv that feeds
    PixelShuffle(scale): the scale² sub-pixel filters (and biases) of every output channel are set equal, so at
    init the shuffle is nearest-neighbour upsampling, without the checkerboard a random init gives.

    The shared sub-kernel gets PyTorch's default conv init (same fan-in, so the same scale as before).
    PixelShuffle takes output channel c at sub-pixel (i, j) from input channel c·scale² + i·scale + j, hence
    ``repeat_interleave``.
    """
    r2 = scale * scale
    if conv.out_channels % r2:
        raise ValueError(f'icnr_: out_channels={conv.out_channels} is not a multiple of scale²={r2}')
    weight = conv.weight
    sub = weight.new_empty(weight.shape[0] // r2, *weight.shape[1:])
    nn.init.kaiming_uniform_(sub, a=math.sqrt(5))  # nn.Conv2d.reset_parameters
    with torch.no_grad():
        weight.copy_(sub.repeat_interleave(r2, dim=0))
        if conv.bias is not None:
            bound = 1 / math.sqrt(weight[0].numel())
            conv.bias.copy_(conv.bias.new_empty(conv.out_channels // r2).uniform_(-bound, bound).repeat_interleave(r2))
    return conv


class PixelShuffleUpsample(nn.Sequential):
    """×2 upsampling (§3.4.3.2): 3×3 conv c → 4c', PixelShuffle(2) (DepthToSpace), ReLU; the conv is ICNR-initialised
    (`icnr_`), so an untrained network upsamples without a checkerboard."""

    def __init__(self, in_channels, out_channels):
        super().__init__(icnr_(nn.Conv2d(in_channels, 4 * out_channels, 3, padding=1)), nn.PixelShuffle(2),
                         nn.ReLU(inplace=True))


class TransposeUpsample(nn.Sequential):
    """×2 upsampling by a 2×2 stride-2 transposed conv + ReLU (Table 4.3 "Attention Upsampling (Transpose)")."""

    def __init__(self, in_channels, out_channels):
        super().__init__(nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2), nn.ReLU(inplace=True))


class BilinearUpsample(nn.Sequential):
    """×2 bilinear resize + 3×3 conv + ReLU (our reading of Table 4.3 "Traditional Upsampling")."""

    def __init__(self, in_channels, out_channels):
        super().__init__(nn.Upsample(scale_factor=2, mode='bilinear', align_corners=False),
                         nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True))


_UPSAMPLERS = {'pixelshuffle': PixelShuffleUpsample, 'transpose': TransposeUpsample, 'bilinear': BilinearUpsample}


def make_upsample(kind, in_channels, out_channels):
    """Factory for the ×2 upsampling layer: 'pixelshuffle' | 'transpose' | 'bilinear'."""
    check_choice('make_upsample', 'upsample', kind, UPSAMPLE_KINDS)
    return _UPSAMPLERS[kind](in_channels, out_channels)


class AttentionUpsample(nn.Module):
    """Attention Upsample (§3.4.3.3): concat(upsample(x), CBAM(skip)); the plain skip when attention=False."""

    def __init__(self, in_channels, skip_channels, out_channels, upsample='pixelshuffle', attention=True,
                 cbam_reduction=8):
        super().__init__()
        self.up = make_upsample(upsample, in_channels, out_channels)
        self.skip_attention = CBAM(skip_channels, cbam_reduction) if attention else nn.Identity()
        self.out_channels = out_channels + skip_channels

    def forward(self, x, skip):
        return torch.cat([self.up(x), self.skip_attention(skip)], dim=1)


class PostProcess(nn.Module):
    """Brightness/contrast post-processing (§3.4.3.5): (y − μ)·c + μ + b, μ = per-image mean over C, H, W.

    No clamping: BasicSR's tensor2img clamps to [0, 1] when it writes images.
    """

    def __init__(self, contrast=2.0, brightness=0.1):
        super().__init__()
        self.contrast = float(contrast)
        self.brightness = float(brightness)

    def forward(self, y):
        # (y − μ)·c + μ + b = y·c + (μ·(1 − c) + b): one pass over the image (the offset is one number per image)
        mu = y.mean(dim=(1, 2, 3), keepdim=True)
        return torch.add(mu * (1.0 - self.contrast) + self.brightness, y, alpha=self.contrast)

    def extra_repr(self):
        return f'contrast={self.contrast}, brightness={self.brightness}'


def gray_input(x, in_channels, owner):
    """Check that `x` is a (B,C,H,W) batch for a network of `in_channels` inputs; with in_channels=1 an RGB batch
    becomes gray (BT.601), so a cascade can feed the segmentation networks the RGB blurry image (§3.4.2)."""
    if x.dim() != 4:
        raise ValueError(f'{owner}: expected a (B,C,H,W) tensor, got shape {tuple(x.shape)}')
    if x.shape[1] == 3 and in_channels == 1:
        r, g, b = BT601
        x = r * x[:, 0:1] + g * x[:, 1:2] + b * x[:, 2:3]
    if x.shape[1] != in_channels:
        raise ValueError(f'{owner}: expected {in_channels} input channels'
                         f'{" (or 3, converted to gray)" if in_channels == 1 else ""}, got {x.shape[1]}')
    return x


def pad_to_multiple(x, multiple):
    """Pad the bottom/right of a BCHW tensor so H and W are multiples of `multiple`.

    Reflect padding (no hard border for the convs); replicate when the image is too small to reflect.
    Returns (padded, (h, w)) with the original size, for `crop_to`.
    """
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h or pad_w:
        mode = 'reflect' if pad_h < h and pad_w < w else 'replicate'
        x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
    return x, (h, w)


def crop_to(x, size):
    """Undo `pad_to_multiple`: keep the top-left `size` = (h, w)."""
    return x[..., :size[0], :size[1]]


class FusedRDCEncoder(nn.Module):
    """Encoder of RDC blocks + 2×2 max-pooling, one branch per input (§3.4.4, §3.4.5.1).

    At every level each branch runs an RDC block; the branch outputs are concatenated on the channel axis
    (the fusion of §3.4.5.1). That concatenation is the level's skip connection and, max-pooled, the next
    level's input of every branch. With one input this is the plain U-Net encoder of the mask generator.
    With `bottleneck_width`, each branch ends with one more RDC block at the lowest resolution (not pooled);
    `forward` returns (bottom features, skips from shallow to deep).
    """

    def __init__(self, in_channels, widths, bottleneck_width=None, num_layers=2, growth=None, growth_ratio=None):
        super().__init__()
        owner = 'FusedRDCEncoder'
        check_widths(owner, 'in_channels', in_channels)
        check_widths(owner, 'encoder_widths', widths)
        if bottleneck_width is not None:
            check_positive_int(owner, 'bottleneck_width', bottleneck_width)
        n = len(in_channels)
        branches = [nn.ModuleList() for _ in range(n)]
        cins = list(in_channels)
        for w in widths:
            for b in range(n):
                branches[b].append(RDCBlock(cins[b], w, num_layers, growth_for(w, growth, growth_ratio, owner)))
            cins = [n * w] * n
        if bottleneck_width is not None:
            g = growth_for(bottleneck_width, growth, growth_ratio, owner)
            for b in range(n):
                branches[b].append(RDCBlock(cins[b], bottleneck_width, num_layers, g))
        self.branches = nn.ModuleList(branches)
        self.num_pools = len(widths)
        self.has_bottleneck = bottleneck_width is not None
        self.skip_channels = [n * w for w in widths]
        self.out_channels = n * (bottleneck_width if bottleneck_width is not None else widths[-1])

    def forward(self, inputs):
        if len(inputs) != len(self.branches):
            raise ValueError(f'FusedRDCEncoder: expected {len(self.branches)} inputs, got {len(inputs)}')
        xs, skips = list(inputs), []
        for level in range(self.num_pools):
            fused = _cat_channels([branch[level](x) for branch, x in zip(self.branches, xs)])
            skips.append(fused)
            xs = [F.max_pool2d(fused, 2)] * len(self.branches)
        if self.has_bottleneck:
            return _cat_channels([branch[-1](x) for branch, x in zip(self.branches, xs)]), skips
        return xs[0], skips


def _cat_channels(tensors):
    # one branch (the mask generator): torch.cat would copy the tensor for nothing
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors, dim=1)


class AttentionDecoder(nn.Module):
    """Decoder (§3.4.5.2): per stage an Attention Upsample with the matching skip, then an RDC block.

    `upsample_channels`: 'stage' → the upsampling layer outputs the stage width; 'input' → it keeps its input
    width (the literal reading of §3.4.3.2: the conv multiplies channels by scale² = 4 before the shuffle).
    """

    def __init__(self, in_channels, skip_channels, widths, upsample='pixelshuffle', upsample_channels='stage',
                 attention=True, cbam_reduction=8, num_layers=2, growth=None, growth_ratio=None):
        super().__init__()
        owner = 'AttentionDecoder'
        check_widths(owner, 'decoder_widths', widths)
        check_choice(owner, 'upsample', upsample, UPSAMPLE_KINDS)
        check_choice(owner, 'upsample_channels', upsample_channels, UPSAMPLE_CHANNELS)
        if len(widths) != len(skip_channels):
            raise ValueError(f'{owner}: decoder_widths has {len(widths)} stages but the encoder has '
                             f'{len(skip_channels)} pooling levels; they must match (one upsampling per pooling)')
        self.ups, self.rdcs = nn.ModuleList(), nn.ModuleList()
        c = in_channels
        for w, s in zip(widths, reversed(skip_channels)):
            up = AttentionUpsample(c, s, w if upsample_channels == 'stage' else c, upsample, attention, cbam_reduction)
            self.ups.append(up)
            self.rdcs.append(RDCBlock(up.out_channels, w, num_layers, growth_for(w, growth, growth_ratio, owner)))
            c = w
        self.out_channels = c

    def forward(self, x, skips):
        for up, rdc, skip in zip(self.ups, self.rdcs, reversed(skips)):
            x = rdc(up(x, skip))
        return x


class FinalLayers(nn.Module):
    """Final layers (§3.4.4, §3.4.5.3): CBAM → RDC block → 1×1 conv → 1×1 conv (linear, as Keras' default)."""

    def __init__(self, in_channels, width, head_channels, out_channels, cbam_reduction=8, num_layers=2,
                 growth=None, growth_ratio=None):
        super().__init__()
        owner = 'FinalLayers'
        check_positive_int(owner, 'final_width', width)
        check_positive_int(owner, 'head_channels', head_channels)
        check_positive_int(owner, 'out_channels', out_channels)
        self.cbam = CBAM(in_channels, cbam_reduction)
        self.rdc = RDCBlock(in_channels, width, num_layers, growth_for(width, growth, growth_ratio, owner))
        self.head = nn.Sequential(nn.Conv2d(width, head_channels, 1), nn.Conv2d(head_channels, out_channels, 1))

    def forward(self, x):
        return self.head(self.rdc(self.cbam(x)))


def count_bn_channels(module):
    """Total BatchNorm channels; Keras reports 2 non-trainable values (moving mean, variance) per channel."""
    return sum(m.num_features for m in module.modules() if isinstance(m, nn.BatchNorm2d))


def count_parameters(module):
    """Number of parameters (all of them: trainable ones, as Keras' "trainable params" of Tables 3.1/3.2)."""
    return sum(p.numel() for p in module.parameters())
