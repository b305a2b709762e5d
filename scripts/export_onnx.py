"""Export the SMFD networks to ONNX and check them against PyTorch with onnxruntime: see smfd_inference/onnx.py.

    python scripts/export_onnx.py --weights experiments/X/models/net_g_best.pth \
        --mask-weights experiments/Y/models/net_g_best.pth --opt options/train_smfd.yml -o onnx/
"""
import sys

from smfd_basicsr import register

register()  # the networks live in BasicSR's registry
from smfd_inference.onnx import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
