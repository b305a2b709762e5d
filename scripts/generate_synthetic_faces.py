"""Write procedural synthetic faces in CelebAMask-HQ's layout — FOR DEMOS AND TESTS ONLY.

Real training and results comparable to the paper use CelebAMask-HQ (docs/data.md). The synthetic tree
feeds ``scripts/prepare_celebamask_hq.py`` exactly like the real dataset::

    python scripts/generate_synthetic_faces.py -o datasets/synthetic_tree -n 200 --seed 0 --size 512
    python scripts/prepare_celebamask_hq.py -i datasets/synthetic_tree -o datasets/synthetic --size 256
"""
import argparse

from smfd_data.synthetic_faces import write_celebamask_tree


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('-o', '--output', required=True, help='root of the CelebAMask-HQ-style tree')
    parser.add_argument('-n', '--num', type=int, required=True, help='number of faces')
    parser.add_argument('--seed', type=int, default=0, help='face <id> is drawn from default_rng([seed, id])')
    parser.add_argument('--size', type=int, default=512, help='image side (the masks have --mask-size)')
    parser.add_argument('--mask-size', type=int, default=None, help='mask side (default: --size)')
    parser.add_argument('--workers', type=int, default=1, help='parallel processes')
    args = parser.parse_args(argv)
    if args.num < 1 or args.size < 16:
        parser.error('need -n >= 1 and --size >= 16')
    write_celebamask_tree(args.output, args.num, args.seed, img_size=args.size,
                          mask_size=args.mask_size or args.size, workers=args.workers)
    print(f'{args.output}: {args.num} synthetic faces (demo/test data, not CelebAMask-HQ)')


if __name__ == '__main__':
    main()
