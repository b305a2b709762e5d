"""Prepare CelebAMask-HQ (or a tree in its layout) for SMFD training: see smfd_data/celebamask_hq.py.

    python scripts/prepare_celebamask_hq.py -i datasets/CelebAMask-HQ -o datasets/celebamask_256 --size 256 --lmdb
"""
import sys

from smfd_data.celebamask_hq import main

if __name__ == '__main__':
    try:
        main()
    except (FileNotFoundError, RuntimeError, ValueError) as err:  # the message names the file: no traceback
        sys.exit(f'prepare_celebamask_hq: error: {err}')
