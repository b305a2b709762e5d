"""Randomized degradation of §3.4.1: heavy blur layers → resolution degradation → Gaussian noise.

Pipeline for one sharp image I (float32 HWC RGB in [0, 1]):

1. Randomized heavy blur: n ∈ {1, 2, 3} layers; each layer is one sequence of blur operations,
   M, G→M, M→G or G→M→G (names 'M', 'GM', 'MG', 'GMG'); G = Gaussian blur with a kernel side in
   {15, 21, 25, 31, 35, 41}, M = linear motion blur with a side in the same set and one of 4 directions.
   Every operation is a true convolution ``B = I * k`` with symmetric (``BORDER_REFLECT``) borders.
2. Resolution degradation: downscale by s ∈ [2.0, 4.0] and upscale back to the input size.
3. Gaussian noise: B + η·N(0, 1) with η ∈ [5.0, 10.0] on the 0–255 scale (η/255 here), then clip to [0, 1].
4. (extra, off by default) JPEG compression.

The split into ``sample_degradation`` (draw JSON-serialisable parameters) and ``apply_degradation``
(deterministic given the parameters) makes every degraded image reproducible from its parameters, lets the
test set store them (``params.json``) and lets ``smfd_data.degradation_torch`` apply the very same draws on the
training device. Choices the paper leaves open are listed in ``docs/degradation.md``.
"""
import dataclasses
import math
from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np

from smfd_data.blur_kernels import (
    GAUSSIAN_SIGMA_RULES,
    MOTION_DIRECTIONS,
    disk_kernel,
    gaussian_kernel,
    gaussian_sigma,
    linear_motion_kernel,
    motion_kernel,
    trajectory_kernel,
)
from smfd_data.image_io import to_uint8

PARAMS_VERSION = 1
PAPER_SIZES = (15, 21, 25, 31, 35, 41)
# Names accepted in the config → OpenCV flags. The torch twin reproduces each of them exactly (it probes
# cv2.resize for the resampling weights), so any of them may be used on either path.
INTERPOLATIONS = {
    'nearest': cv2.INTER_NEAREST,
    'bilinear': cv2.INTER_LINEAR,
    'bicubic': cv2.INTER_CUBIC,
    'area': cv2.INTER_AREA,
    'lanczos': cv2.INTER_LANCZOS4,
}
# Blur borders: symmetric reflection "cba|abc" (the torch twin builds the same index map).
BLUR_BORDER = cv2.BORDER_REFLECT
# Config fields whose value is a list of discrete choices; ``weights`` may give each a probability list.
CHOICE_FIELDS = ('num_layers', 'sequences', 'gaussian_sizes', 'motion_sizes', 'motion_directions',
                 'down_interpolations', 'up_interpolations')


def _paper_sizes():
    return list(PAPER_SIZES)


