"""The web page for SMFD face deblurring: ``python scripts/web_demo.py [-o OUT] [--port 7860] [--weights ...]``.

A thin wrapper of ``smfd_inference.web.main`` (the ``smfd-web`` entry; usage in docs/tools.md).
"""
import sys

from smfd_inference.web import main

if __name__ == '__main__':
    sys.exit(main())
