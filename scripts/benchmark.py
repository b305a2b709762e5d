#!/usr/bin/env python
"""Table 4.2 on a seeded degraded test set: any mix of SMFD models, BasicSR archs, folders of other tools' outputs.

    python scripts/benchmark.py --testset datasets/demo/testset --out results/bench \\
        --smfd ours_gen=experiments/demo_smfd/models/net_g_latest.pth,mask=generator \\
        --smfd ours_gt=options/demo/test_smfd_demo.yml,mask=gt \\
        --basicsr gfpgan=gfpgan_arch.yml:GFPGANv1.4.pth,range=-1:1,size=512 \\
        --folder codeformer=results/codeformer/final_results --richardson-lucy

Rows: ``input`` (the blurry floor, always), ``richardson_lucy`` (classical deconvolution with the TRUE blur of each
image, from the test set's params.json: an oracle-kernel baseline), then the methods in command-line order.
Columns (paper Table 4.2 + extras): PSNR, SSIM, MSE, NIQE, LPIPS, FID, PSNR/SSIM of the face and of the facial
components (5-group mask regions, docs/metrics.md), mask Dice/Jaccard (methods that predict masks), parameters,
GMACs (fvcore, per face at the test-set size), ms/face (forward only, batched, after a warm-up batch).

Conventions: every metric compares 8-bit RGB outputs with the 8-bit GT PNGs; PSNR/SSIM are BasicSR's
``calculate_psnr``/``calculate_ssim`` on all three channels (not Y), crop_border 0; MSE on the 0–255 scale; NIQE is
BasicSR's (Y channel; needs ≥ 2 blocks of 96×96); LPIPS v0.1 AlexNet; FID between the GT folder and the output
folder (few images → biased and noisy: compare only numbers on the same set). A metric that cannot run (weights
missing offline, images too small) is reported as "unavailable (reason)", never as a number.

Writes OUT/benchmark.{md,csv,json}, OUT/grid.png (the same faces across methods), OUT/outputs/<method>/<stem>.png,
OUT/masks/<method>/<stem>.png (predicted group labels of cascades) and OUT/ground_truth/<stem>.png (FID's real set).
"""
import argparse
import csv
import io
import json
import os
import sys
import time
import warnings

import cv2
import numpy as np
import torch

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(SCRIPTS)
for _path in (REPO, SCRIPTS):  # the package from a checkout; bench_common next to this script
    if _path not in sys.path:
        sys.path.insert(0, _path)

from smfd_data.atomic_io import atomic_write_json, atomic_write_text  # noqa: E402
from smfd_models import inference  # noqa: E402

COLUMNS = [  # (key, header, format, better)
    ('psnr', 'PSNR', '{:.2f}', 'higher'),
    ('ssim', 'SSIM', '{:.4f}', 'higher'),
    ('mse', 'MSE', '{:.2f}', 'lower'),
    ('niqe', 'NIQE', '{:.4f}', 'lower'),
    ('lpips', 'LPIPS', '{:.4f}', 'lower'),
    ('fid', 'FID', '{:.2f}', 'lower'),
    ('psnr_face', 'PSNR face', '{:.2f}', 'higher'),
    ('ssim_face', 'SSIM face', '{:.4f}', 'higher'),
    ('psnr_components', 'PSNR comp.', '{:.2f}', 'higher'),
    ('ssim_components', 'SSIM comp.', '{:.4f}', 'higher'),
    ('dice', 'Mask Dice', '{:.4f}', 'higher'),
    ('jaccard', 'Mask Jaccard', '{:.4f}', 'higher'),
    ('params', 'Params', '{:,d}', 'lower'),
    ('gmacs', 'GMACs', '{:.3f}', 'lower'),
    ('ms_per_face', 'ms/face', '{:.1f}', 'lower'),
]
PER_IMAGE = ('psnr', 'ssim', 'mse', 'niqe', 'lpips', 'psnr_face', 'ssim_face', 'psnr_components', 'ssim_components',
             'dice', 'jaccard')
