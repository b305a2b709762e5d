"""Export the SMFD networks to ONNX and check them against PyTorch with onnxruntime.

    python scripts/export_onnx.py --weights experiments/X/models/net_g_best.pth \
        --mask-weights experiments/Y/models/net_g_best.pth --opt options/train_smfd.yml -o onnx/

writes onnx/mask_generator.onnx, onnx/smfd_unet.onnx, onnx/smfd_cascade.onnx (blurry RGB → restored, one graph)
and onnx/export.json (parity per graph and size). Without --weights/--mask-weights the networks are randomly
initialised (a warning says so): useful to test the export, useless for deblurring. Details and limits:
smfd_models/onnx_export.py, docs/performance.md.
"""
import argparse
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import smfd_autoload  # noqa: E402

smfd_autoload.prepare_basicsr()  # smfd_arch imports basicsr's registry

from smfd_data.atomic_io import atomic_write_json  # noqa: E402
from smfd_models.onnx_export import PARITY_TOLERANCE, build_networks, export_all  # noqa: E402

GRAPHS = ('mask_generator', 'smfd_unet', 'smfd_cascade')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--weights', help='SMFDUNet checkpoint (BasicSR .pth: params_ema or params)')
    parser.add_argument('--mask-weights', help='MaskGenerator checkpoint (BasicSR .pth)')
    parser.add_argument('--opt', help='training YAML whose network_g / network_mask built the checkpoints '
                        '(default: the default configurations)')
    parser.add_argument('-o', '--output', required=True, help='output folder')
    parser.add_argument('--size', type=int, default=256, help='face size the graphs are traced and checked at')
    parser.add_argument('--opset', type=int, default=17)
    parser.add_argument('--fixed-size', action='store_true', help='fixed H×W (only the batch is dynamic)')
    parser.add_argument('--only', default=','.join(GRAPHS), help=f'comma-separated subset of {",".join(GRAPHS)}')
    args = parser.parse_args(argv)
    which = [w for w in args.only.split(',') if w]
    unknown = sorted(set(which) - set(GRAPHS))
    if unknown:
        parser.error(f'--only: unknown graph(s) {unknown}; choose from {", ".join(GRAPHS)}')
    if args.size < 16:
        parser.error('--size must be at least 16 (the networks pool 4 times)')
    args.which = which
    return args


def main(argv=None):
    args = parse_args(argv)
    mask_generator, unet = build_networks(args.opt, args.weights, args.mask_weights)
    results = export_all(mask_generator, unet, args.output, size=args.size, opset=args.opset,
                         dynamic_hw=not args.fixed_size, which=args.which)
    failed = []
    for name, res in results.items():
        shapes = ', '.join(f'{"x".join(map(str, p["shape"]))}: {p["max_abs_diff"]:.2e} (max|output| '
                           f'{p["max_abs_output"]:.3g})' for p in res['parity'])
        hw = 'dynamic batch, H, W' if res['dynamic_hw'] else f'dynamic batch, fixed {args.size}x{args.size}'
        status = 'OK' if res['parity_ok'] else f'FAILED (> {PARITY_TOLERANCE:g} × max(1, max|output|))'
        print(f'{res["path"]}: {hw}; max|Δ| vs PyTorch fp32 ({shapes}) {status}')
        if not res['parity_ok']:
            failed.append(name)
    summary = {'weights': args.weights, 'mask_weights': args.mask_weights, 'opt': args.opt,
               'random_init': not (args.weights and args.mask_weights), 'tolerance': PARITY_TOLERANCE,
               'graphs': results}
    atomic_write_json(summary, os.path.join(args.output, 'export.json'))
    if failed:
        print(f'Parity check failed for {", ".join(failed)}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
