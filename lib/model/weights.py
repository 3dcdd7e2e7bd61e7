"""One door for weights: a file of weights into a module. Every loader of the project goes through here.

    load_weights(module, path, ...)              any file: a checkpoint of this project, a bare state dict,
                                                 an official MXNet .params (lib/model/convert_mxnet.py)
    load_model_weights(model, path, cfg)         a trained model (test scripts, demos): fills all of it
    load_pretrained(module, prefix, epoch, ...)  network.pretrained / pretrained_flow + pretrained_epoch
    apply_state_dict(module, state, source, ...) a state dict already in memory (resuming training)

Files are read with torch.load(weights_only=True) only (lib/utils/fileio.py): a file that would run code is
refused with one line naming it.

Key mapping, explicit (no guessing from the names). Every key has a place in a whole RFCN / DFF model:
- the module's place: `at`; by default 'feature.backbone' for a ResNetV1, 'flownet' for a FlowNetS, '' (the
  whole model, or a module filled by its own names) otherwise (lib/model/convert_mxnet.py: part_path);
- the file's place: a checkpoint of this project (lib/utils/checkpoint.py: 'format' entry) says it in its
  'module' entry ('' or absent: a whole model; the conversions of the official pretrained files say
  'feature.backbone' / 'flownet'); any other file (a bare state dict, or a dict whose 'model' entry is
  one) is at `bare`, by default the module's own place (its keys are the module's own names); an
  official .params file is converted into the part its kind names (the converter checks every name).
The file fills the part both cover: a file whose place lies inside the module's (the backbone file into a
whole model) fills that part and, with partial=True (pretrained weights), leaves the rest as it is; a module
whose place lies inside the file's (a whole checkpoint into model.flownet) takes the file's keys under it and
leaves the others unused. Places that do not nest are an error. `skip` names parts of the module that the
file is not asked to fill (DFF's network.pretrained: 'flownet', filled from network.pretrained_flow).

Within that part every key must be in the file with the model's shape: the missing, unexpected and
mis-shaped keys are all reported in one ValueError (one `error:` line in the entry scripts) that names the
file and, when the checkpoint stores the config it was trained with, the settings that differ from the
current config (ARCHITECTURE_KEYS)."""
import os

import torch

from lib.model.convert_mxnet import cache_path_for, cached_conversion, is_conversion, part_path
from lib.utils.checkpoint import FORMAT, is_checkpoint
from lib.utils.fileio import load_torch

# the settings that decide the shapes of the weights (plus the dataset, which explains most mismatches)
ARCHITECTURE_KEYS = ('dataset.dataset', 'dataset.NUM_CLASSES', 'CLASS_AGNOSTIC', 'network.RESNET_DEPTH',
                     'network.RESNET_UNITS', 'network.RESNET_WIDTH', 'network.TRAIN_BN', 'network.DFF_FEAT_DIM',
                     'network.FLOW_WIDTH_MULT', 'network.NUM_ANCHORS', 'network.ANCHOR_SCALES',
                     'network.ANCHOR_RATIOS')
_ABSENT = object()
GROUP_MIN = 5  # a layer's few keys are listed one by one; a run of more as its first and last


def _under(key, prefix):
    return not prefix or key == prefix or key.startswith(prefix + '.')


def _below(key, prefix):
    """`key` relative to `prefix` (which it is under)."""
    return key[len(prefix) + 1:] if prefix else key


def _join(*parts):
    return '.'.join(p for p in parts if p)


def _where(place):
    return f'model.{place}' if place else 'a whole model'


# ------------------------------------------------------------------------------------------- messages
def _config_value(cfg, dotted):
    node = cfg
    for part in dotted.split('.'):
        if not isinstance(node, dict) or part not in node:
            return _ABSENT
        node = node[part]
    return node


def _plain(v):
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if hasattr(v, 'tolist'):
        return v.tolist()
    return v


