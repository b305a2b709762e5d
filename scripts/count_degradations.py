"""Count the discrete degradation configurations of a training option file (§3.4.1).

Usage:
    python scripts/count_degradations.py -opt options/train_smfd.yml

Reads ``datasets.train.degradation`` of the BasicSR option YAML (paper defaults when absent) and prints the
per-step breakdown and the total with thousands separators. For the paper's configuration the total is
1,743,335,166,888 (the thesis prints 1,743,940,018,728 after an arithmetic slip; see docs/degradation.md).
"""
import argparse
import os
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from smfd_data.degradation import DegradationConfig, count_breakdown  # noqa: E402


def load_degradation_options(path, phase='train'):
    """The ``datasets.<phase>.degradation`` dict of a BasicSR option file ({} when absent)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path}: option file not found')
    with open(path, encoding='utf-8') as f:
        opt = yaml.safe_load(f) or {}
    if not isinstance(opt, dict):
        raise ValueError(f'{path}: expected a YAML mapping at the top level')
    dataset = (opt.get('datasets') or {}).get(phase) or {}
    degradation = dataset.get('degradation') or {}
    if not isinstance(degradation, dict):
        raise ValueError(f'{path}: datasets.{phase}.degradation must be a mapping, got {degradation!r}')
    return degradation


def format_breakdown(b):
    per_seq = ' + '.join(f'{s}: {n:,}' for s, n in b['per_sequence'].items())
    per_n = ' + '.join(f'{n} layer(s): {c:,}' for n, c in b['per_num_layers'].items())
    lines = [
        f'per blur layer        {per_seq} = {b["per_layer"]:,}',
        f'heavy blur            {per_n} = {b["blur"]:,}',
        f'scale factors         {b["scales"]:,}',
        f'noise levels          {b["noise_levels"]:,}',
        f'interpolation pairs   {b["interpolations"]:,}',
        f'JPEG options          {b["jpeg"]:,}',
        f'total                 {b["total"]:,}',
    ]
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('-opt', required=True, help='BasicSR option YAML')
    parser.add_argument('--phase', default='train', help='dataset phase whose degradation is counted')
    args = parser.parse_args(argv)
    try:
        d = load_degradation_options(args.opt, args.phase)
        cfg = DegradationConfig.from_dict(d, source=f'{args.opt}: datasets.{args.phase}.degradation')
        breakdown = count_breakdown(cfg)
    except (FileNotFoundError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    print(format_breakdown(breakdown))
    return 0


if __name__ == '__main__':
    sys.exit(main())