NOT_APPLICABLE = '—'


def unavailable(reason):
    return f'unavailable ({reason})'


def is_number(value):
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


# ----------------------------------------------------------------------------------------------------------------
# The degraded test set (scripts/degrade_testset.py)
# ----------------------------------------------------------------------------------------------------------------
def _read_rgb(path):
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f'{path}: cannot read the image')
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def load_testset(folder, limit=None):
    """``{'num_classes', 'samples': [{'stem', 'lq', 'gt' (uint8 RGB), 'labels' (uint8 HW), 'degradation',
    'kernels_npz'}]}`` from DIR/{lq,gt,labels}/<stem>.png + DIR/params.json."""
    params_path = os.path.join(folder, 'params.json')
    if not os.path.isfile(params_path):
        raise FileNotFoundError(f'{params_path}: not a degraded test set (write one with scripts/degrade_testset.py)')
    with open(params_path) as f:
        meta = json.load(f)
    records = meta['images'][:limit] if limit else meta['images']
    if not records:
        raise ValueError(f'{params_path}: the test set lists no images')
    samples = []
    for record in records:
        stem = record['stem']
        sample = {'stem': stem, 'degradation': record.get('degradation'),
                  'kernels_npz': os.path.join(folder, 'kernels', f'{stem}.npz')}
        sample['lq'] = _read_rgb(os.path.join(folder, 'lq', f'{stem}.png'))
        sample['gt'] = _read_rgb(os.path.join(folder, 'gt', f'{stem}.png'))
        labels_path = os.path.join(folder, 'labels', f'{stem}.png')
        labels = cv2.imread(labels_path, cv2.IMREAD_UNCHANGED)
        if labels is None:
            raise ValueError(f'{labels_path}: cannot read the label map')
        sample['labels'] = labels if labels.ndim == 2 else labels[..., 0]
        if sample['lq'].shape != sample['gt'].shape or sample['labels'].shape != sample['gt'].shape[:2]:
            raise ValueError(f'{folder}: lq/gt/labels of {stem!r} differ in size')
        samples.append(sample)
    return {'folder': folder, 'num_classes': int(meta['num_classes']), 'samples': samples}


def true_blur_kernels(sample):
    """The PSFs of one test image in application order: from params.json, else from kernels/<stem>.npz."""
    from smfd_models.restoration_baselines import blur_kernels_from_params
    if sample.get('degradation') and sample['degradation'].get('layers'):
        return blur_kernels_from_params(sample['degradation'])
    if os.path.isfile(sample['kernels_npz']):
        with np.load(sample['kernels_npz'], allow_pickle=False) as npz:
            ops = sorted(k for k in npz.files if k.startswith('k'))
            return [npz[k] for k in ops] if ops else [npz['composed']]
    raise ValueError(f'{sample["stem"]}: no blur parameters in params.json and no {sample["kernels_npz"]}')


