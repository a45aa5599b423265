"""Atomic file writes: what every checkpoint, dataset chunk, model file and result table goes through.

A file is written to a temporary file in its own directory (same filesystem), flushed and fsynced, then
moved into place with ``os.replace``: a reader, a killed writer or a full disk never leaves half a file
under the real name. When the write or the move fails (no space left, a read-only directory, a
permission error) the temporary file is removed, the file that was there before is unchanged, and an
``OSError`` of the same kind (``errno`` kept) is raised whose message names the path and says so. A
kill -9 between the temporary file and the move can leave a ``.tmp-`` file beside the target; the
target itself is always whole.
"""
import json
import os
import tempfile

import numpy as np

TMP_PREFIX = ".tmp-"


def atomic_write(path, write):
    """Write ``path`` through ``write(binary file object)``, atomically (see the module)."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + os.path.basename(path) + ".", dir=directory)
    except OSError as error:
        raise OSError(error.errno, f"cannot write {path}: {error.strerror or error} (nothing was changed)",
                      path) from error
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(error, OSError) and error.errno is not None:
            raise OSError(error.errno, f"cannot write {path}: {error.strerror or error} (the previous file, "
                                       "if any, is unchanged)", path) from error
        raise


def atomic_write_bytes(path, data):
    atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path, text):
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def atomic_write_json(path, obj, **dump_options):
    """``obj`` as JSON (``json.dumps(obj, **dump_options)``), atomically."""
    atomic_write_text(path, json.dumps(obj, **dump_options))


def atomic_save_npz(path, arrays):
    """``np.savez`` of the dict ``arrays``, atomically (the file is named ``path`` as given)."""
    atomic_write(path, lambda handle: np.savez(handle, **arrays))
