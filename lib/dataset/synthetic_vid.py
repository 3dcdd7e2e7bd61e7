"""A synthetic video-detection dataset in the exact ImageNet VID (ILSVRC2015) layout, plus ground-truth
optical-flow pairs in the Flying Chairs layout, for CPU training and testing of the frame baseline, DFF
and FlowNet without the real data.

Layout written under ``root`` (docs/fidelity.md §7.2)::

    Data/VID/{train,val}/<video>/%06d.JPEG        Annotations/VID/{train,val}/<video>/%06d.xml
    Data/DET/train/ILSVRC2013_train/<wnid>/<wnid>_<k>.JPEG   (+ the matching Annotations/DET/... .xml)
    ImageSets/VID_train_15frames.txt   `train/<video> 1 <frame_idx> <num_frames>`
    ImageSets/VID_val_videos.txt       `val/<video> <start_id> 0 <num_frames>` (cumulative 1-based ids)
    ImageSets/VID_val_frames.txt       `val/<video>/%06d <global_id>`
    ImageSets/DET_train_30classes.txt  `train/ILSVRC2013_train/<wnid>/<wnid>_<k> 1`
    FlowPairs/data/%05d_img1.ppm, %05d_img2.ppm, %05d_flow.flo (from 00001), FlowPairs/FlyingChairs_train_val.txt
    synthetic_meta.json                 generator version + every parameter (written last)

Scenes: a textured background (smooth noise + stripes/checker + gradient) seen by a panning, slightly
zooming camera, and 1-3 large textured objects (30-55% of the frame height: 3.6-6.6 cells of the stride-16
feature map, as ImageNet VID objects are at 600 px) whose class fixes the shape and the texture family
(colours, size, aspect and orientation vary per instance). Every layer (background or object) moves by an
isotropic scale + translation per frame: a point q of the layer's own image appears in frame t at
``p = a_t * q + b_t``. This makes the ground-truth flow exact: a pixel p of frame i that shows layer L
goes to ``p' = (a_j / a_i) * (p - b_i) + b_j`` in frame j (Flying Chairs convention: img1[y, x] ~=
img2[y + v, x + u]).

Object speeds (fractions of the frame width per frame) come from VAL_SPEEDS and TRAIN_SPEEDS: validation
objects fall into all three of the evaluator's motion buckets, training objects have the same kinds of
motion, wider. Validation videos also have a gentler camera (half the training ranges) and walls that keep
most objects in view (VAL_WALLS); training objects bounce between walls outside the frame (they leave and
re-enter). Flow pairs (FlowNet pretraining) show 5-9 objects each (FLOW_PAIR_OBJECTS, FLOW_PAIR_SPEED).
Objects change scale by at most 2% per frame and occlude each other (a fixed z-order). Boxes are the tight
boxes of the visible pixels of an object (inclusive integer pixel coordinates, inside the image); an
object with less than 20% of its area visible or a box side under 4 px is not annotated. Why these choices
(and what earlier versions measured): docs/synthetic.md.

Everything is deterministic per seed: each video, DET image and flow pair has its own random stream
derived from (seed, kind, index), so changing one count does not change the other items.
"""
import contextlib
import json
import multiprocessing
import os
import shutil
import time
import xml.etree.ElementTree as ET

import cv2
import numpy as np

from lib.utils.fileio import write_text
from lib.utils.flow_io import write_flo, write_ppm

from .vid_classes import SYNTHETIC_VID_CLASSES, SYNTHETIC_VID_WNIDS

GENERATOR_VERSION = 11  # bump whenever the generated content changes: existing datasets are regenerated

# A subset of ImageNet VID (names and WNIDs as in docs/fidelity.md §7.3), background first; registered in vid_classes.
SYNTHETIC_CLASSES = SYNTHETIC_VID_CLASSES
SYNTHETIC_WNIDS = SYNTHETIC_VID_WNIDS
CLASS_LIST_NAME = 'synthetic_vid'

# class name -> (shape, texture family, hue). The hue is the centre of the class's colour band: a
# from-scratch CPU-sized network learns colour + shape within minutes, shape + texture alone it does not
# (measured: 28% roi classification accuracy after one epoch with hues drawn uniformly).
CLASS_STYLE = {
    'airplane': ('cross', 'rings', 0.60),
    'car': ('rectangle', 'checker', 0.0),
    'dog': ('disc', 'radial', 0.13),
    'horse': ('ellipse', 'dots', 0.33),
    'zebra': ('triangle', 'stripes', 0.80),
}
HUE_JITTER = 0.05
# Flow pairs (FlowNet pretraining): several objects per pair, as Flying Chairs puts several chairs in every
# image, moving 0.2-1.5% of the width per frame (up to 48 px over the largest gap of 10 frames at 320 px);
# with the videos' own 1-3 objects FlowNet learnt the camera's motion only (docs/synthetic.md).
FLOW_PAIR_OBJECTS = (5, 9)
# Object speeds in videos, fractions of the frame width per frame: (probability, low, high) per component.
# Validation: about 30 / 45 / 25% of the instances in the evaluator's motion buckets slow, medium and fast
# (motion IoU over +-10 frames > 0.9, 0.7..0.9, < 0.7), so that every bucket has hundreds of instances. Training: the same
# kinds of motion, wider, and a tenth faster than any validation object (DFF's training pairs span up to 9
# frames: an object must stay within reach of the flow for the warp to be learnt).
VAL_SPEEDS = ((0.3, 0.0, 0.0012), (0.3, 0.002, 0.006), (0.4, 0.007, 0.013))
# Validation objects bounce between walls VAL_WALLS x (half their size) outside the frame's edges (negative:
# inside), so most stay in view over a video: an object that enters the frame after its key frame cannot be
# propagated by any flow (the key frame never saw it); the videos of the harder split do that on purpose.
# Training videos keep walls 0-1.4 x half outside (objects leave and re-enter: partial views to learn from).
VAL_WALLS = (-1.0, 0.3)
TRAIN_SPEEDS = ((0.3, 0.0, 0.002), (0.35, 0.002, 0.008), (0.25, 0.008, 0.02), (0.1, 0.02, 0.06))
FLOW_PAIR_SPEED = (0.002, 0.015)

DEFAULT_SIZES = {
    'height': 192,             # frame size (videos, DET images, flow pairs)
    'width': 320,
    'train_videos': 8,
    'train_frames': 40,        # frames per train video
    'val_videos': 4,
    'val_frames': 30,          # frames per val video
    'det_images': 40,
    'flow_pairs': 200,
    'flow_val_fraction': 0.1,  # share of flow pairs marked 2 (validation) in FlyingChairs_train_val.txt
    'max_pair_gap': 10,        # flow pairs are 1..max_pair_gap frames apart
    'jpeg_quality': 90,
}

