"""Files in and out: the one atomic writer and the one reader of torch files.

Writing (`atomic_write`, `save_torch`, `write_text`, `write_bytes`): the content goes to a temporary file
in the destination's folder (`.<name>.<pid>.<random>.tmp`), is flushed and fsynced, and is then renamed onto
the destination (os.replace), so a crash, a kill or a full disk never leaves a half-written file under the
final name and never spoils the previous version. On any failure the temporary file is removed. A full
disk (ENOSPC, or EDQUOT: quota) is reported as DiskFullError, naming the file: one `error:` line in the
entry scripts (lib/utils/cli.py).

Reading (`load_torch`): torch.load(..., weights_only=True) only, so loading a file never runs code from
it. A file that needs more than tensors and plain values (a pickle of objects or functions) is refused
with UnsafeFileError (a ValueError: one `error:` line) naming the file and what it asked for.
Checkpoints written before RNG states were stored as plain values hold numpy arrays; the numpy array
reconstructors (data only, never an object array's code) are accepted for them.
"""
import errno
import io
import os
import pickle
import re
import uuid
import warnings

import numpy as np
import torch

from lib.utils.outputs import remove_file

FULL_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(OSError):
    """No space left on the device (or quota exceeded) while writing a file; the message names it."""

    def __init__(self, path, cause):
        folder = os.path.dirname(os.path.abspath(path))
        super().__init__(f"{path}: {os.strerror(cause.errno)} (errno {errno.errorcode.get(cause.errno)}) while "
                         f"writing it; the partial temporary file was removed and any earlier {os.path.basename(path)} "
                         f"is unchanged. Free space in {folder} and run again.")
        self.errno, self.filename = cause.errno, path

    def __str__(self):  # the message above, not OSError's '[Errno 28] None: <path>'
        return self.args[0]


class UnsafeFileError(ValueError):
    """A torch file that cannot be read with weights_only=True (it would run code); refused."""


class _Recorder(io.RawIOBase):
    """os.write on the temporary file's descriptor, remembering the OSError of a failed write (torch.save
    turns it into a RuntimeError that no longer says why)."""

    def __init__(self, fd):
        super().__init__()
        self.fd, self.error = fd, None

    def writable(self):
        return True

    def fileno(self):
        return self.fd

    def write(self, data):
        try:
            return os.write(self.fd, data)
        except OSError as e:
            self.error = e
            raise

    def close(self):
        if not self.closed:
            try:
                os.close(self.fd)
            finally:
                super().close()


def _full_disk(exc, raw):
    for e in (exc, raw.error if raw is not None else None, getattr(exc, '__context__', None)):
        if isinstance(e, OSError) and e.errno in FULL_DISK_ERRNOS:
            return e
    return None


