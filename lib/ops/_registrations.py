"""Fake (meta) kernels and autograd formulas of the dff ops, registered through torch.library so
that torch.library.opcheck, meta tensors and torch.compile work. Imported by _loader after the
C++ schemas are loaded."""
import torch


# ----------------------------------------------------------------------------- fake kernels
@torch.library.register_fake("dff::psroi_pool")
def _psroi_pool_fake(data, rois, spatial_scale, output_dim, pooled_size, group_size):
    torch._check(data.dim() == 4, lambda: f"psroi_pool: data must be 4-D, got {tuple(data.shape)}")
    torch._check(rois.dim() == 2 and rois.shape[1] == 5, lambda: f"psroi_pool: rois must be (R, 5), got {tuple(rois.shape)}")
    torch._check(data.shape[1] == output_dim * group_size * group_size,
                 lambda: f"psroi_pool: data has {data.shape[1]} channels, expected {output_dim * group_size ** 2}")
    return data.new_empty((rois.shape[0], output_dim, pooled_size, pooled_size))


@torch.library.register_fake("dff::_psroi_pool_backward")
def _psroi_pool_backward_fake(grad, rois, spatial_scale, output_dim, pooled_size, group_size, batch_size, height, width):
    return grad.new_empty((batch_size, output_dim * group_size * group_size, height, width))


@torch.library.register_fake("dff::flow_warp")
def _flow_warp_fake(data, flow):
    torch._check(data.dim() == 4 and flow.dim() == 4 and flow.shape[1] == 2,
                 lambda: f"flow_warp: data (N,C,H,W) and flow (N,2,H,W) expected, got {tuple(data.shape)}, {tuple(flow.shape)}")
    # the kernels warp a channels_last map in place and return channels_last; anything else as NCHW
    return torch.empty_like(data, memory_format=_warp_format(data))


def _warp_format(data):
    channels_last = data.is_contiguous(memory_format=torch.channels_last) and not data.is_contiguous()
    return torch.channels_last if channels_last else torch.contiguous_format


@torch.library.register_fake("dff::_flow_warp_backward")
def _flow_warp_backward_fake(grad, data, flow):
    return (torch.empty_like(data, memory_format=torch.contiguous_format),
            torch.empty_like(flow, memory_format=torch.contiguous_format))


@torch.library.register_fake("dff::proposal")
def _proposal_fake(cls_prob, bbox_pred, im_info, feature_stride, scales, ratios, pre_nms_top_n, post_nms_top_n,
                   nms_threshold, min_size):
    n = cls_prob.shape[0] * post_nms_top_n
    return cls_prob.new_empty((n, 5)), cls_prob.new_empty((n, 1))


@torch.library.register_fake("dff::nms")
def _nms_fake(boxes, scores, iou_threshold):
    k = torch.library.get_ctx().new_dynamic_size()
    return boxes.new_empty((k,), dtype=torch.long)


# ----------------------------------------------------------------------------- autograd
def _psroi_setup(ctx, inputs, output):
    data, rois, spatial_scale, output_dim, pooled_size, group_size = inputs
    ctx.save_for_backward(rois)
    ctx.args = (spatial_scale, output_dim, pooled_size, group_size, data.shape[0], data.shape[2], data.shape[3])


def _psroi_backward(ctx, grad):
    (rois,) = ctx.saved_tensors
    grad_data = None
    if ctx.needs_input_grad[0]:
        grad_data = torch.ops.dff._psroi_pool_backward(grad, rois, *ctx.args)
    return grad_data, None, None, None, None, None  # no gradient to rois (as MXNet)


torch.library.register_autograd("dff::psroi_pool", _psroi_backward, setup_context=_psroi_setup)


def _flow_warp_setup(ctx, inputs, output):
    data, flow = inputs
    ctx.save_for_backward(data, flow)


def _flow_warp_backward(ctx, grad):
    data, flow = ctx.saved_tensors
    grad_data, grad_flow = torch.ops.dff._flow_warp_backward(grad, data, flow)
    return (grad_data if ctx.needs_input_grad[0] else None,
            grad_flow if ctx.needs_input_grad[1] else None)


torch.library.register_autograd("dff::flow_warp", _flow_warp_backward, setup_context=_flow_warp_setup)
