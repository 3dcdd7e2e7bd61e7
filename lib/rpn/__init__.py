"""RPN anchors and anchor targets (the original's lib/rpn/generate_anchor.py and lib/rpn/rpn.py).

    generate_anchors(base_size=16, ratios=(0.5, 1, 2), scales=(8, 16, 32)) -> (A, 4)
    shifted_anchors(feat_h, feat_w, stride, base) -> (feat_h * feat_w * A, 4), index (h * W + w) * A + a
    assign_anchor(feat_h, feat_w, gt_boxes, im_h, im_w, cfg, generator=None, base_anchors=None)
        -> {'label': (A, H, W) int64, 'bbox_target': (4A, H, W), 'bbox_weight': (4A, H, W)}
"""
from .anchor_target import assign_anchor
from .anchors import generate_anchors, shifted_anchors

__all__ = ["generate_anchors", "shifted_anchors", "assign_anchor"]
