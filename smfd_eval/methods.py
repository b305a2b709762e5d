"""The rows of the benchmark: every method yields uint8 RGB outputs (+ labels when it predicts masks) and its cost.

Methods: the blurry input, Richardson–Lucy with the true kernels, folders of other tools' outputs, any BasicSR arch,
SMFD models (cascade with generated masks, ground-truth masks, no-mask ablation).
"""
import os
import time
import warnings

import numpy as np
import torch

from smfd_arch.blocks import count_parameters
from smfd_data.degraded_dataset import read_set_kernels
from smfd_data.image_io import list_images, read_image, resize_image, resize_labels, to_uint8
from smfd_data.option_file import read_option
from smfd_eval.richardson_lucy import richardson_lucy
from smfd_eval.timing import count_macs
from smfd_inference.cascade import SMFDCascade
from smfd_inference.loading import build_network, load_cascade, network_option
from smfd_inference.restorer import images_to_batch
from smfd_models.mask_source import check_mask_handoff

NOT_APPLICABLE = '—'


def unavailable(reason):
    return f'unavailable ({reason})'


class Method:
    """A row of the table. ``run(samples)`` returns ``(outputs, labels or None, seconds or None)``."""

    kind = 'method'

    def __init__(self, name):
        self.name = name

    def cost(self, sample):  # params, GMACs
        return NOT_APPLICABLE, NOT_APPLICABLE

    def describe(self):
        return self.kind


class InputMethod(Method):
    kind = 'input'

    def run(self, samples, **_):
        return [s['lq'] for s in samples], None, None

    def describe(self):
        return 'the blurry input itself'


class RichardsonLucyMethod(Method):
    kind = 'richardson_lucy'

    def __init__(self, name='richardson_lucy', iterations=30):
        super().__init__(name)
        self.iterations = iterations

    def run(self, samples, **_):
        outputs, seconds = [], 0.0
        for s in samples:
            kernels = read_set_kernels(s['folder'], s['record'])
            start = time.perf_counter()
            out = richardson_lucy(s['lq'].astype(np.float32) / 255.0, kernels, self.iterations)
            seconds += time.perf_counter() - start
            outputs.append(to_uint8(out))
        return outputs, None, seconds

    def describe(self):
        return f'Richardson–Lucy, {self.iterations} iterations, true blur kernels (oracle), channel-wise'


class FolderMethod(Method):
    kind = 'folder'

    def __init__(self, name, folder):
        super().__init__(name)
        self.folder = folder
        if not os.path.isdir(folder):
            raise FileNotFoundError(f'--folder {name}={folder}: no such folder')

    def run(self, samples, **_):
        by_stem = {stem: os.path.join(self.folder, name) for stem, name in list_images(self.folder).items()}
        missing = [s['stem'] for s in samples if s['stem'] not in by_stem]
        if missing:
            raise ValueError(f'{self.folder}: no output for {len(missing)} of {len(samples)} test images '
                             f'(e.g. {missing[0]!r}; files are matched by stem)')
        outputs = []
        for s in samples:
            img = read_image(by_stem[s['stem']])  # e.g. a 512² face restorer on a 256² set: compared at GT size
            outputs.append(to_uint8(resize_image(img, *s['gt'].shape[:2])))
        return outputs, None, None

    def describe(self):
        return f'outputs read from {self.folder} (resized to the GT size when they differ)'


