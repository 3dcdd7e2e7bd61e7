"""Which frames of a video are key frames (docs/key_frames.md): the decision that dff_rfcn/tester.py's
VideoDetector asks for every frame, so the test, the demo and the Python API share it.

- FixedSchedule (TEST.KEY_FRAME_SCHEDULE: fixed, the original's): frame 0 and every
  TEST.KEY_FRAME_INTERVAL-th frame of a video.
- AdaptiveSchedule (TEST.KEY_FRAME_SCHEDULE: adaptive): the first frame of a video, then a new key frame
  whenever propagation stops being trustworthy:
    1. 'max_interval': TEST.KEY_FRAME_MAX_INTERVAL frames since the last key frame;
    2. 'cut': a shot cut, seen before FlowNet runs: the colour histograms of this frame and the previous
       one differ by more than TEST.KEY_FRAME_CUT_THRESH (half the L1 distance, 0 = same, 1 = disjoint);
    3. 'propagation': after FlowNet (which the non-key path runs anyway), the frame's propagation error:
       the fraction of the feature map's cells where the key frame's image, averaged to the cells and warped
       along the flow exactly as its features will be, disagrees with the current frame's (by more than
       TEST.KEY_FRAME_WARP_ERROR grey levels, mean over the colours): content the key frame did not see (an
       object that entered, a region uncovered) or motion the flow did not follow; cells whose flow leaves
       the key frame (a border the camera uncovered) do not count. Plus TEST.KEY_FRAME_SCORE_DROP x how much
       the key frame's objects have lost in score since (KeyObjects: each followed frame to frame through
       the detections). TEST.KEY_FRAME_TRIGGER decides with it:
         'fraction': the error exceeds TEST.KEY_FRAME_BAD_FRACTION;
         'renewal': g x error - (sum of the errors of the g frames since the key frame) exceeds
           TEST.KEY_FRAME_RENEWAL_COST: the replacement rule for a part that wears (Barlow & Proschan's age
           replacement): a key frame costs RENEWAL_COST, each propagated frame costs its error, and
           renewing now pays off once the error has grown that much above its average since the key frame.
           A fast-growing error renews early, a slow one late but still (no fixed threshold to stay under).
  The frame that fails a test becomes a key frame itself (the full network runs on it).

The schedules only look at tensors (the network input of the frame, FlowNet's flow and the detector's
per-roi scores and boxes, handed over by VideoDetector through after_detect); they keep no model.
`schedule_from_config` builds the one a config (or a key interval given as a number or 'adaptive') asks for.
"""
import torch
import torch.nn.functional as F

import lib.ops as ops
from lib.bbox.bbox_transform import bbox_overlaps

SCHEDULES = ('fixed', 'adaptive')
TRIGGERS = ('fraction', 'renewal')
KEY_OBJECT_SCORE = 0.5  # a key frame's detection (best foreground class) above this score is followed ...
KEY_OBJECT_NMS = 0.3    # ... once per object (the test's NMS overlap, class-agnostic) ...
FOLLOW_IOU = 0.5        # ... to the best-scoring box that overlaps its last box by more than this IoU
HIST_BINS = 32
HIST_RANGE = (-160.0, 160.0)  # the network input is mean-subtracted 0..255 colour: values outside are clamped


def is_key_frame(position, interval):
    """The original's rule: frame `position` of a video is a key frame every `interval` frames from 0."""
    return position % int(interval) == 0


def colour_histograms(data):
    """Per-colour histograms (3, HIST_BINS) of a network input (1, 3, H, W), each summing to 1."""
    x = data[0].detach().float().clamp(*HIST_RANGE).reshape(3, -1)
    hists = torch.stack([torch.histc(c, bins=HIST_BINS, min=HIST_RANGE[0], max=HIST_RANGE[1]) for c in x])
    return hists / hists.sum(1, keepdim=True).clamp_min(1)


def histogram_distance(a, b):
    """Half the L1 distance between histograms (3, bins), averaged over the colours: 0 (same) .. 1 (disjoint)."""
    return float(0.5 * (a - b).abs().sum(1).mean())


def warp_disagreement(cur, key, flow):
    """Per feature cell (h, w): |key image warped along flow - current image|, mean over the colours, both
    images (1, 3, H, W) averaged down to the flow's (h, w) cells first; flow (1, 2, h, w) in cells. Cells
    whose flow points outside the key frame (a border the camera uncovered: the key frame never saw it, and
    the warp fills it with zeros) get 0: they are not a sign of a flow gone wrong."""
    size = flow.shape[-2:]
    cur_cells = F.adaptive_avg_pool2d(cur.float(), size)
    key_cells = F.adaptive_avg_pool2d(key.float(), size)
    flow = flow.float()
    err = (ops.flow_warp(key_cells, flow) - cur_cells).abs().mean(1)[0]
    h, w = size
    x = torch.arange(w, dtype=flow.dtype).view(1, w) + flow[0, 0]
    y = torch.arange(h, dtype=flow.dtype).view(h, 1) + flow[0, 1]
    inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    return torch.where(inside, err, torch.zeros_like(err))


