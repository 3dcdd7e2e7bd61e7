"""MXNet NDArray list files (`mx.nd.save`, `*.params` checkpoints) in plain numpy (docs/fidelity.md §10.1).

    from lib.utils.mxnet_params import load_params, save_params
    arrays = load_params('model/pretrained_model/resnet_v1_101-0000.params')
    arrays['arg:conv1_weight'].shape   # (64, 3, 7, 7), a float32 numpy array

File layout, all little-endian:

    uint64 0x112 (list magic)  uint64 0 (reserved)
    uint64 n_arrays, then n_arrays arrays (layout below)
    uint64 n_names,  then per name: uint64 byte length + the bytes (UTF-8); n_names is 0 or n_arrays

One array, in one of four layouts, told apart by its first uint32:

    legacy (MXNet <= ~1.0; the 2017 DFF files): that uint32 is ndim, then uint32 dims[ndim]
            (ndim 0: an empty array, nothing follows), int32 dev_type, int32 dev_id, int32 type_flag,
            raw C-order data
    V1  0xF993FAC8: uint32 ndim, int64 dims[ndim] (ndim 0: empty, nothing follows), context, type_flag, data
    V2  0xF993FAC9: int32 storage type (0 dense), [sparse: storage shape], uint32 ndim, int64 dims
            (ndim 0: empty, nothing follows), context, type_flag, [sparse: aux types and shapes], data
    V3  0xF993FACA: as V2 but numpy shape semantics: int32 ndim, -1 = unknown (empty, nothing follows),
            0 = a scalar of one element

type_flag: 0 float32, 1 float64, 2 float16, 3 uint8, 4 int32, 5 int8, 6 int64.
Sparse arrays (row_sparse, csr) are refused: no DFF checkpoint has them.

Errors are ValueError (MXNetParamsError) with the file name and the byte offset where reading failed.
`save_params` writes the same format (legacy, V1, V2 or V3), for tests and fixtures.
"""
import os
import struct
from collections import OrderedDict

import numpy as np

from lib.utils.fileio import atomic_write

LIST_MAGIC = 0x112
V1_MAGIC = 0xF993FAC8
V2_MAGIC = 0xF993FAC9
V3_MAGIC = 0xF993FACA
ARRAY_MAGICS = {V1_MAGIC: 'V1', V2_MAGIC: 'V2', V3_MAGIC: 'V3'}
FORMATS = ('legacy', 'v1', 'v2', 'v3')

TYPE_FLAGS = {0: np.dtype('<f4'), 1: np.dtype('<f8'), 2: np.dtype('<f2'), 3: np.dtype('u1'), 4: np.dtype('<i4'),
              5: np.dtype('i1'), 6: np.dtype('<i8')}
_FLAG_OF = {dt.newbyteorder('<') if dt.itemsize > 1 else dt: f for f, dt in TYPE_FLAGS.items()}
STORAGE_TYPES = {0: 'default (dense)', 1: 'row_sparse', 2: 'csr'}
DEV_TYPES = {1: 'cpu', 2: 'gpu', 3: 'cpu_pinned', 5: 'cpu_shared'}


class MXNetParamsError(ValueError):
    """A file that is not a readable (dense) MXNet NDArray list; the message names the file."""


class _Reader:
    def __init__(self, buf, source):
        self.buf = memoryview(buf)
        self.pos = 0
        self.source = source

    def fail(self, what, pos=None):
        raise MXNetParamsError(f'{self.source}: {what} (at byte {self.pos if pos is None else pos} of '
                               f'{len(self.buf)})')

    def take(self, n, what):
        if n < 0 or self.pos + n > len(self.buf):
            self.fail(f'truncated file: {what} needs {n} bytes, only {len(self.buf) - self.pos} left')
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt, what):
        s = struct.Struct('<' + fmt)
        return s.unpack(self.take(s.size, what))

    def u32(self, what):
        return self.unpack('I', what)[0]

    def i32(self, what):
        return self.unpack('i', what)[0]

    def u64(self, what):
        return self.unpack('Q', what)[0]


