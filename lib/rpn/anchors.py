"""Anchor generation (py-faster-rcnn rule, docs/fidelity.md §3.6)."""
import math

import torch

__all__ = ["generate_anchors", "shifted_anchors"]


def _round_half_up(x):
    return math.floor(x + 0.5)


def generate_anchors(base_size=16, ratios=(0.5, 1, 2), scales=(8, 16, 32), dtype=torch.float32, device=None):
    """Base anchors (A, 4) = [x1, y1, x2, y2], A = len(ratios) * len(scales), ratio-major / scale-minor.

    The base box is [0, 0, base_size - 1, base_size - 1]. For each ratio r: ws = round(sqrt(w*h / r)),
    hs = round(ws * r) (round half up), same centre; then for each scale s: width ws*s, height hs*s
    around the centre (cx - 0.5 (w - 1), ..., cx + 0.5 (w - 1)). For the defaults these are the original's anchors
    (docs/fidelity.md §3.6), first row [-84, -40, 99, 55].
    """
    w = h = float(base_size)
    cx = cy = 0.5 * (w - 1.0)
    size = w * h
    rows = []
    for r in ratios:
        ws = float(_round_half_up(math.sqrt(size / float(r))))
        hs = float(_round_half_up(ws * float(r)))
        for s in scales:
            sw, sh = ws * float(s), hs * float(s)
            rows.append([cx - 0.5 * (sw - 1.0), cy - 0.5 * (sh - 1.0), cx + 0.5 * (sw - 1.0), cy + 0.5 * (sh - 1.0)])
    return torch.tensor(rows, dtype=dtype, device=device).reshape(-1, 4)


def shifted_anchors(feat_h, feat_w, stride, base):
    """All anchors of a feat_h x feat_w map: base (A, 4) shifted by (w*stride, h*stride) for every cell.

    Returns (feat_h * feat_w * A, 4) in (h, w, a) order: row (h * feat_w + w) * A + a. Same dtype and
    device as `base`.
    """
    sx = torch.arange(int(feat_w), device=base.device, dtype=base.dtype) * stride
    sy = torch.arange(int(feat_h), device=base.device, dtype=base.dtype) * stride
    yy, xx = torch.meshgrid(sy, sx, indexing='ij')
    shifts = torch.stack((xx, yy, xx, yy), dim=-1).reshape(-1, 1, 4)   # (H*W, 1, 4)
    return (shifts + base.reshape(1, -1, 4)).reshape(-1, 4)