def config_differences(stored, cfg, keys=ARCHITECTURE_KEYS):
    """[(key, stored value, current value)] for the keys whose values differ (both present)."""
    if not isinstance(stored, dict) or cfg is None:
        return []
    out = []
    for k in keys:
        a, b = _config_value(stored, k), _config_value(cfg, k)
        if a is not _ABSENT and b is not _ABSENT and _plain(a) != _plain(b):
            out.append((k, _plain(a), _plain(b)))
    return out


def _key_list(keys, universe, describe=str):
    """Every key of `keys`, in the order of `universe` (the model's or the file's keys). A run of at least
    GROUP_MIN keys that are consecutive there is named once: as 'prefix.* (N keys)' when it is a whole
    subtree, else as 'first ... last (N keys)'. describe(key): how a single key is shown."""
    index = {k: i for i, k in enumerate(universe)}
    chosen = sorted(set(keys), key=lambda k: index.get(k, len(index)))
    runs = []
    for k in chosen:
        if runs and k in index and runs[-1][-1] in index and index[k] == index[runs[-1][-1]] + 1:
            runs[-1].append(k)
        else:
            runs.append([k])
    out = []
    for run in runs:
        if len(run) < GROUP_MIN:
            out += [describe(k) for k in run]
            continue
        first, last = run[0].split('.'), run[-1].split('.')
        n = 0
        while n < min(len(first), len(last)) - 1 and first[n] == last[n]:
            n += 1
        prefix = '.'.join(first[:n])
        whole = sum(_under(k, prefix) for k in universe) == len(run)
        example = f', e.g. {describe(run[0])}' if describe is not str else ''
        if whole and not prefix:
            out.append(f'all {len(run)} keys{example}')
        elif whole:
            out.append(f'{prefix}.* ({len(run)} keys{example})')
        else:
            out.append(f'{run[0]} ... {run[-1]} ({len(run)} keys{example})')
    return ', '.join(out)


def _mismatch(source, module, missing, unexpected, bad, own, mapped, cfg, stored_cfg):
    """The one-line message: every missing, unexpected and mis-shaped key, and the settings that differ."""
    parts = []
    if bad:
        def shapes(k):
            v = mapped[k]
            return (f'{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}' if torch.is_tensor(v)
                    else f'{k}: file has a {type(v).__name__}, not a tensor')
        parts.append(f'{len(bad)} key(s) of another shape: ' + _key_list(bad, [k for k in mapped if k in own], shapes))
    if missing:
        parts.append(f'{len(missing)} key(s) missing in the file: {_key_list(missing, list(own))}')
    if unexpected:
        parts.append(f'{len(unexpected)} key(s) of the file not in the model: {_key_list(unexpected, list(mapped))}')
    msg = f'{source} does not fit the {type(module).__name__} built from the config: ' + '; '.join(parts)
    diff = config_differences(stored_cfg, cfg)
    if diff:
        msg += '. The checkpoint was trained with ' + ', '.join(f'{k}={a!r} (this config: {b!r})' for k, a, b in diff)
    else:
        msg += ('. Check the config the model is built from (dataset.NUM_CLASSES, network.RESNET_UNITS, '
                'DFF_FEAT_DIM, ...)' + ('' if isinstance(stored_cfg, dict) else '; the file stores no config'))
    return msg