# ----------------------------------------------------------------------------------------------------------------
# Methods: each yields uint8 RGB outputs (+ labels when it predicts masks) and knows its cost
# ----------------------------------------------------------------------------------------------------------------
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
        from smfd_models.restoration_baselines import richardson_lucy
        outputs, seconds = [], 0.0
        for s in samples:
            kernels = true_blur_kernels(s)
            start = time.perf_counter()
            out = richardson_lucy(s['lq'].astype(np.float32) / 255.0, kernels, self.iterations)
            seconds += time.perf_counter() - start
            outputs.append(inference.to_uint8(out))
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
        by_stem = {}
        for file in sorted(os.listdir(self.folder)):
            stem, ext = os.path.splitext(file)
            if ext.lower() in inference.IMAGE_EXTENSIONS:
                by_stem.setdefault(stem, os.path.join(self.folder, file))
        missing = [s['stem'] for s in samples if s['stem'] not in by_stem]
        if missing:
            raise ValueError(f'{self.folder}: no output for {len(missing)} of {len(samples)} test images '
                             f'(e.g. {missing[0]!r}; files are matched by stem)')
        outputs = []
        for s in samples:
            img = _read_rgb(by_stem[s['stem']])
            if img.shape != s['gt'].shape:  # e.g. a 512² face restorer on a 256² test set: compare at GT size
                img = inference.to_uint8(inference.resize_to(img.astype(np.float32) / 255.0, *s['gt'].shape[:2]))
            outputs.append(img)
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
            faces = [inference.resize_to(f, self.size, self.size) for f in faces]
        x = inference.images_to_batch(faces, device)
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
            out, lab = self.module(x, mask)
            if device.type == 'cuda':
                torch.cuda.synchronize(device)
            seconds += time.perf_counter() - start
            for s, o, lb in zip(chunk, out.permute(0, 2, 3, 1).float().cpu().numpy(),
                                [None] * len(out) if lab is None else lab.cpu().numpy()):
                h, w = s['gt'].shape[:2]
                outputs.append(inference.to_uint8(inference.resize_to(o, h, w)))
                labels.append(None if lb is None or self.mask_source == 'gt' else
                              cv2.resize(lb.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST_EXACT))
        return outputs, (labels if any(lb is not None for lb in labels) else None), seconds

    def cost(self, sample):
        params = inference.count_parameters(self.module)
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
        return f'SMFD-UNet, {"ground-truth" if self.mask_source == "gt" else "generated"} masks'


class BasicSRMethod(NetworkMethod):
    kind = 'basicsr'

    def describe(self):
        return f'BasicSR arch {type(self.module.net).__name__}' + (f' at {self.size}²' if self.size else '')


class _ArchWrapper(torch.nn.Module):
    """Any BasicSR arch as ``(x in [0,1], mask) -> (out in [0,1], None)``; first output of tuple-returning archs."""

    def __init__(self, net, symmetric_range=False):
        super().__init__()
        self.net, self.symmetric_range = net, symmetric_range

    def forward(self, x, mask=None):
        out = self.net(x * 2 - 1 if self.symmetric_range else x)
        out = out[0] if isinstance(out, (tuple, list)) else out
        out = (out + 1) / 2 if self.symmetric_range else out
        return out.clamp(0, 1), None


