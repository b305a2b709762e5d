"""A fixed, seeded degraded set on disk (paper §3.4.1 degradation, §3.4.2 grouping, Table 4.2 evaluation): the
one writer (``write_degraded_set``, ``scripts/degrade_testset.py``), the one reader (``read_set_index``,
``read_set_sample``, ``read_set_kernels``, also used by the benchmark) and ``SMFDDegradedFolderDataset``.

    python scripts/degrade_testset.py -opt options/train_smfd.yml -o datasets/smfd_test [--phase test] [--limit N]
    python scripts/degrade_testset.py -opt options/train_smfd.yml --phase train \
        --meta-info datasets/CelebAMask-HQ-prepared/meta_info/trainval.txt -o datasets/CelebAMask-HQ-frozen

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

A test set is built in a temporary folder next to DIR and moved into place at the end, so DIR is either the old
complete set or the new one. A frozen training set (``--phase train``: one degraded copy per image, seeded by
index, as the thesis generated its blurred images once, §3.4) is built in place and resumably: every file is
written atomically, ``DIR/records/<stem>.json`` marks a finished sample, ``DIR/.smfd-build.json`` an unfinished
build (a resume with other options is refused). Same inputs → byte-identical files, interrupted or not.
``SMFDDegradedFolderDataset`` reads either; in the train phase it augments blurry, sharp and mask jointly.
"""
import io
import json
import os
import os.path as osp
import shutil
import tempfile
import zipfile

import numpy as np
from basicsr.utils import get_root_logger
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data as data

from smfd_data import face_dataset  # a module reference: the start-up hook may import us while it is half-loaded
from smfd_data.atomic_io import atomic_write_bytes, atomic_write_text, remove_stale_temporaries
from smfd_data.augment import AugmentConfig, augment_degraded
from smfd_data.image_io import read_image, read_labels, write_image
from smfd_data.option_file import read_option

FORMAT = 'smfd-degraded-set'
FORMAT_VERSION = 1
PHASES = ('test', 'val', 'train')
# An unfinished in-place build (``resume=True``): what it is being built from, so a resume cannot mix options.
BUILD_MARKER = '.smfd-build.json'


def phase_dataset_options(opt, phase, source='options'):
    """``(name, dict)`` of the first ``datasets.<name>`` of ``opt`` whose name starts with ``phase``."""
    datasets = opt.get('datasets') or {}
    for name, dataset_opt in datasets.items():
        if str(name).startswith(phase):
            if dataset_opt.get('type', 'SMFDFaceDataset') != 'SMFDFaceDataset':
                raise ValueError(f'{source}: datasets.{name} is a {dataset_opt["type"]}; a degraded set needs a '
                                 'SMFDFaceDataset (sharp faces + label maps)')
            return name, dict(dataset_opt)
    raise ValueError(f'{source}: no datasets.<name> starting with {phase!r} (found {list(datasets)})')


def build_dataset(dataset_opt, phase, seed=None, meta_info_file=None, num_classes=None):
    """SMFDFaceDataset in its deterministic, unaugmented form, reading the dataset's own (GT) masks: image i is
    degraded with ``rng_for_sample(seed, i)`` (a frozen training set too: one copy per image, seeded by index)."""
    opt = dict(dataset_opt, phase=phase, deterministic=True, augment=False, degrade_on_device=False, gray_lq=False,
               mask_encoding='label')
    opt.pop('mask_root_pred', None)
    if seed is not None:
        opt['seed'] = seed
    if meta_info_file is not None:
        opt['meta_info_file'] = meta_info_file
    if num_classes == 19:  # the ungrouped CelebAMask-HQ labels (the mask benchmark grades 19 and 5 classes)
        opt['num_classes'] = 19
        opt.pop('label_groups', None)
    elif num_classes is not None:
        raise ValueError(f'classes={num_classes}: only 19 (ungrouped labels) overrides the dataset\'s grouping')
    return face_dataset.SMFDFaceDataset(opt)


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
    atomic_write_bytes(path, buffer.getvalue())