def _read_shape(r, ndim, dim_fmt, what):
    if ndim > 64:
        r.fail(f'{what}: implausible number of dimensions {ndim} (corrupt file?)')
    dims = r.unpack(f'{ndim}{dim_fmt}', f'{what} dims') if ndim else ()
    if any(d < 0 for d in dims):
        r.fail(f'{what}: unknown (negative) dimension in shape {dims}')
    return tuple(int(d) for d in dims)


def _read_data(r, shape, type_flag, what):
    if type_flag not in TYPE_FLAGS:
        r.fail(f'{what}: unknown dtype (type_flag {type_flag}; known: '
               + ', '.join(f'{k} {v.name}' for k, v in TYPE_FLAGS.items()) + ')')
    dt = TYPE_FLAGS[type_flag]
    count = int(np.prod(shape, dtype=np.int64))
    raw = r.take(count * dt.itemsize, f'{what} data ({count} x {dt.name})')
    return np.frombuffer(raw, dtype=dt, count=count).reshape(shape).astype(dt.newbyteorder('='), copy=True)


def _read_context(r, what):
    dev_type, _dev_id = r.unpack('ii', f'{what} context')
    if dev_type not in DEV_TYPES:
        r.fail(f'{what}: unknown device type {dev_type} in the array context (corrupt file?)')


def _read_array(r, index):
    what = f'array {index}'
    start = r.pos
    first = r.u32(f'{what} header')
    if first in ARRAY_MAGICS:
        version = ARRAY_MAGICS[first]
        if version in ('V2', 'V3'):
            stype = r.i32(f'{what} storage type')
            if stype != 0:
                r.fail(f'{what}: sparse storage ({STORAGE_TYPES.get(stype, f"storage type {stype}")}) is not '
                       f'supported; save the array dense (arr.tostype("default")) first', start)
        if version == 'V3':
            ndim = r.i32(f'{what} ndim')
            if ndim == -1:
                return np.zeros((0,), np.float32), version
            if ndim < -1:
                r.fail(f'{what}: invalid ndim {ndim}')
        else:
            ndim = r.u32(f'{what} ndim')
            if ndim == 0:
                return np.zeros((0,), np.float32), version
        shape = _read_shape(r, ndim, 'q', what)
    else:
        version = 'legacy'
        ndim = first
        if ndim == 0:
            return np.zeros((0,), np.float32), version
        if ndim > 64:
            r.fail(f'{what}: neither an array magic (0xF993FAC8/9/A) nor a plausible legacy ndim: 0x{first:08X}',
                   start)
        shape = _read_shape(r, ndim, 'I', what)
    _read_context(r, what)
    type_flag = r.i32(f'{what} type flag')
    return _read_data(r, shape, type_flag, what), version


def read_params_bytes(buf, source='<bytes>', return_versions=False):
    """Parse an NDArray list from bytes; see load_params."""
    r = _Reader(buf, source)
    if len(r.buf) < 16:
        r.fail(f'not an MXNet NDArray list file: {len(r.buf)} bytes is shorter than the 16-byte header', 0)
    magic, _reserved = r.unpack('QQ', 'header')
    if magic != LIST_MAGIC:
        r.fail(f'not an MXNet NDArray list file: bad magic 0x{magic:X} (expected 0x{LIST_MAGIC:X})', 0)
    n = r.u64('array count')
    if n > len(r.buf):
        r.fail(f'implausible array count {n} (corrupt file?)')
    arrays, versions = [], []
    for i in range(n):
        a, v = _read_array(r, i)
        arrays.append(a)
        versions.append(v)
    n_names = r.u64('name count')
    if n_names > len(r.buf):
        r.fail(f'implausible name count {n_names} (corrupt file?)')
    names = []
    for i in range(n_names):
        length = r.u64(f'name {i} length')
        raw = bytes(r.take(length, f'name {i}'))
        try:
            names.append(raw.decode('utf-8'))
        except UnicodeDecodeError:
            r.fail(f'name {i} is not valid UTF-8: {raw[:40]!r}')
    if names and len(names) != len(arrays):
        r.fail(f'{len(names)} names for {len(arrays)} arrays (the counts must be equal, or no names at all)')
    if r.pos != len(r.buf):
        r.fail(f'{len(r.buf) - r.pos} unexpected trailing bytes after the name list')
    if not names:
        names = [str(i) for i in range(len(arrays))]
    elif len(set(names)) != len(names):
        dup = sorted({x for x in names if names.count(x) > 1})
        r.fail(f'duplicate names: {dup[:10]}')
    out = OrderedDict(zip(names, arrays))
    if return_versions:
        return out, OrderedDict(zip(names, versions))
    return out


