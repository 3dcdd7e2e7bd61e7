"""MXNet NDArray list reader / writer (lib/utils/mxnet_params.py, docs/fidelity.md §10.1) against files written by
MXNet 1.9.1 (V2, V3) and by hand from the format's byte layout and read back by MXNet (legacy, V1);
see tests/fixtures/mxnet_models/README.md."""
import os
import struct

import numpy as np
import pytest

from lib.utils.mxnet_params import (FORMATS, MXNetParamsError, load_params, read_params_bytes, save_params)

FIX = os.path.join(os.path.dirname(__file__), 'fixtures', 'mxnet_models')
DTYPES = ['float32', 'float64', 'float16', 'uint8', 'int32', 'int8', 'int64']
LAYOUT_FILES = {'legacy': 'dtypes_legacy.params', 'V1': 'dtypes_v1.params', 'V2': 'dtypes_v2.params',
                'V3': 'dtypes_v3.params'}


def fix(name):
    return os.path.join(FIX, name)


def read(name):
    with open(fix(name), 'rb') as f:
        return f.read()


# ------------------------------------------------------------------------------------------- layouts
@pytest.mark.parametrize('layout', list(LAYOUT_FILES))
def test_every_dtype_in_every_layout(layout):
    arrays, versions = load_params(fix(LAYOUT_FILES[layout]), return_versions=True)
    assert set(versions.values()) == {layout}
    ref = load_params(fix('dtypes_v2.params'))  # written by mx.nd.save
    names = [f'arg:x_{d}' for d in DTYPES] + ['aux:x_int64_big']
    assert list(arrays)[:len(names)] == names
    for n in names:
        a, r = arrays[n], ref[n]
        assert a.dtype == r.dtype and a.shape == r.shape and np.array_equal(a, r), n
        assert a.dtype == np.dtype(n.split('_')[1]) and a.dtype.isnative and a.flags.writeable
    assert arrays['aux:x_int64_big'].tolist() == [2 ** 40 + 3, -2 ** 35]
    assert arrays['arg:x_float16'].shape == (1, 2, 2)
    assert np.abs(arrays['arg:x_float64']).max() > 1  # real values, not zeros
    if layout == 'V3':  # numpy shape semantics: a 0-d scalar
        s = arrays['scalar_float64']
        assert s.shape == () and s.dtype == np.float64 and float(s) == 2.5


def test_unnamed_list_gets_index_names():
    arrays = load_params(fix('unnamed_v2.params'))
    assert list(arrays) == ['0', '1']
    assert arrays['0'].tolist() == [1.5, 2.5] and arrays['0'].dtype == np.float32
    assert arrays['1'].dtype == np.int32 and arrays['1'].tolist() == [[0, 1, 2], [3, 4, 5]]


@pytest.mark.parametrize('name,layout', [('resnet_tiny-0000.params', 'legacy'), ('flownet_tiny-0000.params', 'V2'),
                                         ('rfcn_tiny-0000.params', 'V2'), ('dff_tiny-0000.params', 'V2')])
def test_model_fixtures_read(name, layout):
    arrays, versions = load_params(fix(name), return_versions=True)
    assert set(versions.values()) == {layout}
    assert all(n.startswith(('arg:', 'aux:')) for n in arrays)
    assert all(a.dtype == np.float32 for a in arrays.values())


# ------------------------------------------------------------------------------------------- writer
@pytest.mark.parametrize('fmt,name', [('v2', 'dtypes_v2.params'), ('legacy', 'dtypes_legacy.params'),
                                      ('v1', 'dtypes_v1.params'), ('v3', 'dtypes_v3.params'),
                                      ('v2', 'unnamed_v2.params'), ('v2', 'rfcn_tiny-0000.params'),
                                      ('legacy', 'resnet_tiny-0000.params')])
def test_writer_reproduces_the_files_byte_for_byte(tmp_path, fmt, name):
    arrays = load_params(fix(name))
    if name.startswith('unnamed'):
        arrays = list(arrays.values())
    out = save_params(tmp_path / 'x.params', arrays, fmt=fmt)
    assert open(out, 'rb').read() == read(name)


