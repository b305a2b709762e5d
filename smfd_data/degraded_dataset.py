"""A fixed, seeded degraded set on disk (paper §3.4.1 degradation, §3.4.2 grouping, Table 4.2 evaluation): the
one writer (``write_degraded_set``, ``scripts/degrade_testset.py``), the one reader (``read_set_index``,
``read_set_sample``, ``read_set_kernels``, also used by the benchmark) and ``SMFDDegradedFolderDataset``.

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
complete set or the new one. Same inputs → byte-identical files.
"""
import io
import json
import os
import os.path as osp
import shutil
import tempfile
import zipfile

import numpy as np
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data as data

from smfd_data import face_dataset  # a module reference: the start-up hook may import us while it is half-loaded
from smfd_data.atomic_io import atomic_write_bytes, atomic_write_text
from smfd_data.image_io import read_image, read_labels, write_image
from smfd_data.option_file import read_option

FORMAT = 'smfd-degraded-set'
FORMAT_VERSION = 1
PHASES = ('test', 'val')


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


def build_dataset(dataset_opt, phase, seed=None):
    """SMFDFaceDataset in its deterministic, unaugmented form, reading the dataset's own (GT) masks.

    """
    opt = dict(dataset_opt, phase=phase, deterministic=True, augment=False, degrade_on_device=False, gray_lq=False,
               mask_encoding='label')
    opt.pop('mask_root_pred', None)
    if seed is not None:
        opt['seed'] = seed
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


def write_degraded_set(opt_path, out, phase='test', limit=None, seed=None, kernels=True, num_workers=0):
    """Build the set (see module doc). Returns the params.json content."""
    import torch

    out = osp.abspath(osp.expanduser(out))
    if osp.exists(out) and (not osp.isdir(out) or (os.listdir(out) and not osp.isfile(osp.join(out, 'params.json')))):
        raise ValueError(f'{out}: exists and is not a degraded set (no params.json); refusing to replace it')
    name, dataset_opt = phase_dataset_options(read_option(opt_path), phase, opt_path)
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
        atomic_write_text(osp.join(staging, 'params.json'), json.dumps(meta, indent=1, sort_keys=True) + '\n')
        os.chmod(staging, 0o755)  # mkdtemp makes 0700 folders
        replace_folder(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
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


@DATASET_REGISTRY.register()
class SMFDDegradedFolderDataset(data.Dataset):
    """A fixed degraded set written by ``scripts/degrade_testset.py`` (same sample keys as SMFDFaceDataset).

    Layout and reader: ``smfd_data.degraded_set``. Options: ``dataroot``, ``meta_info_file`` (optional subset;
    default: every image of params.json, in its order), ``mask_encoding``, ``gray_lq``, ``mask_root_pred``,
    ``mask_source``.
    """

    def __init__(self, opt):
        super().__init__()
        self.opt = opt
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

    def __getitem__(self, index):
        stem = self.stems[index]
        lq, gt, labels, paths = read_set_sample(self.root, stem, self.num_classes,
                                                labels=self.mask_root_pred is None)
        if self.mask_root_pred is not None:
            labels = face_dataset.read_pred_labels(self.mask_root_pred, stem, self.num_classes, (gt.shape[:2], ))
        record = self.records[stem]
        return face_dataset.pack_sample(lq, gt, labels, self.num_classes, self.mask_encoding, self.gray_lq,
                                        paths['lq'], paths['gt'], index,
                                        face_dataset.params_to_json(record['degradation']), self.opt.get('mask_source'))

    def __len__(self):
        return len(self.stems)
