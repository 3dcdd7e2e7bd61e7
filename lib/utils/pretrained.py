"""Initial weights named by network.pretrained / pretrained_flow + pretrained_epoch (spec 4.2).

The original loads `<prefix>-<epoch:04d>.params`. Accepted here, first match wins:

    <prefix>-<epoch:04d>.pth     a state dict in this project's names, or a checkpoint's 'model' entry
                                 (what model/convert_mxnet.py writes)
    <prefix>.pth, <prefix>       the same
    <prefix>-<epoch:04d>.params  the official MXNet file itself (resnet_v1_101-0000.params,
                                 flownet-0000.params): converted on the fly (lib/model/convert_mxnet.py)
                                 and cached as <prefix>-<epoch:04d>.pth next to it when the folder is
                                 writable. A .pth that is such a cache but was made from another version
                                 of the .params (size / mtime differ) or for another network is redone;
                                 a .pth of another origin is used as it is and never overwritten.

An empty prefix means random initialisation (the CPU configs train from scratch)."""
import os

import torch


def pretrained_candidates(prefix, epoch):
    return [f'{prefix}-{int(epoch):04d}.pth', f'{prefix}.pth', prefix, f'{prefix}-{int(epoch):04d}.params']


def _is_conversion_of(pth, params):
    """Whether `pth` is the cache of the official `params` file (then the .params decides)."""
    from lib.model.convert_mxnet import cache_path_for
    return os.path.abspath(pth) == os.path.abspath(cache_path_for(params))


def _align_keys(state, own):
    """The file's keys as the module names them: as they are, or with a leading module path removed
    or added (a backbone-only file into a whole model, a whole checkpoint into model.flownet, ...),
    whichever matches the most keys."""
    keys = list(state)
    prefixes = {''}
    for k in keys[:1] + keys[-1:]:
        parts = k.split('.')
        prefixes.update('.'.join(parts[:n]) + '.' for n in range(1, len(parts)))
    own_prefixes = {''}
    for k in list(own)[:1] + list(own)[-1:]:
        parts = k.split('.')
        own_prefixes.update('.'.join(parts[:n]) + '.' for n in range(1, len(parts)))
    best, best_n = state, sum(k in own for k in keys)
    for strip in prefixes:
        for add in own_prefixes:
            if not strip and not add:
                continue
            mapped = {add + k[len(strip):]: v for k, v in state.items() if k.startswith(strip)}
            n = sum(k in own for k in mapped)
            if n > best_n:
                best, best_n = mapped, n
    return best


def _apply(module, state, path, what, log):
    own = module.state_dict()
    state = _align_keys(state, own)
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


def load_pretrained(module, prefix, epoch, what='network.pretrained', log=print):
    """Load matching keys into `module`; returns (loaded, skipped) key lists. Shapes must agree.

    With the official .params the module must be what the file converts into: the ResNetV1 backbone
    (model.feature.backbone) for resnet_v1_101-0000.params, the FlowNetS (model.flownet) for
    flownet-0000.params (a whole RFCN / DFF model also works: the matching part is filled); every name
    of the file must fit it (ImageNet classifier fc1000_* ignored; Convolution5_scale keeps its init)."""
    if not prefix:
        return [], []
    candidates = pretrained_candidates(prefix, epoch)
    path = next((p for p in candidates if os.path.isfile(p)), None)
    if path is None:
        raise FileNotFoundError(
            f"{what} = {prefix!r}: none of {candidates} exists. Put the official MXNet file or the converted "
            f"weights there (docs/official_models.md), or set {what}: '' to start from random weights.")
    params = candidates[-1]
    if path == params or path.endswith('.params'):  # (a prefix naming the .params file itself)
        return _from_params(module, path, what, log)
    state = torch.load(path, map_location='cpu', weights_only=False)
    if os.path.isfile(params) and _is_conversion_of(path, params):
        from lib.model.convert_mxnet import is_conversion
        if is_conversion(state):  # the cache of the official file: valid only while it fits the file
            return _from_params(module, params, what, log, loaded_cache=state)
    if isinstance(state, dict) and 'model' in state and isinstance(state['model'], dict):
        state = state['model']
    return _apply(module, state, path, what, log)


def _from_params(module, params, what, log, loaded_cache=None):
    from lib.model.convert_mxnet import cached_conversion
    state, target, info = cached_conversion(params, module, kinds=('resnet', 'flownet'), log=log,
                                            loaded_cache=loaded_cache)
    where = f' into {info["module_path"]}' if info['module_path'] and target is not module else ''
    return _apply(target, state, params + where, what, log)
