"""Official MXNet checkpoints -> this port's state dicts (docs/fidelity.md §10.3).

The four files of the official release and what each converts into:

    kind     file (official name)                   target module         key prefix in the full model
    resnet   pretrained_model/resnet_v1_101-0000    ResNetV1 backbone     feature.backbone.
    flownet  pretrained_model/flownet-0000          FlowNetS              flownet.
    rfcn     rfcn_vid-0000                          RFCN (frame baseline) (whole model)
    dff      rfcn_dff_flownet_vid-0000              DFF                   (whole model)

The kind is told from the names (detect_kind). Names map one-to-one to state-dict keys
(lib/model/mxnet_names.py): conv `X_weight/X_bias`, BN `X_gamma/X_beta` + aux `X_moving_mean/X_moving_var`
into the FrozenBatchNorm2d modules, Deconvolution weights (in, out, 4, 4) straight into ConvTranspose2d.
Every name is accounted for: a name of the module that the file lacks, a name in the file that the module
lacks, or a shape that differs is an error (MXNetConversionError) that lists all of them at once. Three
exceptions, all reported in Conversion.ignored / .kept:

- the ImageNet classifier of the pretrained ResNet (`fc1000_weight`, `fc1000_bias`) is ignored by name;
- a pretrained FlowNet file has no `Convolution5_scale` (it is DFF's own layer): the module keeps its
  initial values (weight 0, bias 1);
- trained files: `rfcn_bbox_{weight,bias}_test` (written at every checkpoint by the original, bbox
  regression de-normalised by TRAIN.BBOX_STDS / BBOX_MEANS) are preferred over `rfcn_bbox_*`, as the
  original tester does (load_param(process=True)); the plain pair is then ignored as superseded.

rfcn_bbox and de-normalisation. This port's rfcn_bbox predicts normalised deltas and the heads
de-normalise the output at test time (lib/model/detection.py: bbox_pred * stds + means, per 4-tuple).
The original folds that into the `_test` weights instead: for output channel c (of 49 * 4 * 2, class-
major psroi layout, so c // 49 is the delta index j of the 8 = 2 classes x 4):
    W_test[c] = W[c] * std8[j]          b_test[c] = b[c] * std8[j] + mean8[j]
with std8 / mean8 = BBOX_STDS / BBOX_MEANS tiled over the regression classes. The converter inverts it
(W = W_test / std8[j], b = (b_test - mean8[j]) / std8[j], in float64, then float32), so the port's
output (W x + b) * std + mean equals the MXNet output W_test x + b_test up to float32 rounding
(tests/test_convert_mxnet.py checks this on MXNet-computed outputs). If a trained file has no `_test`
pair, the original tester uses `rfcn_bbox_*` exactly as stored, i.e. as already de-normalised; that is
the default here too (plain_bbox='denormalized'); plain_bbox='normalized' takes them as raw training
weights (a checkpoint saved without the original's callback).

API:
    params = lib.utils.mxnet_params.load_params(path)
    conv = convert_params(params, model)      # model: the target module or a whole RFCN / DFF model
    conv.module.load_state_dict(conv.state_dict)
    conv = convert_file(path, cfg)            # builds the target from cfg (meta device) and converts
    build_target(kind, cfg)                   # the module a kind converts into
    cached_conversion(path, module)           # convert once, cache <path minus .params>.pth next to it
    register_model('rfcn', RFCN)              # the builder of a whole-model kind (rfcn/model.py and
                                              # dff_rfcn/model.py register theirs; the parts ResNetV1 and
                                              # FlowNetS live here), so the converter never imports a variant

Loading a file of weights into a module (any kind of file, this converter for .params): lib/model/weights.py.
"""
import fnmatch
import os
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn

from lib.utils.checkpoint import save_checkpoint
from lib.utils.fileio import load_torch
from lib.utils.mxnet_params import load_params

from .flownet import FlowNetS, build_flownet
from .mxnet_names import torch_to_mxnet
from .resnet_v1 import ResNetV1, build_backbone

