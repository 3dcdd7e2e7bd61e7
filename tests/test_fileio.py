"""The one atomic writer and the one torch reader (lib/utils/fileio.py): temp file in the same folder, fsync,
rename; the temp file removed on any failure; a full disk reported as such; loading never runs code."""
import errno
import os
import pickle
import random
import signal
import stat
import subprocess
import sys

import numpy as np
import pytest
import torch

from lib.utils import fileio
from lib.utils.checkpoint import load_checkpoint, save_checkpoint
from lib.utils.cli import run_cli
from lib.utils.fileio import (DiskFullError, UnsafeFileError, atomic_write, load_data_pickle, load_torch, save_torch, write_bytes,
                              write_text)
from tests.small_run import ROOT, code_running_pickles


def _leftovers(folder):
    return [f for f in os.listdir(folder) if f.endswith('.tmp') or '.tmp' in f]


def test_atomic_write_writes_text_bytes_and_torch_with_the_permissions_of_open(tmp_path):
    write_text(tmp_path / 'a.txt', 'héllo\n')
    write_bytes(tmp_path / 'sub' / 'b.bin', b'\0\1\2')  # the folder is created
    save_torch(tmp_path / 'c.pth', {'x': torch.arange(5), 'n': [1, 2.5, 'three', None]})
    assert (tmp_path / 'a.txt').read_text(encoding='utf-8') == 'héllo\n'
    assert (tmp_path / 'sub' / 'b.bin').read_bytes() == b'\0\1\2'
    back = load_torch(tmp_path / 'c.pth')
    assert torch.equal(back['x'], torch.arange(5)) and back['n'] == [1, 2.5, 'three', None]
    with open(tmp_path / 'plain', 'w') as f:
        f.write('x')
    mode = stat.S_IMODE(os.stat(tmp_path / 'plain').st_mode)
    assert all(stat.S_IMODE(os.stat(p).st_mode) == mode for p in (tmp_path / 'a.txt', tmp_path / 'c.pth'))
    assert not _leftovers(tmp_path) and not _leftovers(tmp_path / 'sub')


@pytest.mark.parametrize('failure', [RuntimeError('boom'), KeyboardInterrupt()])
def test_a_failure_while_writing_removes_the_temp_file_and_keeps_the_old_file(tmp_path, failure):
    path = tmp_path / 'eval.json'
    write_text(path, 'old')

    def write(f):
        f.write('new, half written' * 1000)
        f.flush()
        assert _leftovers(tmp_path)  # the temporary file exists while writing, in the same folder
        raise failure

    with pytest.raises(type(failure)):
        atomic_write(path, write, 'w')
    assert path.read_text() == 'old' and not _leftovers(tmp_path)


def _fill_the_disk_after(monkeypatch, n_bytes):
    """os.write writes the first n_bytes for real, then fails with ENOSPC, as a full disk does."""
    real, written = os.write, [0]

    def write(fd, data):
        room = n_bytes - written[0]
        if room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = real(fd, bytes(data)[:room])
        written[0] += n
        return n

    monkeypatch.setattr(fileio.os, 'write', write)


@pytest.mark.parametrize('what', ['checkpoint', 'text'])
def test_a_full_disk_is_reported_as_such_and_leaves_no_temp_file(tmp_path, monkeypatch, what):
    path = tmp_path / ('m-last.pth' if what == 'checkpoint' else 'det.txt')
    if what == 'checkpoint':
        save_checkpoint(path, {'model': {'w': torch.zeros(3)}})
    else:
        write_text(path, 'old')
    before = path.read_bytes()
    _fill_the_disk_after(monkeypatch, 4096)
    with pytest.raises(DiskFullError) as e:
        if what == 'checkpoint':
            save_checkpoint(path, {'model': {'w': torch.zeros(100000)}})  # 400 kB: fails after 4 kB
        else:
            write_text(path, 'x' * 3_000_000)
    monkeypatch.undo()
    assert e.value.errno == errno.ENOSPC and str(path) in str(e.value)
    assert 'No space left on device' in str(e.value) and '\n' not in str(e.value)
    assert path.read_bytes() == before and not _leftovers(tmp_path)


def test_a_full_disk_at_fsync_and_the_cli_line(tmp_path, monkeypatch, capsys):
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(fileio.os, 'fsync', full)
    path = tmp_path / 'out' / 'x-0001.pth'
    monkeypatch.delenv('DFF_DEBUG', raising=False)
    with pytest.raises(SystemExit) as e:
        run_cli(save_checkpoint, str(path), {'model': {}})
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith(f'error: {path}: No space left on device')
    assert len([line for line in err.splitlines() if line.startswith('error:')]) == 1 and 'Traceback' not in err
    assert not os.listdir(tmp_path / 'out')


def test_other_os_errors_stay_what_they_are(tmp_path, monkeypatch):
    def denied(*a, **k):
        raise PermissionError(errno.EACCES, 'Permission denied')

    monkeypatch.setattr(fileio.os, 'replace', denied)
    with pytest.raises(PermissionError):
        write_text(tmp_path / 'a.txt', 'x')
    assert not os.listdir(tmp_path)