class NetworkMethod(Method):
    """A PyTorch module ``module(x, mask) -> (out in [0,1], labels | None)`` run in batches."""

    def __init__(self, name, module, mask_source=None, size=None):
        super().__init__(name)
        self.module, self.mask_source, self.size = module, mask_source, size
        self._macs = {}

    def _inputs(self, batch_samples, device):
        faces = [s['lq'].astype(np.float32) / 255.0 for s in batch_samples]
        if self.size:
            faces = [resize_image(f, self.size, self.size) for f in faces]
        x = images_to_batch(faces, device)
        mask = None
        if self.mask_source == 'gt':
            mask = torch.from_numpy(np.stack([s['labels'] for s in batch_samples])).long().to(device)
        return x, mask

    @torch.no_grad()
    def run(self, samples, device='cpu', batch=8):
        outputs, labels, seconds = [], [], 0.0
        batches = [samples[i:i + batch] for i in range(0, len(samples), batch)]
        self.module(*self._inputs(batches[0], device))  # warm-up (allocations, oneDNN kernels)
        for chunk in batches:
            x, mask = self._inputs(chunk, device)
            if device.type == 'cuda':
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            out, lab = self.module.restore(x, mask)
            if device.type == 'cuda':
                torch.cuda.synchronize(device)
            seconds += time.perf_counter() - start
            for s, o, lb in zip(chunk, out.permute(0, 2, 3, 1).float().cpu().numpy(),
                                [None] * len(out) if lab is None else lab.cpu().numpy()):
                h, w = s['gt'].shape[:2]
                outputs.append(to_uint8(resize_image(o, h, w)))
                keep = lb is not None and self.mask_source != 'gt'
                labels.append(resize_labels(lb.astype(np.uint8), h, w) if keep else None)
        return outputs, (labels if any(lb is not None for lb in labels) else None), seconds

    def cost(self, sample):
        params = count_parameters(self.module)
        h, w = (self.size, self.size) if self.size else sample['gt'].shape[:2]
        if (h, w) not in self._macs:
            self._macs[(h, w)] = count_gmacs(self.module, h, w, self.mask_source == 'gt',
                                             getattr(self.module, 'num_classes', 5))
        return params, self._macs[(h, w)]


class SMFDMethod(NetworkMethod):
    kind = 'smfd'

    def describe(self):
        if not self.module.use_mask:
            return 'SMFD-UNet without mask branch'
        if self.mask_source == 'gt':
            return 'SMFD-UNet, ground-truth masks'
        return f'SMFD-UNet, generated masks, {self.module.mask_handoff} hand-off'


class BasicSRMethod(NetworkMethod):
    kind = 'basicsr'

    def describe(self):
        return f'BasicSR arch {type(self.module.net).__name__}' + (f' at {self.size}²' if self.size else '')


class _ArchWrapper(torch.nn.Module):
    """Any BasicSR arch with the cascade's interface: ``restore(x in [0,1], mask) -> (out in [0,1], None)``; the
    first output of tuple-returning archs."""

    def __init__(self, net, symmetric_range=False):
        super().__init__()
        self.net, self.symmetric_range = net, symmetric_range

    def restore(self, x, mask=None):
        out = self.net(x * 2 - 1 if self.symmetric_range else x)
        out = out[0] if isinstance(out, (tuple, list)) else out
        out = (out + 1) / 2 if self.symmetric_range else out
        return out.clamp(0, 1), None

    def forward(self, x, mask=None):
        return self.restore(x, mask)[0]


