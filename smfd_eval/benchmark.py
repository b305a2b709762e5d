"""Table 4.2 on a seeded degraded test set: any mix of SMFD models, BasicSR archs, folders of other tools' outputs.

    python scripts/benchmark.py --testset datasets/demo/testset --out results/bench \\
        --smfd ours_gen=experiments/demo_smfd/models/net_g_latest.pth,mask=generator \\
        --smfd ours_gt=options/demo/test_smfd_demo.yml,mask=gt \\
        --basicsr gfpgan=gfpgan_arch.yml:GFPGANv1.4.pth,range=-1:1,size=512 \\
        --folder codeformer=results/codeformer/final_results --richardson-lucy

Rows: ``input`` (the blurry floor, always), ``richardson_lucy`` (classical deconvolution with the TRUE blur of each
image, from the test set's params.json: an oracle-kernel baseline), then the methods in command-line order. A
cascade with generated masks gives two rows (issue 10): ``NAME`` hands SMFD-UNet the mask it was trained on
(``mask_handoff`` of its option, default the one-hot of the prediction) and ``NAME_soft`` (or ``NAME_onehot``) the
other reading; ``handoff=onehot|soft`` keeps one.
Columns (paper Table 4.2 + extras): PSNR, SSIM, MSE, NIQE, LPIPS, FID, identity (cosine similarity of ArcFace
embeddings of output and GT, smfd_eval/identity.py), PSNR/SSIM of the face and of the facial components (5-group
mask regions, docs/metrics.md), mask Dice/Jaccard (methods that predict masks), parameters,
GMACs (fvcore, per face at the test-set size), ms/face (forward only, batched, after a warm-up batch).

Conventions: every metric compares 8-bit RGB outputs with the 8-bit GT PNGs; PSNR/SSIM are BasicSR's
``calculate_psnr``/``calculate_ssim`` on all three channels (not Y), crop_border 0; MSE on the 0–255 scale; NIQE is
BasicSR's (Y channel; needs ≥ 2 blocks of 96×96); LPIPS v0.1 AlexNet; FID between the GT folder and the output
folder (few images → biased and noisy: compare only numbers on the same set). A metric that cannot run (weights
missing offline, images too small) is reported as "unavailable (reason)", never as a number.

Writes OUT/benchmark.{md,csv,json}, OUT/grid.png (the same faces across methods), OUT/plot.png (PSNR and SSIM
against ms/face, untimed rows such as the input as horizontal lines), OUT/outputs/<method>/<stem>.png,
OUT/masks/<method>/<stem>.png (predicted group labels of cascades) and OUT/ground_truth/<stem>.png (FID's real set).
"""
import argparse
import os
import sys

import torch

from smfd_basicsr import register
from smfd_data.degraded_dataset import read_set_index, read_set_sample
from smfd_data.image_io import to_uint8, write_image
from smfd_eval.methods import (
    NOT_APPLICABLE,
    FolderMethod,
    InputMethod,
    RichardsonLucyMethod,
    _check_options,
    basicsr_method,
    parse_spec,
    smfd_methods,
    unavailable,
)
from smfd_eval.metric_suite import MetricSuite, mean_over_images
from smfd_eval.report import COLUMNS, PER_IMAGE, benchmark_grid, is_number, write_reports
from smfd_inference.loading import InferenceError, resolve_device
from smfd_models.checkpoint import WeightsUnavailable


def load_testset(folder, limit=None):
    """``{'folder', 'num_classes', 'samples': [{'stem', 'lq', 'gt' (uint8 RGB), 'labels' (uint8 HW), 'record',
    'folder'}]}`` of a degraded set (``smfd_data.degraded_dataset``)."""
    meta = read_set_index(folder)
    records = meta['images'][:limit] if limit else meta['images']
    samples = []
    for record in records:
        lq, gt, labels, _ = read_set_sample(folder, record['stem'], meta['num_classes'])
        samples.append({'stem': record['stem'], 'lq': to_uint8(lq), 'gt': to_uint8(gt), 'labels': labels,
                        'record': record, 'folder': folder})
    return {'folder': folder, 'num_classes': meta['num_classes'], 'samples': samples}


