"""Configuration: easydict defaults with the original key names and values (rfcn/config/config.py and
dff_rfcn/config/config.py of the official release, merged: the DFF-only keys are simply unused by the
frame baseline), updated from a yaml file.

    from lib.config import config, update_config
    cfg = update_config("experiments/rfcn/cfgs/resnet_v1_101_imagenet_vid_rfcn_end2end_ohem.yaml")

Reading a yaml file or a --set checks every value:
- an unknown or mistyped key is an error naming the key, the file and the nearest valid keys;
- a value must have its default's type (an integer, a number, true/false, a string, a list of numbers,
  ...; e.g. "TRAIN.lr: expected a number, got 'fast'"), and is stored as that type;
- `_BASE_: other.yaml` (a path relative to the including file) loads that file first, so a derived
  file states only what differs; sections merge key by key, any other value replaces the base's;
- a key of the original that this port does not read gets a one-line warning on stderr when it asks for
  something the port does not do, saying what to use instead (TRAIN.RESUME -> --resume, ...).
The original yaml files (no _BASE_) carry over unchanged.

Keys this port adds (none of them changes the original's behaviour at its default value) are marked
"[port]" below and listed in the README.
"""
import copy
import difflib
import functools
import os
import re
import sys

import numpy as np
import yaml
from easydict import EasyDict as edict


