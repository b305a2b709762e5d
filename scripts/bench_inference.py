"""Inference speed of the SMFD networks against NAFNet and GFPGAN, timed interleaved in one process;
see smfd_eval/bench_inference.py.

    .venv/bin/python scripts/bench_inference.py -h
"""
import sys

from smfd_basicsr import register

register()  # SMFD's archs, datasets and models in BasicSR's registries (also with the start-up hook disabled)
from smfd_eval.bench_inference import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
