"""The project's custom ops (C++/CUDA in csrc/ops, built by setup.py into lib/ops/_C*.so).

    psroi_pool(data, rois, spatial_scale, output_dim, pooled_size, group_size=None)
    flow_warp(data, flow)
    proposal(cls_prob, bbox_pred, im_info, feature_stride=16, scales=(8, 16, 32), ratios=(0.5, 1, 2),
             pre_nms_top_n=6000, post_nms_top_n=300, nms_threshold=0.7, min_size=0)
    nms(boxes, scores, iou_threshold)

Semantics are those of the MXNet operators of the official Deep Feature Flow release
(their semantics: docs/ops.md); each is also reachable as torch.ops.dff.<name>.
"""
from ._loader import build_info, load_library
from .ops import flow_warp, nms, proposal, psroi_pool

__all__ = ["psroi_pool", "flow_warp", "proposal", "nms", "build_info", "load_library"]