def _defaults():
    config = edict()

    config.MXNET_VERSION = ''      # accepted for compatibility with the original yaml files; unused
    config.output_path = ''
    config.symbol = ''
    config.gpus = ''               # '0,1,2,3' in the original: an update holds len(gpus) x TRAIN.BATCH_IMAGES
                                   # images whatever the number of processes (lib/dataset/loader.py
                                   # accumulation_steps); which GPUs a process uses is torchrun's business
    config.CLASS_AGNOSTIC = True
    config.SCALES = [(600, 1000)]  # (short side, max long side)
    config.device = 'auto'         # [port] 'auto' | 'cpu' | 'cuda' | 'cuda:N' (under torchrun: 'cuda')
    config.ALLOW_TF32 = False      # [port] let float32 convolutions / matmuls on Ampere+ GPUs run in TF32 (faster, ~1e-3 relative error); the original computed in full float32
    config.seed = 0                # [port] seeds data order, sampling and init

    # default training
    config.default = edict()
    config.default.frequent = 20   # log every N iterations
    config.default.kvstore = 'device'

    # network related params
    config.network = edict()
    config.network.pretrained = ''
    config.network.pretrained_flow = ''
    config.network.pretrained_epoch = 0
    config.network.PIXEL_MEANS = np.array([0, 0, 0])  # B, G, R
    config.network.IMAGE_STRIDE = 0
    config.network.RPN_FEAT_STRIDE = 16
    config.network.RCNN_FEAT_STRIDE = 16
    config.network.FIXED_PARAMS = ['gamma', 'beta']
    config.network.FIXED_PARAMS_SHARED = ['gamma', 'beta']
    config.network.ANCHOR_SCALES = (8, 16, 32)
    config.network.ANCHOR_RATIOS = (0.5, 1, 2)
    config.network.NUM_ANCHORS = 9
    config.network.NORMALIZE_RPN = True
    config.network.ANCHOR_MEANS = (0.0, 0.0, 0.0, 0.0)
    config.network.ANCHOR_STDS = (0.1, 0.1, 0.4, 0.4)
    config.network.DFF_FEAT_DIM = 1024
    config.network.RESNET_DEPTH = 101        # [port] 50 | 101 | 152
    config.network.RESNET_UNITS = []         # [port] blocks per stage, overrides RESNET_DEPTH (e.g. [1, 1, 1, 1])
    config.network.RESNET_WIDTH = 64         # [port] conv1 channels; stage widths scale with it
    config.network.TRAIN_BN = False          # [port] BN in train mode (from-scratch CPU models); False = frozen, as the original
    config.network.FLOW_WIDTH_MULT = 1.0     # [port] FlowNet-S channel multiplier (1.0 = the original)

    # dataset related params
    config.dataset = edict()
    config.dataset.dataset = 'ImageNetVID'
    config.dataset.image_set = 'DET_train_30classes+VID_train_15frames'
    config.dataset.test_image_set = 'VID_val_videos'
    config.dataset.root_path = './data'
    config.dataset.dataset_path = './data/ILSVRC2015'
    config.dataset.img_prefix = ''           # [port] CocoVID: folder the json's file_name is relative to (under dataset_path, or absolute); '': dataset_path
    config.dataset.NUM_CLASSES = 31
    config.dataset.CLASSES = []              # [port] own class list: entries 'label' or [label, name], label = the XML <name>; background implied
    config.dataset.proposal = 'rpn'
    config.dataset.SYNTHETIC = edict()       # [port] generator parameters of the synthetic dataset
    config.dataset.SYNTHETIC.seed = 0

    config.TRAIN = edict()
    config.TRAIN.lr = 0
    config.TRAIN.lr_step = ''
    config.TRAIN.lr_factor = 0.1
    config.TRAIN.warmup = False
    config.TRAIN.warmup_lr = 0
    config.TRAIN.warmup_step = 0
    config.TRAIN.momentum = 0.9
    config.TRAIN.wd = 0.0005
    config.TRAIN.begin_epoch = 0
    config.TRAIN.end_epoch = 0
    config.TRAIN.model_prefix = ''
    config.TRAIN.RESUME = False
    config.TRAIN.FLIP = True
    config.TRAIN.SHUFFLE = True
    config.TRAIN.ENABLE_OHEM = False
    config.TRAIN.BATCH_IMAGES = 2
    config.TRAIN.END2END = False
    config.TRAIN.ASPECT_GROUPING = True
    config.TRAIN.ORIGINAL_CHUNK_ORDER = True  # [port] as the original: chunks not shuffled when len(roidb) is a multiple of the images per update (lib/dataset/loader.py EpochOrder); False: always shuffled
    # R-CNN
    config.TRAIN.BATCH_ROIS = 128
    config.TRAIN.BATCH_ROIS_OHEM = 128
    config.TRAIN.FG_FRACTION = 0.25
    config.TRAIN.FG_THRESH = 0.5
    config.TRAIN.BG_THRESH_HI = 0.5
    config.TRAIN.BG_THRESH_LO = 0.0
    config.TRAIN.BBOX_REGRESSION_THRESH = 0.5
    config.TRAIN.BBOX_WEIGHTS = np.array([1.0, 1.0, 1.0, 1.0])
    # RPN anchor loader
    config.TRAIN.RPN_BATCH_SIZE = 256
    config.TRAIN.RPN_FG_FRACTION = 0.5
    config.TRAIN.RPN_POSITIVE_OVERLAP = 0.7
    config.TRAIN.RPN_NEGATIVE_OVERLAP = 0.3
    config.TRAIN.RPN_CLOBBER_POSITIVES = False
    config.TRAIN.RPN_BBOX_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
    config.TRAIN.RPN_POSITIVE_WEIGHT = -1.0
    # RPN proposal
    config.TRAIN.CXX_PROPOSAL = True
    config.TRAIN.RPN_NMS_THRESH = 0.7
    config.TRAIN.RPN_PRE_NMS_TOP_N = 12000
    config.TRAIN.RPN_POST_NMS_TOP_N = 2000
    config.TRAIN.RPN_MIN_SIZE = config.network.RPN_FEAT_STRIDE
    # approximate bounding box regression
    config.TRAIN.BBOX_NORMALIZATION_PRECOMPUTED = True
    config.TRAIN.BBOX_MEANS = (0.0, 0.0, 0.0, 0.0)
    config.TRAIN.BBOX_STDS = (0.1, 0.1, 0.2, 0.2)
    # DFF: key frame offset range relative to the annotated frame
    config.TRAIN.MIN_OFFSET = -9
    config.TRAIN.MAX_OFFSET = 0
    # [port] keys of the PyTorch training loop
    config.TRAIN.ACCUMULATE_GRAD = 1         # [port] iterations per optimiser step when gpus is '' (with gpus set: len(gpus) / processes)
    config.TRAIN.CHECKPOINT_ITERS = 2000     # [port] also write the resumable <prefix>-last.pth every N updates (0: only per epoch)
    config.TRAIN.NUM_WORKERS = 2             # [port] DataLoader workers per process
    config.TRAIN.MAX_ITERS = 0               # [port] stop after N iterations (0: run to end_epoch); smoke tests

    config.TEST = edict()
    config.TEST.HAS_RPN = False
    config.TEST.BATCH_IMAGES = 1
    config.TEST.CXX_PROPOSAL = True
    config.TEST.RPN_NMS_THRESH = 0.7
    config.TEST.RPN_PRE_NMS_TOP_N = 6000
    config.TEST.RPN_POST_NMS_TOP_N = 300
    config.TEST.RPN_MIN_SIZE = config.network.RPN_FEAT_STRIDE
    config.TEST.PROPOSAL_NMS_THRESH = 0.7
    config.TEST.PROPOSAL_PRE_NMS_TOP_N = 20000
    config.TEST.PROPOSAL_POST_NMS_TOP_N = 2000
    config.TEST.PROPOSAL_MIN_SIZE = config.network.RPN_FEAT_STRIDE
    config.TEST.NMS = 0.3
    config.TEST.max_per_image = 300
    config.TEST.test_epoch = 0
    config.TEST.KEY_FRAME_INTERVAL = 10
    config.TEST.ZERO_FLOW = False            # [port] DFF ablation: key features copied, not warped (flow forced to 0)
    # [port] DFF key frames (docs/key_frames.md): 'fixed' = the original's (every KEY_FRAME_INTERVAL frames);
    # 'adaptive' = the first frame, then a new key frame on a shot cut, when propagation stops being
    # trustworthy (the key frame warped along the flow disagrees with the current frame, the key frame's
    # objects lose score), or after KEY_FRAME_MAX_INTERVAL frames
    config.TEST.KEY_FRAME_SCHEDULE = 'fixed'
    config.TEST.KEY_FRAME_MAX_INTERVAL = 30  # [port] adaptive: at most this many frames from a key frame to the next
    config.TEST.KEY_FRAME_CUT_THRESH = 0.1   # [port] adaptive: shot cut when the colour histograms of consecutive frames differ more (0..1)
    config.TEST.KEY_FRAME_WARP_ERROR = 32.0  # [port] adaptive: a feature cell disagrees when |warped key image - current| exceeds this (grey levels)
    config.TEST.KEY_FRAME_BAD_FRACTION = 0.03  # [port] adaptive, trigger 'fraction': new key frame when the propagation error (fraction of the cells disagreeing, + score drop) exceeds this
    config.TEST.KEY_FRAME_TRIGGER = 'renewal'  # [port] adaptive: 'fraction' (the error above KEY_FRAME_BAD_FRACTION) or 'renewal' (frames x error - their sum above KEY_FRAME_RENEWAL_COST)
    config.TEST.KEY_FRAME_RENEWAL_COST = 0.325  # [port] adaptive, trigger 'renewal': what a key frame costs, in propagation error x frames
    config.TEST.KEY_FRAME_SCORE_DROP = 0.05  # [port] adaptive: weight of the key frame's objects' score drop (sum over them) in the propagation error; 0: off
    config.TEST.thresh = 1e-3                # [port] score threshold of test.py's --thresh (original default 1e-3; DFF 1e-4)
    # [port] inference fast path (lib/model/fast_path.py, docs/benchmark.md; --fast): off by default (eager float32,
    # as the original); when on, the pieces below that are on
    config.TEST.FAST_PATH = False
    config.TEST.FAST_FOLD_BN = True          # [port] frozen BN folded into the preceding convolutions
    config.TEST.FAST_CHANNELS_LAST = True    # [port] channels_last memory format
    config.TEST.FAST_DTYPE = 'float32'       # [port] autocast dtype: float32 (none), bfloat16, float16 (CUDA)
    config.TEST.FAST_GEMM = True             # [port] CPU: FlowNet's heavy transposed convs and the R-FCN score-map convs as GEMMs
    config.TEST.FAST_COMPILE = False         # [port] torch.compile of the key-frame and non-key-frame graphs

    # [port] FlowNet-S pretraining on Flying Chairs-format pairs (dff_rfcn/train_flownet.py). The original
    # took a Caffe FlowNet trained on Flying Chairs; the weights are written to
    # <network.pretrained_flow>-<network.pretrained_epoch:04d>.pth, where DFF training loads them from.
    config.FLOW_PRETRAIN = edict()
    config.FLOW_PRETRAIN.dataset_path = './data/FlyingChairs_release'  # holds data/ and FlyingChairs_train_val.txt
    config.FLOW_PRETRAIN.lr = 1e-4           # Adam (FlowNet's optimiser), betas (0.9, 0.999)
    config.FLOW_PRETRAIN.wd = 4e-4
    config.FLOW_PRETRAIN.lr_step = ''        # iterations (comma separated) where lr is halved
    config.FLOW_PRETRAIN.batch_size = 8
    config.FLOW_PRETRAIN.max_iters = 600000
    config.FLOW_PRETRAIN.loss_weights = [0.005, 0.01, 0.02, 0.08, 0.32]  # flow2 (Convolution5) .. flow6 (Convolution1)
    config.FLOW_PRETRAIN.div_flow = 20.0     # FlowNet predicts flow / 20 (in pixels of its half-resolution input)
    config.FLOW_PRETRAIN.flip = True         # random horizontal flips of a pair (u negated)
    config.FLOW_PRETRAIN.num_workers = 2
    config.FLOW_PRETRAIN.frequent = 50
    config.FLOW_PRETRAIN.CHECKPOINT_ITERS = 5000  # [port] resumable state every N iterations (0: none)
    return config


