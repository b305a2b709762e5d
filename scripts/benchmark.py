"""Table 4.2 on a seeded degraded test set, for any mix of SMFD models, BasicSR archs and folders;
see smfd_eval/benchmark.py.

    .venv/bin/python scripts/benchmark.py -h
"""
import sys

from smfd_basicsr import register

register()  # SMFD's archs, datasets and models in BasicSR's registries (also with the start-up hook disabled)
from smfd_eval.benchmark import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
