"""Test DFF on video (docs/fidelity.md §8.2): per video, frame 0 and every KEY_FRAME_INTERVAL-th frame after it is a
key frame (full network, features cached); every other frame runs FlowNet + warp + heads against the
last key frame. Videos are split whole across ranks. Same detections file and eval.json as the baseline."""
import os

import torch

from lib.core.tester import run_model_test
from lib.model.detection import im_detect_boxes

from .model import DFF


def frame_position(frame):
    """Index of the frame inside its video (frame_seg_id, else the number in its file name)."""
    if frame.get('frame_seg_id') is not None:
        return int(frame['frame_seg_id'])
    return int(os.path.basename(frame['index']))


def is_key_frame(position, interval):
    return position % int(interval) == 0


class VideoDetector:
    """Stateful per-frame detector with the key-frame cache; frames must come video by video, in order."""

    def __init__(self, model, interval):
        self.model, self.interval = model, int(interval)
        self.video, self.key_data, self.key_feat = None, None, None
        self.stats = {'key': 0, 'cur': 0}

    @torch.no_grad()
    def __call__(self, frame, data, im_info):
        pos = frame_position(frame)
        new_video = frame['video'] != self.video
        if new_video and not is_key_frame(pos, self.interval):
            raise ValueError(f"video {frame['video']} starts at frame {pos}, not at a key frame")
        if new_video or is_key_frame(pos, self.interval):
            out, self.key_feat = self.model.detect_key(data, im_info)
            self.key_data, self.video = data, frame['video']
            self.stats['key'] += 1
        else:
            out = self.model.detect_cur(data, im_info, self.key_data, self.key_feat)
            self.stats['cur'] += 1
        scores, boxes = im_detect_boxes(out, im_info)
        return scores[0], boxes[0]


def test_dff(cfg, checkpoint, output_dir, thresh=None, model=None, zero_flow=None, detector_cls=VideoDetector):
    """zero_flow (default cfg.TEST.ZERO_FLOW): the ablation that copies the key features instead of
    warping them; its results go to <output_dir>_zero_flow. detector_cls: a VideoDetector subclass (the
    ground-truth flow oracle of tools/synthetic_flow_eval.py)."""
    zero_flow = bool(cfg.TEST.ZERO_FLOW) if zero_flow is None else bool(zero_flow)
    if zero_flow:
        output_dir = output_dir.rstrip('/') + '_zero_flow'
    used = []

    def make_detector(net):
        net.zero_flow = zero_flow
        used.append(net)
        return detector_cls(net, cfg.TEST.KEY_FRAME_INTERVAL)

    try:
        return run_model_test(cfg, DFF, checkpoint, output_dir, make_detector, thresh=thresh, model=model, by_video=True,
                              desc='dff test', settings={'KEY_FRAME_INTERVAL': int(cfg.TEST.KEY_FRAME_INTERVAL),
                                                         'ZERO_FLOW': zero_flow,
                                                         'detector': detector_cls.__name__})
    finally:
        for net in used:
            net.zero_flow = False
