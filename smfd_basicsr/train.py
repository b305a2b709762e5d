"""Project entry for training (GFPGAN style): ``smfd-train -opt X.yml`` or ``python -m smfd_basicsr.train``.

Registers SMFD with BasicSR and hands over to BasicSR's own ``train_pipeline`` with the current directory as
root, so ``experiments/`` and ``tb_logger/`` land where the user runs the command.
"""
import os


def main():
    from smfd_basicsr.registration import register
    register()
    from basicsr.train import train_pipeline
    train_pipeline(os.getcwd())


if __name__ == '__main__':
    main()