config = _defaults()

# Free-form sections: any key is accepted below them (the synthetic generator checks its own parameters).
_FREE_SECTIONS = {('dataset', 'SYNTHETIC')}


class ConfigError(ValueError):
    pass


# ---------------------------------------------------------------------------------------------------
# Types. A value read from a yaml file or a --set must have its default's type, with these refinements:
_NUMBER_KEYS = {('TRAIN', 'lr'), ('TRAIN', 'warmup_lr')}    # default 0, but any number
_NUMBER_STRING_KEYS = {('TRAIN', 'lr_step'), ('FLOW_PRETRAIN', 'lr_step')}  # '1.333' or a bare 1.5
_KINDS = {  # keys whose kind the default alone does not tell
    ('SCALES',): 'scales', ('device',): 'device', ('gpus',): 'gpus',
    ('network', 'RESNET_UNITS'): 'ints', ('dataset', 'CLASSES'): 'list', ('TEST', 'FAST_DTYPE'): 'fast_dtype',
    ('TEST', 'KEY_FRAME_SCHEDULE'): 'key_schedule', ('TEST', 'KEY_FRAME_MAX_INTERVAL'): 'posint',
    ('TEST', 'KEY_FRAME_CUT_THRESH'): 'nonneg', ('TEST', 'KEY_FRAME_WARP_ERROR'): 'nonneg',
    ('TEST', 'KEY_FRAME_BAD_FRACTION'): 'nonneg', ('TEST', 'KEY_FRAME_TRIGGER'): 'key_trigger',
    ('TEST', 'KEY_FRAME_RENEWAL_COST'): 'nonneg', ('TEST', 'KEY_FRAME_SCORE_DROP'): 'nonneg',
}
FAST_DTYPES = ('float32', 'bfloat16', 'float16')  # TEST.FAST_DTYPE (lib/model/fast_path.py DTYPES)
_LENGTHS = {('network', 'PIXEL_MEANS'): 3, ('TRAIN', 'BBOX_WEIGHTS'): 4, ('network', 'ANCHOR_MEANS'): 4,
            ('network', 'ANCHOR_STDS'): 4, ('TRAIN', 'RPN_BBOX_WEIGHTS'): 4, ('TRAIN', 'BBOX_MEANS'): 4,
            ('TRAIN', 'BBOX_STDS'): 4, ('FLOW_PRETRAIN', 'loss_weights'): 5}
