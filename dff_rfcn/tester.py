"""Test DFF on video (docs/fidelity.md §8.2): per video, frame 0 and every KEY_FRAME_INTERVAL-th frame after it is a
key frame (full network, features cached); every other frame runs FlowNet + warp + heads against the
last key frame. TEST.KEY_FRAME_SCHEDULE: adaptive chooses the key frames by what the video does instead
(dff_rfcn/key_schedule.py, docs/key_frames.md). Videos are split whole across ranks. Same detections file and
eval.json as the baseline; eval.json's 'stats' adds the number of key frames."""
import collections
import os

import torch

from lib.core.tester import run_model_test
from lib.model.detection import im_detect_boxes

from .key_schedule import FixedSchedule, is_key_frame, schedule_from_config  # noqa: F401 (is_key_frame: API)
from .model import DFF


def frame_position(frame):
    """Index of the frame inside its video (frame_seg_id, else the number in its file name)."""
    if frame.get('frame_seg_id') is not None:
        return int(frame['frame_seg_id'])
    return int(os.path.basename(frame['index']))


class VideoDetector:
    """Stateful per-frame detector with the key-frame cache; frames must come video by video, in order.

    schedule: which frames are key frames (dff_rfcn/key_schedule.py); default the original's fixed
    schedule with `interval`. It sees every frame's detections (after_detect). After each call, `last` says what happened to that frame: is_key, reason
    (why it became a key frame: first, interval, max_interval, cut, propagation; None for a propagated
    frame) and the schedule's signals. stats: key / propagated ('cur') frame counts; reasons: key frames
    per reason; flow_discarded: FlowNet runs whose frame then became a key frame."""

    def __init__(self, model, interval=None, schedule=None):
        if schedule is None:
            schedule = FixedSchedule(interval)
        self.model, self.schedule = model, schedule
        self.interval = getattr(schedule, 'interval', None)
        self.video, self.key_data, self.key_feat, self.key_pos = None, None, None, None
        self.stats = {'key': 0, 'cur': 0}
        self.reasons = collections.Counter()
        self.flow_discarded = 0
        self.last = None

    @torch.no_grad()
    def __call__(self, frame, data, im_info):
        pos = frame_position(frame)
        new_video = frame['video'] != self.video
        if new_video:
            self.schedule.start_video(frame['video'], pos)
        reason = self.schedule.before_flow(pos, None if new_video else pos - self.key_pos, data)
        if new_video:
            reason = 'first'
        out = None
        if reason is None:
            if self.schedule.checks_propagation:
                flow, scale = self.model.flow_to_key(data, self.key_data)
                reason = self.schedule.after_flow(data, self.key_data, flow)
                if reason is None:
                    out = self.model.detect_flowed(im_info, self.key_feat, flow, scale)
                else:
                    self.flow_discarded += 1
            else:
                out = self.model.detect_cur(data, im_info, self.key_data, self.key_feat)
        if reason is not None:
            out, self.key_feat = self.model.detect_key(data, im_info)
            self.key_data, self.video, self.key_pos = data, frame['video'], pos
            self.stats['key'] += 1
            self.reasons[reason] += 1
        else:
            self.stats['cur'] += 1
        self.last = {'index': pos, 'is_key': reason is not None, 'reason': reason, **self.schedule.signals()}
        scores, boxes = im_detect_boxes(out, im_info)
        self.schedule.after_detect(scores[0], boxes[0], reason is not None)
        return scores[0], boxes[0]

    def eval_stats(self):
        """Counts for eval.json's 'stats' (summed over ranks by lib/core/tester.py): frames, key_frames, key
        frames per reason, flow_discarded."""
        return {'frames': self.stats['key'] + self.stats['cur'], 'key_frames': self.stats['key'],
                'key_reasons': dict(sorted(self.reasons.items())), 'flow_discarded': self.flow_discarded}


def test_dff(cfg, checkpoint, output_dir, thresh=None, model=None, zero_flow=None, detector_cls=VideoDetector):
    """zero_flow (default cfg.TEST.ZERO_FLOW): the ablation that copies the key features instead of
    warping them; its results go to <output_dir>_zero_flow. detector_cls: a VideoDetector subclass (the
    ground-truth flow oracle of tools/synthetic_flow_eval.py)."""
    zero_flow = bool(cfg.TEST.ZERO_FLOW) if zero_flow is None else bool(zero_flow)
    if zero_flow:
        output_dir = output_dir.rstrip('/') + '_zero_flow'
    used = []

    schedule = schedule_from_config(cfg)

    def make_detector(net):
        net.zero_flow = zero_flow
        used.append(net)
        return detector_cls(net, schedule=schedule)

    try:
        return run_model_test(cfg, DFF, checkpoint, output_dir, make_detector, thresh=thresh, model=model, by_video=True,
                              desc='dff test', settings={'KEY_FRAME_INTERVAL': int(cfg.TEST.KEY_FRAME_INTERVAL),
                                                         **schedule.settings(), 'ZERO_FLOW': zero_flow,
                                                         'detector': detector_cls.__name__})
    finally:
        for net in used:
            net.zero_flow = False
