"""Box coding of the official release (lib/bbox/bbox_transform.py, bbox.pyx), in torch.

Every function works on CPU or CUDA tensors of any floating dtype and returns tensors on the input's
device. The "+1" convention is used everywhere (docs/fidelity.md §3.7):
    w = x2 - x1 + 1,  cx = x1 + 0.5 * (w - 1)
"""
import torch

__all__ = ["bbox_overlaps", "bbox_transform", "bbox_pred", "clip_boxes"]


def bbox_overlaps(boxes, query_boxes):
    """IoU of every box with every query box, "+1" areas (the original's Cython `bbox_overlaps`).

    boxes (N, >=4), query_boxes (K, >=4): only columns 0..3 are read. Returns (N, K) in the dtype of
    `boxes`. Intersection width/height are min(x2) - max(x1) + 1; a pair whose intersection width or
    height is <= 0 has IoU 0.
    """
    b = boxes[:, :4]
    q = query_boxes[:, :4].to(b.dtype)
    area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    area_q = (q[:, 2] - q[:, 0] + 1) * (q[:, 3] - q[:, 1] + 1)
    iw = torch.minimum(b[:, None, 2], q[None, :, 2]) - torch.maximum(b[:, None, 0], q[None, :, 0]) + 1
    ih = torch.minimum(b[:, None, 3], q[None, :, 3]) - torch.maximum(b[:, None, 1], q[None, :, 1]) + 1
    inter = iw * ih
    union = area_b[:, None] + area_q[None, :] - inter
    valid = (iw > 0) & (ih > 0)
    # the division is only meaningful where the boxes intersect; elsewhere union may be anything
    return torch.where(valid, inter / torch.where(valid, union, torch.ones_like(union)), torch.zeros_like(inter))


def _whctr(boxes):
    w = boxes[:, 2] - boxes[:, 0] + 1.0
    h = boxes[:, 3] - boxes[:, 1] + 1.0
    return w, h, boxes[:, 0] + 0.5 * (w - 1.0), boxes[:, 1] + 0.5 * (h - 1.0)


def bbox_transform(ex_rois, gt_rois):
    """Regression targets from boxes `ex_rois` (N, >=4) to `gt_rois` (N, >=4): (N, 4) = (dx, dy, dw, dh)
    with dx = (gcx - cx) / w, dy = (gcy - cy) / h, dw = log(gw / w), dh = log(gh / h)
    (the original's `nonlinear_transform`, including its +1e-14 in the dx/dy denominators)."""
    ex_w, ex_h, ex_cx, ex_cy = _whctr(ex_rois)
    gt_w, gt_h, gt_cx, gt_cy = _whctr(gt_rois.to(ex_rois.dtype))
    dx = (gt_cx - ex_cx) / (ex_w + 1e-14)
    dy = (gt_cy - ex_cy) / (ex_h + 1e-14)
    dw = torch.log(gt_w / ex_w)
    dh = torch.log(gt_h / ex_h)
    return torch.stack((dx, dy, dw, dh), dim=1)


def bbox_pred(boxes, box_deltas):
    """Decode `box_deltas` (N, 4k) relative to `boxes` (N, >=4): k column groups (dx, dy, dw, dh), one per
    class. Returns (N, 4k) boxes [x1, y1, x2, y2] per group (the original's `nonlinear_pred`; no clamp of dw/dh).
    """
    deltas = box_deltas
    if boxes.shape[0] == 0:
        return deltas.new_zeros((0, deltas.shape[1]))
    w, h, cx, cy = _whctr(boxes.to(deltas.dtype))
    d = deltas.reshape(deltas.shape[0], -1, 4)
    pcx = d[..., 0] * w[:, None] + cx[:, None]
    pcy = d[..., 1] * h[:, None] + cy[:, None]
    pw = torch.exp(d[..., 2]) * w[:, None]
    ph = torch.exp(d[..., 3]) * h[:, None]
    out = torch.stack((pcx - 0.5 * (pw - 1.0), pcy - 0.5 * (ph - 1.0),
                       pcx + 0.5 * (pw - 1.0), pcy + 0.5 * (ph - 1.0)), dim=2)
    return out.reshape(deltas.shape[0], -1)


def clip_boxes(boxes, height, width):
    """Clip (N, 4k) boxes to x in [0, width - 1], y in [0, height - 1]; returns a new tensor."""
    b = boxes.reshape(boxes.shape[0], -1, 4)
    x = b[..., 0::2].clamp(max=float(width) - 1).clamp(min=0)   # max(min(x, W - 1), 0) as the original
    y = b[..., 1::2].clamp(max=float(height) - 1).clamp(min=0)
    return torch.stack((x[..., 0], y[..., 0], x[..., 1], y[..., 1]), dim=2).reshape(boxes.shape)