@dataclass
class DegradationConfig:
    """Options of the randomized degradation; the defaults are the paper's (§3.4.1).

    YAML: ``datasets.<phase>.degradation: {field: value, ...}``; omitted fields keep these defaults.

    Heavy blur (§3.4.1):
        num_layers: choices for the number of blur layers n.
        sequences: per-layer operation sequences, strings of 'G' (Gaussian) and 'M' (motion), applied left
            to right ('GM' = Gaussian then motion). 'G->M' / 'G→M' spellings are accepted.
        gaussian_sizes: Gaussian kernel sides (odd). gaussian_sigma_rule: 'opencv' (σ of
            ``cv2.GaussianBlur`` with σ=0; the paper gives no σ), 'size_over_6', or a number (fixed σ).
        motion_sizes, motion_directions: motion kernel sides (odd) and directions
            (horizontal, vertical, diagonal, anti_diagonal).
    Resolution degradation:
        scale_range: [min, max] of the down-scale factor s (sampled uniformly, continuous).
        scale_step: grid step used by ``count_configurations`` (and by sampling when ``quantize``).
        down_interpolations / up_interpolations: resize methods (paper silent; default area / bicubic).
    Noise:
        noise_range: [min, max] of η on the 0–255 scale (uniform, continuous); noise_step as scale_step.
    quantize: round sampled s and η to their grids, so that the sampler draws exactly from the space that
        ``count_configurations`` counts (the paper samples continuously and discretises only to count).
    Extra blur families (not in the paper, probability 0 by default):
        linear_motion_prob: chance that an M operation is a linear motion of any angle and length instead
            (length uniform in linear_motion_length_range px, angle uniform in linear_motion_angle_range°).
        trajectory_prob: chance that an M operation is a random camera-shake trajectory (Boracchi & Foi)
            with a side from trajectory_sizes (None → motion_sizes).
        disk_prob: chance that a G operation is a defocus disk with radius uniform in disk_radius_range.
    JPEG (not in the paper): with jpeg_prob, compress at a quality uniform in jpeg_quality_range (integers).
    weights: optional ``{choice field: [weight per choice]}`` for non-uniform choices, e.g.
        ``{num_layers: [2, 1, 1]}``; missing fields are uniform.
    """
    num_layers: list = field(default_factory=lambda: [1, 2, 3])
    sequences: list = field(default_factory=lambda: ['M', 'GM', 'MG', 'GMG'])
    gaussian_sizes: list = field(default_factory=_paper_sizes)
    gaussian_sigma_rule: object = 'opencv'
    motion_sizes: list = field(default_factory=_paper_sizes)
    motion_directions: list = field(default_factory=lambda: list(MOTION_DIRECTIONS))
    scale_range: list = field(default_factory=lambda: [2.0, 4.0])
    scale_step: float = 0.1
    down_interpolations: list = field(default_factory=lambda: ['area'])
    up_interpolations: list = field(default_factory=lambda: ['bicubic'])
    noise_range: list = field(default_factory=lambda: [5.0, 10.0])
    noise_step: float = 0.1
    quantize: bool = False
    linear_motion_prob: float = 0.0
    linear_motion_length_range: list = field(default_factory=lambda: [15.0, 41.0])
    linear_motion_angle_range: list = field(default_factory=lambda: [0.0, 180.0])
    trajectory_prob: float = 0.0
    trajectory_sizes: list = None
    disk_prob: float = 0.0
    disk_radius_range: list = field(default_factory=lambda: [3.0, 10.0])
    jpeg_prob: float = 0.0
    jpeg_quality_range: list = field(default_factory=lambda: [30, 95])
    weights: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d=None, source='degradation config'):
        """Build from a (YAML) dict; None/{} → paper defaults. Unknown keys raise, listing the valid ones."""
        if d is None:
            return cls()
        if isinstance(d, cls):
            return d
        if not isinstance(d, dict):
            raise ValueError(f'{source}: expected a mapping of degradation options, got {type(d).__name__}')
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(valid))
        if unknown:
            raise ValueError(f'{source}: unknown degradation option(s) {unknown}; valid options: {valid}')
        return cls(**d)

    def to_dict(self):
        return dataclasses.asdict(self)

    def __post_init__(self):
        # Normalise YAML forms (tuples, 'G->M' spellings), then validate so errors surface at start-up.
        for name in ('num_layers', 'sequences', 'gaussian_sizes', 'motion_sizes', 'motion_directions', 'scale_range',
                     'down_interpolations', 'up_interpolations', 'noise_range', 'linear_motion_length_range',
                     'linear_motion_angle_range', 'disk_radius_range', 'jpeg_quality_range'):
            value = getattr(self, name)
            if not isinstance(value, (list, tuple)) or len(value) == 0:
                raise ValueError(f'degradation option {name}: expected a non-empty list, got {value!r}')
            setattr(self, name, list(value))
        self.sequences = [_normalise_sequence(s) for s in self.sequences]
        for n in self.num_layers:
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ValueError(f'degradation option num_layers: entries must be integers >= 1, got {n!r}')
        if self.trajectory_sizes is not None:
            self.trajectory_sizes = list(self.trajectory_sizes)
        for name in ('gaussian_sizes', 'motion_sizes', 'trajectory_sizes'):
            for k in getattr(self, name) or []:
                if isinstance(k, bool) or not isinstance(k, int) or k <= 0 or k % 2 == 0:
                    raise ValueError(f'degradation option {name}: kernel sizes must be positive odd integers, '
                                     f'got {k!r}')
        rule = self.gaussian_sigma_rule
        if isinstance(rule, str):
            if rule not in GAUSSIAN_SIGMA_RULES:
                raise ValueError(f'degradation option gaussian_sigma_rule: expected one of {GAUSSIAN_SIGMA_RULES} '
                                 f'or a positive number, got {rule!r}')
        elif isinstance(rule, bool) or not isinstance(rule, (int, float)) or rule <= 0:
            raise ValueError(f'degradation option gaussian_sigma_rule: expected one of {GAUSSIAN_SIGMA_RULES} '
                             f'or a positive number, got {rule!r}')
        for d in self.motion_directions:
            if d not in MOTION_DIRECTIONS:
                raise ValueError(f'degradation option motion_directions: {d!r} is not one of {MOTION_DIRECTIONS}')
        for name in ('down_interpolations', 'up_interpolations'):
            for m in getattr(self, name):
                if m not in INTERPOLATIONS:
                    raise ValueError(f'degradation option {name}: {m!r} is not one of {sorted(INTERPOLATIONS)}')
        for name in ('scale_range', 'noise_range', 'linear_motion_length_range', 'linear_motion_angle_range',
                     'disk_radius_range', 'jpeg_quality_range'):
            value = getattr(self, name)
            if len(value) != 2 or not all(isinstance(v, (int, float)) for v in value) or value[0] > value[1]:
                raise ValueError(f'degradation option {name}: expected [min, max] with min <= max, got {value!r}')
        if self.scale_range[0] < 1.0:
            raise ValueError(f'degradation option scale_range: factors must be >= 1 (downscaling), '
                             f'got {self.scale_range}')
        if self.noise_range[0] < 0:
            raise ValueError(f'degradation option noise_range: η must be >= 0, got {self.noise_range}')
        if self.linear_motion_length_range[0] <= 0 or self.disk_radius_range[0] <= 0:
            raise ValueError('degradation options linear_motion_length_range / disk_radius_range must be > 0')
        q_lo, q_hi = self.jpeg_quality_range
        if not (isinstance(q_lo, int) and isinstance(q_hi, int) and 1 <= q_lo <= q_hi <= 100):
            raise ValueError(f'degradation option jpeg_quality_range: expected integers in [1, 100], '
                             f'got {self.jpeg_quality_range!r}')
        for name in ('scale_step', 'noise_step'):
            if not getattr(self, name) > 0:
                raise ValueError(f'degradation option {name}: must be > 0, got {getattr(self, name)!r}')
        for name in ('linear_motion_prob', 'trajectory_prob', 'disk_prob', 'jpeg_prob'):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f'degradation option {name}: must be in [0, 1], got {p!r}')
        if self.linear_motion_prob + self.trajectory_prob > 1.0 + 1e-12:
            raise ValueError('degradation options linear_motion_prob + trajectory_prob must be <= 1, got '
                             f'{self.linear_motion_prob} + {self.trajectory_prob}')
        if not isinstance(self.weights, dict):
            raise ValueError(f'degradation option weights: expected a mapping, got {self.weights!r}')
        for name, w in self.weights.items():
            if name not in CHOICE_FIELDS:
                raise ValueError(f'degradation option weights: unknown field {name!r}; '
                                 f'valid fields: {list(CHOICE_FIELDS)}')
            choices = getattr(self, name)
            if (not isinstance(w, (list, tuple)) or len(w) != len(choices) or any(x < 0 for x in w)
                    or sum(w) <= 0):
                raise ValueError(f'degradation option weights.{name}: expected {len(choices)} non-negative weights '
                                 f'(one per choice {choices}) with a positive sum, got {w!r}')

    def probabilities(self, name):
        """Normalised probabilities of the choices of field ``name`` (uniform unless ``weights`` says)."""
        w = np.asarray(self.weights.get(name, [1.0] * len(getattr(self, name))), dtype=np.float64)
        return w / w.sum()