KINDS = OrderedDict([
    ('resnet', 'pretrained ResNet-v1 (ImageNet classifier), e.g. model/pretrained_model/resnet_v1_101-0000.params'),
    ('flownet', 'pretrained FlowNet-S (Flying Chairs), e.g. model/pretrained_model/flownet-0000.params'),
    ('rfcn', 'trained frame baseline R-FCN, e.g. model/rfcn_vid-0000.params'),
    ('dff', 'trained DFF (R-FCN + FlowNet), e.g. model/rfcn_dff_flownet_vid-0000.params'),
])
# path of the target module inside a whole RFCN / DFF model
MODULE_PATH = {'resnet': 'feature.backbone', 'flownet': 'flownet', 'rfcn': '', 'dff': ''}
# names deliberately not converted, with the reason (any kind)
IGNORED_BY_NAME = {
    'arg:fc1000_weight': 'ImageNet classifier of the pretrained ResNet, not part of the detector',
    'arg:fc1000_bias': 'ImageNet classifier of the pretrained ResNet, not part of the detector',
}
# names a file of the kind may lack; the module keeps its initial values for them
OPTIONAL = {'flownet': {'arg:Convolution5_scale_weight': 'initial value kept (weight 0: scale map starts at 1)',
                        'arg:Convolution5_scale_bias': 'initial value kept (bias 1, frozen)'}}
BBOX_W, BBOX_B = 'arg:rfcn_bbox_weight', 'arg:rfcn_bbox_bias'
BBOX_W_TEST, BBOX_B_TEST = 'arg:rfcn_bbox_weight_test', 'arg:rfcn_bbox_bias_test'
PLAIN_BBOX_MODES = ('denormalized', 'normalized')
CACHE_FORMAT = 'dff-pytorch-from-mxnet-v1'
NO_COUNTERPART = 'no MXNet counterpart (nn.BatchNorm2d step counter), left as is'
# the class of the module a part kind converts into
PART_TYPES = {'resnet': ResNetV1, 'flownet': FlowNetS}
# builder(cfg) of the module each kind converts into; the whole models register theirs (register_model)
BUILDERS = {'resnet': build_backbone, 'flownet': build_flownet}
# the module that registers the builder of a whole-model kind
REGISTERED_BY = {'rfcn': 'rfcn.model', 'dff': 'dff_rfcn.model'}


def register_model(kind, builder):
    """Tell the converter how to build the whole model a trained file of `kind` ('rfcn', 'dff') converts
    into: builder(cfg) -> module (e.g. the model class)."""
    if kind not in REGISTERED_BY:
        raise ValueError(f'only the whole-model kinds {sorted(REGISTERED_BY)} are registered, not {kind!r}')
    BUILDERS[kind] = builder


def is_part(module, kind):
    cls = PART_TYPES.get(kind)
    return cls is not None and isinstance(module, cls)


def part_path(module):
    """Where `module` sits in a whole RFCN / DFF model: 'feature.backbone' for a ResNetV1, 'flownet' for a
    FlowNetS, '' for anything else (a whole model, or a module filled by its own names)."""
    for kind in ('resnet', 'flownet'):
        if is_part(module, kind):
            return MODULE_PATH[kind]
    return ''


class MXNetConversionError(ValueError):
    """The file does not fit the module; the message lists every missing / unexpected / mis-shaped name."""


@dataclass
class Conversion:
    kind: str
    module: nn.Module                      # the target module the state dict belongs to
    module_path: str                       # its path in a whole RFCN / DFF model ('' = the whole model)
    state_dict: 'OrderedDict[str, torch.Tensor]'
    source: str = '<params>'
    used: dict = field(default_factory=dict)      # MXNet name -> torch key
    ignored: dict = field(default_factory=dict)   # MXNet name -> reason
    kept: dict = field(default_factory=dict)      # torch key -> reason (not in the file, initial value kept)
    missing: list = field(default_factory=list)     # only with strict=False
    unexpected: list = field(default_factory=list)  # only with strict=False
    notes: list = field(default_factory=list)

    def summary(self):
        """Human-readable lines: what was converted, ignored, kept."""
        n_el = sum(int(t.numel()) for t in self.state_dict.values())
        where = f' (model.{MODULE_PATH[self.kind]} of an RFCN / DFF model)' if MODULE_PATH[self.kind] else ''
        lines = [f'{self.source}: {KINDS[self.kind]}',
                 f'  converted {len(self.used)} arrays ({n_el:,} values) into {type(self.module).__name__}{where}']
        for n, why in self.ignored.items():
            lines.append(f'  ignored {n}: {why}')
        counters = [k for k, why in self.kept.items() if why == NO_COUNTERPART]
        for k, why in self.kept.items():
            if why != NO_COUNTERPART:
                lines.append(f'  not in the file: {k}: {why}')
        if counters:
            lines.append(f'  {len(counters)} keys without an MXNet counterpart left as they are (e.g. {counters[0]})')
        for n in self.missing:
            lines.append(f'  MISSING in the file (strict=False): {n}')
        for n in self.unexpected:
            lines.append(f'  UNEXPECTED in the file (strict=False): {n}')
        lines += [f'  note: {s}' for s in self.notes]
        return lines