class _MacsProbe(torch.nn.Module):
    """The restorer's tensor output only (fvcore traces modules returning tensors)."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, *inputs):
        return self.module(*inputs)[0]


def count_gmacs(module, h, w, with_mask, num_classes):
    """GMACs of one face (batch 1) with fvcore (scripts/bench_common.count_macs); 'unavailable (...)' on failure."""
    from bench_common import count_macs
    device = next(module.parameters()).device
    inputs = (torch.rand(1, 3, h, w, device=device), )
    if with_mask:
        inputs += (torch.randint(0, num_classes, (1, h, w), device=device), )
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # fvcore's tracer and deprecation chatter
        result = count_macs(_MacsProbe(module).eval(), inputs)
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


def smfd_method(text, device, experiments_dir='experiments'):
    """``NAME=OPTION.yml|CHECKPOINT.pth[,mask=gt|generator][,mask_weights=PATH]`` → SMFDMethod."""
    name, target, options = parse_spec(text, '--smfd')
    _check_options('--smfd', name, options, ('mask', 'mask_weights'))
    weights, opt_path = target, None
    if target.lower().endswith(('.yml', '.yaml')):
        opt_path = target
        opt = inference.read_option(opt_path)
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
    cascade, info = inference.load_cascade(weights, options.get('mask_weights'), opt_path, device=device,
                                           experiments_dir=experiments_dir, need_generator=mask_source == 'generator')
    if not cascade.use_mask:
        mask_source = None
    return SMFDMethod(name, cascade, mask_source)


def basicsr_method(text, device):
    """``NAME=ARCH.yml:CKPT.pth[,range=0:1|-1:1][,size=S][,param_key=K]`` → BasicSRMethod."""
    name, target, options = parse_spec(text, '--basicsr')
    _check_options('--basicsr', name, options, ('range', 'size', 'param_key'))
    for ext in ('.yml:', '.yaml:'):
        if ext in target:
            arch_yaml, ckpt = target.split(ext, 1)
            arch_yaml += ext[:-1]
            break
    else:
        raise ValueError(f'--basicsr {name}: expected ARCH_YAML:CHECKPOINT, got {target!r}')
    opt = inference.read_option(arch_yaml)
    net_opt = opt['network_g'] if 'network_g' in opt else opt
    if options.get('range', '0:1') not in ('0:1', '-1:1'):
        raise ValueError(f'--basicsr {name}: range must be 0:1 or -1:1')
    net = inference.build_network(inference.network_option({'network_g': net_opt}, 'network_g', arch_yaml), ckpt,
                                  options.get('param_key'), device)
    wrapper = _ArchWrapper(net, options.get('range') == '-1:1').eval()
    return BasicSRMethod(name, wrapper, None, int(options['size']) if 'size' in options else None)


# ----------------------------------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------------------------------
def _bgr(img):
    return np.ascontiguousarray(img[..., ::-1])


class MetricSuite:
    """Per-image and set-level metrics with a reason for each one that cannot run."""

    def __init__(self, num_classes, device='cpu', offline=False, skip=()):
        from basicsr.metrics import calculate_niqe, calculate_psnr, calculate_ssim

        from smfd_models import metrics
        self.m, self.psnr, self.ssim, self.niqe_fn = metrics, calculate_psnr, calculate_ssim, calculate_niqe
        self.num_classes, self.device, self.offline = num_classes, device, offline
        self.reasons = {key: 'skipped (--skip)' for key in skip}
        if num_classes != 5:
            for key in ('psnr_face', 'ssim_face', 'psnr_components', 'ssim_components'):
                self.reasons[key] = f'regions need the 5 paper groups, the test set has {num_classes} classes'
        if 'lpips' not in self.reasons:
            self._check_lpips()

    def _check_lpips(self):
        url = self.m._backbone_url('alex')
        path = os.path.join(torch.hub.get_dir(), 'checkpoints', os.path.basename(url))
        if self.offline and not os.path.isfile(path):
            self.reasons['lpips'] = f'AlexNet weights not in {path} and --offline'
            return
        try:
            self.m.get_lpips_model('alex', True, self.device)
        except Exception as err:  # offline download failures come as RuntimeError/URLError/OSError
            self.reasons['lpips'] = f'{type(err).__name__}: {str(err).splitlines()[0][:160]}'

    def per_image(self, out, gt, labels, pred_labels=None):
        """Every per-image metric of one output (uint8 RGB) against its GT; failures become reasons."""
        a, b = _bgr(out), _bgr(gt)
        values = {'psnr': self.psnr(a, b, 0), 'ssim': self.ssim(a, b, 0), 'mse': self.m.smfd_mse(a, b)}
        if 'niqe' not in self.reasons:
            try:
                values['niqe'] = float(self.niqe_fn(a, 0, input_order='HWC', convert_to='y'))
            except Exception as err:
                self.reasons['niqe'] = (f'needs images with at least two 96×96 blocks, got {a.shape[1]}×{a.shape[0]}'
                                        if min(a.shape[:2]) < 96 or max(a.shape[:2]) < 192 else
                                        f'{type(err).__name__}: {err}')
        if 'lpips' not in self.reasons:
            values['lpips'] = self.m.smfd_lpips(a, b, device=self.device)
        if 'psnr_face' not in self.reasons:
            for region in ('face', 'components'):
                values[f'psnr_{region}'] = self.m.smfd_region_psnr(a, b, mask=labels, region=region)
                values[f'ssim_{region}'] = self.m.smfd_region_ssim(a, b, mask=labels, region=region)
        if pred_labels is not None:
            values['dice'] = self.m.smfd_dice(pred_labels, labels, self.num_classes)
            values['jaccard'] = self.m.smfd_jaccard(pred_labels, labels, self.num_classes)
        return values

    def fid(self, real_dir, fake_dir):
        if 'fid' in self.reasons:
            return unavailable(self.reasons['fid'])
        from smfd_models import fid
        local = os.path.abspath(fid.inception_module.LOCAL_FID_WEIGHTS)
        if self.offline and not (os.path.isfile(fid.inception_weights_path()) or os.path.isfile(local)):
            self.reasons['fid'] = f'Inception weights not in {fid.inception_weights_path()} and --offline'
            return unavailable(self.reasons['fid'])
        try:
            return fid.compute_fid_folders(real_dir, fake_dir, device=self.device)
        except Exception as err:
            self.reasons['fid'] = f'{type(err).__name__}: {str(err).splitlines()[0][:160]}'
            return unavailable(self.reasons['fid'])


def _mean(values):
    """Mean over images; None/NaN (an empty mask region) are left out, +inf (identical images) is kept."""
    kept = [v for v in values if v is not None and not np.isnan(v)]
    return float(np.mean(kept)) if kept else None


# ----------------------------------------------------------------------------------------------------------------
# Running and reporting
# ----------------------------------------------------------------------------------------------------------------
def evaluate(testset, methods, out_dir, device='cpu', batch=8, offline=False, skip=(), grid_faces=4, log=print):
    """Run every method on the test set and compute the table. Returns the JSON-ready result dict."""
    samples = testset['samples']
    device = torch.device(device)
    suite = MetricSuite(testset['num_classes'], device, offline, skip)
    gt_dir = os.path.join(out_dir, 'ground_truth')  # FID's real set; outside outputs/ so no method name clashes
    for s in samples:
        inference.write_image(os.path.join(gt_dir, f'{s["stem"]}.png'), s['gt'])
    rows, grid_columns = [], []
    for method in methods:
        log(f'benchmark: {method.name} ({method.describe()}) on {len(samples)} images')
        row = {'method': method.name, 'kind': method.kind, 'description': method.describe()}
        try:
            outputs, pred_labels, seconds = method.run(samples, device=device, batch=batch)
        except Exception as err:  # one broken method must not sink the table
            row['error'] = f'{type(err).__name__}: {err}'
            log(f'benchmark: {method.name} failed: {row["error"]}')
            for key, *_ in COLUMNS:
                row[key] = unavailable(row['error'][:120])
            rows.append(row)
            continue
        folder = os.path.join(out_dir, 'outputs', method.name)
        per_image = []
        for i, (s, out) in enumerate(zip(samples, outputs)):
            inference.write_image(os.path.join(folder, f'{s["stem"]}.png'), out)
            if pred_labels is not None:  # predicted group labels, usable as a dataset's mask_root_pred
                inference.write_image(os.path.join(out_dir, 'masks', method.name, f'{s["stem"]}.png'), pred_labels[i])
            values = suite.per_image(out, s['gt'], s['labels'], None if pred_labels is None else pred_labels[i])
            per_image.append({'stem': s['stem'], **values})
        for key in PER_IMAGE:
            if key in ('dice', 'jaccard') and pred_labels is None:
                row[key] = NOT_APPLICABLE
            elif key in suite.reasons:
                row[key] = unavailable(suite.reasons[key])
            else:
                row[key] = _mean([p.get(key) for p in per_image])
        row['fid'] = suite.fid(gt_dir, folder) if len(samples) >= 2 else unavailable('needs at least 2 images')
        row['params'], row['gmacs'] = method.cost(samples[0])
        row['ms_per_face'] = NOT_APPLICABLE if seconds is None else 1000.0 * seconds / len(samples)
        row['per_image'] = per_image
        rows.append(row)
        grid_columns.append((method.name, outputs[:grid_faces]))
    # metrics whose reason appeared late (e.g. NIQE failing on the first image) are unavailable for every row
    for row in rows:
        for key, reason in suite.reasons.items():
            if key in row and is_number(row[key]):
                row[key] = unavailable(reason)
    grid = make_grid(samples[:grid_faces], grid_columns)
    inference.write_image(os.path.join(out_dir, 'grid.png'), grid)
    return {'testset': os.path.abspath(testset['folder']), 'num_images': len(samples),
            'num_classes': testset['num_classes'], 'device': str(device), 'batch': batch,
            'conventions': CONVENTIONS, 'rows': rows, 'unavailable': dict(suite.reasons)}


CONVENTIONS = ('8-bit RGB outputs vs 8-bit GT; PSNR/SSIM: basicsr calculate_psnr/calculate_ssim on RGB (not Y), '
               'crop_border 0; MSE on the 0-255 scale; NIQE: basicsr calculate_niqe on Y; LPIPS v0.1 AlexNet; FID: '
               'GT folder vs output folder (pytorch-fid Inception); face = groups components+wearings+skin, '
               'components = group 1 (docs/metrics.md); GMACs: fvcore, one face at the test-set size; ms/face: '
               'forward only, batched, after one warm-up batch')


def _label(img, text, width):
    strip = np.full((16, width, 3), 255, np.uint8)
    cv2.putText(strip, text[:max(1, width // 7)], (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([strip, img], axis=0)


def make_grid(samples, columns):
    """Rows = faces, columns = blurry input, each method, GT; tiles enlarged to ≥ 96 px so labels fit."""
    if not samples:
        return np.full((16, 16, 3), 255, np.uint8)
    h, w = samples[0]['gt'].shape[:2]
    scale = max(1, int(np.ceil(96 / w)))
    tile = (w * scale, h * scale)
    cols = [('GT', [s['gt'] for s in samples])]
    cols = columns + cols
    gap = 2
    blocks = []
    for name, images in cols:
        tiles = [cv2.resize(img, tile, interpolation=cv2.INTER_NEAREST) for img in images]
        body = np.concatenate([np.pad(t, ((0, gap), (0, 0), (0, 0)), constant_values=255) for t in tiles], axis=0)
        blocks.append(_label(body, name, tile[0]))
        blocks.append(np.full((blocks[-1].shape[0], gap, 3), 255, np.uint8))
    return np.concatenate(blocks[:-1], axis=1)


def cell(value, notes=None):
    """Markdown/CSV text of a table value; 'unavailable (reason)' cells get a numbered note when ``notes``."""
    if value is None:
        return 'nan'
    if isinstance(value, str):
        if notes is not None and value.startswith('unavailable ('):
            if value not in notes:
                notes.append(value)
            return f'unavailable [{notes.index(value) + 1}]'
        return value
    return None


def format_markdown(result):
    notes = []
    header = '| Method | ' + ' | '.join(f'{h} {"↑" if b == "higher" else "↓"}' for _, h, _, b in COLUMNS) + ' |'
    lines = [header, '|' + '---|' * (len(COLUMNS) + 1)]
    for row in result['rows']:
        cells = []
        for key, _, fmt, _ in COLUMNS:
            value = row.get(key, NOT_APPLICABLE)
            text = cell(value, notes)
            cells.append(text if text is not None else fmt.format(int(value) if fmt == '{:,d}' else value))
        lines.append(f'| {row["method"]} | ' + ' | '.join(cells) + ' |')
    out = [f'Benchmark on {result["testset"]} ({result["num_images"]} images, device {result["device"]})', '',
           *lines, '']
    for i, note in enumerate(notes, 1):
        out.append(f'[{i}] {note}')
    out += ['', 'Rows: ' + '; '.join(f'{r["method"]}: {r["description"]}' for r in result['rows']), '',
            f'Conventions: {result["conventions"]}. "—" = not applicable.', '']
    return '\n'.join(out)


def format_csv(result):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(['method'] + [key for key, *_ in COLUMNS])
    for row in result['rows']:
        values = []
        for key, *_ in COLUMNS:
            value = row.get(key, NOT_APPLICABLE)
            values.append(value if isinstance(value, str) else repr(float(value)) if value is not None else 'nan')
        writer.writerow([row['method']] + values)
    return buffer.getvalue()


def write_text(path, text):
    atomic_write_text(path, text)


def write_reports(result, out_dir):
    markdown = format_markdown(result)
    write_text(os.path.join(out_dir, 'benchmark.md'), markdown)
    write_text(os.path.join(out_dir, 'benchmark.csv'), format_csv(result))
    atomic_write_json(result, os.path.join(out_dir, 'benchmark.json'))
    return markdown


def build_methods(args, device):
    methods = [InputMethod('input')]
    if args.richardson_lucy:
        methods.append(RichardsonLucyMethod('richardson_lucy', args.rl_iterations))
    for text in args.folder:
        name, folder, options = parse_spec(text, '--folder')
        _check_options('--folder', name, options, ())
        methods.append(FolderMethod(name, folder))
    for text in args.basicsr:
        methods.append(basicsr_method(text, device))
    for text in args.smfd:
        methods.append(smfd_method(text, device, args.experiments_dir))
    names = [m.name for m in methods]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f'method names must be unique, got {duplicates} more than once')
    return methods


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__.split('\n\n', 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--testset', required=True, help='degraded test set written by scripts/degrade_testset.py')
    p.add_argument('--out', required=True, help='output folder for benchmark.{md,csv,json}, grid.png, outputs/')
    p.add_argument('--smfd', action='append', default=[], metavar='NAME=OPT_OR_CKPT[,mask=gt|generator]',
                   help='an SMFD model: test/train option YAML (path.pretrain_network_g) or checkpoint; '
                   'mask=generator (cascade, default) or gt (dataset masks); mask_weights=PATH')
    p.add_argument('--basicsr', action='append', default=[], metavar='NAME=ARCH_YAML:CKPT',
                   help='any BasicSR arch (YAML with network_g) + checkpoint; options range=-1:1 (inputs/outputs in '
                   '[-1,1]), size=S (run at S×S), param_key=K')
    p.add_argument('--folder', action='append', default=[], metavar='NAME=DIR',
                   help='outputs of another tool, matched to the test images by file stem')
    p.add_argument('--richardson-lucy', action='store_true', help='add Richardson–Lucy with the true kernels')
    p.add_argument('--rl-iterations', type=int, default=30)
    p.add_argument('--experiments-dir', default='experiments', help='where --smfd checkpoints find mask generators')
    p.add_argument('--device', default='auto', help='cpu | cuda | auto (default)')
    p.add_argument('--batch', type=int, default=8, help='faces per forward pass')
    p.add_argument('--limit', type=int, default=None, help='evaluate only the first N test images')
    p.add_argument('--grid-faces', type=int, default=4, help='faces (rows) in grid.png')
    p.add_argument('--offline', action='store_true',
                   help='never download metric weights: LPIPS/FID are unavailable unless already cached')
    p.add_argument('--skip', action='append', default=[], choices=['niqe', 'lpips', 'fid'],
                   help='leave a slow metric out (reported as unavailable)')
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        inference.register_basicsr()
        device = inference.resolve_device(args.device)
        testset = load_testset(args.testset, args.limit)
        methods = build_methods(args, device)
    except (inference.InferenceError, FileNotFoundError, ValueError, KeyError) as err:
        print(f'benchmark: error: {err}', file=sys.stderr)
        return 2
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    result = evaluate(testset, methods, args.out, device, args.batch, args.offline, args.skip, args.grid_faces,
                      log)
    print(write_reports(result, args.out))
    return 1 if any('error' in row for row in result['rows']) else 0


if __name__ == '__main__':
    sys.exit(main())