def _normalise_sequence(seq):
    """'G→M', 'G->M', 'g-m', 'GM' → 'GM'; only G and M are operations."""
    if not isinstance(seq, str):
        raise ValueError(f'degradation option sequences: expected strings of G/M, got {seq!r}')
    s = seq.upper()
    for sep in ('→', '->', '-', '>', ' ', ','):
        s = s.replace(sep, '')
    if not s or set(s) - {'G', 'M'}:
        raise ValueError(f'degradation option sequences: {seq!r} must be a sequence of G (Gaussian) and M (motion)')
    return s


# ---------------------------------------------------------------------------------------------- sampling

def rng_for_sample(seed, index):
    """Generator of sample ``index`` under global ``seed``: ``np.random.default_rng([seed, index])``.

    Independent of worker count, epoch order and process, so a sample's degradation is reproducible.
    """
    return np.random.default_rng([int(seed), int(index)])


def _choice(rng, cfg, name):
    choices = getattr(cfg, name)
    i = int(rng.choice(len(choices), p=cfg.probabilities(name)))
    return choices[i]


def _uniform(rng, lo, hi, step, quantize):
    value = float(rng.uniform(lo, hi)) if hi > lo else float(lo)
    if quantize:
        value = min(hi, lo + round((value - lo) / step) * step)
        value = round(value, 10)  # 2.7000000000000002 → 2.7 so JSON stays readable
    return value


