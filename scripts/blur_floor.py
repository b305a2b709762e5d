"""The blurry-input floor (PSNR/SSIM of blurry vs sharp) of degrade_at source vs output: see smfd_eval/blur_floor.py.

    .venv/bin/python scripts/blur_floor.py -h
"""
import sys

from smfd_basicsr import prepare_basicsr

prepare_basicsr()  # basicsr's metrics import needs the torchvision stand-in (also with the start-up hook disabled)
from smfd_eval.blur_floor import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