_EXPECTED = {
    'bool': 'true or false', 'int': 'an integer', 'number': 'a number', 'str': 'a string',
    'numstr': 'a string (or a number)', 'numbers': 'a list of numbers', 'ints': 'a list of integers',
    'strs': 'a list of strings', 'list': 'a list', 'array': 'a list of numbers',
    'scales': '[short side, max long side] (one scale, e.g. [600, 1000]) or a list of such pairs '
              '(e.g. [[600, 1000], [480, 800]])',
    'device': "one of auto, cpu, cuda, cuda:N", 'key_schedule': 'one of fixed, adaptive',
    'fast_dtype': f"one of {', '.join(FAST_DTYPES)}",
    'key_trigger': 'one of fraction, renewal',
    'nonneg': 'a number >= 0', 'posint': 'an integer >= 1', 'gpus': "GPU ids separated by commas (e.g. '0,1,2,3') or ''",
}
_DEVICE = re.compile(r'(auto|cpu|cuda(:\d+)?)\Z')


def _kind(path, default):
    if path in _KINDS:
        return _KINDS[path]
    if isinstance(default, bool):
        return 'bool'
    if isinstance(default, int):
        return 'number' if path in _NUMBER_KEYS else 'int'
    if isinstance(default, float):
        return 'number'
    if isinstance(default, str):
        return 'numstr' if path in _NUMBER_STRING_KEYS else 'str'
    if isinstance(default, np.ndarray):
        return 'array'
    if isinstance(default, (list, tuple)) and default:
        return 'strs' if all(isinstance(x, str) for x in default) else 'numbers'
    raise TypeError(f"config key {'.'.join(path)}: no type for its default {default!r}; add it to _KINDS")