def _sample_gaussian_op(cfg, rng):
    if cfg.disk_prob > 0 and rng.random() < cfg.disk_prob:
        return {'type': 'disk', 'radius': float(rng.uniform(*cfg.disk_radius_range))}
    size = int(_choice(rng, cfg, 'gaussian_sizes'))
    rule = cfg.gaussian_sigma_rule
    sigma = gaussian_sigma(size, rule) if isinstance(rule, str) else float(rule)
    return {'type': 'gaussian', 'size': size, 'sigma': round(float(sigma), 12)}  # 2.6, not 2.5999999999999996


def _sample_motion_op(cfg, rng):
    if cfg.linear_motion_prob > 0 or cfg.trajectory_prob > 0:
        u = rng.random()
        if u < cfg.linear_motion_prob:
            return {'type': 'linear_motion', 'length': float(rng.uniform(*cfg.linear_motion_length_range)),
                    'angle': float(rng.uniform(*cfg.linear_motion_angle_range))}
        if u < cfg.linear_motion_prob + cfg.trajectory_prob:
            sizes = cfg.trajectory_sizes or cfg.motion_sizes
            return {'type': 'trajectory', 'size': int(sizes[int(rng.integers(len(sizes)))]),
                    'seed': int(rng.integers(2 ** 31))}
    return {'type': 'motion', 'size': int(_choice(rng, cfg, 'motion_sizes')),
            'direction': str(_choice(rng, cfg, 'motion_directions'))}


def sample_degradation(cfg, rng):
    """Draw the parameters of one degradation (§3.4.1). Pure function of ``cfg`` and the rng state.

    Returns a JSON-serialisable dict::

        {'version': 1,
         'layers': [{'sequence': 'GM', 'ops': [{'type': 'gaussian', 'size': 21, 'sigma': 3.8},
                                              {'type': 'motion', 'size': 15, 'direction': 'vertical'}]}, ...],
         'scale': 2.73, 'down_interpolation': 'area', 'up_interpolation': 'bicubic',
         'noise_sigma': 7.31,          # η on the 0–255 scale
         'noise_seed': 123456789,      # seeds the noise field, so the output is reproducible
         'jpeg_quality': None}         # or an int
    """
    cfg = DegradationConfig.from_dict(cfg)
    layers = []
    for _ in range(int(_choice(rng, cfg, 'num_layers'))):
        sequence = _choice(rng, cfg, 'sequences')
        ops = [_sample_gaussian_op(cfg, rng) if letter == 'G' else _sample_motion_op(cfg, rng) for letter in sequence]
        layers.append({'sequence': sequence, 'ops': ops})
    params = {
        'version': PARAMS_VERSION,
        'layers': layers,
        'scale': _uniform(rng, *cfg.scale_range, cfg.scale_step, cfg.quantize),
        'down_interpolation': str(_choice(rng, cfg, 'down_interpolations')),
        'up_interpolation': str(_choice(rng, cfg, 'up_interpolations')),
        'noise_sigma': _uniform(rng, *cfg.noise_range, cfg.noise_step, cfg.quantize),
        'noise_seed': int(rng.integers(2 ** 31)),
        'jpeg_quality': None,
    }
    if cfg.jpeg_prob > 0 and rng.random() < cfg.jpeg_prob:
        params['jpeg_quality'] = int(rng.integers(cfg.jpeg_quality_range[0], cfg.jpeg_quality_range[1] + 1))
    return params


