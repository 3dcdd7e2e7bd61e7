"""Checkpoint files: written to a temporary file in the same folder, then renamed, so a crash or a
kill never leaves a half-written checkpoint under the final name."""
import os

import torch

FORMAT = 'dff-pytorch-checkpoint-v1'


def _atomic_save(obj, path):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f'.{os.path.basename(path)}.tmp{os.getpid()}')
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save_checkpoint(path, state):
    _atomic_save(dict(state, format=FORMAT), path)


def load_checkpoint(path, map_location='cpu'):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ck = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # noqa: BLE001 - report which file is broken
        raise ValueError(f"checkpoint {path} could not be read ({type(e).__name__}: {e})") from e
    if not isinstance(ck, dict) or 'model' not in ck:
        raise ValueError(f"{path} is not a checkpoint of this project (no 'model' entry)")
    return ck


def load_model_weights(model, path, strict=True):
    """Load the 'model' entry of a checkpoint into `model` with a clear message on mismatch.

    `path` may also be an official MXNet checkpoint (`rfcn_vid-0000.params`,
    `rfcn_dff_flownet_vid-0000.params`): converted on the fly into `model` (lib/model/convert_mxnet.py;
    every name must fit, `rfcn_bbox_*_test` preferred) and cached as `<path minus .params>.pth` next to it
    when the folder is writable. Returns the checkpoint dict (for a .params: the converted one)."""
    if str(path).endswith('.params'):
        from lib.model.convert_mxnet import cached_conversion
        state, _, info = cached_conversion(path, model, kinds=('rfcn', 'dff'), strict=strict)
        ck = {'model': state, 'format': FORMAT, 'kind': info['kind'], 'converted_from': os.path.abspath(path)}
    else:
        ck = load_checkpoint(path)
    missing, unexpected = model.load_state_dict(ck['model'], strict=False)
    if strict and (missing or unexpected):
        raise ValueError(f"{path} does not fit the model built from the config: missing keys {missing[:10]}"
                         f"{' ...' if len(missing) > 10 else ''}, unexpected keys {unexpected[:10]}"
                         f"{' ...' if len(unexpected) > 10 else ''}")
    return ck


def save_state_dict(path, state_dict):
    """A bare state dict (pretrained weights), written atomically like the checkpoints."""
    _atomic_save(state_dict, path)
