"""Data pipeline speed: samples per second per worker against a training step's consumption;
see smfd_eval/bench_data.py.

    .venv/bin/python scripts/bench_data.py -h
"""
import sys

from smfd_basicsr import register

register()  # SMFD's archs, datasets and models in BasicSR's registries (also with the start-up hook disabled)
from smfd_eval.bench_data import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
