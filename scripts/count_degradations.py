"""Count the discrete degradation configurations of a training option file (§3.4.1).

    python scripts/count_degradations.py -opt options/train_smfd.yml

Reads ``datasets.<phase>.degradation`` of the BasicSR option YAML (paper defaults when absent) and prints the
per-step breakdown and the total. For the paper's configuration the total is 1,743,335,166,888 (the thesis prints
1,743,940,018,728 after an arithmetic slip; see docs/degradation.md).
"""
import argparse
import sys

from smfd_data.degradation import DegradationConfig, count_breakdown, format_breakdown
from smfd_data.option_file import read_option


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
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


if __name__ == '__main__':
    sys.exit(main())
