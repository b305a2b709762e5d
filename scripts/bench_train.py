"""Training-step speed: SMFDModel against BasicSR's SRModel, and each training fast path: see smfd_eval/bench_train.py.

    .venv/bin/python scripts/bench_train.py -h
"""
import sys

from smfd_basicsr import register

register()  # SMFD's archs, datasets and models in BasicSR's registries (also with the start-up hook disabled)
from smfd_eval.bench_train import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