META_FILE = 'synthetic_meta.json'
_INCOMPLETE_MARKER = '.synthetic_vid_incomplete'
_LOCK_FILE = '.synthetic_vid.lock'
# The folders generate() owns (and removes before a regeneration); relative to root.
_OWNED_DIRS = ('Data/VID', 'Data/DET', 'Annotations/VID', 'Annotations/DET', 'ImageSets', 'FlowPairs')
_IMAGE_SETS = ('VID_train_15frames', 'VID_val_videos', 'VID_val_frames', 'DET_train_30classes')

# Random-stream ids of the item kinds.
_KIND_TRAIN, _KIND_VAL, _KIND_DET, _KIND_FLOW, _KIND_SPLIT = 1, 2, 3, 4, 5

MIN_VISIBLE_FRACTION = 0.2
MIN_BOX_SIDE = 4


# ----------------------------------------------------------------------------------------- parameters
def resolve_params(**sizes):
    """DEFAULT_SIZES updated with ``sizes``, validated (TypeError for an unknown key, ValueError for a bad value)."""
    unknown = sorted(set(sizes) - set(DEFAULT_SIZES))
    if unknown:
        raise TypeError(f"unknown synthetic-dataset parameter(s) {unknown}; known: {sorted(DEFAULT_SIZES)}")
    p = dict(DEFAULT_SIZES)
    p.update(sizes)
    for k in p:
        if k == 'flow_val_fraction':
            p[k] = float(p[k])
            if not 0.0 <= p[k] <= 1.0:
                raise ValueError(f"flow_val_fraction must be in [0, 1], got {p[k]}")
            continue
        v = p[k]
        if isinstance(v, bool) or int(v) != v:
            raise ValueError(f"{k} must be an integer, got {v!r}")
        p[k] = int(v)
    for k in ('train_videos', 'val_videos', 'det_images', 'flow_pairs'):
        if p[k] < 0:
            raise ValueError(f"{k} must be >= 0, got {p[k]}")
    for k in ('train_frames', 'val_frames', 'max_pair_gap'):
        if p[k] < 1:
            raise ValueError(f"{k} must be >= 1, got {p[k]}")
    if p['height'] < 32 or p['width'] < 32:
        raise ValueError(f"frame size {p['height']}x{p['width']} is too small (>= 32 x 32)")
    if not 1 <= p['jpeg_quality'] <= 100:
        raise ValueError(f"jpeg_quality must be in 1..100, got {p['jpeg_quality']}")
    return p


def train_frame_indices(num_frames, per_video=15):
    """Frames of a train video listed in VID_train_15frames: segment centres floor(n*(i+0.5)/15), i < 15,
    or every frame of a video with fewer than 15 frames (docs/fidelity.md §7.2). Exact integer arithmetic."""
    if num_frames < per_video:
        return list(range(num_frames))
    return [(num_frames * (2 * i + 1)) // (2 * per_video) for i in range(per_video)]


def video_name(split, index):
    return f'ILSVRC2015_{split}_{index:08d}'


def _rng(seed, kind, index):
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), kind, int(index)])))


# ----------------------------------------------------------------------------------------- textures
def _hsv_to_bgr(h, s, v):
    """h in [0, 1), s, v in [0, 1] -> BGR float32 (3,) in [0, 255]."""
    px = np.array([[[(h % 1.0) * 360.0, s, v]]], np.float32)
    return cv2.cvtColor(px, cv2.COLOR_HSV2BGR)[0, 0] * 255.0


def _smooth_noise(rng, h, w, cell, channels=1):
    """Smooth random field: normal noise on a coarse grid (one value per ``cell`` px) upsampled bicubically."""
    gh, gw = max(2, int(np.ceil(h / cell)) + 1), max(2, int(np.ceil(w / cell)) + 1)
    coarse = rng.standard_normal((gh, gw, channels)).astype(np.float32)
    up = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    return up.reshape(h, w, channels)


def _make_background(rng, h, w):
    """Background texture (h, w, 3) float32 in [0, 255]: base colour + smooth noise + a periodic pattern
    (stripes, checker or blobs) + a colour gradient + fine noise."""
    base = _hsv_to_bgr(rng.random(), rng.uniform(0.05, 0.6), rng.uniform(0.3, 0.75))
    img = np.empty((h, w, 3), np.float32)
    img[:] = base
    lum = _smooth_noise(rng, h, w, cell=rng.uniform(18, 40))
    chroma = _smooth_noise(rng, h, w, cell=rng.uniform(25, 60), channels=3)
    img += rng.uniform(14, 28) * lum + rng.uniform(4, 10) * chroma
    img += rng.uniform(6, 12) * _smooth_noise(rng, h, w, cell=rng.uniform(3, 6))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    theta = rng.uniform(0, np.pi)
    u = xx * np.cos(theta) + yy * np.sin(theta)
    v = -xx * np.sin(theta) + yy * np.cos(theta)
    period = rng.uniform(10, 40)
    kind = rng.integers(3)
    if kind == 0:    # stripes
        pat = np.sin(2 * np.pi * u / period + rng.uniform(0, 2 * np.pi))
    elif kind == 1:  # soft checker
        pat = np.tanh(2.0 * np.sin(2 * np.pi * u / period) * np.sin(2 * np.pi * v / period))
    else:            # blobs
        pat = np.tanh(1.5 * (np.cos(2 * np.pi * u / period) + np.cos(2 * np.pi * v / (period * rng.uniform(0.7, 1.4)))))
    pat_color = rng.uniform(0.6, 1.0, 3).astype(np.float32)
    img += (rng.uniform(8, 22) * pat)[..., None] * pat_color
    gdir = rng.uniform(0, 2 * np.pi)
    ramp = (xx * np.cos(gdir) + yy * np.sin(gdir)) / max(h, w)
    img += ramp[..., None] * rng.uniform(-35, 35, 3).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.float32)