def write_sample(folder, stem, sample, num_classes, kernels):
    """Write one sample of SMFDFaceDataset (mask_encoding 'label') into the set folder."""
    from smfd_data.degradation import output_kernels
    from smfd_data.face_labels import colorize

    labels = sample['mask'].numpy().astype(np.uint8)
    write_image(osp.join(folder, 'lq', f'{stem}.png'), sample['lq'].numpy().transpose(1, 2, 0))
    write_image(osp.join(folder, 'gt', f'{stem}.png'), sample['gt'].numpy().transpose(1, 2, 0))
    write_image(osp.join(folder, 'labels', f'{stem}.png'), labels)
    write_image(osp.join(folder, 'labels_color', f'{stem}.png'), colorize(labels, num_classes=num_classes))
    params = json.loads(sample['degradation'])
    if kernels:
        ops = output_kernels(params)
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


def _set_meta(dataset, dataset_opt, opt_path, name, phase, images):
    return {
        'format': FORMAT,
        'version': FORMAT_VERSION,
        'num_classes': dataset.num_classes,
        'label_groups': dataset.opt.get('label_groups'),
        'gt_size': dataset.gt_size,
        'seed': dataset.seed,
        'source': {'option_file': osp.basename(opt_path), 'dataset': name, 'phase': phase,
                   'dataroot_gt': dataset_opt.get('dataroot_gt'), 'dataroot_mask': dataset_opt.get('dataroot_mask'),
                   'meta_info_file': dataset.opt.get('meta_info_file')},
        'degradation_config': dataset.degradation_cfg.to_dict(),
        'images': images,
    }


def _sample_done(folder, stem, kernels):
    """The record of a sample written completely by an earlier (interrupted) build, else None. The record is
    written last, each file atomically, so a record means its pictures are whole; they are decoded anyway."""
    path = osp.join(folder, 'records', f'{stem}.json')
    if not osp.isfile(path):
        return None
    try:
        with open(path) as f:
            record = json.load(f)
        for kind in ('lq', 'gt', 'labels', 'labels_color'):
            read_image(osp.join(folder, kind, f'{stem}.png'))
    except (OSError, ValueError):
        return None
    if kernels and not osp.isfile(osp.join(folder, 'kernels', f'{stem}.npz')):
        return None
    return record


def _check_resume_target(out, signature):
    """An in-place build may continue in an empty folder, its own unfinished build or its own finished set."""
    if not osp.exists(out):
        return
    if not osp.isdir(out):
        raise ValueError(f'{out}: exists and is not a folder')
    marker, params = osp.join(out, BUILD_MARKER), osp.join(out, 'params.json')
    if osp.isfile(marker):
        with open(marker) as f:
            found = json.load(f)
    elif osp.isfile(params):
        with open(params) as f:
            found = json.load(f).get('build')
    elif not os.listdir(out):
        return
    else:
        raise ValueError(f'{out}: exists and is not a degraded set (no params.json, no {BUILD_MARKER}); refusing '
                         'to write into it')
    if found != signature:
        raise ValueError(f'{out}: was built from other options ({BUILD_MARKER} / params.json "build" differ); '
                         'use the same options and --seed, or another folder')