def blur_ops(params):
    """All blur operations of ``params`` in application order (layers flattened)."""
    return [op for layer in params['layers'] for op in layer['ops']]


@lru_cache(maxsize=512)
def _kernel_cached(key):
    op = dict(key)
    kind = op.get('type')
    if kind == 'gaussian':
        return gaussian_kernel(op['size'], op['sigma'])
    if kind == 'motion':
        return motion_kernel(op['size'], op['direction'])
    if kind == 'linear_motion':
        return linear_motion_kernel(op['length'], op['angle'], op.get('size'))
    if kind == 'trajectory':
        return trajectory_kernel(op['size'], np.random.default_rng(op['seed']))
    if kind == 'disk':
        return disk_kernel(op['radius'])
    raise ValueError(f'degradation params: unknown blur operation {op!r}; expected type gaussian, motion, '
                     'linear_motion, trajectory or disk')


def kernel_for_op(op):
    """The float32 PSF of one blur operation dict (shared by the CPU and the torch path). Read-only."""
    kernel = _kernel_cached(tuple(sorted(op.items())))
    kernel.flags.writeable = False
    return kernel


def scale_kernel(kernel, factor):
    """The PSF that ``kernel`` becomes on the grid of an image blurred at full resolution and then shrunk by
    ``factor`` (< 1) with INTER_AREA (``image_io.resize_image``), for a sharp image that is constant on each
    r×r block (r = 1/factor): K'[m] = Σ_d k[d] · w(d − r·m), w the r×r box correlated with itself / r².

    Exact for integer r (1024² → 256²: a 41-px motion becomes an 11-px one of the same mass); other ratios use
    the nearest integer r (an approximation, as Richardson–Lucy's PSF is anyway). Normalised to sum 1.
    """
    if factor >= 1.0:
        return np.asarray(kernel, np.float32)
    r = max(1, int(round(1.0 / factor)))
    box = np.ones(r, np.float64)
    tri = np.convolve(box, box) / r ** 2  # length 2r - 1, the weights of offsets -(r-1)..(r-1)
    k = np.asarray(kernel, np.float64)
    full = cv2.filter2D(np.pad(k, r - 1), cv2.CV_64F, np.outer(tri, tri), borderType=cv2.BORDER_CONSTANT)
    centre = (k.shape[0] - 1) // 2 + r - 1, (k.shape[1] - 1) // 2 + r - 1
    half = [int(math.ceil(c / r)) for c in centre]  # taps reaching the padded border
    rows = centre[0] + r * np.arange(-half[0], half[0] + 1)
    cols = centre[1] + r * np.arange(-half[1], half[1] + 1)
    rows, cols = rows[(rows >= 0) & (rows < full.shape[0])], cols[(cols >= 0) & (cols < full.shape[1])]
    out = full[np.ix_(rows, cols)]
    return (out / out.sum()).astype(np.float32)


def output_kernels(params):
    """The PSFs of ``params`` in application order at the resolution of the degraded output: a degradation applied
    at the source resolution (``degrade_at: source``, ``source_shape``/``output_shape`` recorded) is rescaled."""
    kernels = [np.asarray(kernel_for_op(op), np.float32) for op in blur_ops(params)]
    if params.get('source_shape') and params.get('output_shape'):
        factor = params['output_shape'][0] / params['source_shape'][0]
        kernels = [scale_kernel(k, factor) for k in kernels]
    return kernels


def resized_shape(h, w, scale):
    """(h, w) of the downscaled image: round(side / s), at least 1 pixel."""
    return max(1, int(math.floor(h / scale + 0.5))), max(1, int(math.floor(w / scale + 0.5)))


# ---------------------------------------------------------------------------------------------- applying

def convolve(img, kernel):
    """True convolution ``img * kernel`` (§3.4.1) with ``BORDER_REFLECT`` borders, per channel.

    cv2.filter2D correlates, so the kernel is rotated by 180° first (matters for asymmetric PSFs such as
    trajectories); a blurred impulse therefore reproduces the kernel.
    """
    return cv2.filter2D(img, cv2.CV_32F, np.ascontiguousarray(kernel[::-1, ::-1]), borderType=BLUR_BORDER)