def _shape_polygon(rng, shape, size):
    """Vertices (n, 2) of the class's shape, centred at 0, about ``size`` px across, and the shape's own
    rotation angle (used to align rectangular textures)."""
    rot = rng.uniform(0, 2 * np.pi)
    if shape == 'disc':
        ar = rng.uniform(0.87, 1.15)
        t = np.linspace(0, 2 * np.pi, 96, endpoint=False)
        pts = np.stack([0.5 * size * np.sqrt(ar) * np.cos(t), 0.5 * size / np.sqrt(ar) * np.sin(t)], 1)
    elif shape == 'ellipse':
        ar = rng.uniform(1.6, 2.3)
        t = np.linspace(0, 2 * np.pi, 96, endpoint=False)
        pts = np.stack([0.5 * size * np.cos(t), 0.5 * size / ar * np.sin(t)], 1)
    elif shape == 'rectangle':
        ar = rng.uniform(0.8, 1.6)
        hw, hh = 0.5 * size * np.sqrt(ar) / 1.15, 0.5 * size / np.sqrt(ar) / 1.15
        pts = np.array([[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]])
        rot = rng.uniform(-0.35, 0.35)
    elif shape == 'triangle':
        t = np.array([0.0, 2 * np.pi / 3, 4 * np.pi / 3]) + rng.uniform(-0.25, 0.25, 3)
        r = 0.58 * size * rng.uniform(0.85, 1.0, 3)
        pts = np.stack([r * np.cos(t), r * np.sin(t)], 1)
        pts -= pts.mean(0)
    elif shape == 'cross':
        a, b = 0.5 * size, 0.5 * size * rng.uniform(0.28, 0.4)  # arm half-length, half-thickness
        c = a * rng.uniform(0.7, 1.0)                             # the cross-bar may be shorter
        pts = np.array([[-b, -a], [b, -a], [b, -b], [c, -b], [c, b], [b, b],
                        [b, a], [-b, a], [-b, b], [-c, b], [-c, -b], [-b, -b]])
    else:
        raise ValueError(shape)
    ca, sa = np.cos(rot), np.sin(rot)
    return pts @ np.array([[ca, sa], [-sa, ca]]), rot


def _make_sprite(rng, cls_name, size):
    """An object instance: float32 (N, N, 4) image (BGR premultiplied by alpha, alpha), its centre
    (N-1)/2 and its area (alpha > 0.5 pixels) at scale 1."""
    shape, texture, hue = CLASS_STYLE[cls_name]
    n = int(np.ceil(size * 1.25)) + 6
    c = (n - 1) / 2.0
    pts, rot = _shape_polygon(rng, shape, size)
    # anti-aliased mask: fill at 4x, area-average down; pixel centre k of the sprite is at 4k + 1.5
    ss = 4
    big = np.zeros((n * ss, n * ss), np.uint8)
    poly = np.round(((pts + c) * ss + (ss - 1) / 2.0) * 16).astype(np.int32)
    cv2.fillPoly(big, [poly], 255, lineType=cv2.LINE_8, shift=4)
    alpha = cv2.resize(big.astype(np.float32) / 255.0, (n, n), interpolation=cv2.INTER_AREA)

    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    x, y = xx - c, yy - c
    ca, sa = np.cos(rot), np.sin(rot)
    xr, yr = x * ca + y * sa, -x * sa + y * ca        # shape-aligned coordinates
    r = np.sqrt(x * x + y * y)
    period = max(5.0, size * rng.uniform(0.18, 0.3))
    phase = rng.uniform(0, 2 * np.pi)
    if texture == 'radial':
        raw = np.cos(rng.integers(5, 10) * np.arctan2(y, x) + phase) + 0.3 * np.cos(2 * np.pi * r / period)
    elif texture == 'checker':
        raw = np.sin(2 * np.pi * xr / period + phase) * np.sin(2 * np.pi * yr / period + phase) * 2.0
    elif texture == 'stripes':
        th = rng.uniform(0, np.pi)
        raw = np.sin(2 * np.pi * (x * np.cos(th) + y * np.sin(th)) / (0.75 * period) + phase)
    elif texture == 'rings':
        raw = np.cos(2 * np.pi * r / period + phase)
    elif texture == 'dots':
        raw = np.cos(2 * np.pi * xr / period) + np.cos(2 * np.pi * yr / period) - 0.8
    else:
        raise ValueError(texture)
    t = (0.5 + 0.5 * np.tanh(2.5 * raw)).astype(np.float32)
    v1, v2 = rng.uniform(0.2, 0.5), rng.uniform(0.7, 1.0)
    if rng.random() < 0.5:
        v1, v2 = v2, v1
    c1 = _hsv_to_bgr(hue + rng.uniform(-HUE_JITTER, HUE_JITTER), rng.uniform(0.55, 0.95), v1)
    c2 = _hsv_to_bgr(hue + rng.uniform(-HUE_JITTER, HUE_JITTER), rng.uniform(0.3, 0.95), v2)
    color = c1 * (1 - t[..., None]) + c2 * t[..., None]
    light = rng.uniform(0, 2 * np.pi)
    color *= (1.0 + 0.15 * (x * np.cos(light) + y * np.sin(light)) / size)[..., None]
    color = np.clip(color, 0, 255)
    sprite = np.concatenate([color * alpha[..., None], alpha[..., None]], axis=2).astype(np.float32)
    return sprite, c, float((alpha > 0.5).sum())


def _mixture(rng, components):
    """A draw from a mixture of uniform ranges ((probability, low, high), ...)."""
    probs = np.array([c[0] for c in components], np.float64)
    k = int(rng.choice(len(components), p=probs / probs.sum()))
    return float(rng.uniform(components[k][1], components[k][2]))


def _reflect(x, lo, hi):
    """Triangle-wave reflection of x into [lo, hi] (elementwise)."""
    span = hi - lo
    y = np.mod(x - lo, 2 * span)
    return lo + np.where(y <= span, y, 2 * span - y)