def write_degraded_set(opt_path, out, phase='test', limit=None, seed=None, kernels=True, num_workers=0,
                       meta_info_file=None, resume=False, num_classes=None):
    """Build the set (see module doc). Returns the params.json content.

    ``resume=False``: built in a temporary folder and swapped in at the end (a test set: all or nothing).
    ``resume=True`` (a frozen training set, thousands of images): built in place, each file atomically, one
    ``records/<stem>.json`` per finished sample; an interrupted build continues where it stopped and ends with the
    same bytes as an uninterrupted one. ``meta_info_file`` overrides the dataset's split (e.g. trainval, so one
    frozen set serves every fold through the reader's ``meta_info_file``). ``num_classes=19`` stores the
    ungrouped labels (a test set for the mask benchmark's 19-class Dice).
    """
    import torch

    out = osp.abspath(osp.expanduser(out))
    if not resume and osp.exists(out) and (not osp.isdir(out) or (os.listdir(out) and
                                                                   not osp.isfile(osp.join(out, 'params.json')))):
        raise ValueError(f'{out}: exists and is not a degraded set (no params.json); refusing to replace it')
    name, dataset_opt = phase_dataset_options(read_option(opt_path), phase, opt_path)
    dataset = build_dataset(dataset_opt, phase, seed, meta_info_file, num_classes)
    count = len(dataset) if limit is None else min(int(limit), len(dataset))
    if count < 1:
        raise ValueError(f'{opt_path}: datasets.{name} gives no images to write (limit={limit})')
    subs = ('lq', 'gt', 'labels', 'labels_color') + (('kernels', ) if kernels else ())
    signature = None
    if resume:
        signature = {'dataset': dataset_opt, 'meta_info_file': dataset.opt.get('meta_info_file'), 'phase': phase,
                     'seed': dataset.seed, 'limit': count, 'kernels': bool(kernels)}
        signature = json.loads(json.dumps(signature, sort_keys=True, default=str))  # as it reads back
        _check_resume_target(out, signature)
        folder = out
        for sub in subs + ('records', ):
            os.makedirs(osp.join(folder, sub), exist_ok=True)
            remove_stale_temporaries(osp.join(folder, sub))  # left by a killed build: not part of the set
        remove_stale_temporaries(folder)
        atomic_write_text(osp.join(folder, BUILD_MARKER), json.dumps(signature, indent=1, sort_keys=True) + '\n')
    else:
        os.makedirs(osp.dirname(out) or '.', exist_ok=True)
        folder = tempfile.mkdtemp(prefix=osp.basename(out) + '.tmp-', dir=osp.dirname(out))
        for sub in subs:
            os.makedirs(osp.join(folder, sub))
    records = {}
    if resume:
        for index in range(count):
            record = _sample_done(folder, dataset.stems[index], kernels)
            if record is not None and record.get('index') == index and record.get('seed') == dataset.seed:
                records[index] = record
    todo = [i for i in range(count) if i not in records]
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, todo), batch_size=None, shuffle=False,
                                         num_workers=num_workers)
    try:
        for sample in loader:
            index = int(sample['index'])
            stem = dataset.stems[index]
            params = write_sample(folder, stem, sample, dataset.num_classes, kernels)
            records[index] = {'stem': stem, 'index': index, 'seed': dataset.seed, 'degradation': params}
            if resume:
                atomic_write_text(osp.join(folder, 'records', f'{stem}.json'),
                                  json.dumps(records[index], indent=1, sort_keys=True) + '\n')
        meta = _set_meta(dataset, dataset_opt, opt_path, name, phase, [records[i] for i in range(count)])
        if resume:
            meta['build'] = signature
        atomic_write_text(osp.join(folder, 'params.json'), json.dumps(meta, indent=1, sort_keys=True) + '\n')
        if resume:
            os.remove(osp.join(folder, BUILD_MARKER))
        else:
            os.chmod(folder, 0o755)  # mkdtemp makes 0700 folders
            replace_folder(folder, out)
    except BaseException:
        if not resume:  # an in-place build keeps what it finished, for the next run to continue
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return meta


# ---------------------------------------------------------------------------------------------------- reading
def read_set_index(folder):
    """``params.json`` of a degraded set: ``{'num_classes', 'images': [{'stem', 'index', 'degradation'}, ...]}``.

    Raises FileNotFoundError / ValueError naming the file when it is missing or not a degraded set.
    """
    params_path = osp.join(folder, 'params.json')
    if not osp.isfile(params_path):
        raise FileNotFoundError(f'{params_path}: not a degraded set (write one with scripts/degrade_testset.py)')
    try:
        with open(params_path, 'r') as f:
            meta = json.load(f)
        meta['num_classes'] = int(meta['num_classes'])
        stems = [record['stem'] for record in meta['images']]
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f'{params_path}: not a readable degraded-set index ({type(err).__name__}: {err})') from err
    if not stems:
        raise ValueError(f'{params_path}: the set lists no images')
    return meta