def foreground(scores, boxes):
    """Per roi: the best foreground score (R,) and its box (R, 4), from a detector's scores (R, C) and boxes (R, 4),
    (R, 8) (class-agnostic: background, foreground) or (R, 4C)."""
    fg, cls = scores[:, 1:].max(1)
    boxes = boxes.reshape(len(boxes), boxes.shape[1] // 4, 4)
    if boxes.shape[1] == 1:
        return fg, boxes[:, 0]
    if boxes.shape[1] == 2:
        return fg, boxes[:, 1]
    return fg, boxes[torch.arange(len(boxes)), cls + 1]


class KeyObjects:
    """The objects a key frame detected (boxes scoring above KEY_OBJECT_SCORE, one per object after NMS) and
    their scores since: each frame, an object takes the best score among the boxes that overlap its last box
    by more than FOLLOW_IOU (and that box's place); none: score 0. `drop`: the sum over the objects of how
    much they scored less than on the key frame (0 on the key frame)."""

    def __init__(self):
        self.boxes, self.key_scores, self.drop = torch.zeros(0, 4), torch.zeros(0), 0.0

    def start(self, scores, boxes):
        fg, box = foreground(scores.detach().float().cpu(), boxes.detach().float().cpu())
        keep = fg > KEY_OBJECT_SCORE
        fg, box = fg[keep], box[keep]
        keep = ops.nms(box, fg, KEY_OBJECT_NMS) if len(fg) else torch.zeros(0, dtype=torch.int64)
        self.boxes, self.key_scores, self.drop = box[keep], fg[keep], 0.0

    def follow(self, scores, boxes):
        fg, box = foreground(scores.detach().float().cpu(), boxes.detach().float().cpu())
        if not len(self.boxes) or not len(fg):
            self.drop = float(self.key_scores.sum())  # nothing left to follow them to
            return
        near = bbox_overlaps(self.boxes, box) > FOLLOW_IOU
        best, idx = torch.where(near, fg[None, :], torch.full_like(near, -1, dtype=fg.dtype)).max(1)
        found = best >= 0
        self.drop = float((self.key_scores - best.clamp_min(0)).clamp_min(0).sum())
        self.boxes = torch.where(found[:, None], box[idx], self.boxes)


class FixedSchedule:
    """The original's schedule: a key frame every `interval` frames of a video, from frame 0."""

    name = 'fixed'
    checks_propagation = False

    def __init__(self, interval):
        interval = int(interval)
        if interval < 1:
            raise ValueError(f"the key frame interval must be at least 1, got {interval}")
        self.interval = interval

    def settings(self):
        return {'KEY_FRAME_SCHEDULE': self.name, 'KEY_FRAME_INTERVAL': self.interval}

    def start_video(self, video, position):
        if not is_key_frame(position, self.interval):
            raise ValueError(f"video {video} starts at frame {position}, not at a key frame")

    def before_flow(self, position, since_key, data):
        """Called for every frame (since_key: frames since the last key frame, None for a video's first
        frame): a reason to make this frame a key frame without running FlowNet, or None."""
        return 'interval' if is_key_frame(position, self.interval) else None

    def after_flow(self, data, key_data, flow):
        return None

    def after_detect(self, scores, boxes, is_key):
        """Called with every frame's detections (scores (R, C), boxes (R, 4k)) and whether it was a key frame."""

    def signals(self):
        return {}


class AdaptiveSchedule:
    """Key frames where the video needs them (see the module docstring); per-frame signals in `signals()`."""

    name = 'adaptive'
    checks_propagation = True

    def __init__(self, max_interval=30, cut_thresh=0.1, warp_error=32.0, bad_fraction=0.03, trigger='renewal',
                 renewal_cost=0.325, score_drop=0.05):
        self.max_interval = int(max_interval)
        self.cut_thresh, self.warp_error, self.bad_fraction = float(cut_thresh), float(warp_error), float(bad_fraction)
        self.trigger, self.renewal_cost, self.score_drop = str(trigger), float(renewal_cost), float(score_drop)
        if self.max_interval < 1:
            raise ValueError(f"TEST.KEY_FRAME_MAX_INTERVAL must be at least 1, got {self.max_interval}")
        if self.trigger not in TRIGGERS:
            raise ValueError(f"TEST.KEY_FRAME_TRIGGER: expected one of {', '.join(TRIGGERS)}, got {self.trigger!r}")
        for key, v in (('KEY_FRAME_CUT_THRESH', self.cut_thresh), ('KEY_FRAME_WARP_ERROR', self.warp_error),
                       ('KEY_FRAME_BAD_FRACTION', self.bad_fraction), ('KEY_FRAME_RENEWAL_COST', self.renewal_cost),
                       ('KEY_FRAME_SCORE_DROP', self.score_drop)):
            if not v >= 0:
                raise ValueError(f"TEST.{key} must be >= 0, got {v}")
        self._prev_hist = None
        self._signals = {}
        self._since, self._errors = None, 0.0  # frames since the key frame; sum of their propagation errors
        self.objects = KeyObjects()

    def settings(self):
        return {'KEY_FRAME_SCHEDULE': self.name, 'KEY_FRAME_MAX_INTERVAL': self.max_interval,
                'KEY_FRAME_CUT_THRESH': self.cut_thresh, 'KEY_FRAME_WARP_ERROR': self.warp_error,
                'KEY_FRAME_BAD_FRACTION': self.bad_fraction, 'KEY_FRAME_TRIGGER': self.trigger,
                'KEY_FRAME_RENEWAL_COST': self.renewal_cost, 'KEY_FRAME_SCORE_DROP': self.score_drop}

    def start_video(self, video, position):
        self._prev_hist = None
        self._since, self._errors = None, 0.0

    def before_flow(self, position, since_key, data):
        hist = colour_histograms(data)
        prev, self._prev_hist = self._prev_hist, hist
        self._signals = {}
        self._since = since_key
        if since_key is None:
            return None
        if since_key >= self.max_interval:
            return 'max_interval'
        if prev is not None:
            d = histogram_distance(hist, prev)
            self._signals['cut_distance'] = d
            if d > self.cut_thresh:
                return 'cut'
        return None

    def after_flow(self, data, key_data, flow):
        bad = float((warp_disagreement(data, key_data, flow) > self.warp_error).float().mean())
        error = bad + self.score_drop * self.objects.drop
        self._signals.update(bad_fraction=bad, score_drop=self.objects.drop, error=error)
        if self.trigger == 'fraction':
            return 'propagation' if error > self.bad_fraction else None
        self._errors += error
        gain = self._since * error - self._errors
        self._signals['renewal'] = gain
        return 'propagation' if gain > self.renewal_cost else None

    def after_detect(self, scores, boxes, is_key):
        """The frame's detections (scores (R, C), boxes (R, 4k)): a key frame's objects are followed from here
        on (and the propagation errors summed from here on); a propagated frame's update their scores."""
        if is_key:
            self._errors = 0.0
            if self.score_drop > 0:
                self.objects.start(scores, boxes)
        elif self.score_drop > 0:
            self.objects.follow(scores, boxes)

    def signals(self):
        """The measured signals of the last frame (those computed): cut_distance, bad_fraction, score_drop,
        error (bad_fraction + KEY_FRAME_SCORE_DROP x score_drop), renewal (the trigger's gain)."""
        return dict(self._signals)


def schedule_from_config(cfg, key_interval=None):
    """The schedule of cfg.TEST (KEY_FRAME_SCHEDULE and its keys); key_interval (an int or 'adaptive'), when
    given, overrides TEST.KEY_FRAME_SCHEDULE / KEY_FRAME_INTERVAL (the adaptive one keeps cfg's thresholds)."""
    t = cfg.TEST
    kind = str(t.KEY_FRAME_SCHEDULE)
    interval = t.KEY_FRAME_INTERVAL
    if key_interval is not None:
        if isinstance(key_interval, str) and key_interval in SCHEDULES:
            kind = key_interval
        elif isinstance(key_interval, bool) or not isinstance(key_interval, int):
            raise ValueError(f"key interval: expected an integer >= 1 or 'adaptive', got {key_interval!r}")
        else:
            kind, interval = 'fixed', key_interval
    if kind == 'fixed':
        return FixedSchedule(interval)
    if kind == 'adaptive':
        return AdaptiveSchedule(t.KEY_FRAME_MAX_INTERVAL, t.KEY_FRAME_CUT_THRESH, t.KEY_FRAME_WARP_ERROR,
                                t.KEY_FRAME_BAD_FRACTION, t.KEY_FRAME_TRIGGER, t.KEY_FRAME_RENEWAL_COST,
                                t.KEY_FRAME_SCORE_DROP)
    raise ValueError(f"TEST.KEY_FRAME_SCHEDULE: expected one of {', '.join(SCHEDULES)}, got {kind!r}")