def load_params(path, return_versions=False):
    """Read an MXNet NDArray list file into an OrderedDict name -> numpy array (native byte order, file
    order). Unnamed lists (`mx.nd.save(f, [a, b])`) get the names '0', '1', .... Empty (ndim 0 / unknown
    shape) arrays come back as zero-length float32 arrays. With return_versions, also returns name ->
    the array's layout ('legacy', 'V1', 'V2', 'V3')."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'MXNet params file not found: {path}')
    with open(path, 'rb') as f:
        buf = f.read()
    return read_params_bytes(buf, path, return_versions)


# ---------------------------------------------------------------------------------------------- writer
def _flag(a, name):
    dt = a.dtype
    key = dt.newbyteorder('<') if dt.itemsize > 1 else dt
    if key not in _FLAG_OF:
        raise ValueError(f'{name}: dtype {dt} has no MXNet type flag (use one of '
                         + ', '.join(v.name for v in TYPE_FLAGS.values()) + ')')
    return _FLAG_OF[key]


def _array_bytes(a, fmt, name):
    a = np.asarray(a)
    flag = _flag(a, name)
    head = []
    if fmt == 'legacy':
        if a.ndim == 0:
            raise ValueError(f'{name}: the legacy layout cannot hold a 0-d array')
        head.append(struct.pack(f'<I{a.ndim}I', a.ndim, *a.shape))
    elif fmt == 'v1':
        if a.ndim == 0:
            raise ValueError(f'{name}: the V1 layout cannot hold a 0-d array')
        head.append(struct.pack(f'<II{a.ndim}q', V1_MAGIC, a.ndim, *a.shape))
    elif fmt == 'v2':
        if a.ndim == 0:
            raise ValueError(f'{name}: the V2 layout cannot hold a 0-d array (use v3)')
        head.append(struct.pack(f'<Iii{a.ndim}q', V2_MAGIC, 0, a.ndim, *a.shape))
    elif fmt == 'v3':
        head.append(struct.pack(f'<Iii{a.ndim}q', V3_MAGIC, 0, a.ndim, *a.shape))
    else:
        raise ValueError(f'unknown format {fmt!r}; one of {FORMATS}')
    head.append(struct.pack('<iii', 1, 0, flag))  # cpu(0), type flag
    return b''.join(head), np.ascontiguousarray(a, dtype=a.dtype.newbyteorder('<'))


def save_params(path, arrays, fmt='v2'):
    """Write `arrays` (a dict name -> array, or a list for an unnamed file) as an MXNet NDArray list in
    layout fmt ('legacy', 'v1', 'v2' = what MXNet 1.x mx.nd.save writes, 'v3'). Written to a temporary
    file and renamed into place."""
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise ValueError(f'unknown format {fmt!r}; one of {FORMATS}')
    if isinstance(arrays, dict):
        names, values = list(arrays.keys()), list(arrays.values())
    else:
        names, values = [], list(arrays)
    def write(f):
        f.write(struct.pack('<QQQ', LIST_MAGIC, 0, len(values)))
        for i, a in enumerate(values):
            head, data = _array_bytes(a, fmt, names[i] if names else f'array {i}')
            f.write(head)
            f.write(data.tobytes(order='C'))
        f.write(struct.pack('<Q', len(names)))
        for n in names:
            b = str(n).encode('utf-8')
            f.write(struct.pack('<Q', len(b)))
            f.write(b)

    return atomic_write(os.fspath(path), write)


__all__ = ['load_params', 'read_params_bytes', 'save_params', 'MXNetParamsError', 'TYPE_FLAGS', 'FORMATS']
