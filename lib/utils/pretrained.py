"""Initial weights named by network.pretrained / pretrained_flow + pretrained_epoch (spec 4.2).

The original loads `<prefix>-<epoch:04d>.params`. Here `<prefix>-<epoch:04d>.pth` (a state dict in this
project's names, or a checkpoint's 'model' entry) or `<prefix>.pth` are accepted; an empty prefix
means random initialisation (the CPU configs train from scratch)."""
import os

import torch


def pretrained_candidates(prefix, epoch):
    return [f'{prefix}-{int(epoch):04d}.pth', f'{prefix}.pth', prefix]


def load_pretrained(module, prefix, epoch, what='network.pretrained', log=print):
    """Load matching keys into `module`; returns (loaded, skipped) key lists. Shapes must agree."""
    if not prefix:
        return [], []
    path = next((p for p in pretrained_candidates(prefix, epoch) if os.path.isfile(p)), None)
    if path is None:
        raise FileNotFoundError(
            f"{what} = {prefix!r}: none of {pretrained_candidates(prefix, epoch)} exists. Put the converted "
            f"weights there, or set {what}: '' to start from random weights (README: Models).")
    state = torch.load(path, map_location='cpu', weights_only=False)
    if isinstance(state, dict) and 'model' in state and isinstance(state['model'], dict):
        state = state['model']
    own = module.state_dict()
    loaded, skipped, bad = [], [], []
    for k, v in state.items():
        if k not in own:
            skipped.append(k)
        elif own[k].shape != v.shape:
            bad.append(f'{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}')
        else:
            own[k] = v
            loaded.append(k)
    if bad:
        raise ValueError(f"{path}: shape mismatch for {len(bad)} key(s): " + '; '.join(bad[:10]))
    module.load_state_dict(own)
    log(f'{what}: loaded {len(loaded)} tensors from {path} ({len(skipped)} unused keys in the file)')
    return loaded, skipped
