"""The frame baseline as a Python API: R-FCN on every frame of a stream, with the result format of
dff_rfcn/api.py (lib/apps/stream.py: sources, resizing, post-processing, results, timing).

    from rfcn.api import load_detector
    det = load_detector('model/rfcn_vid-0000.params')       # or a .pth of this project
    for r in det.stream('video.mp4'):                         # every frame is a key frame (is_key True)
        print(r['index'], len(r['boxes']), r['time_s'])
"""
import contextlib
import os

import torch

from lib.apps.stream import Session, StreamDetector, build_model, class_names_from_cfg, detector_config
from lib.model.detection import im_detect_boxes

from .model import RFCN

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CFG = os.path.join(ROOT, 'experiments', 'rfcn', 'cfgs', 'resnet_v1_101_imagenet_vid_rfcn_end2end_ohem.yaml')
BATCH_FRAMES = 10  # the original rfcn/demo_batch.py: batches of 10 frames


def load_detector(checkpoint, cfg=None, device='cpu', overrides=(), fast=None, log=print):
    """An R-FCN StreamDetector (lib/apps/stream.py): .stream(source) yields one result per frame.

    checkpoint: a .pth of this project or the official rfcn_vid-0000.params. cfg: a yaml path or a config;
    default: the config stored in the checkpoint, else the real ImageNet VID yaml (DEFAULT_CFG). overrides:
    'KEY=VALUE' config changes. device: cpu, cuda, cuda:N or auto (None: the config's). fast: the inference
    fast path, as in dff_rfcn/api.py load_detector."""
    keep = {}  # the checkpoint read for its stored config is not read again for its weights
    cfg = detector_config(checkpoint, cfg, DEFAULT_CFG, overrides, device, fast, keep=keep)
    class_names = class_names_from_cfg(cfg)
    model, dev = build_model(RFCN, checkpoint, cfg, log=log, weights=keep.get('weights'))

    @torch.no_grad()
    def detect_chunk(indices, data, im_info):  # every frame its own forward, or demo_batch.py's chunk in one
        scores, boxes = im_detect_boxes(model.detect(data, im_info), im_info)
        return [(s, b, True, None) for s, b in zip(scores, boxes)]

    @contextlib.contextmanager
    def session(with_flow=False):
        yield Session(detect=lambda index, data, im_info: detect_chunk([index], data, im_info)[0],
                      detect_chunk=detect_chunk, starts_chunk=lambda index: index % BATCH_FRAMES == 0)

    return StreamDetector(model, cfg, dev, class_names, session, marks_key_frames=False,
                          settings={'batch_frames': BATCH_FRAMES})