def _kinds(d, path=()):
    out = {}
    for k, v in d.items():
        here = path + (k,)
        if isinstance(v, dict):
            if here not in _FREE_SECTIONS:
                out.update(_kinds(v, here))
        else:
            out[here] = _kind(here, v)
    return out


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _show(v):
    return 'an empty value' if v is None else repr(v)


def _typed(path, value, source):
    """`value` checked against the kind of the key's default and normalised (ints, floats, numpy arrays,
    SCALES as a list of (short, max) tuples); a wrong one is a ConfigError naming the key and `source`."""
    kind = _KIND_OF[path]
    n = _LENGTHS.get(path)

    def bad(extra=''):
        expected = _EXPECTED[kind]
        if n is not None:
            expected = expected.replace('a list of', f'a list of {n}')
        return ConfigError(f"{source}: {'.'.join(path)}: expected {expected}, got {_show(value)}{extra}")

    def numbers(v, length=None, check=_is_number, empty=False):
        return isinstance(v, (list, tuple, np.ndarray)) and all(check(x) for x in v) and (
            len(v) == length if length is not None else (empty or len(v) > 0))

    if kind == 'bool':
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
    elif kind == 'int':
        if _is_int(value) or (_is_number(value) and float(value).is_integer()):
            return int(value)
    elif kind == 'number':
        if _is_number(value):
            return float(value)
    elif kind == 'str':
        if isinstance(value, str):
            return value
    elif kind == 'numstr':
        if isinstance(value, str):
            return value
        if _is_number(value):
            return str(value)
    elif kind == 'gpus':
        text = str(value) if _is_int(value) else value
        if isinstance(text, str) and (not text.strip() or all(g.strip().isdigit() for g in text.split(','))):
            return text
    elif kind == 'device':
        if isinstance(value, str) and _DEVICE.match(value):
            return value
    elif kind == 'key_schedule':
        if value in ('fixed', 'adaptive'):
            return value
    elif kind == 'key_trigger':
        if value in ('fraction', 'renewal'):
            return value
    elif kind == 'nonneg':
        if _is_number(value) and value >= 0:
            return float(value)
    elif kind == 'posint':
        if (_is_int(value) or (_is_number(value) and float(value).is_integer())) and value >= 1:
            return int(value)
    elif kind == 'fast_dtype':
        if value in FAST_DTYPES:
            return value
    elif kind in ('numbers', 'array'):
        if numbers(value, n):
            return np.array(value, dtype=np.float64) if kind == 'array' else value
    elif kind == 'ints':
        if numbers(value, n, _is_int, empty=True):
            return [int(x) for x in value]
    elif kind == 'strs':
        if isinstance(value, (list, tuple)) and all(isinstance(x, str) for x in value):
            return value
    elif kind == 'list':
        if isinstance(value, (list, tuple)):
            return value
    elif kind == 'scales':
        # the original's yaml: "SCALES: [600, 1000]" (one scale); several: [[600, 1000], [480, 800]]
        pairs = value if isinstance(value, (list, tuple)) and value and all(
            isinstance(s, (list, tuple)) for s in value) else [value]
        if all(numbers(s, 2, _is_int) and min(s) > 0 for s in pairs):
            return [tuple(int(x) for x in s) for s in pairs]
    raise bad()


