"""Checkpoint files of this project: {'format': FORMAT, 'model': state dict, ...} plus, for training
checkpoints, 'optimizer', the position in the schedule, 'rng' and 'cfg'. Written atomically and read with
torch.load(weights_only=True) (lib/utils/fileio.py), so every entry is a tensor or a plain value.

'module' (optional): where the state dict's keys sit in a whole RFCN / DFF model ('' or absent: the whole
model; 'feature.backbone', 'flownet': that part). Loading a file into a module: lib/model/weights.py."""
import os

from lib.utils.fileio import load_torch, save_torch

FORMAT = 'dff-pytorch-checkpoint-v1'


def save_checkpoint(path, state):
    save_torch(path, dict(state, format=FORMAT))


def save_state_dict(path, state_dict):
    """A bare state dict (pretrained weights), written atomically like the checkpoints."""
    save_torch(path, state_dict)


def is_checkpoint(obj):
    """Whether a loaded file is a checkpoint of this project (not a bare state dict)."""
    return isinstance(obj, dict) and obj.get('format') == FORMAT and isinstance(obj.get('model'), dict)


def load_checkpoint(path, map_location='cpu'):
    """A checkpoint of this project (a dict with a 'model' entry), read safely."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    ck = load_torch(path, map_location=map_location)
    if not isinstance(ck, dict) or not isinstance(ck.get('model'), dict):
        raise ValueError(f"{path} is not a checkpoint of this project (no 'model' entry)")
    return ck
