"""Table 4.1: Dice/Jaccard on 5 groups and 19 classes, params and GMACs of segmentation nets on one test set: see
smfd_eval/mask_benchmark.py.

    .venv/bin/python scripts/mask_benchmark.py -h
"""
import sys

from smfd_basicsr import register

register()  # SMFD's archs in BasicSR's registry (also with the start-up hook disabled)
from smfd_eval.mask_benchmark import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