def test_writer_round_trip_and_refusals(tmp_path):
    arrays = {'a': np.arange(12, dtype='>f4').reshape(3, 4), 'b': np.array([1, -2], np.int8)}
    for fmt in FORMATS:
        got = load_params(save_params(tmp_path / f'{fmt}.params', arrays, fmt=fmt))
        assert got['a'].dtype == np.float32 and np.array_equal(got['a'], arrays['a'])
        assert got['b'].tolist() == [1, -2]
    with pytest.raises(ValueError, match='0-d'):
        save_params(tmp_path / 'x.params', {'s': np.float32(1)}, fmt='v2')
    with pytest.raises(ValueError, match='dtype'):
        save_params(tmp_path / 'x.params', {'s': np.array([True])})
    with pytest.raises(ValueError, match='format'):
        save_params(tmp_path / 'x.params', {}, fmt='v9')
    assert load_params(save_params(tmp_path / 'e.params', {})) == {}
    assert not [p for p in os.listdir(tmp_path) if '.tmp' in p]  # no temporary left behind


def test_empty_legacy_array():
    raw = struct.pack('<QQQ', 0x112, 0, 1) + struct.pack('<I', 0) + struct.pack('<QQ', 1, 1) + b'e'
    got = read_params_bytes(raw)
    assert list(got) == ['e'] and got['e'].size == 0


# ------------------------------------------------------------------------------------------- errors
def _err(tmp_path, raw, *patterns, name='broken.params'):
    p = tmp_path / name
    p.write_bytes(raw)
    with pytest.raises(MXNetParamsError) as e:
        load_params(p)
    msg = str(e.value)
    assert str(p) in msg, msg
    for pat in patterns:
        assert pat in msg, msg
    return msg


def test_bad_magic(tmp_path):
    raw = bytearray(read('dtypes_v2.params'))
    raw[0:8] = struct.pack('<Q', 0x113)
    _err(tmp_path, bytes(raw), 'bad magic 0x113')
    _err(tmp_path, b'PK\x03\x04 not a params file', 'bad magic')
    _err(tmp_path, b'\x12\x01', '16-byte header')
    # a torch .pth (zip) renamed to .params
    _err(tmp_path, read('parity_outputs.npz')[:64], 'not an MXNet NDArray list')


@pytest.mark.parametrize('name', ['dtypes_v2.params', 'dtypes_legacy.params', 'dtypes_v1.params',
                                  'dtypes_v3.params', 'unnamed_v2.params'])
def test_every_truncation_is_a_clear_error(tmp_path, name):
    raw = read(name)
    p = tmp_path / name
    for cut in range(len(raw)):
        p.write_bytes(raw[:cut])
        with pytest.raises(MXNetParamsError) as e:
            load_params(p)
        assert str(p) in str(e.value)
        if cut >= 16:
            assert 'truncated' in str(e.value), (cut, str(e.value))


def test_trailing_garbage(tmp_path):
    _err(tmp_path, read('dtypes_v2.params') + b'\0\0', 'trailing bytes')


def test_sparse_storage_is_refused(tmp_path):
    with pytest.raises(MXNetParamsError) as e:
        load_params(fix('sparse_v2.params'))
    msg = str(e.value)
    assert 'sparse_v2.params' in msg and 'sparse storage (row_sparse)' in msg and 'array 1' in msg


def test_unknown_dtype(tmp_path):
    ok = save_params(tmp_path / 'ok.params', {'a': np.ones(2, np.float32)}, fmt='legacy')
    raw = bytearray(open(ok, 'rb').read())
    # legacy: header 24 B, ndim 4 B, dim 4 B, context 8 B, then the type flag
    assert struct.unpack_from('<i', raw, 40)[0] == 0
    struct.pack_into('<i', raw, 40, 9)
    _err(tmp_path, bytes(raw), 'unknown dtype (type_flag 9')


def test_names_and_arrays_count_mismatch(tmp_path):
    ok = save_params(tmp_path / 'ok.params', [np.ones(2, np.float32), np.zeros(3, np.float32)])
    body = open(ok, 'rb').read()
    assert body[-8:] == struct.pack('<Q', 0)  # no names
    raw = body[:-8] + struct.pack('<Q', 1) + struct.pack('<Q', 3) + b'one'
    _err(tmp_path, raw, '1 names for 2 arrays')


def test_duplicate_names(tmp_path):
    body = (tmp_path / 'ok.params')
    save_params(body, [np.ones(1, np.float32), np.ones(1, np.float32)])
    raw = body.read_bytes()[:-8] + struct.pack('<Q', 2) + (struct.pack('<Q', 1) + b'x') * 2
    _err(tmp_path, raw, 'duplicate names')


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nothere.params'):
        load_params(tmp_path / 'nothere.params')
