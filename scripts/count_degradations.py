"""Count the discrete degradation configurations of a training option file (§3.4.1).

    python scripts/count_degradations.py -opt options/train_smfd.yml

Reads ``datasets.<phase>.degradation`` of the BasicSR option YAML (paper defaults when absent) and prints the
per-step breakdown and the total. For the paper's configuration the total is 1,743,335,166,888 (the thesis prints
1,743,940,018,728 after an arithmetic slip; see docs/degradation.md). A thin wrapper of
``smfd_data.degradation.count_main``.
"""
import sys

from smfd_data.degradation import count_main

if __name__ == '__main__':
    sys.exit(count_main())
