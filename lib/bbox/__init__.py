"""Box utilities with the original's "+1" pixel convention (docs/fidelity.md §3.7): a box [x1, y1, x2, y2] covers the
pixels x1..x2 inclusive, so its width is x2 - x1 + 1.

    bbox_overlaps(boxes (N, 4), query (K, 4)) -> (N, K) IoU
    bbox_transform(ex_rois (N, 4), gt_rois (N, 4)) -> (N, 4) regression targets (dx, dy, dw, dh)
    bbox_pred(boxes (N, 4), deltas (N, 4k)) -> (N, 4k) decoded boxes
    clip_boxes(boxes (N, 4k), height, width) -> (N, 4k) clipped to [0, width-1] x [0, height-1]
"""
from .bbox_transform import bbox_overlaps, bbox_pred, bbox_transform, clip_boxes

__all__ = ["bbox_overlaps", "bbox_transform", "bbox_pred", "clip_boxes"]
