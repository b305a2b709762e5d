"""BasicSR datasets of sharp faces + semantic masks, degraded on the fly (paper §3.4.1, §3.4.2, §3.4.6.1).

``SMFDFaceDataset`` turns a prepared CelebAMask-HQ layout (``scripts/prepare_celebamask_hq.py``) into training
samples: read the sharp face and its 19-class label map, degrade and resize in the order ``degrade_at`` says
(``source``: degrade at the stored resolution, then resize to ``gt_size``, the paper's order of §3.4;
``output``: resize first, degrade at ``gt_size``), augment jointly (train phase), group 19 → K labels (§3.4.2).
The fixed degraded sets of ``scripts/degrade_testset.py`` are read by ``SMFDDegradedFolderDataset``
(``smfd_data.degraded_dataset``).
Options, conversions and layouts: ``docs/dataset.md``.
"""
import json
import os
import os.path as osp

import numpy as np
import torch
from basicsr.utils import FileClient, get_root_logger
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data as data

from smfd_data.augment import AugmentConfig, augment_degraded, augment_pair
from smfd_data.degradation import DegradationConfig, apply_degradation, rng_for_sample, sample_degradation
from smfd_data.face_labels import NUM_CELEBAMASK_CLASSES, flip_lut, group_names, grouping_lut
from smfd_data.image_io import (
    IMAGE_EXTENSIONS,
    decode_image,
    decode_labels,
    list_images,
    read_labels,
    resize_image,
    resize_labels,
    rgb_to_gray,
)
from smfd_data.lmdb_io import lmdb_keys

MASK_ENCODINGS = ('onehot', 'label')
# §3.4: "blurred using the proposed method and resized to 256 x 256" (source) vs resize, then blur (output)
DEGRADE_AT = ('source', 'output')
# Seeds of the deterministic phases when the option gives none: validation and test images get different
# degradations (image i of each would otherwise share its blur).
DEFAULT_SEEDS = {'train': 0, 'val': 0, 'test': 1}


# ----------------------------------------------------------------------------------------------------------------
# Reading and converting files (shared by both datasets and smfd_data.degraded_set)
# ----------------------------------------------------------------------------------------------------------------
def read_meta_stems(meta_info_file):
    """Stems listed one per line (first whitespace-separated token; a trailing image extension is dropped, so
    BasicSR meta files like ``00001.png (512,512,3) 1`` work too). Blank lines and ``#`` comments are skipped."""
    with open(meta_info_file, 'r') as f:
        lines = f.read().splitlines()
    stems = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        token = line.split()[0]
        root, ext = osp.splitext(token)
        stems.append(root if ext.lower() in IMAGE_EXTENSIONS else token)
    if not stems:
        raise ValueError(f'{meta_info_file}: empty split (no stems listed)')
    return stems


def parse_grouping(opt):
    """(lut 19 → K, K) from ``num_classes`` / ``label_groups`` (§3.4.2: 19 CelebAMask-HQ labels → 5 groups).

    ``num_classes: 19`` without ``label_groups`` keeps the 19 classes; otherwise ``label_groups`` (default: the
    paper's ``PAPER_GROUPS``) decides and ``num_classes``, if given, must agree with it.
    """
    groups = opt.get('label_groups')
    num_classes = opt.get('num_classes')
    if groups is None and num_classes == NUM_CELEBAMASK_CLASSES:
        return np.arange(NUM_CELEBAMASK_CLASSES, dtype=np.uint8), NUM_CELEBAMASK_CLASSES
    lut = grouping_lut(groups)
    k = len(group_names(groups))
    if num_classes is not None and int(num_classes) != k:
        raise ValueError(f'num_classes={num_classes} does not match label_groups, which give {k} classes '
                         f'({group_names(groups)})')
    return lut, k


