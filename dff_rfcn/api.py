"""Deep Feature Flow as a Python API: detections frame by frame as a video streams in, the whole network on
key frames, FlowNet + feature warping on the others (lib/apps/stream.py: sources, resizing, post-processing,
results, timing; the key-frame schedule and cache: dff_rfcn/tester.py VideoDetector, as in testing).

    from dff_rfcn.api import load_detector
    det = load_detector('model/rfcn_dff_flownet_vid-0000.params', key_interval=10)   # or a .pth of this project
    for r in det.stream('video.mp4'):     # a video, a folder of frames, a camera index, a URL, BGR arrays
        print(r['index'], r['is_key'], len(r['boxes']), r['time_s'])
"""
import contextlib
import numbers
import os
import uuid

import torch

from lib.apps.stream import (Session, StreamDetector, build_model, class_names_from_cfg, detector_config,
                             forward_output)
from lib.model.detection import im_detect_boxes

from .model import DFF
from .key_schedule import schedule_from_config
from .tester import VideoDetector, is_key_frame

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CFG = os.path.join(ROOT, 'experiments', 'dff_rfcn', 'cfgs',
                           'resnet_v1_101_flownet_imagenet_vid_rfcn_end2end_ohem.yaml')


def key_frame_interval(key_interval, cfg):
    """key_interval: an int >= 1, 'adaptive' (the adaptive key-frame schedule with the config's TEST.KEY_FRAME_*
    thresholds: docs/key_frames.md), or None for the config's TEST.KEY_FRAME_SCHEDULE / KEY_FRAME_INTERVAL."""
    if isinstance(key_interval, str) and key_interval.strip().lower() == 'adaptive':
        return 'adaptive'
    if key_interval is None and cfg.TEST.KEY_FRAME_SCHEDULE == 'adaptive':
        return 'adaptive'
    value = cfg.TEST.KEY_FRAME_INTERVAL if key_interval is None else key_interval
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"key_interval: expected an int >= 1 or 'adaptive', got {value!r}")
    if value < 1:
        raise ValueError(f"key_interval: the key frame interval must be at least 1, got {value}")
    return int(value)


def _chunk_start(interval):
    """starts_chunk of the batched mode: chunks of `interval` frames; the adaptive schedule has none."""
    if interval == 'adaptive':
        def refuse(index):
            raise ValueError("the batched mode (demo_batch.py) needs a fixed key_interval: the adaptive schedule "
                             "decides each key frame from the frames before it")
        return refuse
    return lambda index: is_key_frame(index, interval)


def load_detector(checkpoint, cfg=None, device='cpu', key_interval=10, overrides=(), fast=None, log=print):
    """A DFF StreamDetector (lib/apps/stream.py): .stream(source) yields one result per frame.

    checkpoint: a .pth of this project or the official rfcn_dff_flownet_vid-0000.params. cfg: a yaml path or a
    config; default: the config stored in the checkpoint, else the real ImageNet VID yaml (DEFAULT_CFG).
    key_interval: a key frame at frame 0 and every key_interval frames after it (the test's schedule), or
    'adaptive' (key frames where the video needs them: docs/key_frames.md; None: the config's
    TEST.KEY_FRAME_SCHEDULE / KEY_FRAME_INTERVAL); a frame that resizes to another size than its key frame starts a new
    interval. overrides: 'KEY=VALUE' config changes. device: cpu, cuda, cuda:N or
    auto (None: the config's). fast: the inference fast path (docs/benchmark.md): None: the config's
    TEST.FAST_PATH; True: BN folded, channels_last; 'bfloat16' / 'float16' (CUDA): and autocast in that dtype;
    False: off."""
    keep = {}  # the checkpoint read for its stored config is not read again for its weights
    cfg = detector_config(checkpoint, cfg, DEFAULT_CFG, overrides, device, fast, keep=keep)
    interval = key_frame_interval(key_interval, cfg)
    class_names = class_names_from_cfg(cfg)
    model, dev = build_model(DFF, checkpoint, cfg, log=log, weights=keep.get('weights'))

    @contextlib.contextmanager
    def session(with_flow=False):
        """A stream is a video of its own for the tester's VideoDetector (a fresh key-frame cache); so is each
        run of frames of one size in it: a frame whose resized size differs from the key frame's cannot be
        warped from it, and starts a new run with a key frame (positions counted from the run's start)."""
        detector = VideoDetector(model, schedule=schedule_from_config(cfg, interval))
        run = {'video': None, 'start': 0, 'shape': None}
        with forward_output(model.flownet, with_flow, pick=lambda out: out[0]) as flow:  # FlowNet's (flow, scale)

            def detect(index, data, im_info):
                if tuple(data.shape) != run['shape']:
                    run.update(video=uuid.uuid4().hex, start=index, shape=tuple(data.shape))
                flow.clear()
                keys = detector.stats['key']
                scores, boxes = detector({'video': run['video'], 'frame_seg_id': index - run['start']}, data, im_info)
                return scores, boxes, detector.stats['key'] > keys, flow.get('output')

            @torch.no_grad()
            def detect_chunk(indices, data, im_info):
                """demo_batch.py: a chunk starts at a key frame; the key and the other frames in one forward."""
                flow.clear()
                scores, boxes = im_detect_boxes(model.detect_batch(data[:1], data[1:], im_info), im_info)
                flows = flow.get('output')
                return [(s, b, k == 0, None if k == 0 or flows is None else flows[k - 1:k])
                        for k, (s, b) in enumerate(zip(scores, boxes))]

            yield Session(detect=detect, detect_chunk=detect_chunk,
                          starts_chunk=_chunk_start(interval))

    return StreamDetector(model, cfg, dev, class_names, session, marks_key_frames=True,
                          settings={'key_interval': interval,
                                    'batch_frames': None if interval == 'adaptive' else interval})