def read_set_sample(folder, stem, num_classes, labels=True):
    """``(lq, gt, labels | None, paths)`` of one image: float RGB in [0, 1] and uint8 group labels, sizes checked."""
    paths = {kind: osp.join(folder, kind, f'{stem}.png') for kind in ('lq', 'gt', 'labels')}
    lq, gt = read_image(paths['lq']), read_image(paths['gt'])
    if lq.shape != gt.shape:
        raise ValueError(f'{paths["lq"]}: size {lq.shape[:2]} differs from {paths["gt"]} size {gt.shape[:2]}')
    label_map = None
    if labels:
        label_map = read_labels(paths['labels'], num_classes)
        if label_map.shape != gt.shape[:2]:
            raise ValueError(f'{paths["labels"]}: size {label_map.shape} differs from {paths["gt"]} size '
                             f'{gt.shape[:2]}')
    return lq, gt, label_map, paths


def read_set_kernels(folder, record):
    """The PSFs of one image in application order: from its params.json record, else from kernels/<stem>.npz."""
    from smfd_data.degradation import output_kernels
    params = record.get('degradation')
    if params and params.get('layers'):
        return output_kernels(params)
    path = osp.join(folder, 'kernels', f'{record["stem"]}.npz')
    if osp.isfile(path):
        with np.load(path, allow_pickle=False) as npz:
            ops = sorted(k for k in npz.files if k.startswith('k'))
            return [npz[k] for k in ops] if ops else [npz['composed']]
    raise ValueError(f'{record["stem"]}: no blur parameters in params.json and no {path}')


def label_flip_lut(num_classes, label_groups):
    """Left/right swap of a set's stored labels for the horizontal flip: the 19-class one; None when the grouping
    puts both sides of every pair into one group (the paper's 5 groups: a flip leaves group labels as they are);
    else the permutation of the groups."""
    from smfd_data.face_labels import NUM_CELEBAMASK_CLASSES, flip_lut, grouping_lut
    flip = np.asarray(flip_lut(), dtype=np.uint8)
    if num_classes == NUM_CELEBAMASK_CLASSES and label_groups is None:
        return flip
    lut = grouping_lut(label_groups)
    perm = np.arange(num_classes, dtype=np.uint8)
    for c in range(NUM_CELEBAMASK_CLASSES):
        perm[lut[c]] = lut[flip[c]]
    if any(perm[lut[c]] != lut[flip[c]] for c in range(NUM_CELEBAMASK_CLASSES)):
        raise ValueError(f'label_groups {label_groups}: a group holds one side of a left/right pair only partly')
    return None if (perm == np.arange(num_classes)).all() else perm


