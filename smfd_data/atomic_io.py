"""Atomic file writes: a reader (or a resume after SIGKILL) sees the old file or the complete new one, never a
partial one. Stdlib only; shared by checkpoints, images, LMDB meta files, JSON reports and benchmarks."""
import json
import os
import tempfile


def atomic_write(path, write_fn):
    """Write through ``write_fn(binary_file)`` to a temporary file next to ``path``, fsync, then ``os.replace``.

    The temporary name starts with a dot and ends with ``.tmp``, so BasicSR's ``*.state`` scan (auto-resume) and
    folder listings never pick up a partial file.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(prefix=f'.{os.path.basename(path)}.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise
    # make the rename itself durable (best effort: not every file system allows opening a folder)
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def atomic_write_bytes(path, data):
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path, text):
    atomic_write_bytes(path, text.encode('utf-8'))


def atomic_write_json(obj, path, indent=2, sort_keys=True):
    """Write ``obj`` as JSON (UTF-8, trailing newline) atomically."""
    atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=sort_keys) + '\n')