# ------------------------------------------------------------------------------------------- the door
def apply_state_dict(module, state, source, *, at=None, place=None, partial=False, skip=(), allow_missing=(),
                     cfg=None, stored_cfg=None):
    """Load `state` (a state dict whose keys sit at `place` in a whole model) into `module` (at `at`),
    per the mapping above; returns (loaded module keys, unused file keys). Nothing is loaded unless
    everything fits."""
    at = part_path(module) if at is None else at
    place = at if place is None else place
    if _under(at, place):      # the module inside the file's part (or the same part)
        sub = '' if at == place else _below(at, place)
        mapped = {_below(k, sub): v for k, v in state.items() if _under(k, sub)}
        unused = [k for k in state if not _under(k, sub)]
        covered = ''
    elif _under(place, at):    # the file's part inside the module
        covered = _below(place, at)
        mapped = {_join(covered, k): v for k, v in state.items()}
        unused = []
    else:
        raise ValueError(f'{source} holds the weights of {_where(place)}, which is not part of the '
                         f'{type(module).__name__} being loaded ({_where(at)})')
    skipped = [k for k in mapped if any(_under(k, s) for s in skip)]
    for k in skipped:
        del mapped[k]
    own = module.state_dict()
    region = [k for k in own if (partial is False or _under(k, covered)) and not any(_under(k, s) for s in skip)]
    allow = set(allow_missing)
    missing = [k for k in region if k not in mapped and k not in allow]
    unexpected = [k for k in mapped if k not in own]
    bad = [k for k, v in mapped.items() if k in own and (not torch.is_tensor(v) or v.shape != own[k].shape)]
    if missing or unexpected or bad:
        raise ValueError(_mismatch(source, module, missing, unexpected, bad, own, mapped, cfg, stored_cfg))
    module.load_state_dict(mapped, strict=False)  # every key is the module's, with its shape
    return list(mapped), unused + skipped


def read_weights(path, bare=''):
    """A .pth / bare file -> (state dict, its place in a whole model, stored config or None, the dict read)."""
    obj = load_torch(path)
    if is_checkpoint(obj):
        place = obj.get('module') or ''
        if not isinstance(place, str):
            raise ValueError(f"{path}: its 'module' entry must name a part of the model, got {place!r}")
        return obj['model'], place, obj.get('cfg'), obj
    state = obj.get('model') if isinstance(obj, dict) and isinstance(obj.get('model'), dict) else obj
    if not isinstance(state, dict) or not state:
        raise ValueError(f'{path} is neither a checkpoint of this project nor a state dict (names -> tensors): '
                         f'it holds {"an empty dict" if isinstance(state, dict) else type(state).__name__}')
    odd = [k for k, v in state.items() if not torch.is_tensor(v)]
    if odd:
        raise ValueError(f'{path} is neither a checkpoint of this project nor a state dict (names -> tensors): '
                         f'{len(odd)} entries are not tensors, e.g. {odd[:3]}')
    return state, bare, obj.get('cfg') if isinstance(obj.get('cfg'), dict) else None, obj


def load_weights(module, path, *, at=None, bare=None, partial=False, skip=(), kinds=None, cfg=None, log=print,
                 loaded=None, read=None, **convert_kw):
    """Load the file at `path` into `module` (mapping: the module docstring). kinds: the kinds of official
    .params accepted (convert_mxnet.KINDS); cfg: the config the module was built from (compared with the
    checkpoint's on a mismatch); loaded: the content of the .params' cache if the caller has read it
    already; read: read_weights(path)'s result if the caller has it (a .pth or bare file read once). Returns a
    dict: path, place (where the file's keys sit in a whole model), loaded (module keys
    filled), unused (file keys not used), checkpoint (the dict read; for a .params, its conversion as a
    checkpoint), kind (of a .params, else None)."""
    path = os.fspath(path)
    at = part_path(module) if at is None else at
    if path.endswith('.params'):
        state, target, info = cached_conversion(path, module, kinds=kinds, log=log, loaded_cache=loaded,
                                                **convert_kw)
        place = _join(at, info['module_path']) if target is not module else at
        own = target.state_dict()
        keys, unused = apply_state_dict(target, state, path, at=place, place=place, cfg=cfg,
                                        allow_missing=[k for k in own if k not in state])  # kept: see the converter
        ck = {'model': state, 'format': FORMAT, 'kind': info['kind'], 'module': place,
              'converted_from': os.path.abspath(path)}
        return {'path': path, 'place': place, 'loaded': [_join(info['module_path'], k) for k in keys],
                'unused': unused, 'checkpoint': ck, 'kind': info['kind']}
    if read is None and not os.path.isfile(path):
        raise FileNotFoundError(f'weights not found: {path}')
    state, place, stored_cfg, obj = read if read is not None else read_weights(path, at if bare is None else bare)
    keys, unused = apply_state_dict(module, state, path, at=at, place=place, partial=partial, skip=skip, cfg=cfg,
                                    stored_cfg=stored_cfg)
    return {'path': path, 'place': place, 'loaded': keys, 'unused': unused, 'checkpoint': obj, 'kind': None}