# ---------------------------------------------------------------------------------------------- kinds
def with_prefixes(params):
    """Names without 'arg:' / 'aux:' (a bare `arg_params` dict saved as is) get them: aux for BN moving
    statistics, arg otherwise. Returns (new OrderedDict, number of names changed)."""
    out, changed = OrderedDict(), 0
    for n, a in params.items():
        if not n.startswith(('arg:', 'aux:')):
            n = ('aux:' if n.endswith(('_moving_mean', '_moving_var')) else 'arg:') + n
            changed += 1
        if n in out:
            raise MXNetConversionError(f'name {n} occurs twice (with and without its arg:/aux: prefix)')
        out[n] = a
    return out, changed


def detect_kind(names, source='<params>'):
    """'resnet' | 'flownet' | 'rfcn' | 'dff' from the parameter names (with arg:/aux: prefixes)."""
    names = set(names)
    resnet = 'arg:conv1_weight' in names or 'arg:bn_conv1_gamma' in names
    flow = 'arg:flow_conv1_weight' in names or 'arg:Convolution5_weight' in names
    heads = any(n in names for n in ('arg:rfcn_cls_weight', 'arg:rpn_cls_score_weight', 'arg:feat_conv_3x3_weight'))
    if heads and flow:
        return 'dff'
    if heads:
        return 'rfcn'
    if flow and not resnet:
        return 'flownet'
    if resnet and not flow:
        return 'resnet'
    sample = sorted(names)[:8]
    raise MXNetConversionError(
        f'{source}: cannot tell which official model this is (resnet: conv1_weight; flownet: flow_conv1_weight; '
        f'rfcn: rfcn_cls_weight / rpn_cls_score_weight without flow_conv1; dff: both). '
        f'Found {len(names)} names, e.g. {sample}')


def select_module(model, kind):
    """(target module, its path in the whole model) for a file of `kind`. `model` may be the target
    itself (ResNetV1 for resnet, FlowNetS for flownet) or a whole RFCN / DFF model."""
    name = type(model).__name__
    if kind == 'resnet':
        if is_part(model, 'resnet'):
            return model, ''
        if hasattr(model, 'feature') and is_part(getattr(model.feature, 'backbone', None), 'resnet'):
            return model.feature.backbone, MODULE_PATH[kind]
    elif kind == 'flownet':
        if is_part(model, 'flownet'):
            return model, ''
        if is_part(getattr(model, 'flownet', None), 'flownet'):
            return model.flownet, MODULE_PATH[kind]
    elif kind in ('rfcn', 'dff'):
        has_flow = is_part(getattr(model, 'flownet', None), 'flownet')
        if hasattr(model, 'feature') and hasattr(model, 'heads') and has_flow == (kind == 'dff'):
            return model, ''
        hint = (' (a trained DFF file holds the baseline layers plus the FlowNet: build a DFF model)' if kind == 'dff'
                else ' (a trained R-FCN file has no FlowNet: build an RFCN model)')
        raise MXNetConversionError(f'a {kind} file ({KINDS[kind]}) converts into a whole '
                                   f'{"DFF" if kind == "dff" else "RFCN"} model, not a {name}{hint}')
    else:
        raise ValueError(f'unknown kind {kind!r}; one of {list(KINDS)}')
    raise MXNetConversionError(f'a {kind} file ({KINDS[kind]}) converts into a '
                               f'{"ResNetV1" if kind == "resnet" else "FlowNetS"} (or a model containing one), '
                               f'not a {name}')


def build_target(kind, cfg, device=None):
    """The module a file of `kind` converts into, built from cfg (network.RESNET_UNITS / RESNET_WIDTH /
    DFF_FEAT_DIM / FLOW_WIDTH_MULT / dataset.NUM_CLASSES give reduced networks with official names)."""
    if kind not in KINDS:
        raise ValueError(f'unknown kind {kind!r}; one of {list(KINDS)}')
    if kind not in BUILDERS:
        raise ValueError(f'no model is registered for {kind} files ({KINDS[kind]}): import {REGISTERED_BY[kind]} '
                         f'first, which registers it')
    ctx = torch.device(device) if device is not None else torch.device('cpu')
    with ctx:
        return BUILDERS[kind](cfg)


