#!/usr/bin/env python
"""Deblur face images with SMFD-UNet: ``python scripts/deblur.py -i IN -o OUT [--detect]``.

A thin wrapper of :func:`smfd_models.inference.main` (all logic and options there; usage in docs/tools.md).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout
from smfd_models.inference import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