_KIND_OF = _kinds(_defaults())  # from the defaults, not from a value a yaml already set (FIXED_PARAMS: [])


# ---------------------------------------------------------------------------------------------------
# Keys of the original that this port does not read. Each maps to (the values that mean what the port
# does anyway, what to use instead); a yaml or --set giving any other value gets a one-line warning.
def _always(v, cfg):
    return True


_UNUSED = {
    ('MXNET_VERSION',): (_always, 'there is no MXNet here'),
    ('symbol',): (lambda v, c: v in ('', 'resnet_v1_101_rfcn', 'resnet_v1_101_flownet_rfcn'),
                  'the network is the entry script\'s (rfcn/ or dff_rfcn/), its depth network.RESNET_DEPTH '
                  '(or RESNET_UNITS)'),
    ('default', 'kvstore'): (lambda v, c: v in ('device', 'local'),
                             'gradients are summed across processes by DistributedDataParallel (run torchrun)'),
    ('network', 'FIXED_PARAMS_SHARED'): (lambda v, c: list(v) == ['gamma', 'beta'],
                                         'the original read it only in its alternate (not end-to-end) '
                                         'training; use network.FIXED_PARAMS'),
    ('TRAIN', 'RESUME'): (lambda v, c: v is False, 'use --resume'),
    ('TRAIN', 'END2END'): (lambda v, c: v is True, 'training is always end to end here'),
    ('TRAIN', 'BBOX_REGRESSION_THRESH'): (lambda v, c: v == 0.5,
                                          'the original read it only when training on precomputed proposals; '
                                          'end-to-end training uses TRAIN.FG_THRESH'),
    ('TRAIN', 'RPN_POSITIVE_WEIGHT'): (lambda v, c: v == -1.0,
                                       'the original\'s anchor target does not read it either; '
                                       'use TRAIN.RPN_BBOX_WEIGHTS'),
    ('TRAIN', 'CXX_PROPOSAL'): (lambda v, c: v is True, 'the proposal op of lib/ops is always used'),
    ('TEST', 'CXX_PROPOSAL'): (lambda v, c: v is True, 'the proposal op of lib/ops is always used'),
    ('TEST', 'HAS_RPN'): (lambda v, c: v is True, 'testing on precomputed proposals is not ported; '
                                                  'the test always runs the RPN'),
    ('TEST', 'BATCH_IMAGES'): (lambda v, c: v == 1, 'the test runs one image per forward in each process; '
                                                    'run more processes with torchrun'),
    ('TEST', 'PROPOSAL_NMS_THRESH'): (lambda v, c: v == 0.7, 'the original read TEST.PROPOSAL_* only in its '
                                      'proposal-generation test; use TEST.RPN_NMS_THRESH'),
    ('TEST', 'PROPOSAL_PRE_NMS_TOP_N'): (lambda v, c: v == 20000, 'the original read TEST.PROPOSAL_* only in '
                                         'its proposal-generation test; use TEST.RPN_PRE_NMS_TOP_N'),
    ('TEST', 'PROPOSAL_POST_NMS_TOP_N'): (lambda v, c: v == 2000, 'the original read TEST.PROPOSAL_* only in '
                                          'its proposal-generation test; use TEST.RPN_POST_NMS_TOP_N'),
    ('TEST', 'PROPOSAL_MIN_SIZE'): (lambda v, c: v in (0, 16), 'the original read TEST.PROPOSAL_* only in its '
                                    'proposal-generation test; use TEST.RPN_MIN_SIZE'),
    ('TEST', 'test_epoch'): (lambda v, c: v in (0, c.TRAIN.end_epoch),
                             'the test takes <model_prefix>-<TRAIN.end_epoch>.pth; test another checkpoint '
                             'with --checkpoint'),
    ('dataset', 'proposal'): (lambda v, c: v == 'rpn', 'only RPN proposals are ported'),
}


