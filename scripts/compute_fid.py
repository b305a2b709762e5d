#!/usr/bin/env python
"""FID between two image folders (paper Table 4.2), e.g. the GT faces and SMFD's outputs.

    python scripts/compute_fid.py --real results/<name>/visualization/gt --fake results/<name>/visualization/out

The Inception weights download on first use into $TORCH_HOME/hub/checkpoints (see docs/metrics.md).
"""
import argparse
import sys

from smfd_models.fid import compute_fid_folders


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Frechet Inception Distance between two image folders.')
    parser.add_argument('--real', required=True, help='folder of reference (sharp) images')
    parser.add_argument('--fake', required=True, help='folder of restored / generated images')
    parser.add_argument('--batch', type=int, default=16, help='images per Inception batch (default: 16)')
    parser.add_argument('--device', default='cpu', help='torch device, e.g. cpu or cuda (default: cpu)')
    parser.add_argument('--random-inception', action='store_true', help=argparse.SUPPRESS)  # tests only
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.batch < 1:
        raise SystemExit(f'compute_fid.py: --batch must be >= 1, got {args.batch}')
    try:
        fid = compute_fid_folders(args.real, args.fake, args.batch, args.device, pretrained=not args.random_inception)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f'compute_fid.py: {err}', file=sys.stderr)
        return 1
    print(f'FID: {fid:.4f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
