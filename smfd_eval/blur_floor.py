"""The blurry-input floor of both readings of §3.4 (issue 10): PSNR/SSIM of the blurry input against the sharp face.

    python scripts/blur_floor.py [-n 8] [--size 1024] [--gt-size 256] [--seed 0] [-opt OPTION.yml]

Draws ``n`` synthetic faces at ``size``² (``smfd_data.synthetic_faces``, demo/test data), keeps them at that size
(``prepare_celebamask_hq --keep-source``) and degrades image i with ``rng_for_sample(seed, i)`` twice: with
``degrade_at: source`` (blur at ``size``², then resize to ``gt_size``², §3.4's order) and ``degrade_at: output``
(resize first, blur at ``gt_size``²). Same parameters for both, so the difference is the order alone. The
degradation is the paper's (§3.4.1) unless ``-opt`` names an option file whose ``datasets.train.degradation`` is
used. Prints one line per reading: mean PSNR (dB, 8-bit RGB, BasicSR's calculate_psnr) and SSIM.
"""
import argparse
import os
import sys
import tempfile

import numpy as np

from smfd_data.celebamask_hq import main as prepare_main
from smfd_data.face_dataset import DEGRADE_AT, SMFDFaceDataset
from smfd_data.image_io import to_uint8
from smfd_data.option_file import read_option
from smfd_data.synthetic_faces import write_celebamask_tree


def blur_floor(n=8, size=1024, gt_size=256, seed=0, degradation=None, workdir=None):
    """``{reading: {'psnr': mean dB, 'ssim': mean}}`` for the readings of ``DEGRADE_AT`` (see module doc)."""
    from basicsr.metrics import calculate_psnr, calculate_ssim

    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        tree, prepared = os.path.join(tmp, 'tree'), os.path.join(tmp, 'prepared')
        write_celebamask_tree(tree, n, seed=seed, img_size=size, mask_size=size, progress=False)
        prepare_main(['-i', tree, '-o', prepared, '--keep-source', '--workers', '1', '--folds', '2',
                      '--test-ratio', '0'])
        result = {}
        for reading in DEGRADE_AT:
            dataset = SMFDFaceDataset({
                'name': f'blur_floor_{reading}', 'phase': 'val', 'dataroot_gt': os.path.join(prepared, 'images'),
                'dataroot_mask': os.path.join(prepared, 'labels'), 'gt_size': gt_size, 'seed': seed,
                'degrade_at': reading, 'degradation': degradation, 'mask_encoding': 'label'})
            psnr, ssim = [], []
            for i in range(len(dataset)):
                sample = dataset[i]
                lq, gt = (to_uint8(sample[k].numpy().transpose(1, 2, 0)) for k in ('lq', 'gt'))
                psnr.append(calculate_psnr(lq, gt, crop_border=0, input_order='HWC'))
                ssim.append(calculate_ssim(lq, gt, crop_border=0, input_order='HWC'))
            result[reading] = {'psnr': float(np.mean(psnr)), 'ssim': float(np.mean(ssim)), 'images': len(psnr)}
    return result


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__.split('\n\n', 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('-n', type=int, default=8, help='number of synthetic faces')
    p.add_argument('--size', type=int, default=1024, help='stored (source) side of the faces')
    p.add_argument('--gt-size', type=int, default=256, help='training side (gt_size)')
    p.add_argument('--seed', type=int, default=0, help='face and degradation seed')
    p.add_argument('-opt', help='option file whose datasets.train.degradation is used (default: the paper\'s)')
    args = p.parse_args(argv)
    try:
        if args.n < 1 or args.gt_size < 16 or args.size < args.gt_size:
            raise ValueError('need -n >= 1, --gt-size >= 16 and --size >= --gt-size')
        degradation = None
        if args.opt:
            degradation = ((read_option(args.opt).get('datasets') or {}).get('train') or {}).get('degradation')
        result = blur_floor(args.n, args.size, args.gt_size, args.seed, degradation)
    except (FileNotFoundError, ValueError) as err:
        print(f'blur_floor: error: {err}', file=sys.stderr)
        return 2
    for reading, r in result.items():
        print(f'degrade_at {reading:6s}  PSNR {r["psnr"]:.2f} dB  SSIM {r["ssim"]:.4f}  '
              f'({r["images"]} synthetic faces, {args.size}² source, {args.gt_size}² output, seed {args.seed})')
    return 0