def unused_key_warnings(cfg, given):
    """One line per key of `given` ((path, source) pairs) that this port does not read and whose value in
    `cfg` asks for something it does not do."""
    lines = []
    for path, source in given:
        if path in _UNUSED:
            ok, instead = _UNUSED[path]
            value = _get(cfg, path)
            if not ok(value, cfg):
                lines.append(f"{source}: {'.'.join(path)} = {value!r} is not used by this port: {instead}")
    return lines


def _warn(cfg, given):
    if os.environ.get('RANK', '0') != '0':  # once per torchrun job
        return
    for line in unused_key_warnings(cfg, given):
        print(f'warning: {line}', file=sys.stderr)


def _get(cfg, path):
    for k in path:
        cfg = cfg[k]
    return cfg


# ---------------------------------------------------------------------------------------------------
def _nearest(key, candidates):
    close = difflib.get_close_matches(key, candidates, n=3, cutoff=0.5)
    if not close:
        close = [c for c in candidates if c.lower() == key.lower()]
    return close


def _merge(dst, src, path, source, given):
    for k, v in src.items():
        here = path + (k,)
        dotted = '.'.join(here)
        if k not in dst:
            hint = _nearest(k, list(dst.keys()))
            raise ConfigError(f"{source}: unknown config key '{dotted}'"
                              + (f"; did you mean {', '.join(repr('.'.join(path + (h,))) for h in hint)}?" if hint else
                                 f"; valid keys here: {', '.join(sorted(dst.keys()))}"))
        if isinstance(dst[k], dict):
            if not isinstance(v, dict):
                raise ConfigError(f"{source}: '{dotted}' is a section, got {type(v).__name__} {v!r}")
            if here in _FREE_SECTIONS:
                dst[k].update(edict(v))
            else:
                _merge(dst[k], v, here, source, given)
        else:
            dst[k] = _typed(here, v, source)
            given.append((here, source))


