"""Write a fixed, seeded degraded test set (§3.4.1, Table 4.2) or a frozen training set (--phase train, §3.4):
see smfd_data/degraded_dataset.py.

    python scripts/degrade_testset.py -opt options/train_smfd.yml -o datasets/smfd_test [--phase test] [--limit N]
    python scripts/degrade_testset.py -opt options/train_smfd.yml --phase train --meta-info META -o DIR
"""
import sys

from smfd_basicsr import prepare_basicsr

prepare_basicsr()  # the dataset module imports basicsr (needed when the start-up hook is disabled)
from smfd_data.degraded_dataset import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