# ---------------------------------------------------------------------------------------------- bbox
def _bbox_factors(module, out_channels):
    """Per-output-channel (std, mean) of the de-normalisation the heads apply (float64 arrays)."""
    heads = module.heads
    stds = np.asarray(heads.roi_sampling.bbox_stds, np.float64).reshape(-1)
    means = np.asarray(heads.roi_sampling.bbox_means, np.float64).reshape(-1)
    per_delta = heads.group * heads.group
    n_delta = out_channels // per_delta
    if n_delta * per_delta != out_channels or n_delta % stds.size:
        raise MXNetConversionError(f'rfcn_bbox has {out_channels} output channels, not a multiple of '
                                   f'{per_delta} x {stds.size}')
    reps = n_delta // stds.size
    return (np.repeat(np.tile(stds, reps), per_delta), np.repeat(np.tile(means, reps), per_delta))


def _renormalize(arr, name, std, mean):
    a = arr.astype(np.float64)
    if name.endswith('weight') or name.endswith('weight_test'):
        return a / std.reshape((-1,) + (1,) * (a.ndim - 1))
    return (a - mean) / std


# ---------------------------------------------------------------------------------------------- convert
def convert_params(params, model, kind=None, source='<params>', plain_bbox='denormalized', ignore=(), strict=True):
    """Convert an MXNet name -> array dict into a state dict for `model` (or its part that `kind` fills,
    see select_module). ignore: extra fnmatch patterns of names to ignore (e.g. 'arg:fc*').
    strict=False reports missing / unexpected names in the result instead of raising; shape mismatches
    always raise. Returns a Conversion."""
    if plain_bbox not in PLAIN_BBOX_MODES:
        raise ValueError(f'plain_bbox must be one of {PLAIN_BBOX_MODES}, got {plain_bbox!r}')
    params, renamed = with_prefixes(params)
    kind = kind or detect_kind(params, source)
    if kind not in KINDS:
        raise ValueError(f'unknown kind {kind!r}; one of {list(KINDS)}')
    module, path = select_module(model, kind)
    own = module.state_dict()
    t2m = torch_to_mxnet(module)
    conv = Conversion(kind=kind, module=module, module_path=path, state_dict=OrderedDict(), source=source)
    if renamed:
        conv.notes.append(f'{renamed} names had no arg:/aux: prefix; added from their suffix')

    # where each MXNet name of the module is read from (the bbox pair may come from its _test copy)
    read_from = {n: n for n in t2m.values()}
    bbox_fix = {}
    if kind in ('rfcn', 'dff'):
        has_wt, has_bt = BBOX_W_TEST in params, BBOX_B_TEST in params
        if has_wt or has_bt:
            if has_wt and has_bt:
                read_from[BBOX_W], read_from[BBOX_B] = BBOX_W_TEST, BBOX_B_TEST
                bbox_fix = {BBOX_W: True, BBOX_B: True}
                for n in (BBOX_W, BBOX_B):
                    if n in params:
                        conv.ignored[n] = f'superseded by {n}_test (de-normalised copy, preferred as in the original)'
                conv.notes.append('rfcn_bbox from the _test pair, divided back by TRAIN.BBOX_STDS (minus BBOX_MEANS) '
                                  'since the heads de-normalise their output')
            # a lone _test array is left over and reported as unexpected below
        elif plain_bbox == 'denormalized':
            bbox_fix = {BBOX_W: True, BBOX_B: True}
            conv.notes.append('no rfcn_bbox_*_test pair: rfcn_bbox taken as de-normalised, as the original tester '
                              'uses it (divided by TRAIN.BBOX_STDS); pass plain_bbox="normalized" '
                              '(tools/convert_mxnet.py --bbox normalized) if it holds raw training weights')
        else:
            conv.notes.append('no rfcn_bbox_*_test pair: rfcn_bbox taken as normalised training weights (as stored)')

    missing, bad_shape, mismatched = [], [], set()
    optional = OPTIONAL.get(kind, {})
    for key, name in t2m.items():
        src = read_from[name]
        target = own[key]
        if src not in params:
            if name in optional:
                conv.kept[key] = optional[name]
            else:
                missing.append(f'{src} -> {key} {tuple(target.shape)}')
            continue
        arr = np.asarray(params[src])
        if tuple(arr.shape) != tuple(target.shape):
            bad_shape.append(f'{src}: file {tuple(arr.shape)} vs model {key} {tuple(target.shape)}')
            mismatched.add(src)
            continue
        if not np.issubdtype(arr.dtype, np.floating):
            bad_shape.append(f'{src}: dtype {arr.dtype} is not a floating-point type')
            mismatched.add(src)
            continue
        if bbox_fix.get(name):
            std, mean = _bbox_factors(module, arr.shape[0])
            arr = _renormalize(arr, src, std, mean)
        conv.state_dict[key] = torch.from_numpy(np.ascontiguousarray(arr)).to(dtype=target.dtype
                                                                              if target.dtype.is_floating_point
                                                                              else torch.float32)
        conv.used[src] = key
    # the module's keys without an MXNet name (nn.BatchNorm2d's step counter with TRAIN_BN) keep their value
    # (nn.BatchNorm2d fills a missing counter itself when loading)
    for key in own:
        if key not in t2m:
            conv.kept[key] = NO_COUNTERPART

    patterns = tuple(ignore)
    unexpected = []
    for n in params:
        if n in conv.used or n in conv.ignored or n in mismatched:
            continue
        if n in IGNORED_BY_NAME:
            conv.ignored[n] = IGNORED_BY_NAME[n]
        elif any(fnmatch.fnmatchcase(n, p) for p in patterns):
            conv.ignored[n] = 'matches an ignore pattern'
        else:
            arr = params[n]
            unexpected.append(f'{n} {tuple(np.shape(arr))}')
    dtypes = sorted({str(np.asarray(params[n]).dtype) for n in conv.used})
    if dtypes and dtypes != ['float32']:
        conv.notes.append(f'file dtypes {dtypes} converted to the model dtype')

    problems = []  # one line, every name (the entry scripts print it as one 'error:' line)
    if bad_shape:
        problems.append(f'{len(bad_shape)} shape/dtype mismatch(es): ' + ', '.join(bad_shape))
    if strict and missing:
        problems.append(f'{len(missing)} name(s) of the model missing in the file: ' + ', '.join(missing))
    if strict and unexpected:
        problems.append(f'{len(unexpected)} unexpected name(s) in the file (not in the model): '
                        + ', '.join(unexpected))
    if problems:
        raise MXNetConversionError(
            f'{source} ({KINDS[kind]}) does not fit {type(module).__name__}'
            + (f' (the model\'s {path})' if path else '') + ' as built from the config. Check the config '
            '(network.RESNET_DEPTH/RESNET_UNITS/RESNET_WIDTH, DFF_FEAT_DIM, FLOW_WIDTH_MULT, dataset.NUM_CLASSES, '
            'CLASS_AGNOSTIC). ' + '; '.join(problems))
    conv.missing, conv.unexpected = missing, unexpected
    return conv


