"""BasicSR LMDBs of prepared face datasets (image files themselves: ``smfd_data.image_io``).

``write_lmdb`` wraps BasicSR's ``make_lmdb_from_imgs`` to avoid two of its traps: it guesses the LMDB map
size from the first image only (``MDB_MAP_FULL`` when images differ in size or compress differently) and it
calls ``sys.exit`` when the target exists. Here the map size is computed from all inputs and the LMDB is
built under a temporary name, then moved into place, so an interrupted run never leaves a half-written LMDB
that looks complete. ``<lmdb>/sources.json`` records each source file's size and mtime: a rerun keeps the LMDB
only when the sources are unchanged (an image re-prepared before an interrupted rebuild makes it stale).
"""
import glob
import json
import os
import shutil
import sys

import cv2
import numpy as np

from smfd_data.atomic_io import atomic_write_json

SOURCES_FILE = 'sources.json'


def _decoded_nbytes(path):
    """Upper bound of the decoded image's bytes, from the file header only (PIL opens lazily)."""
    from PIL import Image
    try:
        with Image.open(path) as im:
            width, height = im.size
            channels = len(im.getbands())
            # PIL shows 16-bit RGB PNGs as 8-bit modes: count 2 bytes per sample (4 for 32-bit modes)
            bytes_per_sample = 4 if im.mode in ('I', 'F') else 2
    except FileNotFoundError:
        raise FileNotFoundError(f'{path}: file not found') from None
    except OSError as err:
        raise ValueError(f'{path}: cannot read image header ({err})') from err
    return width * height * channels * bytes_per_sample


def lmdb_map_size(paths, safety=2.0):
    """LMDB map size that fits all ``paths`` re-encoded as PNG (BasicSR stores PNG at compress level 1).

    A PNG is never much larger than the raw pixels, so the decoded size (plus one page of LMDB overhead
    per entry) of *every* input, times ``safety``, bounds the database. On Linux the map size only
    reserves address space: the file grows with what is written.
    """
    total = sum(_decoded_nbytes(p) + 16384 for p in paths)
    return int(total * safety) + (64 << 20)


def lmdb_keys(lmdb_path):
    """Keys listed in ``<lmdb>/meta_info.txt`` (BasicSR writes one ``<key>.png (h,w,c) level`` line per image)."""
    meta = os.path.join(lmdb_path, 'meta_info.txt')
    if not os.path.isfile(meta):
        return None
    with open(meta) as f:
        return [os.path.splitext(line.split(' ')[0])[0] for line in f if line.strip()]


def source_record(items):
    """What the LMDB was built from: key → [source file name, size, mtime in ns] (cheap, no file is read)."""
    record = {}
    for key in sorted(items):
        st = os.stat(items[key])
        record[key] = [os.path.basename(items[key]), st.st_size, st.st_mtime_ns]
    return record


def _is_current(lmdb_path, keys, record):
    """True if ``lmdb_path`` is a complete LMDB of ``keys`` built from exactly the sources in ``record``."""
    if not (os.path.isfile(os.path.join(lmdb_path, 'data.mdb')) and sorted(lmdb_keys(lmdb_path) or []) == keys):
        return False
    try:
        with open(os.path.join(lmdb_path, SOURCES_FILE), encoding='utf-8') as f:
            return json.load(f) == record
    except (OSError, ValueError):  # an LMDB from before the record existed: rebuild once
        return False


def remove_stale_builds(lmdb_path):
    """Remove ``<name>.tmp.lmdb`` / ``<name>.old.lmdb`` folders an interrupted build left next to ``lmdb_path``."""
    base = lmdb_path[:-len('.lmdb')]
    for leftover in glob.glob(glob.escape(base) + '.tmp.lmdb') + glob.glob(glob.escape(base) + '.old.lmdb'):
        shutil.rmtree(leftover, ignore_errors=True)


def write_lmdb(lmdb_path, items, map_size=None, overwrite=False, compress_level=1):
    """Build a BasicSR LMDB (key = stem) from image files, atomically.

    Args:
        lmdb_path (str): target folder, must end with ``.lmdb``.
        items (Mapping[str, str]): key → image file path.
        map_size (int | None): LMDB map size; None: ``lmdb_map_size`` of all inputs.
        overwrite (bool): rebuild even if ``lmdb_path`` already holds these keys built from these sources.
        compress_level (int): PNG compression level of the stored images.

    Returns:
        bool: True if the LMDB was (re)built, False if an existing complete one was kept.
    """
    from basicsr.utils.lmdb_util import make_lmdb_from_imgs

    lmdb_path = os.path.normpath(lmdb_path)
    if not lmdb_path.endswith('.lmdb'):
        raise ValueError(f'{lmdb_path}: an LMDB path must end with ".lmdb" (BasicSR requires it)')
    if not items:
        raise ValueError(f'{lmdb_path}: no images to write')
    keys = sorted(items)
    for key in keys:
        if not key.isascii() or ' ' in key:
            raise ValueError(f'{lmdb_path}: LMDB key {key!r} must be ASCII without spaces ({items[key]})')
        if not os.path.isfile(items[key]):
            raise FileNotFoundError(f'{items[key]}: file not found (LMDB key {key!r})')
    record = source_record(items)
    # a leftover .old.lmdb is never needed: the kill came before (the target is missing: rebuild) or after the
    # new LMDB was moved into place
    remove_stale_builds(lmdb_path)
    if os.path.exists(lmdb_path) and not overwrite and _is_current(lmdb_path, keys, record):
        print(f'{lmdb_path} already holds these {len(keys)} images; kept (overwrite=True rebuilds it).')
        return False
    if map_size is None:
        map_size = lmdb_map_size([items[k] for k in keys])

    # BasicSR insists on the ".lmdb" suffix and exits if the folder exists: build under a fresh temporary name
    tmp_path = lmdb_path[:-len('.lmdb')] + '.tmp.lmdb'
    make_lmdb_from_imgs('', tmp_path, [items[k] for k in keys], keys, compress_level=compress_level,
                        map_size=map_size)
    atomic_write_json(record, os.path.join(tmp_path, SOURCES_FILE))  # inside the folder that is renamed
    if os.path.exists(lmdb_path):  # os.replace cannot replace a non-empty folder: move the old one aside first
        old_path = lmdb_path[:-len('.lmdb')] + '.old.lmdb'
        os.replace(lmdb_path, old_path)
        os.replace(tmp_path, lmdb_path)
        shutil.rmtree(old_path)
    else:
        os.replace(tmp_path, lmdb_path)
    sys.stdout.flush()
    return True


def read_lmdb_image(lmdb_path, key, flags=cv2.IMREAD_UNCHANGED):
    """Decode the image stored under ``key`` in a BasicSR LMDB (as OpenCV decodes it: BGR for colour)."""
    import lmdb

    if not os.path.isfile(os.path.join(lmdb_path, 'data.mdb')):
        raise FileNotFoundError(f'{lmdb_path}: not an LMDB folder (no data.mdb)')
    env = lmdb.open(lmdb_path, readonly=True, lock=False, readahead=False, meminit=False)
    try:
        with env.begin(write=False) as txn:
            buf = txn.get(key.encode('ascii'))
    finally:
        env.close()
    if buf is None:
        raise KeyError(f'{lmdb_path}: no key {key!r}')
    img = cv2.imdecode(np.frombuffer(buf, dtype=np.uint8), flags)
    if img is None:
        raise ValueError(f'{lmdb_path}: cannot decode the image stored under key {key!r}')
    return img
