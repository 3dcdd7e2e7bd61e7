"""Configuration: easydict defaults with the original key names and values (rfcn/config/config.py and
dff_rfcn/config/config.py of the official release, merged: the DFF-only keys are simply unused by the
frame baseline), updated from a yaml file.

    from lib.config import config, update_config
    cfg = update_config("experiments/rfcn/cfgs/resnet_v1_101_imagenet_vid_rfcn_end2end_ohem.yaml")

An unknown or mistyped key is an error naming the key, the file and the nearest valid keys, so the
original yaml files carry over unchanged and a typo never goes unnoticed.

Keys this port adds (none of them changes the original's behaviour at its default value) are marked
"[port]" below and listed in the README.
"""
import copy
import difflib
import os

import numpy as np
import yaml
from easydict import EasyDict as edict


def _defaults():
    config = edict()

    config.MXNET_VERSION = ''      # accepted for compatibility with the original yaml files; unused
    config.output_path = ''
    config.symbol = ''
    config.gpus = ''               # '0,1,2,3' in the original; here: GPUs per node are torchrun's business
    config.CLASS_AGNOSTIC = True
    config.SCALES = [(600, 1000)]  # (short side, max long side)
    config.device = 'auto'         # [port] 'auto' | 'cpu' | 'cuda'
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
    config.TRAIN.ACCUMULATE_GRAD = 1         # [port] iterations per optimiser step (1 GPU reproducing the 4-GPU batch: 4)
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
    config.TEST.thresh = 1e-3                # [port] score threshold of test.py's --thresh (original default 1e-3; DFF 1e-4)

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

# Keys whose yaml value is a list but whose original type is a numpy array.
_ARRAY_KEYS = {('network', 'PIXEL_MEANS'), ('TRAIN', 'BBOX_WEIGHTS')}
# Free-form sections: any key is accepted below them.
_FREE_SECTIONS = {('dataset', 'SYNTHETIC')}


class ConfigError(ValueError):
    pass


def _nearest(key, candidates):
    close = difflib.get_close_matches(key, candidates, n=3, cutoff=0.5)
    if not close:
        close = [c for c in candidates if c.lower() == key.lower()]
    return close


def _merge(dst, src, path, source):
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
                _merge(dst[k], v, here, source)
        elif here in _ARRAY_KEYS:
            dst[k] = np.array(v, dtype=np.float64)
        elif k == 'SCALES' and not path:
            # original yaml: "SCALES: [600, 1000]" (one scale) -> [(600, 1000)]
            if isinstance(v, (list, tuple)) and v and not isinstance(v[0], (list, tuple)):
                dst[k] = [tuple(v)]
            else:
                dst[k] = [tuple(s) for s in v]
        else:
            dst[k] = v


def update_config(config_file, cfg=None):
    """Update `cfg` (default: the module-level `config`) from a yaml file; returns it."""
    cfg = config if cfg is None else cfg
    if not os.path.isfile(config_file):
        raise FileNotFoundError(f"config file not found: {config_file}")
    with open(config_file) as f:
        try:
            exp = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{config_file}: not valid yaml: {e}") from e
    if not isinstance(exp, dict):
        raise ConfigError(f"{config_file}: expected a mapping of config keys at the top level")
    _merge(cfg, exp, (), config_file)
    return cfg


def load_config(config_file):
    """A fresh config: the defaults updated from `config_file` (the module-level `config` is untouched)."""
    return update_config(config_file, copy.deepcopy(_defaults()))


def update_from_list(cfg, pairs, source='--set'):
    """Apply 'section.KEY=value' overrides (values parsed as yaml), e.g. from a command line."""
    for item in pairs:
        if '=' not in item:
            raise ConfigError(f"{source}: expected KEY=VALUE, got {item!r}")
        key, value = item.split('=', 1)
        tree = {}
        node = tree
        parts = key.split('.')
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = yaml.safe_load(value)
        _merge(cfg, tree, (), source)
    return cfg
