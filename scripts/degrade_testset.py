#!/usr/bin/env python
"""Write a fixed, seeded degraded test set (paper §3.4.1 degradation, §3.4.2 grouping, Table 4.2 evaluation).

    python scripts/degrade_testset.py -opt options/smfd_train.yml -o datasets/smfd_test [--phase test] [--limit N]

Reads the dataset options of the chosen phase (the first ``datasets.<name>`` whose name starts with the phase),
builds SMFDFaceDataset with ``deterministic: true`` and no augmentation, so image ``i`` is degraded with
``rng_for_sample(seed, i)``, and writes::

    DIR/lq/<stem>.png            blurry input (8-bit RGB PNG)
    DIR/gt/<stem>.png            sharp face at gt_size
    DIR/labels/<stem>.png        group labels (uint8, 0..K-1)
    DIR/labels_color/<stem>.png  the same, coloured (face_labels.colorize)
    DIR/kernels/<stem>.npz       blur kernels in application order (k00, k01, ...) and their composition
                                 ('composed', for Richardson–Lucy); unless --no-kernels
    DIR/params.json              per image: stem, index, seed and the exact degradation parameters

The set is built in a temporary folder next to DIR and moved into place at the end, so DIR is either the old
complete set or the new one. Same inputs → byte-identical files. Read it back with SMFDDegradedFolderDataset.
"""
import argparse
import io
import json
import os
import os.path as osp
import shutil
import sys
import tempfile
import zipfile

import numpy as np
import yaml

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

FORMAT = 'smfd-degraded-set'
FORMAT_VERSION = 1
PHASES = ('test', 'val')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Write a seeded degraded test set for SMFD.')
    parser.add_argument('-opt', required=True, help='BasicSR option YAML with a SMFDFaceDataset for the phase')
    parser.add_argument('-o', '--out', required=True, help='output folder (replaced atomically if it holds a set)')
    parser.add_argument('--phase', choices=PHASES, default='test', help='which datasets.<phase*> entry (default: test)')
    parser.add_argument('--limit', type=int, default=None, help='write only the first N images')
    parser.add_argument('--seed', type=int, default=None, help='override the dataset option seed')
    parser.add_argument('--no-kernels', action='store_true', help='do not write DIR/kernels/*.npz')
    parser.add_argument('--num-workers', type=int, default=0, help='DataLoader workers (output is identical)')
    return parser.parse_args(argv)


def phase_dataset_options(opt_path, phase):
    """``(name, dict)`` of the first ``datasets.<name>`` whose name starts with ``phase``."""
    with open(opt_path, 'r') as f:
        opt = yaml.safe_load(f)
    datasets = (opt or {}).get('datasets') or {}
    for name, dataset_opt in datasets.items():
        if str(name).startswith(phase):
            if dataset_opt.get('type', 'SMFDFaceDataset') != 'SMFDFaceDataset':
                raise ValueError(f'{opt_path}: datasets.{name} is a {dataset_opt["type"]}; '
                                 'degrade_testset.py needs a SMFDFaceDataset (sharp faces + label maps)')
            return name, dict(dataset_opt)
    raise ValueError(f'{opt_path}: no datasets.<name> starting with {phase!r} (found {list(datasets)})')


def build_dataset(dataset_opt, phase, seed=None):
    """SMFDFaceDataset in its deterministic, unaugmented form, reading the dataset's own (GT) masks."""
    import smfd_autoload
    smfd_autoload.prepare_basicsr()  # harmless with the startup hook; needed with SMFD_NO_AUTOLOAD=1
    from smfd_data.face_dataset import SMFDFaceDataset

    opt = dict(dataset_opt, phase=phase, deterministic=True, augment=False, degrade_on_device=False, gray_lq=False,
               mask_encoding='label')
    opt.pop('mask_root_pred', None)
    if seed is not None:
        opt['seed'] = seed
    return SMFDFaceDataset(opt)


def to_uint8(img):
    """float [0, 1] → uint8 with round-half-up (as smfd_data.degradation.jpeg_compress)."""
    return np.clip(np.floor(img * 255.0 + 0.5), 0, 255).astype(np.uint8)


def compose_kernels(kernels):
    """The PSF of applying ``kernels`` one after the other (full convolution), normalised to sum 1.

    It ignores border handling and the later resize/noise steps: an approximation for Richardson–Lucy.
    """
    from scipy.signal import fftconvolve

    composed = np.ones((1, 1), np.float64)
    for kernel in kernels:
        composed = fftconvolve(composed, kernel.astype(np.float64), mode='full')
    composed = np.clip(composed, 0.0, None)
    return (composed / composed.sum()).astype(np.float32)