def _read_yaml(config_file, included_by=None):
    if not os.path.isfile(config_file):
        raise FileNotFoundError(f"config file not found: {config_file}"
                                + (f" (the _BASE_ of {included_by})" if included_by else ''))
    with open(config_file) as f:
        try:
            exp = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{config_file}: not valid yaml: {e}") from e
    if not isinstance(exp, dict):
        raise ConfigError(f"{config_file}: expected a mapping of config keys at the top level")
    return exp


def _update_from_file(config_file, cfg, chain, given):
    """The file's _BASE_ (a path relative to the file; itself possibly with a _BASE_) first, then the file:
    sections merge key by key, any other value (a list too) replaces the base's."""
    if os.path.realpath(config_file) in [os.path.realpath(c) for c in chain]:
        raise ConfigError(f"{config_file}: _BASE_ cycle: {' -> '.join(chain + (config_file,))}")
    exp = _read_yaml(config_file, chain[-1] if chain else None)
    if '_BASE_' in exp:
        base = exp.pop('_BASE_')
        if not isinstance(base, str) or not base.strip():
            raise ConfigError(f"{config_file}: _BASE_: expected the path of a yaml file, got {_show(base)}")
        base_path = os.path.normpath(os.path.join(os.path.dirname(config_file), os.path.expanduser(base)))
        _update_from_file(base_path, cfg, chain + (config_file,), given)
    _merge(cfg, exp, (), config_file, given)


def update_config(config_file, cfg=None):
    """Update `cfg` (default: the module-level `config`) from a yaml file (and its _BASE_ chain); returns it."""
    cfg = config if cfg is None else cfg
    given = []
    _update_from_file(config_file, cfg, (), given)
    _warn(cfg, given)
    return cfg


def load_config(config_file):
    """A fresh config: the defaults updated from `config_file` (the module-level `config` is untouched)."""
    return update_config(config_file, copy.deepcopy(_defaults()))


def config_from_dict(stored, source):
    """A fresh config: the defaults updated from a plain dict, such as the config a training checkpoint
    stores (lib/utils/provenance.py plain), checked key by key and value by value as a yaml file is; an
    error names `source`. No unused-key warnings: the dict holds every key, each at its stored value."""
    if not isinstance(stored, dict):
        raise ConfigError(f"{source}: expected a mapping of config keys, got {type(stored).__name__}")
    cfg = copy.deepcopy(_defaults())
    _merge(cfg, copy.deepcopy(stored), (), source, [])
    return cfg


def update_from_list(cfg, pairs, source='--set'):
    """Apply 'section.KEY=value' overrides (values parsed as yaml), e.g. from a command line."""
    given = []
    for item in pairs:
        if '=' not in item:
            raise ConfigError(f"{source}: expected KEY=VALUE, got {item!r}")
        key, value = item.split('=', 1)
        tree = {}
        node = tree
        parts = key.split('.')
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        try:
            node[parts[-1]] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise ConfigError(f"{source} {item}: the value is not valid yaml: {e}".replace('\n', ' ')) from e
        _merge(cfg, tree, (), source, given)
    _warn(cfg, given)
    return cfg


# ---------------------------------------------------------------------------------------------------
def is_config(obj):
    """A config of this module (or a dict shaped like one), as opposed to explicit arguments."""
    return isinstance(obj, dict) and 'network' in obj and 'TRAIN' in obj


def configurable(init):
    """Decorator for the __init__ of a module with explicit constructor arguments and a classmethod
    `from_config(cfg) -> dict of those arguments` (detectron2's @configurable): `Cls(cfg)` builds from a
    config, `Cls(**explicit)` from arguments; the module never stores the config."""
    @functools.wraps(init)
    def wrapped(self, *args, **kwargs):
        if args and is_config(args[0]):
            if len(args) > 1 or kwargs:
                raise TypeError(f"{type(self).__name__}(cfg) takes the config alone")
            return init(self, **type(self).from_config(args[0]))
        return init(self, *args, **kwargs)
    return wrapped
