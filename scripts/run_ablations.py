"""The Table 4.3 ablations: train and evaluate each option file: see smfd_eval/ablations.py.

    .venv/bin/python scripts/run_ablations.py -h
"""
import sys

from smfd_basicsr import register

register()  # SMFD's archs, datasets and models in BasicSR's registries (also with the start-up hook disabled)
from smfd_eval.ablations import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
