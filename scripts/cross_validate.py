"""5-fold cross-validation of an SMFD option file (Table 4.4): see smfd_eval/cross_validation.py.

    .venv/bin/python scripts/cross_validate.py -h
"""
import sys

from smfd_basicsr import register

register()  # SMFD's archs, datasets and models in BasicSR's registries (also with the start-up hook disabled)
from smfd_eval.cross_validation import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