class MacsProbe(torch.nn.Module):
    """The restorer's tensor output only (fvcore traces modules returning tensors)."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, *inputs):
        return self.module.restore(*inputs)[0]


def count_gmacs(module, h, w, with_mask, num_classes):
    """GMACs of one face (batch 1) with fvcore (smfd_eval.timing.count_macs); 'unavailable (...)' on failure."""
    device = next(module.parameters()).device
    inputs = (torch.rand(1, 3, h, w, device=device), )
    if with_mask:
        inputs += (torch.randint(0, num_classes, (1, h, w), device=device), )
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # fvcore's tracer and deprecation chatter
        result = count_macs(MacsProbe(module).eval(), inputs)
    if 'error' in result:
        return unavailable(f'fvcore: {result["error"][:120]}')
    return float(result['gmacs'])


def parse_spec(text, flag):
    """``NAME=VALUE[,key=value...]`` → (name, value, {key: value})."""
    if '=' not in text:
        raise ValueError(f'{flag} {text!r}: expected NAME=...')
    name, rest = text.split('=', 1)
    parts = rest.split(',')
    options = {}
    for part in parts[1:]:
        if '=' not in part:
            raise ValueError(f'{flag} {text!r}: option {part!r} is not key=value')
        key, value = part.split('=', 1)
        options[key.strip()] = value.strip()
    if not name.strip() or not parts[0].strip():
        raise ValueError(f'{flag} {text!r}: empty name or value')
    return name.strip(), parts[0].strip(), options


def _check_options(flag, name, options, valid):
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f'{flag} {name}: unknown option(s) {unknown}; valid: {sorted(valid)}')


def smfd_methods(text, device, experiments_dir='experiments'):
    """The rows of one ``--smfd`` spec: with generated masks and no ``handoff=`` option, both hand-offs (issue 10):
    ``NAME`` with the one the net was trained on (the option's ``mask_handoff``, default one-hot) and
    ``NAME_<other>`` with the other, sharing the networks. Otherwise the one row of ``smfd_method``."""
    name, _, options = parse_spec(text, '--smfd')
    method = smfd_method(text, device, experiments_dir)
    if method.mask_source != 'generator' or 'handoff' in options:
        return [method]
    cascade = method.module
    other = 'soft' if cascade.mask_handoff == 'onehot' else 'onehot'
    twin = SMFDCascade(cascade.smfd, cascade.mask_generator, other).eval()
    return [method, SMFDMethod(f'{name}_{other}', twin, 'generator')]


def smfd_method(text, device, experiments_dir='experiments'):
    """``NAME=OPTION.yml|CHECKPOINT.pth[,mask=gt|generator][,mask_weights=PATH][,handoff=onehot|soft]`` →
    SMFDMethod (``handoff`` default: the option's ``mask_handoff``, else one-hot)."""
    name, target, options = parse_spec(text, '--smfd')
    _check_options('--smfd', name, options, ('mask', 'mask_weights', 'handoff'))
    if 'handoff' in options:
        check_mask_handoff(options['handoff'], f'--smfd {name} handoff')
    weights, opt_path = target, None
    if target.lower().endswith(('.yml', '.yaml')):
        opt_path = target
        opt = read_option(opt_path)
        weights = (opt.get('path') or {}).get('pretrain_network_g')
        if not weights:
            raise ValueError(f'--smfd {name}: {opt_path} has no path.pretrain_network_g (the SMFDUNet checkpoint)')
        mask_source = options.get('mask', opt.get('mask_source', 'generator'))
    else:
        mask_source = options.get('mask', 'generator')
    if mask_source == 'none':
        mask_source = 'generator'  # a mask-free network ignores it
    if mask_source not in ('gt', 'generator'):
        raise ValueError(f'--smfd {name}: mask={mask_source!r}; use gt or generator')
    cascade, info = load_cascade(weights, options.get('mask_weights'), opt_path, device=device,
                                 experiments_dir=experiments_dir, need_generator=mask_source == 'generator',
                                 mask_handoff=options.get('handoff'))
    if not cascade.use_mask:
        mask_source = None
    return SMFDMethod(name, cascade, mask_source)


def split_option_and_checkpoint(target, flag):
    """``OPTION.yml:CHECKPOINT.pth`` → ``(option path, checkpoint path)``; the error names ``flag``."""
    for ext in ('.yml:', '.yaml:'):
        if ext in target:
            opt_path, ckpt = target.split(ext, 1)
            return opt_path + ext[:-1], ckpt
    raise ValueError(f'{flag}: expected OPTION.yml:CHECKPOINT.pth, got {target!r}')


def basicsr_method(text, device):
    """``NAME=ARCH.yml:CKPT.pth[,range=0:1|-1:1][,size=S][,param_key=K]`` → BasicSRMethod."""
    name, target, options = parse_spec(text, '--basicsr')
    _check_options('--basicsr', name, options, ('range', 'size', 'param_key'))
    arch_yaml, ckpt = split_option_and_checkpoint(target, f'--basicsr {name}')
    opt = read_option(arch_yaml)
    net_opt = opt['network_g'] if 'network_g' in opt else opt
    if options.get('range', '0:1') not in ('0:1', '-1:1'):
        raise ValueError(f'--basicsr {name}: range must be 0:1 or -1:1')
    net = build_network(network_option({'network_g': net_opt}, 'network_g', arch_yaml), ckpt,
                        options.get('param_key', 'auto'), device)
    wrapper = _ArchWrapper(net, options.get('range') == '-1:1').eval()
    return BasicSRMethod(name, wrapper, None, int(options['size']) if 'size' in options else None)
