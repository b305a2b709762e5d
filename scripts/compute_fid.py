"""FID between two image folders (paper Table 4.2), e.g. the GT faces and SMFD's outputs: see smfd_eval/fid.py.

    python scripts/compute_fid.py --real results/<name>/visualization/gt --fake results/<name>/visualization/out

The Inception weights download on first use into $TORCH_HOME/hub/checkpoints (see docs/metrics.md).
"""
import sys

from smfd_basicsr import register

register()  # the Inception network comes from basicsr
from smfd_eval.fid import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