def add_noise(img, sigma, seed):
    """B + η·N(0, 1) (§3.4.1) with η = ``sigma`` on the 0–255 scale; independent per pixel and channel."""
    noise = np.random.default_rng(int(seed)).standard_normal(img.shape, dtype=np.float32)
    return img + noise * np.float32(sigma / 255.0)


def jpeg_compress(img, quality):
    """JPEG round trip at ``quality`` of a float RGB [0, 1] image (uint8 quantisation included)."""
    u8 = to_uint8(img)
    color = u8.ndim == 3 and u8.shape[2] == 3
    ok, buf = cv2.imencode('.jpg', cv2.cvtColor(u8, cv2.COLOR_RGB2BGR) if color else u8,
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f'jpeg_compress: cv2.imencode failed for an image of shape {img.shape}')
    out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if color:
        out = cv2.cvtColor(out, cv2.COLOR_BGR2RGB)
    return out.reshape(img.shape).astype(np.float32) / 255.0


def resize_interpolated(img, w, h, interpolation):
    """``cv2.resize`` to (h, w) with a config interpolation name, keeping a trailing channel axis of size 1."""
    out = cv2.resize(img, (w, h), interpolation=INTERPOLATIONS[interpolation])
    return out.reshape(h, w, *img.shape[2:])  # cv2 drops a trailing channel axis of size 1


def apply_degradation(img, params):
    """Apply sampled ``params`` to ``img`` (float32 HW or HWC RGB in [0, 1]); deterministic.

    Blur layers (in order) → downscale by ``scale`` and upscale back → clip → noise → clip → JPEG (if any).
    Returns float32 of the same shape in [0, 1].
    """
    img = np.asarray(img)
    if img.dtype == np.uint8 or not np.issubdtype(img.dtype, np.floating):
        raise ValueError(f'apply_degradation: expected a float image in [0, 1], got dtype {img.dtype}')
    if img.ndim not in (2, 3):
        raise ValueError(f'apply_degradation: expected an HW or HWC image, got shape {img.shape}')
    if params.get('version', PARAMS_VERSION) != PARAMS_VERSION:
        raise ValueError(f'apply_degradation: params version {params.get("version")} is not {PARAMS_VERSION}')
    out = np.ascontiguousarray(img, dtype=np.float32)
    h, w = out.shape[:2]
    for op in blur_ops(params):
        out = convolve(out, kernel_for_op(op)).reshape(img.shape)
    # Resolution degradation: the blur already band-limits, the resize adds resampling artefacts.
    lh, lw = resized_shape(h, w, params['scale'])
    out = resize_interpolated(out, lw, lh, params['down_interpolation'])
    out = np.clip(resize_interpolated(out, w, h, params['up_interpolation']), 0.0, 1.0)
    out = np.clip(add_noise(out, params['noise_sigma'], params['noise_seed']), 0.0, 1.0)
    if params.get('jpeg_quality') is not None:
        out = jpeg_compress(out, params['jpeg_quality'])
    return out


def degrade(img, cfg, rng):
    """Sample parameters from ``cfg`` with ``rng`` and apply them: returns ``(degraded, params)``."""
    params = sample_degradation(cfg, rng)
    return apply_degradation(img, params), params


# ---------------------------------------------------------------------------------------------- counting

def _grid_size(lo, hi, step):
    """Number of grid values lo, lo+step, …, ≤ hi (both ends included): (hi − lo)/step + 1."""
    return int(math.floor((hi - lo) / step + 1e-9)) + 1