def evaluate(testset, methods, out_dir, device='cpu', batch=8, offline=False, skip=(), grid_faces=4, log=print,
             identity_weights=None):
    """Run every method on the test set and compute the table. Returns the JSON-ready result dict."""
    samples = testset['samples']
    device = torch.device(device)
    suite = MetricSuite(testset['num_classes'], device, offline, skip, identity_weights)
    gt_dir = os.path.join(out_dir, 'ground_truth')  # FID's real set; outside outputs/ so no method name clashes
    for s in samples:
        write_image(os.path.join(gt_dir, f'{s["stem"]}.png'), s['gt'])
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
            write_image(os.path.join(folder, f'{s["stem"]}.png'), out)
            if pred_labels is not None:  # predicted group labels, usable as a dataset's mask_root_pred
                write_image(os.path.join(out_dir, 'masks', method.name, f'{s["stem"]}.png'), pred_labels[i])
            values = suite.per_image(out, s['gt'], s['labels'], None if pred_labels is None else pred_labels[i])
            per_image.append({'stem': s['stem'], **values})
        for key in PER_IMAGE:
            if key in ('dice', 'jaccard') and pred_labels is None:
                row[key] = NOT_APPLICABLE
            elif key in suite.reasons:
                row[key] = unavailable(suite.reasons[key])
            else:
                row[key] = mean_over_images([p.get(key) for p in per_image])
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
    if grid_faces and grid_columns:
        write_image(os.path.join(out_dir, 'grid.png'), benchmark_grid(samples[:grid_faces], grid_columns))
    return {'testset': os.path.abspath(testset['folder']), 'num_images': len(samples),
            'num_classes': testset['num_classes'], 'device': str(device), 'batch': batch,
            'conventions': CONVENTIONS, 'rows': rows, 'unavailable': dict(suite.reasons)}


CONVENTIONS = ('8-bit RGB outputs vs 8-bit GT; PSNR/SSIM: basicsr calculate_psnr/calculate_ssim on RGB (not Y), '
               'crop_border 0; MSE on the 0-255 scale; NIQE: basicsr calculate_niqe on Y; LPIPS v0.1 AlexNet; FID: '
               'GT folder vs output folder (pytorch-fid Inception); identity: cosine similarity of GFPGAN\'s ArcFace '
               'ResNet-18 embeddings (gray, 128²) of output and GT; face = groups components+wearings+skin, '
               'components = group 1 (docs/metrics.md); GMACs: fvcore, one face at the test-set size; ms/face: '
               'forward only, batched, after one warm-up batch')


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
        methods.extend(smfd_methods(text, device, args.experiments_dir))
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
                   'mask=generator (cascade, default) or gt (dataset masks); mask_weights=PATH; handoff=onehot|soft '
                   '(generated masks; default both rows: NAME with the trained hand-off, NAME_<other> with the other)')
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
                   help='never download metric weights: LPIPS/FID/identity are unavailable unless already cached')
    p.add_argument('--identity-weights', metavar='PTH',
                   help='ArcFace weights for the identity column (default: GFPGAN\'s arcface_resnet18.pth, downloaded '
                   'into ~/.cache/smfd/gfpgan on first use)')
    p.add_argument('--skip', action='append', default=[], choices=['niqe', 'lpips', 'fid', 'identity'],
                   help='leave a slow metric out (reported as unavailable)')
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if args.identity_weights and not os.path.isfile(args.identity_weights):
            raise FileNotFoundError(f'--identity-weights {args.identity_weights}: no such file')
        register()
        device = resolve_device(args.device)
        testset = load_testset(args.testset, args.limit)
        methods = build_methods(args, device)
    except (InferenceError, WeightsUnavailable, FileNotFoundError, ValueError, KeyError) as err:
        print(f'benchmark: error: {err}', file=sys.stderr)
        return 2
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    result = evaluate(testset, methods, args.out, device, args.batch, args.offline, args.skip, args.grid_faces,
                      log, args.identity_weights)
    print(write_reports(result, args.out))
    return 1 if any('error' in row for row in result['rows']) else 0