def save_npz_deterministic(path, arrays):
    """Like np.savez_compressed, with fixed zip timestamps so that equal arrays give equal bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w', compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f'{name}.npy', date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue())
    with open(path, 'wb') as f:
        f.write(buffer.getvalue())


def write_sample(folder, stem, sample, num_classes, kernels):
    """Write one sample of SMFDFaceDataset (mask_encoding 'label') into the set folder."""
    import cv2

    from smfd_data.degradation import blur_ops, kernel_for_op
    from smfd_data.face_labels import colorize
    from smfd_data.lmdb_io import imwrite_atomic

    lq = to_uint8(sample['lq'].numpy().transpose(1, 2, 0))
    gt = to_uint8(sample['gt'].numpy().transpose(1, 2, 0))
    labels = sample['mask'].numpy().astype(np.uint8)
    imwrite_atomic(osp.join(folder, 'lq', f'{stem}.png'), cv2.cvtColor(lq, cv2.COLOR_RGB2BGR))
    imwrite_atomic(osp.join(folder, 'gt', f'{stem}.png'), cv2.cvtColor(gt, cv2.COLOR_RGB2BGR))
    imwrite_atomic(osp.join(folder, 'labels', f'{stem}.png'), labels)
    color = colorize(labels, num_classes=num_classes)
    imwrite_atomic(osp.join(folder, 'labels_color', f'{stem}.png'), cv2.cvtColor(color, cv2.COLOR_RGB2BGR))
    params = json.loads(sample['degradation'])
    if kernels:
        ops = [np.asarray(kernel_for_op(op), np.float32) for op in blur_ops(params)]
        arrays = {f'k{i:02d}': k for i, k in enumerate(ops)}
        arrays['composed'] = compose_kernels(ops)
        save_npz_deterministic(osp.join(folder, 'kernels', f'{stem}.npz'), arrays)
    return params


def replace_folder(staging, out):
    """Move the finished ``staging`` folder to ``out``; an existing set there is swapped out, then removed."""
    if not osp.exists(out):
        os.replace(staging, out)
        return
    old = tempfile.mkdtemp(prefix=osp.basename(out) + '.old-', dir=osp.dirname(out))
    os.rmdir(old)
    os.replace(out, old)
    os.replace(staging, out)
    shutil.rmtree(old)


def write_degraded_set(opt_path, out, phase='test', limit=None, seed=None, kernels=True, num_workers=0):
    """Build the set (see module doc). Returns the params.json content."""
    import torch

    out = osp.abspath(osp.expanduser(out))
    if osp.exists(out) and (not osp.isdir(out) or (os.listdir(out) and not osp.isfile(osp.join(out, 'params.json')))):
        raise ValueError(f'{out}: exists and is not a degraded set (no params.json); refusing to replace it')
    name, dataset_opt = phase_dataset_options(opt_path, phase)
    dataset = build_dataset(dataset_opt, phase, seed)
    count = len(dataset) if limit is None else min(int(limit), len(dataset))
    if count < 1:
        raise ValueError(f'{opt_path}: datasets.{name} gives no images to write (limit={limit})')
    subset = torch.utils.data.Subset(dataset, range(count))
    loader = torch.utils.data.DataLoader(subset, batch_size=None, shuffle=False, num_workers=num_workers)

    os.makedirs(osp.dirname(out) or '.', exist_ok=True)
    staging = tempfile.mkdtemp(prefix=osp.basename(out) + '.tmp-', dir=osp.dirname(out))
    try:
        for sub in ('lq', 'gt', 'labels', 'labels_color') + (('kernels', ) if kernels else ()):
            os.makedirs(osp.join(staging, sub))
        images = []
        for sample in loader:
            index = int(sample['index'])
            stem = dataset.stems[index]
            params = write_sample(staging, stem, sample, dataset.num_classes, kernels)
            images.append({'stem': stem, 'index': index, 'seed': dataset.seed, 'degradation': params})
        meta = {
            'format': FORMAT,
            'version': FORMAT_VERSION,
            'num_classes': dataset.num_classes,
            'label_groups': dataset_opt.get('label_groups'),
            'gt_size': dataset.gt_size,
            'seed': dataset.seed,
            'source': {'option_file': osp.basename(opt_path), 'dataset': name, 'phase': phase,
                       'dataroot_gt': dataset_opt.get('dataroot_gt'), 'dataroot_mask': dataset_opt.get('dataroot_mask'),
                       'meta_info_file': dataset_opt.get('meta_info_file')},
            'degradation_config': dataset.degradation_cfg.to_dict(),
            'images': images,
        }
        with open(osp.join(staging, 'params.json'), 'w') as f:
            json.dump(meta, f, indent=1, sort_keys=True)
            f.write('\n')
        os.chmod(staging, 0o755)  # mkdtemp makes 0700 folders
        replace_folder(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return meta


def main(argv=None):
    args = parse_args(argv)
    if args.limit is not None and args.limit < 1:
        raise SystemExit(f'degrade_testset.py: --limit must be >= 1, got {args.limit}')
    try:
        meta = write_degraded_set(args.opt, args.out, args.phase, args.limit, args.seed, not args.no_kernels,
                                  args.num_workers)
    except (FileNotFoundError, ValueError) as err:
        print(f'degrade_testset.py: {err}', file=sys.stderr)
        return 1
    print(f'Wrote {len(meta["images"])} degraded images ({meta["num_classes"]} mask classes, seed {meta["seed"]}) '
          f'to {osp.abspath(args.out)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
