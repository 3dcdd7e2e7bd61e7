"""FLOP counts of the custom ops, for torch.utils.flop_counter.FlopCounterMode (which counts the matmuls and
convolutions of aten itself and nothing of an op it does not know):

    with FlopCounterMode(display=False, custom_mapping=FLOP_FORMULAS) as counter: ...

Nominal counts, one per floating-point add, multiply or divide of the kernels' arithmetic (csrc/ops):
  psroi_pool  the adds over every bin's window and one division per bin: output_dim x (the rois' areas on the
              map, clipped to it) + R x output_dim x P^2 (the windows of one roi's bins tile the roi)
  flow_warp   4 multiply-adds per output element and 8 operations per pixel for the bilinear weights
  proposal    the decoding of every anchor (22 operations); the sort and the NMS comparisons are not counted
  nms         the IoU of every pair it may compare (12 operations each), an upper bound
"""
import torch

from ._loader import load_library

load_library()


def _raw(fn):
    fn._get_raw = True  # FlopCounterMode passes the tensors themselves (the rois' sizes are needed)
    return fn


@_raw
def psroi_pool_flops(data, rois, spatial_scale, output_dim, pooled_size, group_size, out_val=None):
    h, w = data.shape[2], data.shape[3]
    r = rois.detach().double()
    x1, y1 = torch.round(r[:, 1]) * spatial_scale, torch.round(r[:, 2]) * spatial_scale
    x2, y2 = (torch.round(r[:, 3]) + 1) * spatial_scale, (torch.round(r[:, 4]) + 1) * spatial_scale
    area = (x2.clamp(0, w) - x1.clamp(0, w)).clamp(min=0) * (y2.clamp(0, h) - y1.clamp(0, h)).clamp(min=0)
    return int(output_dim * float(area.sum())) + rois.shape[0] * output_dim * pooled_size ** 2


@_raw
def flow_warp_flops(data, flow, out_val=None):
    n, c, h, w = data.shape
    return 8 * n * c * h * w + 8 * n * h * w


@_raw
def proposal_flops(cls_prob, bbox_pred, im_info, feature_stride, scales, ratios, pre_nms_top_n, post_nms_top_n,
                   nms_threshold, min_size, out_val=None):
    return 22 * bbox_pred.shape[0] * (bbox_pred.shape[1] // 4) * bbox_pred.shape[2] * bbox_pred.shape[3]


@_raw
def nms_flops(boxes, scores, iou_threshold, out_val=None):
    k = boxes.shape[0]
    return 12 * k * (k - 1) // 2


FLOP_FORMULAS = {torch.ops.dff.psroi_pool: psroi_pool_flops, torch.ops.dff.flow_warp: flow_warp_flops,
                 torch.ops.dff.proposal: proposal_flops, torch.ops.dff.nms: nms_flops}


def count_flops(fn, *args):
    """(fn(*args), its FLOPs: aten's matmuls and convolutions + the custom ops' counts above)."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False, custom_mapping=FLOP_FORMULAS) as counter:
        out = fn(*args)
    return out, counter.get_total_flops()
