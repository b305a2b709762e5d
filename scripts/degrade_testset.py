"""Write a fixed, seeded degraded test set (§3.4.1, Table 4.2) or a frozen training set (--phase train, §3.4):
see smfd_data/degraded_dataset.py.

    python scripts/degrade_testset.py -opt options/train_smfd.yml -o datasets/smfd_test [--phase test] [--limit N]
    python scripts/degrade_testset.py -opt options/train_smfd.yml --phase train --meta-info META -o DIR
"""
import argparse
import os
import sys

from smfd_basicsr import prepare_basicsr

prepare_basicsr()  # the dataset module imports basicsr (needed when the start-up hook is disabled)
from smfd_data.degraded_dataset import PHASES, write_degraded_set  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description='Write a seeded degraded test set for SMFD.')
    parser.add_argument('-opt', required=True, help='BasicSR option YAML with a SMFDFaceDataset for the phase')
    parser.add_argument('-o', '--out', required=True, help='output folder (replaced atomically if it holds a set)')
    parser.add_argument('--phase', choices=PHASES, default='test', help='which datasets.<phase*> entry (default: test)')
    parser.add_argument('--limit', type=int, default=None, help='write only the first N images')
    parser.add_argument('--seed', type=int, default=None, help='override the dataset option seed')
    parser.add_argument('--no-kernels', action='store_true', help='do not write DIR/kernels/*.npz')
    parser.add_argument('--num-workers', type=int, default=0, help='DataLoader workers (output is identical)')
    parser.add_argument('--meta-info', help='override the dataset\'s meta_info_file (e.g. trainval.txt for a frozen '
                        'training set that serves every fold)')
    parser.add_argument('--classes', type=int, choices=[19], default=None,
                        help='store the 19 ungrouped CelebAMask-HQ labels (for scripts/mask_benchmark.py)')
    parser.add_argument('--resume', action='store_true', help='build in place and continue an interrupted build '
                        '(always on with --phase train)')
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error(f'--limit must be >= 1, got {args.limit}')
    try:
        meta = write_degraded_set(args.opt, args.out, args.phase, args.limit, args.seed, not args.no_kernels,
                                  args.num_workers, args.meta_info, args.resume or args.phase == 'train',
                                  args.classes)
    except (FileNotFoundError, ValueError) as err:
        print(f'degrade_testset: error: {err}', file=sys.stderr)
        return 1
    print(f'Wrote {len(meta["images"])} degraded images ({meta["num_classes"]} mask classes, seed {meta["seed"]}) '
          f'to {os.path.abspath(args.out)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
