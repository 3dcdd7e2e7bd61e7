"""Helpers for the end-to-end tests: a tiny synthetic dataset and command lines for the entry scripts."""
import os
import subprocess
import sys

import torch

from lib.utils.fileio import load_torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# a few images of 96 x 160: enough for every code path, seconds per run
TINY_SYNTHETIC = {'height': 96, 'width': 160, 'train_videos': 2, 'train_frames': 20, 'det_images': 4,
                  'val_videos': 1, 'val_frames': 8, 'flow_pairs': 0}


def tiny_overrides(tmp, extra_synthetic=None, **sizes):
    synth = dict(TINY_SYNTHETIC, **(extra_synthetic or {}))
    synth.update(sizes)
    sets = [f'dataset.SYNTHETIC.{k}={v}' for k, v in synth.items()]
    return sets + [f'dataset.dataset_path={tmp}/synthetic_vid', f'dataset.root_path={tmp}/data',
                   f'output_path={tmp}/output', 'SCALES=[96,160]', 'TRAIN.NUM_WORKERS=0', 'default.frequent=1']


def run_script(script, cfg, overrides, *flags, torchrun=0, timeout=600, check=True):
    """Run an entry script (optionally under torchrun --nproc_per_node N) and return the CompletedProcess."""
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT)
    cmd = [sys.executable]
    if torchrun:
        cmd += ['-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={torchrun}']
    cmd += [os.path.join(ROOT, script), '--cfg', os.path.join(ROOT, cfg), *flags, '--set', *overrides]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed with {proc.returncode}:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def load_state(path):
    return load_torch(path)


def assert_same_state(a, b, rtol=1e-5, atol=1e-6):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=rtol, atol=atol, msg=lambda m, k=k: f'{k}: {m}')


class _WritesAFile:
    """Unpickling this runs code that writes `marker` (what a malicious checkpoint would do)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('code ran')",)


def code_running_pickles(folder, marker):
    """Two files that write `marker` when unpickled: a torch.save zip with the object inside a checkpoint's
    'model' entry, and a plain pickle. Returns their paths."""
    import pickle
    folder = str(folder)
    as_torch, as_pickle = os.path.join(folder, 'evil.pth'), os.path.join(folder, 'evil.pkl')
    torch.save({'format': 'dff-pytorch-checkpoint-v1', 'model': {'w': _WritesAFile(marker)}}, as_torch)
    with open(as_pickle, 'wb') as f:
        pickle.dump(_WritesAFile(marker), f)
    return as_torch, as_pickle
