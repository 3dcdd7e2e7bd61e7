"""Python entry points of the custom ops (thin: argument defaults and documentation; all checks
and arithmetic live in csrc/ops)."""
import torch

from ._loader import load_library

load_library()


def psroi_pool(data, rois, spatial_scale, output_dim, pooled_size, group_size=None):
    """Position-sensitive RoI pooling with MXNet PSROIPooling semantics.

    data: (N, output_dim * group_size**2, H, W), class-major channels (class*G*G + bin_row*G + bin_col).
    rois: (R, 5) = [batch_index, x1, y1, x2, y2] in input-image pixels (rounded, far edge +1, scaled by
    spatial_scale; minimum side 0.1; bins floor/ceil; an empty bin gives 0).
    Returns (R, output_dim, pooled_size, pooled_size). Differentiable with respect to data only.
    """
    group_size = pooled_size if group_size is None else group_size
    return torch.ops.dff.psroi_pool(data, rois, float(spatial_scale), int(output_dim), int(pooled_size),
                                    int(group_size))


def flow_warp(data, flow):
    """Backward warp: out[n,c,y,x] = bilinear sample of data[n,c] at (x + flow[n,0,y,x], y + flow[n,1,y,x]).

    flow is in pixels of `data` (channel 0 = x); neighbours outside the map contribute 0 (MXNet
    GridGenerator(transform_type='warp') + BilinearSampler, = grid_sample(align_corners=True, zeros)).
    Differentiable with respect to data and flow.
    """
    return torch.ops.dff.flow_warp(data, flow)


def proposal(cls_prob, bbox_pred, im_info, feature_stride=16, scales=(8, 16, 32), ratios=(0.5, 1, 2),
             pre_nms_top_n=6000, post_nms_top_n=300, nms_threshold=0.7, min_size=0):
    """RPN proposals with MXNet MultiProposal semantics (batched).

    cls_prob (N, 2A, H, W): channels [0, A) background, [A, 2A) foreground probabilities.
    bbox_pred (N, 4A, H, W): channel a*4+k, k in (dx, dy, dw, dh), un-normalised deltas.
    im_info (N, 3) = [height, width, scale] of the network input.
    Returns rois (N*post_nms_top_n, 5) with the batch index in column 0 and scores (N*post_nms_top_n, 1);
    each image's rows are its NMS survivors cycled to exactly post_nms_top_n. No gradient.
    """
    return torch.ops.dff.proposal(cls_prob.detach(), bbox_pred.detach(), im_info.detach(), int(feature_stride),
                                  [float(s) for s in scales], [float(r) for r in ratios], int(pre_nms_top_n),
                                  int(post_nms_top_n), float(nms_threshold), float(min_size))


def nms(boxes, scores, iou_threshold):
    """Greedy NMS with the +1 pixel convention of the original (IoU of (x2-x1+1)*(y2-y1+1) areas;
    a box is suppressed when its IoU with a kept box is > iou_threshold). Returns the kept indices
    (int64), by descending score (ties: lower index first)."""
    return torch.ops.dff.nms(boxes.detach(), scores.detach(), float(iou_threshold))
