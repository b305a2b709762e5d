"""Prepare CelebAMask-HQ (or any tree in its layout) for SMFD training (paper §3.2, §3.4.2, §3.4.6.2).

Input (the dataset as downloaded, or ``scripts/generate_synthetic_faces.py`` output)::

    ROOT/CelebA-HQ-img/<id>.jpg                                     face images (1024² in the real dataset)
    ROOT/CelebAMask-HQ-mask-anno/<id // 2000>/<id:05d>_<part>.png   binary part masks (512²), parts present only

Output (the layout ``SMFDFaceDataset`` reads, see docs/design.md)::

    OUT/images/<id:05d>.png     face resized to --size (INTER_AREA; default: the mask resolution); with
                                --keep-source at its stored resolution (1024² in CelebAMask-HQ), for
                                ``degrade_at: source`` (blur at full resolution, then resize: §3.4's order)
    OUT/labels/<id:05d>.png     uint8 19-class label map (parts merged in the standard order, INTER_NEAREST; with
                                --keep-source enlarged to the image size)
    OUT/meta_info/trainval.txt, test.txt               seeded 80:20 split (§3.4.6.2)
    OUT/meta_info/fold{k}_train.txt, fold{k}_val.txt   5 folds inside trainval; train.txt/val.txt = fold 1
    OUT/images.lmdb, OUT/labels.lmdb                   with --lmdb (BasicSR LMDBs, key = <id:05d>)

Resumable: a sample whose two outputs exist and decode is skipped; every file is written atomically.
Bad inputs (a mask without its image, an image without masks, unreadable or truncated files) stop the run
with an error naming the file, or are skipped and counted with --skip-bad.

Example: python scripts/prepare_celebamask_hq.py -i datasets/CelebAMask-HQ -o datasets/celebamask_256 \\
             --size 256 --lmdb --workers 8
"""
import argparse
import os
import re
import sys
from multiprocessing import Pool

import cv2
import numpy as np
from tqdm import tqdm

from smfd_data.atomic_io import atomic_write_text
from smfd_data.face_labels import CELEBAMASK_PARTS, NUM_CELEBAMASK_CLASSES, merge_part_masks
from smfd_data.image_io import (
    IMAGE_EXTENSIONS,
    header_size,
    imread_checked,
    imwrite_atomic,
    resize_image,
    resize_labels,
)
from smfd_data.lmdb_io import write_lmdb

IMG_DIR = 'CelebA-HQ-img'
MASK_DIR = 'CelebAMask-HQ-mask-anno'
_MASK_NAME = re.compile(r'^(\d+)_([a-z_]+)\.png$')


