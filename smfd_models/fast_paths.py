"""Speed switches shared by training, inference and the benchmarks: channels_last, autocast, torch.compile.

All three are off by default and change no result beyond floating-point rounding (tests/test_fast_paths.py
checks the tolerances). Measured effects on this project's networks are in docs/performance.md.

YAML keys (read with `fast_path_options(opt['train'])` by the training models):

    train:
      channels_last: false     # NHWC memory format for the network and its inputs
      amp: none                # none | bf16 | fp16 — autocast of the forward (losses in fp32); fp16 adds a GradScaler
      compile: false           # torch.compile(network) for the training forward (inductor; needs a C++ compiler)

CLI flags (`add_fast_path_arguments(parser)`, used by the deblur tool): `--channels-last --amp bf16 --compile`.

Why each can help: oneDNN/cuDNN 3×3 convolutions run on NHWC without layout reorders (channels_last); bf16
halves memory traffic and uses AVX512-BF16 / AMX / tensor cores where present (autocast); inductor fuses the
element-wise tails (BN + ReLU, CBAM gates, concatenations) that dominate small-width U-Nets (compile).
"""
import contextlib

import torch

__all__ = [
    'AMP_CHOICES', 'normalize_amp', 'autocast_for', 'grad_scaler_for', 'to_channels_last', 'set_channels_last',
    'compile_module', 'prepare_for_inference', 'fast_path_options', 'add_fast_path_arguments'
]

AMP_CHOICES = ('none', 'bf16', 'fp16')  # the YAML values and --amp choices; the aliases below are accepted too
_AMP_ALIASES = {
    'bf16': 'bf16', 'bfloat16': 'bf16',
    'fp16': 'fp16', 'float16': 'fp16', 'half': 'fp16',
    'none': None, 'fp32': None, 'float32': None, 'off': None, 'false': None,
}
_AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}


def normalize_amp(value, where='amp'):
    """Canonical autocast choice: 'bf16', 'fp16' or None (off). Accepts None/False and the usual aliases.

    Raises ValueError naming `where` (e.g. the YAML key) for anything else.
    """
    if value is None or value is False:
        return None
    key = str(value).strip().lower()
    if key not in _AMP_ALIASES:
        raise ValueError(f'{where}: {value!r} is not one of {"|".join(AMP_CHOICES)}')
    return _AMP_ALIASES[key]


def autocast_for(device, dtype='bf16'):
    """Autocast context for `device` ('cpu', 'cuda', torch.device or a tensor's .device); `dtype=None` → no-op.

    bf16 is the CPU choice (same exponent range as fp32: no loss scaling, native on AVX512-BF16/AMX); fp16 is
    the CUDA choice (tensor cores; training needs `grad_scaler_for`). Both are allowed on both devices.
    """
    amp = normalize_amp(dtype)
    if amp is None:
        return contextlib.nullcontext()
    device_type = torch.device(device).type
    return torch.autocast(device_type=device_type, dtype=_AMP_DTYPES[amp])


def grad_scaler_for(device, amp):
    """GradScaler for training under `amp`: enabled for fp16 (its 5-bit exponent underflows small gradients; the
    scaler also skips the step when a scaled gradient overflows); disabled (a pass-through) for bf16 and fp32."""
    device_type = torch.device(device).type
    enabled = normalize_amp(amp) == 'fp16'
    return torch.amp.GradScaler(device_type, enabled=enabled)


def to_channels_last(x):
    """A 4-D tensor in NHWC memory format (same shape and values); other tensors unchanged."""
    if torch.is_tensor(x) and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def set_channels_last(net, enabled=True):
    """Move `net`'s 4-D parameters/buffers to channels_last (in place, returns `net`); False → contiguous."""
    return net.to(memory_format=torch.channels_last if enabled else torch.contiguous_format)


def compile_module(net, **compile_kwargs):
    """`torch.compile(net)` with an error that says what to do when the backend cannot work here.

    Compilation itself is lazy (first call); failures there surface as torch._dynamo errors which the caller
    sees on the first forward. Here we only reject what is known up-front.
    """
    if not hasattr(torch, 'compile'):
        raise RuntimeError(f'torch {torch.__version__} has no torch.compile; drop compile / --compile')
    return torch.compile(net, **compile_kwargs)


def prepare_for_inference(net, channels_last=False, compile=False, compile_options=None):  # noqa: A002
    """Eval mode + the requested fast paths; returns the module to call (a compiled wrapper when `compile`).

    Feed channels_last networks with `to_channels_last(x)` inputs (a contiguous input still works: the first
    convolution reorders it, at a small cost). Outputs keep the input's shape; their memory format may be NHWC.
    `compile_options` go to `torch.compile` (e.g. `{'dynamic': False}`: one static graph per input shape; on CPU
    the dynamic-shape graph torch builds after a second batch size was several times slower in our runs,
    docs/performance.md).
    """
    net.eval()
    if channels_last:
        set_channels_last(net)
    if compile:
        net = compile_module(net, **(compile_options or {}))
    return net


def fast_path_options(train_opt, where='train'):
    """Validated `{'channels_last': bool, 'amp': 'bf16'|'fp16'|None, 'compile': bool}` from a YAML section.

    Unknown values raise ValueError naming `<where>.<key>`; missing keys mean off.
    """
    train_opt = train_opt or {}
    options = {'amp': normalize_amp(train_opt.get('amp'), where=f'{where}.amp')}
    for key in ('channels_last', 'compile'):
        value = train_opt.get(key, False)
        if value is None:
            value = False
        if not isinstance(value, bool):
            raise ValueError(f'{where}.{key}: {value!r} is not one of true|false')
        options[key] = value
    return options


def add_fast_path_arguments(parser):
    """Add `--channels-last`, `--amp {bf16,fp16,none}` and `--compile` to an argparse parser (returns it)."""
    group = parser.add_argument_group('speed (docs/performance.md)')
    group.add_argument('--channels-last', action='store_true', help='run the networks in NHWC memory format')
    group.add_argument('--amp', choices=AMP_CHOICES, default='none',
                       help='autocast dtype: bf16 (CPU with AVX512-BF16/AMX, or CUDA), fp16 (CUDA), none')
    group.add_argument('--compile', action='store_true', help='torch.compile the networks (slow first call)')
    return parser