def atomic_write(path, write, mode='wb', sync=True):
    """write(f) fills a temporary file next to `path` (binary for mode 'wb', UTF-8 text for 'w'); it is
    flushed, fsynced and renamed onto `path`. Returns `path`. On any failure (an exception in write, a full
    disk, KeyboardInterrupt) the temporary file is removed and `path` is left as it was. sync=False skips
    the fsyncs (still atomic for a crash of the process, not for a power cut): for the many small files of a
    generated dataset (its completion marker makes it whole) or a demo's frames (0.1-0.3 ms a file instead
    of about 6 ms)."""
    if mode not in ('wb', 'w'):
        raise ValueError(f"atomic_write: mode must be 'wb' or 'w', got {mode!r}")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f'.{os.path.basename(path)}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp')
    raw = None
    try:
        # os.open with 0o666: the final file gets the permissions of a plain open() (umask applies)
        raw = _Recorder(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        buffered = io.BufferedWriter(raw, buffer_size=1 << 20)
        f = io.TextIOWrapper(buffered, encoding='utf-8') if mode == 'w' else buffered
        with f:
            write(f)
            f.flush()
            if sync:
                os.fsync(raw.fd)
        os.replace(tmp, path)
    except BaseException as e:
        if raw is not None and not raw.closed:
            try:
                raw.close()
            except OSError:
                pass
        remove_file(tmp)
        full = _full_disk(e, raw)
        if full is not None:
            raise DiskFullError(path, full) from e
        raise
    if sync:
        _sync_folder(folder)
    return path


def _sync_folder(folder):
    """Make the rename itself durable (best effort: not every file system lets a folder be fsynced)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes(path, data, sync=True):
    return atomic_write(path, lambda f: f.write(data), 'wb', sync=sync)


def write_text(path, text):
    return atomic_write(path, lambda f: f.write(text), 'w')


def save_torch(path, obj):
    """torch.save(obj) into `path` atomically. Store tensors and plain values (dict, list, tuple, str,
    numbers, None) only, so that load_torch reads the file back."""
    return atomic_write(path, lambda f: torch.save(obj, f), 'wb')


# numpy arrays and scalars (data only) in checkpoints written before RNG states were stored as lists
def _legacy_numpy_globals():
    import numpy.dtypes as dtypes  # lazy: only for legacy checkpoints; numpy.dtypes needs numpy >= 1.25
    core = getattr(np, '_core', None) or np.core
    names = [n for n in dir(dtypes) if n.endswith('DType') and n != 'ObjectDType']
    return [core.multiarray._reconstruct, core.multiarray.scalar, np.ndarray, np.dtype] + \
        [getattr(dtypes, n) for n in names]


def load_torch(path, map_location='cpu'):
    """torch.load(path, weights_only=True): tensors and plain values only; anything else is refused
    (UnsafeFileError naming the file). A missing file is FileNotFoundError, an unreadable one ValueError."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # "Detected pickle protocol 4": the refusal below says it all
            with torch.serialization.safe_globals(_legacy_numpy_globals()):
                return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - every way a file can fail to read becomes one line naming it
        text = str(e)
        if isinstance(e, pickle.UnpicklingError) and 'Weights only load failed' in text:
            wanted = re.search(r'GLOBAL (\S+)', text)
            opcode = re.search(r'Unsupported operand (\d+)', text)
            detail = (f'it asks for {wanted.group(1)}' if wanted else
                      f'pickle opcode {opcode.group(1)} is not one of tensors and plain values' if opcode else
                      'it holds more than tensors and plain values')
            raise UnsafeFileError(
                f"{path} could not be read safely: {detail}; a file is only ever loaded with torch.load("
                f"weights_only=True), which never runs code from it. If it is a checkpoint you trust, re-save "
                f"its tensors as a plain state dict.") from e
        first = text.strip().splitlines()[0] if text.strip() else ''
        raise ValueError(f"{path} could not be read as a torch file ({type(e).__name__}: {first})") from e

class _DataOnlyUnpickler(pickle.Unpickler):
    """Builds numpy arrays, dtypes, numpy scalars and builtin containers only; any other global (a class, a
    function: code) is refused."""
    _NUMPY = {('ndarray',), ('dtype',), ('_reconstruct',), ('scalar',), ('_frombuffer',)}

    def find_class(self, module, name):
        if module.split('.')[0] == 'numpy' and ((name,) in self._NUMPY or name.endswith('DType')) \
                and name != 'ObjectDType':
            return super().find_class(module, name)
        raise UnsafeFileError(f"it asks for {module}.{name}")


def load_data_pickle(path):
    """A pickle of plain data (the project's own caches: dicts, lists, numpy arrays), read without running
    code from it: any other object in it raises UnsafeFileError naming the file; a missing file is
    FileNotFoundError, an unreadable one ValueError."""
    path = os.fspath(path)
    with open(path, 'rb') as f:
        try:
            return _DataOnlyUnpickler(f).load()
        except UnsafeFileError as e:
            raise UnsafeFileError(f"{path} could not be read safely: {e}; the project's caches hold plain data "
                                  f"only, and a file is never allowed to run code when read") from None
        except Exception as e:  # noqa: BLE001 - a truncated or foreign file: one line naming it
            first = str(e).strip().splitlines()[0] if str(e).strip() else ''
            raise ValueError(f"{path} could not be read as a data pickle ({type(e).__name__}: {first})") from None


__all__ = ['atomic_write', 'write_bytes', 'write_text', 'save_torch', 'load_torch', 'load_data_pickle',
           'DiskFullError', 'UnsafeFileError', 'FULL_DISK_ERRNOS']