def convert_file(path, cfg=None, kind=None, model=None, plain_bbox='denormalized', ignore=(), strict=True,
                 device='meta'):
    """Read `path` and convert it. Without `model` the target is built from `cfg` on `device` ('meta':
    shapes only, no memory; the state dict is real either way)."""
    if model is None and cfg is None:
        raise ValueError('convert_file needs the module to fill (model=) or the config to build it from (cfg=)')
    params = load_params(path)
    params, _ = with_prefixes(params)
    kind = kind or detect_kind(params, path)
    if model is None:
        model = build_target(kind, cfg, device=device)
    return convert_params(params, model, kind=kind, source=str(path), plain_bbox=plain_bbox, ignore=ignore,
                          strict=strict)


# ---------------------------------------------------------------------------------------------- files
def source_stamp(path):
    st = os.stat(path)
    return {'path': os.path.abspath(path), 'size': int(st.st_size), 'mtime_ns': int(st.st_mtime_ns)}


def conversion_checkpoint(conv, src_path):
    """The .pth content written for a conversion: a checkpoint of this project ('model' entry, 'module'
    = where its keys sit in a whole model; lib/model/weights.py loads it) plus provenance."""
    return {'model': conv.state_dict, 'kind': conv.kind, 'module': MODULE_PATH[conv.kind],
            'converted_from': source_stamp(src_path), 'ignored': dict(conv.ignored), 'kept': dict(conv.kept),
            'notes': list(conv.notes), 'cache_format': CACHE_FORMAT}


def write_conversion(conv, src_path, dst_path):
    """Write the conversion atomically (lib/utils/fileio.py: no partial file is left behind on failure).
    The content is a checkpoint of this project (lib/utils/checkpoint.py)."""
    save_checkpoint(dst_path, conversion_checkpoint(conv, src_path))
    return dst_path


def cache_path_for(params_path):
    root, ext = os.path.splitext(params_path)
    return (root if ext == '.params' else params_path) + '.pth'