# ----------------------------------------------------------------------------------------- scene
class Scene:
    """One synthetic clip: a background layer and objects, each with an exact per-frame affine motion.

    ``regime``: 'train' (object speeds TRAIN_SPEEDS), 'val' (VAL_SPEEDS, walls VAL_WALLS, a gentler
    camera), 'flow' (flow pairs: FLOW_PAIR_SPEED) or 'still' (DET images: object ``main_class`` fully
    inside the frame and on top).
    Frames are rendered on demand at any integer (or real) time t >= 0.
    """

    def __init__(self, rng, height, width, regime='train', num_objects=None, main_class=None):
        self.height, self.width = H, W = int(height), int(width)
        self.regime = regime
        # ---- background: texture 1.4x the frame, seen by a panning/zooming camera
        self.bg = _make_background(rng, int(H * 1.4) + 8, int(W * 1.4) + 8)
        self.bg_center = np.array([(self.bg.shape[1] - 1) / 2.0, (self.bg.shape[0] - 1) / 2.0])
        calm = 0.5 if regime == 'val' else 1.0  # validation: gentler camera and object jitter (see above)
        pan_speed, pan_dir = rng.uniform(0, 3.0) * calm, rng.uniform(0, 2 * np.pi)
        self.pan_v = pan_speed * np.array([np.cos(pan_dir), np.sin(pan_dir)])
        self.pan_wobble = (rng.uniform(0, 1.5, 2), rng.uniform(0.1, 0.4, 2), rng.uniform(0, 2 * np.pi, 2))
        zw = rng.uniform(0.03, 0.15)
        self.zoom = (min(0.05, rng.uniform(0, 0.005) / zw), zw, rng.uniform(0, 2 * np.pi))
        # ---- global brightness: slow variation, at most +/-3%, < 0.5% per frame
        bw = rng.uniform(0.02, 0.15)
        self.gain = (rng.uniform(0, 0.03), bw, rng.uniform(0, 2 * np.pi))
        # ---- objects, in z-order (bottom first)
        classes = SYNTHETIC_CLASSES[1:]
        if num_objects is None:
            num_objects = int(rng.integers(1, 4))
        cls_ids = [int(rng.integers(len(classes))) + 1 for _ in range(num_objects)]
        if main_class is not None:
            cls_ids[-1] = SYNTHETIC_CLASSES.index(main_class)  # the main object is the topmost
        self.objects = []
        for k, cid in enumerate(cls_ids):
            size = rng.uniform(0.3, 0.55) * H  # 58-106 px at 192: 3.6-6.6 cells of the stride-16 map
            sprite, sc, area = _make_sprite(rng, SYNTHETIC_CLASSES[cid], size)
            if regime in ('val', 'train'):
                frac = _mixture(rng, VAL_SPEEDS if regime == 'val' else TRAIN_SPEEDS)
            elif regime == 'flow':
                frac = rng.uniform(*FLOW_PAIR_SPEED)
            else:
                frac = rng.uniform(0.0, 0.1)
            ang = rng.uniform(0, 2 * np.pi)
            vel = frac * W * np.array([np.cos(ang), 0.6 * np.sin(ang)])
            ws = rng.uniform(0.05, 0.25)
            scale = (min(0.18, rng.uniform(0.2, 1.0) * 0.02 * calm / ws), ws, rng.uniform(0, 2 * np.pi))
            half = 0.5 * size
            if regime == 'still' and k == len(cls_ids) - 1 and main_class is not None:
                margin = -half * (1.0 + scale[0]) - 2  # fully inside the frame at every scale
            elif regime == 'val':
                margin = half * rng.uniform(*VAL_WALLS)  # mostly inside the frame (see VAL_WALLS)
            else:
                margin = half * rng.uniform(0.0, 1.4)   # walls outside the frame: objects leave and re-enter
            lo = np.array([-margin, -margin])
            hi = np.array([W - 1 + margin, H - 1 + margin])
            hi = np.maximum(hi, lo + 1.0)
            self.objects.append({
                'class_id': cid, 'trackid': k, 'size': size,
                'sprite': sprite, 'sprite_center': sc, 'area': area,
                'p0': lo + rng.random(2) * (hi - lo), 'vel': vel, 'lo': lo, 'hi': hi,
                'wobble': (rng.uniform(0, 4, 2) * calm, rng.uniform(0.1, 0.4, 2), rng.uniform(0, 2 * np.pi, 2)),
                'scale': scale,
            })

    # ---- motion
    def layer_affines(self, t):
        """(L, 3) float64 [a, bx, by] per layer (0 = background, k + 1 = object k) at time t: a point q of
        the layer's own image is at p = a * q + b in the frame."""
        out = np.empty((1 + len(self.objects), 3))
        amp, w, ph = self.pan_wobble
        d = self.pan_v * t + amp * (np.sin(w * t + ph) - np.sin(ph))
        za, zw, zp = self.zoom
        z = np.exp(za * (np.sin(zw * t + zp) - np.sin(zp)))
        frame_c = np.array([(self.width - 1) / 2.0, (self.height - 1) / 2.0])
        out[0, 0] = z
        out[0, 1:] = frame_c + d - z * self.bg_center
        for k, o in enumerate(self.objects):
            amp, w, ph = o['wobble']
            c = _reflect(o['p0'] + o['vel'] * t + amp * (np.sin(w * t + ph) - np.sin(ph)), o['lo'], o['hi'])
            sa, sw, sp = o['scale']
            s = np.exp(sa * np.sin(sw * t + sp))
            out[k + 1, 0] = s
            out[k + 1, 1:] = c - s * o['sprite_center']
        return out

    def brightness(self, t):
        amp, w, ph = self.gain
        return 1.0 + amp * np.sin(w * t + ph)

    # ---- rendering
    def render(self, t):
        """Clean frame t. Returns (image (H, W, 3) float32 BGR in [0, 255], label map (H, W) uint8 with
        0 = background and k + 1 = object k on top there (alpha > 0.5), per-object info dicts with
        'inframe' (alpha > 0.5 pixels of the object in the frame, occluded or not) and 'roi')."""
        H, W = self.height, self.width
        aff = self.layer_affines(t)
        a, bx, by = aff[0]
        img = cv2.warpAffine(self.bg, np.array([[a, 0, bx], [0, a, by]]), (W, H), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REFLECT_101)
        label = np.zeros((H, W), np.uint8)
        info = []
        for k, o in enumerate(self.objects):
            a, bx, by = aff[k + 1]
            n = o['sprite'].shape[0]
            x0, y0 = int(np.floor(bx)) - 1, int(np.floor(by)) - 1
            x1, y1 = int(np.ceil(bx + a * (n - 1))) + 2, int(np.ceil(by + a * (n - 1))) + 2
            x0c, y0c, x1c, y1c = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
            if x1c <= x0c or y1c <= y0c:
                info.append({'inframe': 0, 'roi': None})
                continue
            m = np.array([[a, 0, bx - x0c], [0, a, by - y0c]])
            layer = cv2.warpAffine(o['sprite'], m, (x1c - x0c, y1c - y0c), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            alpha = layer[..., 3:4]
            roi = img[y0c:y1c, x0c:x1c]
            roi *= 1.0 - alpha
            roi += layer[..., :3]
            inside = alpha[..., 0] > 0.5
            label[y0c:y1c, x0c:x1c][inside] = k + 1
            info.append({'inframe': int(inside.sum()), 'roi': (x0c, y0c, x1c, y1c)})
        np.clip(img, 0, 255, out=img)
        return img, label, info

    def annotate(self, t, label, info):
        """Objects visible in frame t: list of dicts trackid, class_id, box (xmin, ymin, xmax, ymax;
        inclusive ints of the visible pixels), occluded (0/1). Objects with < 20% of their area
        visible or a box side < 4 px are left out."""
        aff = self.layer_affines(t)
        objs = []
        for k, o in enumerate(self.objects):
            if info[k]['roi'] is None:
                continue
            x0, y0, x1, y1 = info[k]['roi']
            ys, xs = np.nonzero(label[y0:y1, x0:x1] == k + 1)
            if len(xs) == 0:
                continue
            area = o['area'] * aff[k + 1, 0] ** 2
            if len(xs) < MIN_VISIBLE_FRACTION * area:
                continue
            box = (int(xs.min()) + x0, int(ys.min()) + y0, int(xs.max()) + x0, int(ys.max()) + y0)
            if box[2] - box[0] + 1 < MIN_BOX_SIDE or box[3] - box[1] + 1 < MIN_BOX_SIDE:
                continue
            objs.append({'trackid': o['trackid'], 'class_id': o['class_id'], 'box': box,
                         'occluded': int(len(xs) < 0.9 * info[k]['inframe'])})
        return objs

    def flow(self, i, j, label_i):
        """Exact flow from frame i to frame j (H, W, 2) float32: for each pixel of frame i, the
        displacement of the layer visible there (label_i, from render(i))."""
        ai, aj = self.layer_affines(i), self.layer_affines(j)
        r = aj[:, 0] / ai[:, 0]
        off = aj[:, 1:] - r[:, None] * ai[:, 1:]          # p_j = r * p_i + off
        H, W = self.height, self.width
        xs = np.arange(W, dtype=np.float64)[None, :]
        ys = np.arange(H, dtype=np.float64)[:, None]
        rl = r[label_i]
        flow = np.empty((H, W, 2), np.float32)
        flow[..., 0] = xs * (rl - 1.0) + off[label_i, 0]
        flow[..., 1] = ys * (rl - 1.0) + off[label_i, 1]
        return flow


def degrade(img, scene, t, rng, jpeg_quality):
    """Camera effects on a clean frame: global brightness, mild sensor noise, JPEG compression.
    Returns (BGR uint8 decoded image, JPEG bytes)."""
    out = img * np.float32(scene.brightness(t)) + rng.normal(0, 1.0, img.shape).astype(np.float32)
    out = np.clip(np.round(out), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode('.jpg', out, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.imdecode(buf, cv2.IMREAD_COLOR), buf.tobytes()


def video_scene(seed, split, index, params):
    """The Scene of video ``index`` of ``split`` ('train' or 'val'), and the noise stream of its frames."""
    rng = _rng(seed, _KIND_TRAIN if split == 'train' else _KIND_VAL, index)
    scene = Scene(rng, params['height'], params['width'], regime=split)
    return scene, rng


def flow_pair(seed, pair_id, params):
    """Flow pair ``pair_id`` (1-based) exactly as generate() writes it: dict img1, img2 (BGR uint8, with
    the videos' brightness, noise and JPEG artefacts), flow (H, W, 2) float32 img1 -> img2, valid (H, W)
    bool: pixels of img1 whose surface is visible in img2 (inside it, not occluded, away from layer
    edges), label1 / label2 (the layer on top at each pixel: 0 = background, k + 1 = object k) and
    the clip times i, j of img1 and img2."""
    rng = _rng(seed, _KIND_FLOW, pair_id)
    num_objects = int(rng.integers(FLOW_PAIR_OBJECTS[0], FLOW_PAIR_OBJECTS[1] + 1))
    scene = Scene(rng, params['height'], params['width'], regime='flow', num_objects=num_objects)
    gap = int(rng.integers(1, params['max_pair_gap'] + 1))
    t0 = int(rng.integers(0, 30))
    i, j = (t0, t0 + gap) if rng.random() < 0.5 else (t0 + gap, t0)
    img_i, lab_i, _ = scene.render(i)
    img_j, lab_j, _ = scene.render(j)
    flow = scene.flow(i, j, lab_i)
    img1, _ = degrade(img_i, scene, i, rng, params['jpeg_quality'])
    img2, _ = degrade(img_j, scene, j, rng, params['jpeg_quality'])
    return {'img1': img1, 'img2': img2, 'flow': flow, 'valid': _valid_mask(flow, lab_i, lab_j),
            'label1': lab_i, 'label2': lab_j, 'i': i, 'j': j}


def _valid_mask(flow, lab_i, lab_j):
    H, W = lab_i.shape
    kernel = np.ones((3, 3), np.uint8)
    uniform_i = cv2.erode(lab_i, kernel) == cv2.dilate(lab_i, kernel)
    uniform_j = cv2.erode(lab_j, kernel) == cv2.dilate(lab_j, kernel)
    tx = np.arange(W)[None, :] + flow[..., 0]
    ty = np.arange(H)[:, None] + flow[..., 1]
    inside = (tx >= 0) & (tx <= W - 1) & (ty >= 0) & (ty <= H - 1)
    xi = np.clip(np.round(tx), 0, W - 1).astype(np.int64)
    yi = np.clip(np.round(ty), 0, H - 1).astype(np.int64)
    return inside & uniform_i & uniform_j[yi, xi] & (lab_j[yi, xi] == lab_i)


# ----------------------------------------------------------------------------------------- writing
def _annotation_xml(folder, filename, width, height, objects, with_trackid):
    ann = ET.Element('annotation')
    ET.SubElement(ann, 'folder').text = folder
    ET.SubElement(ann, 'filename').text = filename
    src = ET.SubElement(ann, 'source')
    ET.SubElement(src, 'database').text = 'ILSVRC_2015'
    size = ET.SubElement(ann, 'size')
    ET.SubElement(size, 'width').text = str(width)
    ET.SubElement(size, 'height').text = str(height)
    for o in objects:
        el = ET.SubElement(ann, 'object')
        if with_trackid:
            ET.SubElement(el, 'trackid').text = str(o['trackid'])
        ET.SubElement(el, 'name').text = SYNTHETIC_WNIDS[o['class_id']]
        bb = ET.SubElement(el, 'bndbox')
        xmin, ymin, xmax, ymax = o['box']
        ET.SubElement(bb, 'xmax').text = str(xmax)
        ET.SubElement(bb, 'xmin').text = str(xmin)
        ET.SubElement(bb, 'ymax').text = str(ymax)
        ET.SubElement(bb, 'ymin').text = str(ymin)
        ET.SubElement(el, 'occluded').text = str(o['occluded'])
        ET.SubElement(el, 'generated').text = '0'
    ET.indent(ann, space='\t')
    return ET.tostring(ann, encoding='unicode') + '\n'


def _write_bytes(path, data):
    with open(path, 'wb') as f:
        f.write(data)


def _write_text(path, text):
    with open(path, 'w', newline='\n') as f:
        f.write(text)


def _write_clip(root, split, index, num_frames, params, frame, rng):
    """Write video ``index`` of ``split``: frame(t) -> (clean image, objects, scene, time in that scene),
    degraded with the noise stream ``rng``. Returns '<split>/<video name>'."""
    name = video_name(split, index)
    img_dir = os.path.join(root, 'Data', 'VID', split, name)
    ann_dir = os.path.join(root, 'Annotations', 'VID', split, name)
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(ann_dir, exist_ok=True)
    for t in range(num_frames):
        img, objs, scene, local = frame(t)
        _, jpeg = degrade(img, scene, local, rng, params['jpeg_quality'])
        _write_bytes(os.path.join(img_dir, f'{t:06d}.JPEG'), jpeg)
        _write_text(os.path.join(ann_dir, f'{t:06d}.xml'),
                    _annotation_xml(f'{split}/{name}', f'{t:06d}', scene.width, scene.height, objs, True))
    return f'{split}/{name}'


def _write_video(root, seed, split, index, num_frames, params):
    scene, rng = video_scene(seed, split, index, params)

    def frame(t):
        img, label, info = scene.render(t)
        return img, scene.annotate(t, label, info), scene, t
    return _write_clip(root, split, index, num_frames, params, frame, rng)


def _write_det(root, seed, k, params):
    """DET image k (0-based): its folder class cycles through the classes (image k is its class's
    k // num_classes + 1-th); returns its index."""
    num_classes = len(SYNTHETIC_CLASSES) - 1
    wnid_id = 1 + k % num_classes
    wnid = SYNTHETIC_WNIDS[wnid_id]
    name = f'{wnid}_{k // num_classes + 1}'
    rel = f'train/ILSVRC2013_train/{wnid}'
    rng = _rng(seed, _KIND_DET, k)
    scene = Scene(rng, params['height'], params['width'], regime='still', main_class=SYNTHETIC_CLASSES[wnid_id])
    t = float(rng.uniform(0, 50))
    img, label, info = scene.render(t)
    objs = scene.annotate(t, label, info)
    _, jpeg = degrade(img, scene, t, rng, params['jpeg_quality'])
    for sub in ('Data', 'Annotations'):
        os.makedirs(os.path.join(root, sub, 'DET', rel), exist_ok=True)
    _write_bytes(os.path.join(root, 'Data', 'DET', rel, name + '.JPEG'), jpeg)
    _write_text(os.path.join(root, 'Annotations', 'DET', rel, name + '.xml'),
                _annotation_xml(rel, name, scene.width, scene.height,
                                [dict(o, trackid=None) for o in objs], False))
    return f'{rel}/{name}'


def _write_flow_pair(root, seed, pid, params):
    data_dir = os.path.join(root, 'FlowPairs', 'data')
    pair = flow_pair(seed, pid, params)
    write_ppm(os.path.join(data_dir, f'{pid:05d}_img1.ppm'), pair['img1'])
    write_ppm(os.path.join(data_dir, f'{pid:05d}_img2.ppm'), pair['img2'])
    write_flo(os.path.join(data_dir, f'{pid:05d}_flow.flo'), pair['flow'])


def _write_flow_split(root, seed, params):
    n = params['flow_pairs']
    n_val = int(round(n * params['flow_val_fraction']))
    split = np.ones(n, np.int64)
    if n_val:
        split[_rng(seed, _KIND_SPLIT, 0).choice(n, n_val, replace=False)] = 2
    _write_text(os.path.join(root, 'FlowPairs', 'FlyingChairs_train_val.txt'), ''.join(f'{s}\n' for s in split))


def _write_item(task):
    """One item of the dataset (a process pool's unit of work): (kind, index, root, seed, params) -> what the
    image sets list for it ('<split>/<video>' for a video, the DET image's index, None for a flow pair)."""
    kind, index, root, seed, params = task
    if kind in ('train', 'val'):
        return _write_video(root, seed, kind, index, params[f'{kind}_frames'], params)
    if kind == 'det':
        return _write_det(root, seed, index, params)
    if kind in HARD_SPLITS:
        return _write_hard_video(root, seed, kind, index, params['hard_frames'], params)
    return _write_flow_pair(root, seed, index, params)


def _worker_init():
    cv2.setNumThreads(1)  # the pool's processes are the parallelism


def _auto_workers(num_images):
    """Processes that write ``num_images`` images: one for a small dataset (the tests': a process costs about
    2 s to start), else one per core, up to 4."""
    return 1 if num_images < 500 else max(1, min(4, os.cpu_count() or 1))


def _write_items(tasks, workers, num_images):
    """[_write_item(t) for t in tasks], in ``workers`` processes (None: _auto_workers(num_images)) when more than
    one. Every item draws from its own random streams (_rng(seed, kind, index)), so the files are the same bytes
    whatever the order or the number of processes (tests/test_synthetic_vid.py). The processes are spawned, not
    forked: a fork of a process whose OpenCV or OpenMP threads hold a lock can hang in the child."""
    workers = _auto_workers(num_images) if workers is None else int(workers)
    if workers <= 1:
        return [_write_item(t) for t in tasks]
    with multiprocessing.get_context('spawn').Pool(workers, initializer=_worker_init) as pool:
        return pool.map(_write_item, tasks, chunksize=4)


def _video_lists(video_dirs, num_frames):
    """The texts of a validation split's two image sets (<split>_videos, <split>_frames) for its videos'
    folders, in order: frame ids count on across the videos from 1."""
    videos, frames, start_id = [], [], 1
    for vdir in video_dirs:
        videos.append(f'{vdir} {start_id} 0 {num_frames}\n')
        frames += [f'{vdir}/{k:06d} {start_id + k}\n' for k in range(num_frames)]
        start_id += num_frames
    return ''.join(videos), ''.join(frames)


def _meta(seed, params):
    return {'generator': 'lib.dataset.synthetic_vid', 'version': GENERATOR_VERSION, 'seed': int(seed),
            'params': params, 'classes': list(SYNTHETIC_CLASSES), 'wnids': list(SYNTHETIC_WNIDS)}


def _read_meta(root):
    try:
        with open(os.path.join(root, META_FILE)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _is_complete(root, meta, expected):
    if meta is None or os.path.exists(os.path.join(root, _INCOMPLETE_MARKER)):
        return False
    if any(meta.get(k) != expected[k] for k in ('generator', 'version', 'seed', 'params')):
        return False
    return all(os.path.isfile(os.path.join(root, 'ImageSets', s + '.txt')) for s in _IMAGE_SETS)


@contextlib.contextmanager
def _locked(root):
    """An exclusive lock on root (so that concurrent processes generate once); a no-op without fcntl."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover (not Linux)
        yield
        return
    with open(os.path.join(root, _LOCK_FILE), 'a') as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def generate(root, seed=0, workers=None, **sizes):
    """Write the synthetic dataset under ``root`` (see the module docstring); returns its meta dict.

    Idempotent: when ``root/synthetic_meta.json`` records the same generator version, seed and
    parameters, nothing is written. Otherwise the synthetic folders are removed and everything is
    regenerated; the meta file is written last, so an interrupted generation is redone. A root that
    holds Data/Annotations/ImageSets folders not made by this generator is never touched (RuntimeError).
    ``sizes``: any of DEFAULT_SIZES. ``workers``: processes that write the items (None: _auto_workers); the
    bytes written do not depend on it.
    """
    root = os.fspath(root)
    params = resolve_params(**sizes)
    expected = _meta(seed, params)
    os.makedirs(root, exist_ok=True)
    with _locked(root):
        old = _read_meta(root)
        if _is_complete(root, old, expected):
            return old
        marker = os.path.join(root, _INCOMPLETE_MARKER)
        existing = [d for d in _OWNED_DIRS if os.path.exists(os.path.join(root, d))]
        if existing and old is None and not os.path.exists(marker):
            raise RuntimeError(f"{root} holds {existing} but no {META_FILE}: not a synthetic dataset of this "
                               f"generator; refusing to overwrite it (choose an empty folder)")
        start = time.time()
        _write_text(marker, json.dumps(expected) + '\n')
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(root, META_FILE))
        for d in _OWNED_DIRS:
            shutil.rmtree(os.path.join(root, d), ignore_errors=True)
        for d in ('Data', 'Annotations'):
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(root, d))  # only if empty

        sets_dir = os.path.join(root, 'ImageSets')
        os.makedirs(sets_dir, exist_ok=True)
        os.makedirs(os.path.join(root, 'FlowPairs', 'data'), exist_ok=True)
        counts = {'train': params['train_videos'], 'val': params['val_videos'], 'det': params['det_images'],
                  'flow': params['flow_pairs']}
        # flow pairs are numbered from 1 (Flying Chairs' file names), the other items from 0
        tasks = [(kind, i + (kind == 'flow'), root, seed, params) for kind, n in counts.items() for i in range(n)]
        images = (counts['train'] * params['train_frames'] + counts['val'] * params['val_frames'] + counts['det']
                  + 2 * counts['flow'])
        done = _write_items(tasks, workers, images)
        train_dirs, done = done[:counts['train']], done[counts['train']:]
        val_dirs, done = done[:counts['val']], done[counts['val']:]
        det = done[:counts['det']]

        n = params['train_frames']
        _write_text(os.path.join(sets_dir, 'VID_train_15frames.txt'),
                    ''.join(f'{vdir} 1 {i} {n}\n' for vdir in train_dirs for i in train_frame_indices(n)))
        videos, frames = _video_lists(val_dirs, params['val_frames'])
        _write_text(os.path.join(sets_dir, 'VID_val_videos.txt'), videos)
        _write_text(os.path.join(sets_dir, 'VID_val_frames.txt'), frames)
        _write_text(os.path.join(sets_dir, 'DET_train_30classes.txt'), ''.join(f'{d} 1\n' for d in det))
        _write_flow_split(root, seed, params)

        meta = dict(expected, opencv=cv2.__version__, seconds=round(time.time() - start, 2))
        write_text(os.path.join(root, META_FILE), json.dumps(meta, indent=1, sort_keys=True) + '\n')
        os.remove(marker)
        return meta


def ensure_dataset(root, seed=0, **sizes):
    """generate(root, seed, **sizes) (a no-op when the dataset is already there); returns root. The harder
    split's sizes (HARD_DEFAULT_SIZES, for ensure_hard_split) may be among ``sizes``: they are left aside."""
    generate(root, seed=seed, **{k: v for k, v in sizes.items() if k not in HARD_DEFAULT_SIZES})
    return root


# ----------------------------------------------------------------------------------------- the harder split
# A harder validation split for the key-frame schedules (docs/key_frames.md), written next to an existing
# dataset (its frame size and JPEG quality) on request, without touching the rest: each video is 1-3 shots
# of different scenes (a shot cut: a different scene from one frame to the next); in a third of the shots
# the objects move faster than any validation object (HARD_SPEEDS 'fast', up to 2.3x), in the others as
# the validation objects do ('calm'); all bounce between walls outside the frame, so that they leave and
# re-enter (also between two key frames). docs/key_frames.md says how these proportions were chosen. Its own random streams (_KIND_HARD: the split reported;
# _KIND_HARD_TUNE: a disjoint tuning split for the schedules' thresholds); the other items' draws are
# unchanged. Generated by ensure_hard_split(); recorded in HARD_META_FILE.
HARD_DEFAULT_SIZES = {'hard_videos': 40, 'hard_frames': 30, 'hard_tune_videos': 20}
HARD_VERSION = 1  # bump whenever the harder split's content changes
HARD_META_FILE = 'synthetic_hard_meta.json'
HARD_SPLITS = {'val_hard': ('VID_val_hard_videos', 'VID_val_hard_frames', 'hard_videos'),
               'val_hard_tune': ('VID_val_hard_tune_videos', 'VID_val_hard_tune_frames', 'hard_tune_videos')}
HARD_IMAGE_SETS = tuple(s for v in HARD_SPLITS.values() for s in v[:2])
HARD_SHOTS = (0.2, 0.5, 0.3)   # probabilities of 1, 2, 3 shots per video
HARD_MIN_SHOT = 4              # frames per shot at least
HARD_FAST_SHOTS = 0.3          # probability of a shot with fast objects
HARD_SPEEDS = {'calm': ((0.5, 0.0, 0.004), (0.5, 0.004, 0.012)),   # fractions of the width per frame
               'fast': ((0.5, 0.012, 0.02), (0.5, 0.02, 0.03))}
HARD_WALLS = (0.2, 1.2)        # walls this many x (half the object's size) outside the frame's edges
_KIND_HARD, _KIND_HARD_TUNE = 6, 7
_HARD_TRACKS = 100             # track ids of shot k: 100 k + object index


def resolve_hard_params(**sizes):
    """HARD_DEFAULT_SIZES updated with ``sizes`` (hard_videos, hard_frames, hard_tune_videos), validated."""
    unknown = sorted(set(sizes) - set(HARD_DEFAULT_SIZES))
    if unknown:
        raise TypeError(f"unknown harder-split parameter(s) {unknown}; known: {sorted(HARD_DEFAULT_SIZES)}")
    p = dict(HARD_DEFAULT_SIZES, **sizes)
    for k, v in p.items():
        if isinstance(v, bool) or int(v) != v or v < 0:
            raise ValueError(f"{k} must be an integer >= 0, got {v!r}")
        p[k] = int(v)
    if p['hard_frames'] < 1:
        raise ValueError(f"hard_frames must be >= 1, got {p['hard_frames']}")
    return p


class HardVideo:
    """A video of the harder split: shots of different Scenes (training-regime scenes whose objects get the
    motion of HARD_SPEEDS, calm or fast per shot, and HARD_WALLS), frame t showing shot k at its own time
    t - start_k."""

    def __init__(self, rng, height, width, num_frames):
        self.height, self.width = int(height), int(width)
        n_shots = 1 + int(rng.choice(len(HARD_SHOTS), p=np.array(HARD_SHOTS) / sum(HARD_SHOTS)))
        n_shots = max(1, min(n_shots, num_frames // HARD_MIN_SHOT))
        # cut positions: n_shots - 1 distinct frames, every shot at least HARD_MIN_SHOT frames long
        slack = num_frames - n_shots * HARD_MIN_SHOT
        extra = np.sort(rng.integers(0, slack + 1, n_shots - 1)) if n_shots > 1 else np.zeros(0, np.int64)
        self.starts = [0] + [int(e) + (k + 1) * HARD_MIN_SHOT for k, e in enumerate(extra)]
        self.scenes = [self._scene(rng) for _ in range(n_shots)]

    def _scene(self, rng):
        scene = Scene(rng, self.height, self.width, regime='train')
        speeds = HARD_SPEEDS['fast' if rng.random() < HARD_FAST_SHOTS else 'calm']
        for o in scene.objects:  # the shot's speeds, walls outside the frame: objects leave and re-enter
            frac = _mixture(rng, speeds)
            ang = rng.uniform(0, 2 * np.pi)
            o['vel'] = frac * self.width * np.array([np.cos(ang), 0.6 * np.sin(ang)])
            margin = 0.5 * o['size'] * rng.uniform(*HARD_WALLS)
            o['lo'] = np.array([-margin, -margin])
            o['hi'] = np.array([self.width - 1 + margin, self.height - 1 + margin])
            o['p0'] = o['lo'] + rng.random(2) * (o['hi'] - o['lo'])
        return scene

    def shot(self, t):
        """(shot index, its scene, the time in that scene) of frame t."""
        k = int(np.searchsorted(self.starts, t, side='right')) - 1
        return k, self.scenes[k], t - self.starts[k]

    def render(self, t):
        """Clean frame t, its objects (as Scene.annotate, track ids unique over the shots) and its scene
        and scene time (for degrade)."""
        k, scene, local = self.shot(t)
        img, label, info = scene.render(local)
        objs = [dict(o, trackid=_HARD_TRACKS * k + o['trackid']) for o in scene.annotate(local, label, info)]
        return img, objs, scene, local


def hard_video(seed, split, index, num_frames, params):
    """The HardVideo ``index`` of a harder split ('val_hard' or 'val_hard_tune') and its frames' noise stream."""
    kind = {'val_hard': _KIND_HARD, 'val_hard_tune': _KIND_HARD_TUNE}[split]
    rng = _rng(seed, kind, index)
    return HardVideo(rng, params['height'], params['width'], num_frames), rng


def _write_hard_video(root, seed, split, index, num_frames, params):
    video, rng = hard_video(seed, split, index, num_frames, params)
    return _write_clip(root, split, index, num_frames, params, video.render, rng)


def _hard_meta(seed, params):
    return {'generator': 'lib.dataset.synthetic_vid', 'version': GENERATOR_VERSION, 'hard_version': HARD_VERSION,
            'seed': int(seed), 'params': params}


def _remove_hard(root):
    for split, (videos, frames, _) in HARD_SPLITS.items():
        for sub in ('Data', 'Annotations'):
            shutil.rmtree(os.path.join(root, sub, 'VID', split), ignore_errors=True)
        for name in (videos, frames):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(root, 'ImageSets', name + '.txt'))


def ensure_hard_split(root, workers=None, **sizes):
    """Write the harder split (VID_val_hard_videos / _frames, VID_val_hard_tune_videos / _frames) into the
    synthetic dataset at ``root``, with that dataset's seed, frame size and JPEG quality; ``sizes``: any of
    HARD_DEFAULT_SIZES. Nothing else of the dataset is read or written. A no-op when HARD_META_FILE records
    the same generator, seed and parameters and the image sets are there; otherwise only the harder split's
    own folders and lists are removed and written again (the meta file last). Returns the meta dict.
    ``workers``: processes that write the videos, as for generate()."""
    root = os.fspath(root)
    hard = resolve_hard_params(**sizes)
    with _locked(root):
        base = _read_meta(root)
        if base is None or base.get('generator') != 'lib.dataset.synthetic_vid':
            raise FileNotFoundError(f"{root}: no synthetic dataset ({META_FILE}) to add the harder split to; "
                                    f"generate the dataset first")
        if base.get('version') != GENERATOR_VERSION:
            raise ValueError(f"{os.path.join(root, META_FILE)}: generator version {base.get('version')}, this code "
                             f"writes {GENERATOR_VERSION}: regenerate the dataset first")
        params = dict(hard, **{k: base['params'][k] for k in ('height', 'width', 'jpeg_quality')})
        expected = _hard_meta(base['seed'], params)
        meta_path = os.path.join(root, HARD_META_FILE)
        try:
            with open(meta_path) as f:
                old = json.load(f)
        except (OSError, ValueError):
            old = None
        lists = [os.path.join(root, 'ImageSets', s + '.txt') for s in HARD_IMAGE_SETS]
        if old is not None and all(old.get(k) == v for k, v in expected.items()) and all(map(os.path.isfile, lists)):
            return old
        start = time.time()
        with contextlib.suppress(FileNotFoundError):
            os.remove(meta_path)
        _remove_hard(root)
        os.makedirs(os.path.join(root, 'ImageSets'), exist_ok=True)
        n = params['hard_frames']
        tasks = [(split, v, root, base['seed'], params) for split, (_, _, count) in HARD_SPLITS.items()
                 for v in range(params[count])]
        done = iter(_write_items(tasks, workers, len(tasks) * n))
        for split, (videos_set, frames_set, count) in HARD_SPLITS.items():
            videos, frames = _video_lists([next(done) for _ in range(params[count])], n)
            _write_text(os.path.join(root, 'ImageSets', videos_set + '.txt'), videos)
            _write_text(os.path.join(root, 'ImageSets', frames_set + '.txt'), frames)
        meta = dict(expected, seconds=round(time.time() - start, 2))
        write_text(meta_path, json.dumps(meta, indent=1, sort_keys=True) + '\n')
        return meta
