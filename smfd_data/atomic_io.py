"""Atomic file writes: a reader (or a resume after SIGKILL) sees the old file or the complete new one, never a
partial one. Stdlib only; shared by checkpoints, images, LMDB meta files, JSON reports and benchmarks.

The file gets the permissions a plain ``open(path, 'w')`` would give it (0666 minus the umask), not the 0600 of
the temporary file ``mkstemp`` creates: results must stay readable by other users and web servers.

A save killed mid-write (SIGKILL, power loss) leaves its temporary file ``.<name>.<pid>.<random>.tmp``. The first
write of a process into a folder removes such leftovers whose process is gone (the pid in the name is not alive;
a file without a pid, from before the pid was recorded, when it is older than this process); nothing else.

``fsync_off()`` (a context manager) keeps the writes atomic but skips the two fsyncs per file, for data that a
rerun regenerates (the demo's synthetic faces and degraded sets: tens of thousands of small files, where the
fsyncs cost more than the data). A power loss may then lose recent files, never leave a partial one.
"""
import contextlib
import functools
import json
import os
import re
import tempfile
import time

_STARTED = time.time()
# .<target name>.<pid>.<mkstemp's 8 random characters>.tmp ; without <pid>: written before the pid was recorded
_TEMP_WITH_PID = re.compile(r'^\..+\.(\d+)\.[a-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)?$')  # .tmp.mp4: atomic_write_named
_TEMP_WITHOUT_PID = re.compile(r'^\..+\.[a-z0-9_]{8}\.tmp$')
_cleaned_folders = set()
_durable = [True]  # fsync_off() clears it (inherited by forked workers)


@contextlib.contextmanager
def fsync_off():
    """Within the block, atomic writes of this process (and of workers it forks) skip fsync; see the module doc."""
    before = _durable[0]
    _durable[0] = False
    try:
        yield
    finally:
        _durable[0] = before


@functools.lru_cache(maxsize=None)
def _default_mode():
    # the only portable way to read the umask is to set it and put it back: done once, not on every write
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def remove_stale_temporaries(folder):
    """Remove the temporary files killed saves of this writer left in ``folder``; returns their paths. The folder
    then counts as cleaned for this process (the writer does not list it again)."""
    _cleaned_folders.add(os.path.abspath(folder))
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        match = _TEMP_WITH_PID.match(name)
        path = os.path.join(folder, name)
        try:
            if match:
                pid = int(match.group(1))
                if pid == os.getpid() or _pid_alive(pid):
                    continue
            elif not _TEMP_WITHOUT_PID.match(name) or os.path.getmtime(path) >= _STARTED:
                continue
            if os.path.isfile(path) and not os.path.islink(path):
                os.remove(path)
                removed.append(path)
        except OSError:  # gone already (another process cleaned it) or not ours to remove
            continue
    return removed


def atomic_write(path, write_fn):
    """Write through ``write_fn(binary_file)`` to a temporary file next to ``path``, fsync, then ``os.replace``.

    The temporary name starts with a dot and ends with ``.tmp``, so BasicSR's ``*.state`` scan (auto-resume) and
    folder listings never pick up a partial file.
    """
    def write_to(fd, tmp_path):
        with os.fdopen(fd, 'wb') as f:  # mkstemp's descriptor: permissions and fsync on the file just written
            write_fn(f)
            f.flush()
            _finish(f.fileno())

    _write_and_replace(path, write_to, '.tmp')


def atomic_write_named(path, write_to):
    """``atomic_write`` for writers that need a file *name*, not a file object (OpenCV's video encoder picks the
    container from the extension): ``write_to(tmp_path)`` writes ``.<name>.<pid>.<random>.tmp<ext>`` next to
    ``path``, which then gets the normal permissions and replaces ``path``; removed when ``write_to`` fails."""
    def write_named(fd, tmp_path):
        os.close(fd)
        write_to(tmp_path)
        # the writer may have replaced the file: set and sync what is at the name now
        os.chmod(tmp_path, _default_mode())
        if _durable[0]:
            with open(tmp_path, 'rb') as f:
                os.fsync(f.fileno())

    _write_and_replace(path, write_named, '.tmp' + os.path.splitext(os.fspath(path))[1])


def _finish(fd):
    """The permissions of a plain ``open(path, 'w')``, then fsync (unless ``fsync_off``)."""
    os.fchmod(fd, _default_mode())
    if _durable[0]:
        os.fsync(fd)


def _write_and_replace(path, write_to, suffix):
    """``write_to(fd, tmp_path)`` fills the temporary file (mkstemp's ``fd`` is the writer's to close) and sets its
    permissions; then ``os.replace`` and the folder's fsync."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    if folder not in _cleaned_folders:  # once per folder and process: a folder of 30k images is listed once
        remove_stale_temporaries(folder)
    fd, tmp_path = tempfile.mkstemp(prefix=f'.{os.path.basename(path)}.{os.getpid()}.', suffix=suffix, dir=folder)
    try:
        write_to(fd, tmp_path)
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise
    if not _durable[0]:
        return
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

