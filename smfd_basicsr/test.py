"""Project entry for testing: ``smfd-test -opt X.yml`` or ``python -m smfd_basicsr.test``.

Registers SMFD with BasicSR and hands over to BasicSR's own ``test_pipeline`` with the current directory as
root, so ``results/`` lands where the user runs the command.
"""
import os


def main():
    from smfd_basicsr.registration import register
    register()
    from basicsr.test import test_pipeline
    test_pipeline(os.getcwd())


if __name__ == '__main__':
    main()