@DATASET_REGISTRY.register()
class SMFDDegradedFolderDataset(face_dataset.WorkerRng, data.Dataset):
    """A fixed degraded set written by ``scripts/degrade_testset.py`` (same sample keys as SMFDFaceDataset): a test
    set, or a frozen training set (the thesis generated its blurred images once, §3.4).

    Layout and reader: see the module doc. Options: ``dataroot``, ``meta_info_file`` (optional subset;
    default: every image of params.json, in its order), ``mask_encoding``, ``gray_lq``, ``mask_root_pred``,
    ``mask_source``, ``augment`` (train phase, default the paper's: real-time geometric and photometric
    augmentation of §3.4.6.1 applied jointly to blurry, sharp and mask, one draw per load from the worker seed).
    """

    def __init__(self, opt):
        super().__init__()
        self.opt = opt
        self.phase = opt.get('phase', 'test')
        self.root = osp.expanduser(str(opt['dataroot']))
        meta = read_set_index(self.root)
        params_path = osp.join(self.root, 'params.json')
        self.num_classes = meta['num_classes']
        if opt.get('num_classes') is not None and int(opt['num_classes']) != self.num_classes:
            raise ValueError(f'num_classes={opt["num_classes"]} but {params_path} was written with '
                             f'{self.num_classes} classes')
        self.records = {record['stem']: record for record in meta['images']}
        if opt.get('meta_info_file') is not None:
            self.stems = face_dataset.read_meta_stems(osp.expanduser(str(opt['meta_info_file'])))
            missing = [s for s in self.stems if s not in self.records]
            if missing:
                raise FileNotFoundError(f'{params_path}: stems {missing[:5]} listed in {opt["meta_info_file"]} '
                                        'are not in the degraded set')
        else:
            self.stems = [record['stem'] for record in meta['images']]
        self.mask_encoding = face_dataset.check_mask_encoding(opt)
        self.gray_lq = bool(opt.get('gray_lq', False))
        self.mask_root_pred = opt.get('mask_root_pred')
        # §3.4.6.1 real-time augmentation of the frozen blurred set; val/test samples are never augmented
        self.augment_cfg = AugmentConfig.from_option(opt.get('augment') if self.phase == 'train' else False)
        self.flip_lut = None
        if self.augment_cfg.enabled and self.augment_cfg.hflip and self.mask_root_pred is None:
            self.flip_lut = label_flip_lut(self.num_classes, meta.get('label_groups'))
        get_root_logger().info(f'SMFDDegradedFolderDataset {opt.get("name", "")} [{self.phase}]: {len(self.stems)} '
                               f'frozen images of {self.root} (degradation seed {meta.get("seed")}), augmentation '
                               f'{"on" if self.augment_cfg.enabled else "off"}')

    def __getitem__(self, index):
        stem = self.stems[index]
        lq, gt, labels, paths = read_set_sample(self.root, stem, self.num_classes,
                                                labels=self.mask_root_pred is None)
        if self.mask_root_pred is not None:
            labels = face_dataset.read_pred_labels(self.mask_root_pred, stem, self.num_classes, (gt.shape[:2], ))
        if self.augment_cfg.enabled:
            lq, gt, labels, _ = augment_degraded(lq, gt, labels, self.augment_cfg, self._train_rng(), self.flip_lut)
        record = self.records[stem]
        return face_dataset.pack_sample(lq, gt, labels, self.num_classes, self.mask_encoding, self.gray_lq,
                                        paths['lq'], paths['gt'], index,
                                        face_dataset.params_to_json(record['degradation']), self.opt.get('mask_source'))

    def __len__(self):
        return len(self.stems)


def main(argv=None):
    """``scripts/degrade_testset.py``: write a degraded test set or a frozen training set (see the module doc)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description='Write a seeded degraded test set for SMFD.')
    parser.add_argument('-opt', required=True, help='BasicSR option YAML with a SMFDFaceDataset for the phase')
    parser.add_argument('-o', '--out', required=True, help='output folder (replaced atomically if it holds a set)')
    parser.add_argument('--phase', choices=PHASES, default='test', help='which datasets.<phase*> entry (default: test)')
    parser.add_argument('--limit', type=int, default=None, help='write only the first N images')
    parser.add_argument('--seed', type=int, default=None, help='override the dataset option seed')
    parser.add_argument('--no-kernels', action='store_true', help='do not write DIR/kernels/*.npz')
    parser.add_argument('--num-workers', type=int, default=0, help='DataLoader workers (output is identical)')
    parser.add_argument('--meta-info', help='override the dataset\'s meta_info_file (e.g. trainval.txt for a frozen '
                        'training set that serves every fold)')
    parser.add_argument('--classes', type=int, choices=[19], default=None,
                        help='store the 19 ungrouped CelebAMask-HQ labels (for scripts/mask_benchmark.py)')
    parser.add_argument('--resume', action='store_true', help='build in place and continue an interrupted build '
                        '(always on with --phase train)')
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error(f'--limit must be >= 1, got {args.limit}')
    try:
        meta = write_degraded_set(args.opt, args.out, args.phase, args.limit, args.seed, not args.no_kernels,
                                  args.num_workers, args.meta_info, args.resume or args.phase == 'train',
                                  args.classes)
    except (FileNotFoundError, ValueError) as err:
        print(f'degrade_testset: error: {err}', file=sys.stderr)
        return 1
    print(f'Wrote {len(meta["images"])} degraded images ({meta["num_classes"]} mask classes, seed {meta["seed"]}) '
          f'to {os.path.abspath(args.out)}')
    return 0