def _cache_fits(ck, params_path, module, kind=None):
    if not isinstance(ck, dict) or ck.get('cache_format') != CACHE_FORMAT or not isinstance(ck.get('model'), dict):
        return False
    stamp = ck.get('converted_from') or {}
    try:
        now = source_stamp(params_path)
    except OSError:
        return False
    if (stamp.get('size'), stamp.get('mtime_ns')) != (now['size'], now['mtime_ns']):
        return False
    if kind is not None and ck.get('kind') != kind:
        return False
    own = module.state_dict()
    sd = ck['model']
    if not set(sd) <= set(own) or not set(own) - set(sd) <= set(ck.get('kept') or {}):
        return False
    return all(tuple(v.shape) == tuple(own[k].shape) for k, v in sd.items())


def is_conversion(ck):
    """Whether a loaded .pth is a conversion written by this module (write_conversion)."""
    return isinstance(ck, dict) and ck.get('cache_format') == CACHE_FORMAT and isinstance(ck.get('model'), dict)


def _load_cache(cache, params_path, model, kinds, loaded=None):
    """(hit, foreign): hit = (state_dict, module, kind, module_path) from a valid cache, else None;
    foreign = the file exists but is not a conversion of this module (never overwritten)."""
    if not os.path.isfile(cache):
        return None, False
    ck = loaded
    if ck is None:
        try:
            ck = load_torch(cache)
        except (ValueError, OSError):  # not ours, broken or unsafe: left alone, never read further
            return None, True
    if not is_conversion(ck):
        return None, True
    kind = ck.get('kind')
    if (os.path.getmtime(cache) < os.path.getmtime(params_path) or kind not in KINDS
            or (kinds is not None and kind not in kinds)):
        return None, False
    try:
        module, path = select_module(model, kind)
    except MXNetConversionError:
        return None, False
    if not _cache_fits(ck, params_path, module, kind):
        return None, False
    return (ck['model'], module, kind, path), False


def cached_conversion(params_path, model, kinds=None, log=print, write_cache=True, loaded_cache=None, **kw):
    """State dict for `model` (or its part the file's kind fills) from an official .params file, through
    a cache `<params_path minus .params>.pth` next to it: used when it was made from this very file (same
    size and mtime), is of an accepted kind and fits the module; otherwise the file is converted and the
    cache (re)written if the folder is writable. A .pth at that path that is not such a conversion (a
    checkpoint of the user's) is never overwritten. kinds: the kinds accepted here (error otherwise).
    loaded_cache: the cache file's content if the caller has already loaded it. kw: convert_params
    options. Returns (state_dict, module, info) with info = {'kind', 'module_path', 'cache' (None if
    not written), 'from_cache', 'conversion' (None when read from the cache)}."""
    cache = cache_path_for(params_path)
    hit, foreign = _load_cache(cache, params_path, model, kinds, loaded_cache)
    if hit is not None:
        state, module, kind, path = hit
        log(f'{params_path}: using its converted copy {cache}')
        return state, module, {'kind': kind, 'module_path': path, 'cache': cache, 'from_cache': True,
                               'conversion': None}
    params, _ = with_prefixes(load_params(params_path))
    kind = detect_kind(params, params_path)
    if kinds is not None and kind not in kinds:
        raise MXNetConversionError(f'{params_path} is a {kind} file ({KINDS[kind]}); expected '
                                   + ' or '.join(f'{k} ({KINDS[k]})' for k in kinds))
    conv = convert_params(params, model, kind=kind, source=str(params_path), **kw)
    info = {'kind': kind, 'module_path': conv.module_path, 'cache': None, 'from_cache': False, 'conversion': conv}
    for line in conv.summary():
        log(line)
    if write_cache and foreign:
        log(f'  (not cached: {cache} exists and is not a conversion of this file; left as it is)')
    elif write_cache:
        try:
            write_conversion(conv, params_path, cache)
            info['cache'] = cache
            log(f'  cached as {cache}')
        except OSError as e:
            log(f'  (not cached: could not write {cache}: {e})')
    return conv.state_dict, conv.module, info


__all__ = ['KINDS', 'MODULE_PATH', 'IGNORED_BY_NAME', 'Conversion', 'MXNetConversionError',
           'detect_kind', 'select_module', 'build_target', 'register_model', 'is_part', 'part_path',
           'convert_params', 'convert_file',
           'write_conversion', 'cache_path_for', 'cached_conversion', 'is_conversion', 'with_prefixes']
