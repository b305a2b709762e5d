"""make demo: the whole SMFD pipeline on the embedded synthetic faces: see smfd_eval/demo.py.

    .venv/bin/python scripts/run_demo.py -h
"""
import sys

from smfd_basicsr import register

register()  # SMFD's archs, datasets and models in BasicSR's registries (also with the start-up hook disabled)
from smfd_eval.demo import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
