"""What a result was computed from, for eval.json: the checkpoint file (path, size, sha256), the effective
config, the git commit of this code, the torch / CUDA versions and the device."""
import functools
import hashlib
import os
import subprocess

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def plain(obj):
    """A config (easydict, numpy arrays, tuples) as plain JSON-able Python."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


@functools.lru_cache(maxsize=16)
def _sha256(path, size, mtime_ns):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def file_info(path):
    """{'path': absolute path, 'size': bytes, 'sha256': hex}; None when `path` is empty or not a file."""
    if not path or not os.path.isfile(path):
        return None
    path = os.path.abspath(path)
    st = os.stat(path)
    return {'path': path, 'size': st.st_size, 'sha256': _sha256(path, st.st_size, st.st_mtime_ns)}


def git_commit(root=ROOT):
    """{'commit': HEAD, 'dirty': uncommitted changes to tracked files}, or None outside a git checkout."""
    try:
        head = subprocess.run(['git', '-C', root, 'rev-parse', 'HEAD'], capture_output=True, text=True, timeout=30)
        if head.returncode:
            return None
        status = subprocess.run(['git', '-C', root, 'status', '--porcelain', '--untracked-files=no'],
                                capture_output=True, text=True, timeout=30)
        return {'commit': head.stdout.strip(), 'dirty': bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return None


def device_info(device):
    """The torch device as a record: type, and for CUDA the index, the GPU's name and capability."""
    device = torch.device(device)
    info = {'device': str(device)}
    if device.type == 'cuda':
        index = device.index if device.index is not None else torch.cuda.current_device()
        info.update(name=torch.cuda.get_device_name(index),
                    capability='.'.join(map(str, torch.cuda.get_device_capability(index))))
    return info


def run_record(cfg, checkpoint, device, settings=None):
    """The 'run' entry of eval.json."""
    return {'checkpoint': file_info(checkpoint) if checkpoint else None,
            'checkpoint_given': None if not checkpoint else os.fspath(checkpoint),
            'settings': dict(settings or {}),
            'config': plain(cfg),
            'git': git_commit(),
            'torch': torch.__version__, 'cuda': torch.version.cuda,
            'cudnn': torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            'tf32': bool(torch.backends.cudnn.allow_tf32),
            **device_info(device)}