def test_loading_never_runs_code(tmp_path):
    marker = tmp_path / 'marker'
    as_torch, as_pickle = code_running_pickles(tmp_path, marker)
    with open(as_pickle, 'rb') as f:  # the files really would write the marker if unpickled as usual
        pickle.load(f)
    assert marker.read_text() == 'code ran'
    marker.unlink()
    with pytest.raises(UnsafeFileError, match=r'evil.pth could not be read safely: it asks for (builtins\.)?exec'):
        load_torch(as_torch)
    with pytest.raises(UnsafeFileError, match='evil.pkl could not be read safely'):
        load_torch(as_pickle)
    with pytest.raises(UnsafeFileError):
        load_checkpoint(as_torch)
    assert not marker.exists()
    for p in (as_torch, as_pickle):
        try:
            load_torch(p)
        except UnsafeFileError as e:
            assert '\n' not in str(e) and isinstance(e, ValueError)


def test_caches_are_read_as_data_and_a_planted_cache_never_runs(tmp_path, capsys):
    """The project's own pickles (the evaluator's gt cache, the roidb cache) are read with load_data_pickle:
    numpy arrays and containers come back; a cache file replaced by a code-running pickle is refused (the
    evaluator then rebuilds it from the annotations) and never runs."""
    import numpy as np
    from lib.evaluation.imagenet_vid_eval import load_gt
    data = {'a': np.arange(6, dtype=np.float32).reshape(2, 3), 'b': [np.int64(3), 'x', (1.5, None)]}
    good = tmp_path / 'good.pkl'
    with open(good, 'wb') as f:
        pickle.dump(data, f, pickle.HIGHEST_PROTOCOL)
    back = load_data_pickle(good)
    assert np.array_equal(back['a'], data['a']) and back['a'].dtype == np.float32 and back['b'] == data['b']

    marker = tmp_path / 'marker'
    _, as_pickle = code_running_pickles(tmp_path, marker)
    with pytest.raises(UnsafeFileError, match=r'evil.pkl could not be read safely: it asks for '):
        load_data_pickle(as_pickle)
    assert not marker.exists()

    ann = tmp_path / 'ann' / 'v'
    ann.mkdir(parents=True)
    (ann / '000000.xml').write_text('<annotation><size><width>32</width><height>24</height></size><object>'
                                    '<trackid>0</trackid><name>n02958343</name><bndbox><xmin>1</xmin><ymin>2</ymin>'
                                    '<xmax>10</xmax><ymax>12</ymax></bndbox><occluded>0</occluded></object></annotation>')
    cache = tmp_path / 'val_gt_cache.pkl'
    cache.write_bytes(open(as_pickle, 'rb').read())  # a planted cache where the evaluator keeps its own
    gt = load_gt(tmp_path / 'ann', [('v/000000', 1)], {'__background__': 0, 'n02958343': 1}, cache_file=cache)
    assert not marker.exists() and 'rebuilding' in capsys.readouterr().err
    assert load_data_pickle(cache)['gt'].keys() == gt.keys()  # rewritten as plain data


def test_unreadable_and_missing_files_name_the_file(tmp_path):
    junk = tmp_path / 'junk.pth'
    junk.write_bytes(b'not a checkpoint')
    with pytest.raises(ValueError, match='junk.pth could not be read'):
        load_torch(junk)
    good = tmp_path / 'good.pth'
    save_torch(good, {'w': torch.zeros(1000)})
    cut = tmp_path / 'cut.pth'
    cut.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(ValueError, match=r'cut.pth could not be read as a torch file \(RuntimeError'):
        load_torch(cut)
    with pytest.raises(FileNotFoundError, match='nothing.pth'):
        load_torch(tmp_path / 'nothing.pth')


def test_checkpoints_written_with_numpy_rng_states_still_load(tmp_path):
    """Training checkpoints written before the RNG states were stored as lists held numpy arrays."""
    path = tmp_path / 'old-last.pth'
    torch.save({'format': 'dff-pytorch-checkpoint-v1', 'model': {'w': torch.ones(2)}, 'x': np.float64(2.5),
                'rng': {'numpy': np.random.get_state(), 'python': random.getstate(), 'torch': torch.get_rng_state()}},
               path)
    ck = load_checkpoint(path)
    assert ck['x'] == 2.5 and np.array_equal(ck['rng']['numpy'][1], np.random.get_state()[1])
    # but not an object array (its items would be unpickled by the restricted unpickler anyway)
    torch.save({'model': {}, 'o': np.array([None, 1], dtype=object)}, tmp_path / 'obj.pth')
    with pytest.raises(UnsafeFileError):
        load_torch(tmp_path / 'obj.pth')


SIGTERM_SCRIPT = r'''
import sys, time
from lib.utils.cli import run_cli
from lib.utils.fileio import atomic_write

def write(f):
    f.write(b'x' * 1000)
    print('writing', flush=True)
    time.sleep(60)

run_cli(atomic_write, sys.argv[1], write)
'''


def test_sigterm_during_a_save_removes_the_temporary_file(tmp_path):
    """A scheduler's cancel or torchrun stopping the other workers sends SIGTERM: the entry scripts (run_cli)
    then clean up as on Ctrl-C (no temporary file left, the target untouched) and exit with status 143."""
    import signal
    import subprocess
    target = tmp_path / 'out' / 'model-0001.pth'
    target.parent.mkdir()
    target.write_bytes(b'before')
    proc = subprocess.Popen([sys.executable, '-c', SIGTERM_SCRIPT, str(target)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == 'writing'
    assert len(os.listdir(target.parent)) == 2  # the target and the temporary file being written
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert 'terminated (SIGTERM)' in err and 'Traceback' not in err
    assert os.listdir(target.parent) == ['model-0001.pth'] and target.read_bytes() == b'before'
