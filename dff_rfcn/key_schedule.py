"""Which frames of a video are key frames (docs/key_frames.md): the decision that dff_rfcn/tester.py's
VideoDetector asks for every frame, so the test, the demo and the Python API share it.

- FixedSchedule (TEST.KEY_FRAME_SCHEDULE: fixed, the original's): frame 0 and every
  TEST.KEY_FRAME_INTERVAL-th frame of a video.
- AdaptiveSchedule (TEST.KEY_FRAME_SCHEDULE: adaptive): the first frame of a video, then a new key frame
  whenever propagation stops being trustworthy:
    1. 'max_interval': TEST.KEY_FRAME_MAX_INTERVAL frames since the last key frame;
    2. 'cut': a shot cut, seen before FlowNet runs: the colour histograms of this frame and the previous
       one differ by more than TEST.KEY_FRAME_CUT_THRESH (half the L1 distance, 0 = same, 1 = disjoint);
    3. 'propagation': after FlowNet (which the non-key path runs anyway), the key frame's image, averaged
       to the feature map's cells and warped along the flow exactly as its features will be, disagrees with
       the current frame's (by more than TEST.KEY_FRAME_WARP_ERROR grey levels, mean over the colours) on more
       than TEST.KEY_FRAME_BAD_FRACTION of the cells: content the key frame did not see (an object that
       entered, a region uncovered) or motion the flow did not follow. Cells whose flow leaves the key
       frame (a border the camera uncovered) do not count.
  The frame that fails a test becomes a key frame itself (the full network runs on it).

The schedules only look at tensors (the network input of the frame and FlowNet's flow); they keep no
model. `schedule_from_config` builds the one a config (or a key interval given as a number or 'adaptive')
asks for.
"""
import torch
import torch.nn.functional as F

import lib.ops as ops

SCHEDULES = ('fixed', 'adaptive')
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

    def signals(self):
        return {}


class AdaptiveSchedule:
    """Key frames where the video needs them (see the module docstring); per-frame signals in `signals()`."""

    name = 'adaptive'
    checks_propagation = True

    def __init__(self, max_interval=30, cut_thresh=0.1, warp_error=32.0, bad_fraction=0.03):
        self.max_interval = int(max_interval)
        self.cut_thresh, self.warp_error, self.bad_fraction = float(cut_thresh), float(warp_error), float(bad_fraction)
        if self.max_interval < 1:
            raise ValueError(f"TEST.KEY_FRAME_MAX_INTERVAL must be at least 1, got {self.max_interval}")
        for key, v in (('KEY_FRAME_CUT_THRESH', self.cut_thresh), ('KEY_FRAME_WARP_ERROR', self.warp_error),
                       ('KEY_FRAME_BAD_FRACTION', self.bad_fraction)):
            if not v >= 0:
                raise ValueError(f"TEST.{key} must be >= 0, got {v}")
        self._prev_hist = None
        self._signals = {}

    def settings(self):
        return {'KEY_FRAME_SCHEDULE': self.name, 'KEY_FRAME_MAX_INTERVAL': self.max_interval,
                'KEY_FRAME_CUT_THRESH': self.cut_thresh, 'KEY_FRAME_WARP_ERROR': self.warp_error,
                'KEY_FRAME_BAD_FRACTION': self.bad_fraction}

    def start_video(self, video, position):
        self._prev_hist = None

    def before_flow(self, position, since_key, data):
        hist = colour_histograms(data)
        prev, self._prev_hist = self._prev_hist, hist
        self._signals = {}
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
        self._signals['bad_fraction'] = bad
        return 'propagation' if bad > self.bad_fraction else None

    def signals(self):
        """The measured signals of the last frame: cut_distance, bad_fraction (those computed)."""
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
                                t.KEY_FRAME_BAD_FRACTION)
    raise ValueError(f"TEST.KEY_FRAME_SCHEDULE: expected one of {', '.join(SCHEDULES)}, got {kind!r}")