def scan_tree(root):
    """Index a CelebAMask-HQ tree.

    Returns:
        tuple: ``(samples, problems)``: ``samples`` maps image id → (image path, {part: mask path}) for
        complete samples; ``problems`` maps id (or a file name) → message naming the bad file.
    """
    img_dir, mask_dir = os.path.join(root, IMG_DIR), os.path.join(root, MASK_DIR)
    for folder in (img_dir, mask_dir):
        if not os.path.isdir(folder):
            raise FileNotFoundError(f'{folder}: folder not found (expected the CelebAMask-HQ layout under {root})')
    problems = {}
    images = {}
    for name in sorted(os.listdir(img_dir)):
        stem, ext = os.path.splitext(name)
        if ext.lower() not in IMAGE_EXTENSIONS:
            continue
        path = os.path.join(img_dir, name)
        if not stem.isdigit():
            problems[name] = f'{path}: image name is not an integer id'
        elif int(stem) in images:
            problems[int(stem)] = f'{path}: two images with id {int(stem)} ({images[int(stem)]})'
        else:
            images[int(stem)] = path
    masks = {}
    for sub in sorted(os.listdir(mask_dir)):
        sub_dir = os.path.join(mask_dir, sub)
        if not os.path.isdir(sub_dir):
            continue
        for name in sorted(os.listdir(sub_dir)):
            if not name.lower().endswith('.png'):
                continue
            path = os.path.join(sub_dir, name)
            match = _MASK_NAME.match(name)
            if match is None or match.group(2) not in CELEBAMASK_PARTS:
                problems[name] = (f'{path}: not a CelebAMask-HQ part mask name (<id:05d>_<part>.png, part one of '
                                  f'{CELEBAMASK_PARTS})')
                continue
            masks.setdefault(int(match.group(1)), {})[match.group(2)] = path
    for idx, parts in masks.items():
        if idx not in images:
            any_mask = next(iter(parts.values()))
            problems[idx] = f'{any_mask}: no image {os.path.join(img_dir, f"{idx}.jpg")} for this mask'
    for idx, path in images.items():
        if idx not in masks:
            expected = os.path.join(mask_dir, str(idx // 2000), f'{idx:05d}_<part>.png')
            problems[idx] = f'{path}: no part masks ({expected})'
    samples = {idx: (images[idx], masks[idx]) for idx in sorted(images) if idx in masks and idx not in problems}
    return samples, problems


def outputs_ok(img_path, label_path, size=None):
    """True if both outputs exist, decode, agree in size (and equal ``size`` if given: an int for ``size``², or
    ``(height, width)``): resume skips them."""
    try:
        img = imread_checked(img_path, cv2.IMREAD_UNCHANGED)
        labels = imread_checked(label_path, cv2.IMREAD_UNCHANGED)
    except (OSError, ValueError):
        return False
    shape = labels.shape if size is None else tuple(size) if isinstance(size, tuple) else (size, size)
    return (img.ndim == 3 and img.shape[2] == 3 and labels.ndim == 2 and img.shape[:2] == labels.shape == shape
            and int(labels.max()) < NUM_CELEBAMASK_CLASSES)


def read_part_masks(mask_paths):
    """Read binary part masks (nonzero = part); all must have the same size. Errors name the file."""
    masks, shape = {}, None
    for part, path in mask_paths.items():
        mask = imread_checked(path, cv2.IMREAD_UNCHANGED)
        if mask.ndim == 3:  # some CelebAMask-HQ masks are stored as 3-channel PNGs
            mask = mask[..., 0]
        if shape is None:
            shape = mask.shape
        elif mask.shape != shape:
            raise ValueError(f'{path}: mask size {mask.shape} differs from the other masks of this image {shape}')
        masks[part] = mask
    return masks


def check_mask_fits(img_path, img_shape, mask_path, mask_shape):
    """Refuse a mask whose aspect ratio differs from its image's: resizing it would stretch the parts off the face.
    The same aspect ratio in another size is normal (CelebAMask-HQ: 1024² images, 512² masks) and is resized."""
    (ih, iw), (mh, mw) = img_shape[:2], mask_shape[:2]
    if abs(ih * mw - iw * mh) > 0.01 * ih * mw:
        raise ValueError(f'{mask_path}: mask is {mw}x{mh}, its image {img_path} is {iw}x{ih} (another aspect '
                         'ratio): refusing to stretch it')


SOURCE = 'source'  # the ``size`` of --keep-source: the image keeps its stored resolution


def resize_pair(img, labels, size):
    """Resize an image and its labels to ``size``² (default: the labels' size; ``SOURCE``: the image's size), as
    ``smfd_data.image_io`` does."""
    h, w = {None: labels.shape, SOURCE: img.shape[:2]}.get(size, (size, size))
    return resize_image(img, h, w), resize_labels(labels, h, w)


def prepare_sample(job):
    """Worker: merge, resize and write one sample. Returns (stem, 'done' | 'skipped' | 'error', message)."""
    stem, img_path, mask_paths, out, size = job
    img_out, label_out = os.path.join(out, 'images', f'{stem}.png'), os.path.join(out, 'labels', f'{stem}.png')
    expected = size
    if size == SOURCE:  # the stored resolution: outputs of an earlier --size run are not a finished sample
        stored = header_size(img_path)
        expected = None if stored is None else (stored[1], stored[0])
    if outputs_ok(img_out, label_out, expected):
        return stem, 'skipped', ''
    try:
        labels = merge_part_masks(read_part_masks(mask_paths))
        img = imread_checked(img_path, cv2.IMREAD_COLOR)
        check_mask_fits(img_path, img.shape, next(iter(mask_paths.values())), labels.shape)
        img, labels = resize_pair(img, labels, size)
        imwrite_atomic(label_out, labels)
        imwrite_atomic(img_out, img)  # BGR from OpenCV back to a normal RGB PNG
    except (OSError, ValueError) as err:
        return stem, 'error', str(err)
    return stem, 'done', ''


def make_splits(stems, seed=0, test_ratio=0.2, folds=5):
    """Seeded split (§3.4.6.2): trainval/test, then ``folds`` equal folds inside trainval.

    Returns:
        dict: meta file name (without .txt) → sorted list of stems: trainval, test, fold{k}_train,
        fold{k}_val (k = 1..folds), train/val (= fold 1).
    """
    stems = sorted(stems)
    if not 0 <= test_ratio < 1:
        raise ValueError(f'--test-ratio must be in [0, 1), got {test_ratio}')
    rng = np.random.default_rng([seed, 2])
    order = rng.permutation(len(stems))
    n_test = int(round(test_ratio * len(stems)))
    test = sorted(stems[i] for i in order[:n_test])
    trainval = sorted(stems[i] for i in order[n_test:])
    if not 2 <= folds <= len(trainval):
        raise ValueError(f'--folds must be between 2 and the number of train/val samples ({len(trainval)}), '
                         f'got {folds}')
    splits = {'trainval': trainval, 'test': test}
    fold_parts = np.array_split(rng.permutation(len(trainval)), folds)
    for k, part in enumerate(fold_parts, start=1):
        val = set(part.tolist())
        splits[f'fold{k}_train'] = [s for i, s in enumerate(trainval) if i not in val]
        splits[f'fold{k}_val'] = [s for i, s in enumerate(trainval) if i in val]
    splits['train'], splits['val'] = splits['fold1_train'], splits['fold1_val']
    return splits


def write_meta_info(out, splits):
    """Write ``OUT/meta_info/<name>.txt`` (one stem per line), each atomically."""
    meta_dir = os.path.join(out, 'meta_info')
    os.makedirs(meta_dir, exist_ok=True)
    for name, stems in splits.items():
        atomic_write_text(os.path.join(meta_dir, f'{name}.txt'), ''.join(f'{s}\n' for s in stems))


def finish_prepared(out, stems, seed=0, test_ratio=0.2, folds=5, lmdb=False, rebuild_lmdb=False):
    """Meta files (and LMDBs) for the samples ``stems`` of a prepared folder ``OUT/images``, ``OUT/labels``."""
    splits = make_splits(stems, seed, test_ratio, folds)
    write_meta_info(out, splits)
    if lmdb:
        for sub in ('images', 'labels'):
            write_lmdb(os.path.join(out, f'{sub}.lmdb'), {s: os.path.join(out, sub, f'{s}.png') for s in stems},
                       overwrite=rebuild_lmdb)
    return splits


def complete_prepared(args, ok, counts, bad, verb):
    """The common end of a preparation run (this module, face parsing): report bad samples, write the splits (and
    LMDBs), print a summary line. ``args`` holds output, skip_bad, seed, test_ratio, folds, lmdb."""
    report_bad(args.output, bad, args.skip_bad)
    if not ok:
        raise ValueError(f'{args.input}: no usable samples')
    splits = finish_prepared(args.output, ok, args.seed, args.test_ratio, args.folds, args.lmdb,
                             rebuild_lmdb=counts['done'] > 0)
    print(f'{args.output}: {counts["done"]} {verb}, {counts["skipped"]} already done, {len(bad)} bad skipped; '
          f'trainval {len(splits["trainval"])}, test {len(splits["test"])}, {args.folds} folds')
    return splits


def run_jobs(fn, jobs, workers, desc):
    """Yield ``fn(job)`` results (any order) with a progress bar; a Pool when ``workers > 1``."""
    with tqdm(total=len(jobs), unit='img', desc=desc) as bar:
        if workers > 1 and len(jobs) > 1:
            with Pool(workers) as pool:
                for result in pool.imap_unordered(fn, jobs, chunksize=4):
                    bar.update()
                    yield result
        else:
            for job in jobs:
                result = fn(job)
                bar.update()
                yield result


def report_bad(out, bad, skip_bad):
    """Raise on the first bad sample, or (``skip_bad``) warn and list all in ``OUT/meta_info/bad_samples.txt``."""
    listing = os.path.join(out, 'meta_info', 'bad_samples.txt')
    if not bad:
        if os.path.exists(listing):  # left from an earlier run
            os.remove(listing)
        return
    if not skip_bad:
        more = f' (and {len(bad) - 1} more)' if len(bad) > 1 else ''
        raise ValueError(f'{bad[0]}{more}. Fix the data or pass --skip-bad to skip bad samples.')
    atomic_write_text(listing, ''.join(f'{msg}\n' for msg in bad))
    print(f'WARNING: skipped {len(bad)} bad samples, e.g. {bad[0]}; all listed in {listing}', file=sys.stderr)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-i', '--input', required=True, help='CelebAMask-HQ root (holds CelebA-HQ-img/)')
    parser.add_argument('-o', '--output', required=True, help='output folder')
    side = parser.add_mutually_exclusive_group()
    side.add_argument('--size', type=int, default=None, help='output side in pixels (default: mask resolution)')
    side.add_argument('--keep-source', action='store_true',
                      help='keep each image at its stored resolution (labels enlarged to it, nearest): the input of '
                      'degrade_at: source, which blurs at full resolution and resizes to gt_size afterwards (§3.4)')
    parser.add_argument('--lmdb', action='store_true', help='also write OUT/images.lmdb and OUT/labels.lmdb')
    parser.add_argument('--workers', type=int, default=min(8, os.cpu_count() or 1), help='parallel processes')
    parser.add_argument('--seed', type=int, default=0, help='seed of the --limit subset and of the splits')
    parser.add_argument('--test-ratio', type=float, default=0.2, help='share of the test split (paper: 80:20)')
    parser.add_argument('--folds', type=int, default=5, help='cross-validation folds inside trainval (paper: 5)')
    parser.add_argument('--limit', type=int, default=None,
                        help='use a seeded random subset of N images (the paper used 2,000 / 3,000, §3.4.6)')
    parser.add_argument('--skip-bad', action='store_true', help='skip bad samples with a warning instead of failing')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.size is not None and args.size < 1:
        raise ValueError(f'--size must be positive, got {args.size}')
    samples, problems = scan_tree(args.input)
    bad = list(problems.values())
    if bad and not args.skip_bad:
        report_bad(args.output, bad, skip_bad=False)  # raises
    ids = sorted(samples)
    if args.limit is not None and args.limit < len(ids):
        ids = sorted(np.random.default_rng([args.seed, 1]).choice(ids, args.limit, replace=False).tolist())
    size = SOURCE if args.keep_source else args.size
    jobs = [(f'{i:05d}', samples[i][0], samples[i][1], args.output, size) for i in ids]
    counts = {'done': 0, 'skipped': 0}
    ok = []
    results = run_jobs(prepare_sample, jobs, args.workers, 'prepare')
    try:
        for stem, status, message in results:
            if status == 'error':
                if not args.skip_bad:
                    report_bad(args.output, [message], skip_bad=False)  # raises
                bad.append(message)
                continue
            counts[status] += 1
            ok.append(stem)
    finally:
        results.close()  # stops the worker pool at once on an error
    return complete_prepared(args, ok, counts, bad, 'prepared')

