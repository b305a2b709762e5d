"""Deblur face images with SMFD-UNet: ``python scripts/deblur.py -i IN -o OUT [--detect]``.

A thin wrapper of ``smfd_inference.deblur.main`` (the ``smfd-deblur`` entry; usage in docs/tools.md).
"""
import sys

from smfd_inference.deblur import main

if __name__ == '__main__':
    sys.exit(main())
