"""Start-up cost of the SMFD import hook: `python -c pass` with the hook against without it; see
smfd_eval/bench_startup.py.

    .venv/bin/python scripts/bench_startup.py --json bench_startup.json
"""
import sys

from smfd_eval.bench_startup import main

if __name__ == '__main__':
    sys.exit(main())