def read_pred_labels(mask_root_pred, stem, num_classes, shapes):
    """Predicted group labels ``<mask_root_pred>/<stem>.png`` ("generated masks" evaluation, Table 4.2).

    ``shapes``: the accepted (H, W) (the source image's, or the resized one's).
    """
    path = osp.join(mask_root_pred, f'{stem}.png')
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path}: predicted mask missing for image {stem!r} (mask_root_pred)')
    labels = read_labels(path, num_classes)
    if labels.shape not in shapes:
        raise ValueError(f'{path}: predicted mask size {labels.shape} matches neither the image '
                         f'{" nor ".join(str(s) for s in shapes)}')
    return labels


def check_mask_encoding(opt):
    encoding = opt.get('mask_encoding', 'onehot')
    if encoding not in MASK_ENCODINGS:
        raise ValueError(f'mask_encoding must be one of {MASK_ENCODINGS}, got {encoding!r}')
    return encoding


_LMDB_CLIENTS = {}  # realpath → (pid, FileClient, client key)


def lmdb_client(path, client_key, io_backend_opt=None):
    """BasicSR FileClient of one LMDB, shared by every dataset of this process: ``(client, client_key)``.

    py-lmdb refuses to open an environment twice in one process (e.g. train and val folds of one LMDB), also in
    a forked DataLoader worker that inherited the parent's environment; there the inherited one is closed and the
    LMDB reopened, so each process reads through its own environment.
    """
    real = osp.realpath(path)
    entry = _LMDB_CLIENTS.get(real)
    if entry is not None:
        pid, client, key = entry
        if pid == os.getpid():
            return client, key
        for env in client.client._client.values():  # inherited through fork
            env.close()
    opt = {k: v for k, v in (io_backend_opt or {}).items() if k not in ('type', 'db_paths', 'client_keys')}
    client = FileClient('lmdb', db_paths=[path], client_keys=[client_key], **opt)
    _LMDB_CLIENTS[real] = (os.getpid(), client, client_key)
    return client, client_key


def pack_sample(lq, gt, labels, num_classes, mask_encoding, gray_lq, lq_path, gt_path, index, degradation,
                mask_source=None, degrade_on_device=False):
    """Numpy HWC RGB images + HW labels → the sample dict of design.md (CHW float tensors).

    The batch carries what the model needs to know about its data: ``degrade_on_device`` (``lq`` is still the
    sharp face; the model degrades it with ``degradation``) and, when the dataset overrides the model's,
    ``mask_source``.
    """
    if gray_lq:
        lq = rgb_to_gray(lq)[None]
    else:
        lq = lq.transpose(2, 0, 1)
    labels = torch.from_numpy(np.ascontiguousarray(labels)).long()
    if mask_encoding == 'onehot':
        mask = torch.nn.functional.one_hot(labels, num_classes).permute(2, 0, 1).float().contiguous()
    else:
        mask = labels
    return {
        'lq': torch.from_numpy(np.ascontiguousarray(lq, dtype=np.float32)),
        'gt': torch.from_numpy(np.ascontiguousarray(gt.transpose(2, 0, 1), dtype=np.float32)),
        'mask': mask,
        'lq_path': lq_path,
        'gt_path': gt_path,
        'index': index,
        'degradation': degradation,
        'degrade_on_device': bool(degrade_on_device),
        **({'mask_source': mask_source} if mask_source is not None else {}),
    }


def params_to_json(params):
    return json.dumps(params, sort_keys=True)


class WorkerRng:
    """One numpy generator per process, seeded from torch's per-worker seed (set by BasicSR's manual_seed), so
    training is reproducible and DataLoader workers draw different samples."""

    _rng, _rng_key = None, None

    def _train_rng(self):
        info = data.get_worker_info()
        key = (os.getpid(), None if info is None else info.seed)
        if self._rng_key != key:
            self._rng = np.random.default_rng(torch.initial_seed() if info is None else info.seed)
            self._rng_key = key
        return self._rng