def load_model_weights(model, path, cfg=None, log=print, read=None):
    """A trained model for testing: a checkpoint of this project or an official trained .params
    (rfcn_vid-0000.params, rfcn_dff_flownet_vid-0000.params: converted on the fly, `rfcn_bbox_*_test`
    preferred, cached as <path minus .params>.pth next to it when the folder is writable). The file must
    fill the whole model. Returns the checkpoint dict (for a .params: its conversion)."""
    return load_weights(model, path, kinds=('rfcn', 'dff'), cfg=cfg, log=log, read=read)['checkpoint']


# ------------------------------------------------------------------------------------------- pretrained
def pretrained_candidates(prefix, epoch):
    """The files network.pretrained(_flow) + pretrained_epoch may name, first match wins (the original
    loads <prefix>-<epoch:04d>.params): <prefix>-<epoch:04d>.pth, <prefix>.pth, <prefix> itself, and the
    official <prefix>-<epoch:04d>.params (converted on the fly, cached as <prefix>-<epoch:04d>.pth; a .pth
    there that is such a cache but of another version of the .params, or for another network, is redone;
    a .pth of another origin is used as it is and never overwritten)."""
    return [f'{prefix}-{int(epoch):04d}.pth', f'{prefix}.pth', prefix, f'{prefix}-{int(epoch):04d}.params']


def load_pretrained(module, prefix, epoch, what='network.pretrained', log=print, bare=None, skip=(), cfg=None):
    """Initial weights for `module` from network.pretrained / pretrained_flow (empty prefix: random
    initialisation, as the CPU configs). The file fills the part it holds (partial); within it every key
    must fit. bare: where a bare state dict's keys sit (default: the module's own names); skip: parts left
    to another file. With the official .params the module is, or contains, what the file converts into:
    the ResNetV1 backbone for resnet_v1_101-0000.params, the FlowNetS for flownet-0000.params (ImageNet
    classifier fc1000_* ignored; Convolution5_scale keeps its init). Returns (loaded, unused) key lists."""
    if not prefix:
        return [], []
    candidates = pretrained_candidates(prefix, epoch)
    path = next((p for p in candidates if os.path.isfile(p)), None)
    if path is None:
        raise FileNotFoundError(
            f"{what} = {prefix!r}: none of {candidates} exists. Put the official MXNet file or the converted "
            f"weights there (docs/official_models.md), or set {what}: '' to start from random weights.")
    params, content = candidates[-1], None
    kinds = ('resnet', 'flownet')
    if not path.endswith('.params') and os.path.isfile(params) and (
            os.path.abspath(path) == os.path.abspath(cache_path_for(params))):
        content = load_torch(path)
        if is_conversion(content):  # the cache of the official file: valid only while it fits the file
            path = params
    if path.endswith('.params'):
        info = load_weights(module, path, kinds=kinds, cfg=cfg, log=log, loaded=content)
    else:
        info = load_weights(module, path, bare=bare, partial=True, skip=skip, cfg=cfg, log=log)
    into = f' into {_where(info["place"])}' if info['place'] else ''
    log(f'{what}: loaded {len(info["loaded"])} tensors from {path}{into} ({len(info["unused"])} unused keys in '
        f'the file)')
    return info['loaded'], info['unused']


__all__ = ['ARCHITECTURE_KEYS', 'apply_state_dict', 'config_differences', 'load_model_weights', 'load_pretrained',
           'load_weights', 'pretrained_candidates', 'read_weights']