def count_breakdown(cfg=None):
    """Per-step counts of ``count_configurations`` as an ordered dict (see there)."""
    cfg = DegradationConfig.from_dict(cfg)
    extras = [n for n in ('linear_motion_prob', 'trajectory_prob', 'disk_prob') if getattr(cfg, n) > 0]
    if extras:
        raise ValueError(f'count_configurations: {extras} > 0 add continuous blur families; the count covers only '
                         'the discrete Gaussian/motion space of §3.4.1')

    def support(name):  # choices with a positive probability
        return [c for c, p in zip(getattr(cfg, name), cfg.probabilities(name)) if p > 0]

    n_gauss = len(support('gaussian_sizes'))  # σ follows from the size: no extra factor
    n_motion = len(support('motion_sizes')) * len(support('motion_directions'))
    per_sequence = {s: n_gauss ** s.count('G') * n_motion ** s.count('M') for s in support('sequences')}
    per_layer = sum(per_sequence.values())
    per_num_layers = {n: per_layer ** n for n in support('num_layers')}
    blur = sum(per_num_layers.values())
    scales = _grid_size(*cfg.scale_range, cfg.scale_step)
    noises = _grid_size(*cfg.noise_range, cfg.noise_step)
    interpolations = len(support('down_interpolations')) * len(support('up_interpolations'))
    jpeg = 1
    if cfg.jpeg_prob > 0:
        qualities = cfg.jpeg_quality_range[1] - cfg.jpeg_quality_range[0] + 1
        jpeg = qualities + (1 if cfg.jpeg_prob < 1 else 0)  # + "no JPEG"
    total = blur * scales * noises * interpolations * jpeg
    return {'per_sequence': per_sequence, 'per_layer': per_layer, 'per_num_layers': per_num_layers,
            'blur': blur, 'scales': scales, 'noise_levels': noises, 'interpolations': interpolations,
            'jpeg': jpeg, 'total': total}


def count_configurations(cfg=None):
    """Number of distinct discrete degradations of ``cfg`` (§3.4.1 "Overall Possible Combinations").

    blur = Σ_n L^n over the layer counts n, with L = Σ_sequences Π_ops (choices of the op) per layer
    (paper: L = 24 + 144 + 144 + 864 = 1,176); × scale grid values ((4.0−2.0)/0.1 + 1 = 21) × noise grid
    values ((10.0−5.0)/0.1 + 1 = 51) × interpolation pairs (1) × JPEG options (1 when off). Choices with
    weight 0 are not counted.

    For the paper's configuration this is 1,176 + 1,382,976 + 1,626,379,776 = 1,627,763,928 blur
    combinations and 1,627,763,928 × 21 × 51 = **1,743,335,166,888**. The thesis prints 1,743,940,018,728:
    it miscomputes 1,176³ as 1,626,943,776 (it is 1,626,379,776); its further sums are also off (see
    docs/degradation.md). The order of magnitude, ≈1.74 × 10¹², is unchanged.
    """
    return count_breakdown(cfg)['total']


def format_breakdown(b):
    """``count_breakdown``'s result as the lines ``scripts/count_degradations.py`` prints."""
    per_seq = ' + '.join(f'{s}: {n:,}' for s, n in b['per_sequence'].items())
    per_n = ' + '.join(f'{n} layer(s): {c:,}' for n, c in b['per_num_layers'].items())
    return '\n'.join([
        f'per blur layer        {per_seq} = {b["per_layer"]:,}',
        f'heavy blur            {per_n} = {b["blur"]:,}',
        f'scale factors         {b["scales"]:,}',
        f'noise levels          {b["noise_levels"]:,}',
        f'interpolation pairs   {b["interpolations"]:,}',
        f'JPEG options          {b["jpeg"]:,}',
        f'total                 {b["total"]:,}',
    ])


def count_main(argv=None):
    """``scripts/count_degradations.py -opt X.yml [--phase P]``: print the configuration count of an option file's
    ``datasets.<phase>.degradation`` (paper defaults when absent); exit status 2 with one line on a bad file."""
    import argparse
    import sys

    from smfd_data.option_file import read_option

    parser = argparse.ArgumentParser(description='Count the discrete degradation configurations of §3.4.1.')
    parser.add_argument('-opt', required=True, help='BasicSR option YAML')
    parser.add_argument('--phase', default='train', help='dataset phase whose degradation is counted')
    args = parser.parse_args(argv)
    where = f'{args.opt}: datasets.{args.phase}.degradation'
    try:
        dataset = (read_option(args.opt).get('datasets') or {}).get(args.phase) or {}
        print(format_breakdown(count_breakdown(DegradationConfig.from_dict(dataset.get('degradation') or {},
                                                                           source=where))))
    except (FileNotFoundError, ValueError, TypeError, AttributeError) as err:
        print(f'count_degradations: error: {err}', file=sys.stderr)
        return 2
    return 0