# ----------------------------------------------------------------------------------------------------------------
# Datasets
# ----------------------------------------------------------------------------------------------------------------
@DATASET_REGISTRY.register()
class SMFDFaceDataset(WorkerRng, data.Dataset):
    """Sharp face + semantic mask → (blurry ``lq``, sharp ``gt``, ``mask``) with on-the-fly degradation.

    Pipeline per sample, ``degrade_at: source`` (the paper's order, §3.4): read at the stored resolution →
    degrade there (§3.4.1) → resize blurry, sharp and labels to ``gt_size`` → joint augmentation of all three
    (train phase, §3.4.6.1) → group 19 → K labels (§3.4.2). ``degrade_at: output`` (default): read → resize to
    ``gt_size`` → joint augmentation → group → degrade the (augmented) sharp face at ``gt_size``.

    Randomness: in the train phase the degradation and augmentation use a generator seeded from torch's
    per-worker seed (``get_worker_info().seed``, or ``torch.initial_seed()`` without workers), so BasicSR's
    ``manual_seed`` makes training reproducible and workers draw different samples. With ``deterministic: true``
    or in the val/test phases, sample ``i`` is degraded with ``rng_for_sample(seed, i)`` (augmentation, if on,
    with an independent child of it): bit-identical across runs, processes and DataLoader workers.

    Options: see ``docs/dataset.md``.
    """

    def __init__(self, opt):
        super().__init__()
        self.opt = opt
        self.phase = opt.get('phase', 'train')
        self.io_backend_opt = dict(opt.get('io_backend') or {'type': 'disk'})
        self.backend = self.io_backend_opt.get('type', 'disk')
        if self.backend not in ('disk', 'lmdb'):
            raise ValueError(f'io_backend.type must be disk or lmdb, got {self.backend!r}')
        self.file_client = None  # disk client, created on first use (lmdb clients: see lmdb_client)

        self.gt_root = osp.expanduser(str(opt['dataroot_gt']))
        self.mask_root_pred = opt.get('mask_root_pred')
        mask_root = opt.get('dataroot_mask')
        if mask_root is None and self.mask_root_pred is None:
            raise ValueError('SMFDFaceDataset needs dataroot_mask (or mask_root_pred)')
        self.mask_root = None if self.mask_root_pred is not None else osp.expanduser(str(mask_root))

        self.gt_size = opt.get('gt_size', 256)
        self.lut, self.num_classes = parse_grouping(opt)
        self.mask_encoding = check_mask_encoding(opt)
        self.gray_lq = bool(opt.get('gray_lq', False))
        self.degrade_on_device = bool(opt.get('degrade_on_device', False))
        if self.gray_lq and self.degrade_on_device:
            raise ValueError('gray_lq and degrade_on_device exclude each other: with degrade_on_device the model '
                             'degrades the RGB gt itself (MaskGenerator converts RGB to gray on its own)')
        self.degrade_at = opt.get('degrade_at', 'output')
        if self.degrade_at not in DEGRADE_AT:
            raise ValueError(f'degrade_at must be one of {DEGRADE_AT}, got {self.degrade_at!r}')
        if self.degrade_at == 'source' and self.degrade_on_device:
            raise ValueError('degrade_at: source and degrade_on_device exclude each other: the model degrades the '
                             'batch at gt_size (use degrade_at: output)')
        self.deterministic = bool(opt.get('deterministic', False)) or self.phase != 'train'
        # The thesis generated one blurred copy per image and augmented it in real time (§3.4, §3.4.6.1):
        # degrade_once keeps image i's degradation fixed (rng_for_sample(seed, i), the frozen set's bytes)
        # while the augmentation stays fresh per load.
        self.degrade_once = bool(opt.get('degrade_once', False))
        if self.degrade_once and self.degrade_on_device:
            raise ValueError('degrade_once and degrade_on_device exclude each other: the model draws a fresh '
                             'degradation per batch on the device')
        self.seed = int(opt['seed']) if opt.get('seed') is not None else DEFAULT_SEEDS.get(self.phase, 0)
        self.degradation_cfg = DegradationConfig.from_dict(opt.get('degradation') or {})
        # §3.4.6.1: augmentation is real-time training augmentation; val/test samples are never augmented
        self.augment_cfg = AugmentConfig.from_option(opt.get('augment') if self.phase == 'train' else False)
        self.flip_lut = None if self.mask_root_pred is not None else np.asarray(flip_lut(), dtype=np.uint8)

        self.stems = self._read_stems(opt.get('meta_info_file'))
        if self.backend == 'disk':
            self._index_disk_files()
        else:
            for root in (self.gt_root, self.mask_root):
                if root is not None and not osp.isdir(root):
                    raise FileNotFoundError(f'{root}: lmdb folder does not exist')
        self._log_setup()

    def _log_setup(self):
        """Which seed and which order this dataset uses, so a log tells validation and test sets apart."""
        if self.deterministic or self.degrade_once:
            origin = 'option seed' if self.opt.get('seed') is not None else f'default of the {self.phase} phase'
            seed = f'degradation seed {self.seed} ({origin}), image i uses rng_for_sample({self.seed}, i)'
            if self.degrade_once and not self.deterministic:
                seed += ' (degrade_once: one degraded copy per image, augmentation drawn per load)'
        else:
            seed = 'degradation drawn per load from the worker seed (manual_seed)'
        get_root_logger().info(f'{type(self).__name__} {self.opt.get("name", "")} [{self.phase}]: '
                               f'{len(self.stems)} images, {seed}, degrade_at {self.degrade_at}')

    # ---- file index -------------------------------------------------------------------------------------------
    def _read_stems(self, meta_info_file):
        if meta_info_file is not None:
            return read_meta_stems(osp.expanduser(str(meta_info_file)))
        if self.backend == 'lmdb':  # BasicSR LMDBs list their keys in meta_info.txt
            stems = lmdb_keys(self.gt_root)
            if stems is None:
                raise FileNotFoundError(f'{self.gt_root}/meta_info.txt: no meta_info_file given and the lmdb '
                                        'lists no keys')
            if not stems:
                raise ValueError(f'{self.gt_root}/meta_info.txt: empty split (no keys)')
            return stems
        stems = sorted(list_images(self.gt_root))
        if not stems:
            raise ValueError(f'{self.gt_root}: empty split (no images with extensions {IMAGE_EXTENSIONS})')
        return stems

    def _index_disk_files(self):
        images = list_images(self.gt_root)
        labels = list_images(self.mask_root) if self.mask_root is not None else None
        self.gt_paths, self.mask_paths = [], []
        for stem in self.stems:
            if stem not in images:
                where = self.opt.get('meta_info_file') or self.gt_root
                raise FileNotFoundError(f'{osp.join(self.gt_root, stem)}.*: image listed in {where} not found')
            self.gt_paths.append(osp.join(self.gt_root, images[stem]))
            if labels is not None:
                if stem not in labels:
                    raise FileNotFoundError(f'{self.gt_paths[-1]}: no label map {stem}.png in {self.mask_root}')
                self.mask_paths.append(osp.join(self.mask_root, labels[stem]))

    def _get_bytes(self, index, client_key):
        if self.backend == 'disk':
            if self.file_client is None:
                self.file_client = FileClient('disk')
            path = (self.gt_paths if client_key == 'gt' else self.mask_paths)[index]
            return self.file_client.get(path), path
        stem = self.stems[index]
        root = self.gt_root if client_key == 'gt' else self.mask_root
        client, key = lmdb_client(root, client_key, self.io_backend_opt)
        content = client.get(stem, key)
        if content is None:
            raise FileNotFoundError(f'{root}[{stem}]: key {stem!r} not in the lmdb')
        return content, f'{root}[{stem}]'  # how errors name the entry

    def read_pair(self, index, resize=True):
        """Sharp RGB float image and its labels (19-class, or predicted group labels), both resized to gt_size
        (``resize=False``: at the stored resolution; predicted labels may then still be at gt_size).

        Returns ``(img, labels, gt_path)``.
        """
        content, gt_path = self._get_bytes(index, 'gt')
        img = decode_image(content, gt_path)
        source_shape = img.shape[:2]
        if self.gt_size and resize:
            img = resize_image(img, self.gt_size, self.gt_size)
        if self.mask_root_pred is not None:
            output_shape = (self.gt_size, self.gt_size) if self.gt_size else source_shape
            labels = read_pred_labels(self.mask_root_pred, self.stems[index], self.num_classes,
                                      (source_shape, output_shape))
        else:
            content, mask_path = self._get_bytes(index, 'mask')
            labels = decode_labels(content, mask_path, NUM_CELEBAMASK_CLASSES)
            if labels.shape != source_shape:
                raise ValueError(f'{mask_path}: label map size {labels.shape} differs from the image {gt_path} '
                                 f'size {source_shape}')
        if self.gt_size and resize:
            labels = resize_labels(labels, self.gt_size, self.gt_size)
        return img, labels, gt_path

    # ---- randomness -------------------------------------------------------------------------------------------
    def sample_rngs(self, index):
        """(degradation rng, augmentation rng) of sample ``index``."""
        if self.deterministic:
            rng = rng_for_sample(self.seed, index)
            return rng, rng.spawn(1)[0]  # child stream: switching augmentation does not change the degradation
        rng = self._train_rng()
        if self.degrade_once:
            return rng_for_sample(self.seed, index), rng
        return rng, rng

    # ---- sample -----------------------------------------------------------------------------------------------
    def degrade_at_source(self, index, rng_degradation, rng_augment):
        """§3.4's order: degrade at the stored resolution, resize blurry, sharp and labels to gt_size, then augment
        the three jointly (the paper augmented its generated blurred set in real time). ``(lq, img, labels,
        params, gt_path)``; ``params`` records the resolution its kernels act at (``source_shape``)."""
        img, labels, gt_path = self.read_pair(index, resize=False)
        params = sample_degradation(self.degradation_cfg, rng_degradation)
        lq = apply_degradation(img, params)
        source_shape = list(img.shape[:2])
        if self.gt_size:
            img = resize_image(img, self.gt_size, self.gt_size)
            lq = resize_image(lq, self.gt_size, self.gt_size)
            labels = resize_labels(labels, self.gt_size, self.gt_size)
        params = dict(params, degrade_at='source', source_shape=source_shape, output_shape=list(img.shape[:2]))
        if self.augment_cfg.enabled:
            lq, img, labels, _ = augment_degraded(lq, img, labels, self.augment_cfg, rng_augment, self.flip_lut)
        return lq, img, labels, params, gt_path

    def degrade_at_output(self, index, rng_degradation, rng_augment):
        """Resize to gt_size, augment (the augmented sharp face is gt), then degrade at gt_size."""
        img, labels, gt_path = self.read_pair(index)
        if self.augment_cfg.enabled:  # §3.4.6.1, before degradation: gt is the augmented sharp face
            img, labels, _ = augment_pair(img, labels, self.augment_cfg, rng_augment, self.flip_lut)
        params = sample_degradation(self.degradation_cfg, rng_degradation)
        lq = img if self.degrade_on_device else apply_degradation(img, params)
        return lq, img, labels, params, gt_path

    def __getitem__(self, index):
        rng_degradation, rng_augment = self.sample_rngs(index)
        build = self.degrade_at_source if self.degrade_at == 'source' else self.degrade_at_output
        lq, img, labels, params, gt_path = build(index, rng_degradation, rng_augment)
        if self.mask_root_pred is None:
            labels = self.lut[labels]  # §3.4.2 grouping, after the left/right swap of the flip
        # BasicSR names saved pictures osp.splitext(osp.basename(lq_path))[0]: make that the stem for lmdb too
        path = gt_path if self.backend == 'disk' else osp.join(self.gt_root, self.stems[index])
        return pack_sample(lq, img, labels, self.num_classes, self.mask_encoding, self.gray_lq, path, path, index,
                           params_to_json(params), self.opt.get('mask_source'), self.degrade_on_device)

    def __len__(self):
        return len(self.stems)
