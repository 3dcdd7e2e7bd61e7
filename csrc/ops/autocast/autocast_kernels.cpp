// Autocast (CPU and CUDA): the ops compute in float32 and return the dtype of their main input,
// so that mixed fp16/bf16 activations and fp32 rois/flows work under torch.autocast (the policy:
// common/reduced_float.h).
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/library.h>

#include <tuple>

#include "../common/reduced_float.h"

namespace dff {
namespace {

template <c10::DispatchKey K>
at::Tensor psroi_pool_autocast(const at::Tensor& data, const at::Tensor& rois, double spatial_scale,
                               int64_t output_dim, int64_t pooled_size, int64_t group_size) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(K);
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("dff::psroi_pool", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, double, int64_t, int64_t, int64_t)>();
  return reduced_float::autocast_call(op, data.scalar_type(), data, rois, spatial_scale, output_dim, pooled_size,
                                      group_size);
}

template <c10::DispatchKey K>
at::Tensor flow_warp_autocast(const at::Tensor& data, const at::Tensor& flow) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(K);
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("dff::flow_warp", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&)>();
  return reduced_float::autocast_call(op, data.scalar_type(), data, flow);
}

template <c10::DispatchKey K>
std::tuple<at::Tensor, at::Tensor> proposal_autocast(const at::Tensor& cls_prob, const at::Tensor& bbox_pred,
                                                     const at::Tensor& im_info, int64_t feature_stride,
                                                     at::ArrayRef<double> scales, at::ArrayRef<double> ratios,
                                                     int64_t pre_nms_top_n, int64_t post_nms_top_n,
                                                     double nms_threshold, double min_size) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(K);
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("dff::proposal", "")
                       .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                                 int64_t, at::ArrayRef<double>, at::ArrayRef<double>,
                                                                 int64_t, int64_t, double, double)>();
  return reduced_float::autocast_call(op, cls_prob.scalar_type(), cls_prob, bbox_pred, im_info, feature_stride, scales,
                                      ratios, pre_nms_top_n, post_nms_top_n, nms_threshold, min_size);
}

template <c10::DispatchKey K>
at::Tensor nms_autocast(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(K);
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("dff::nms", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, double)>();
  return reduced_float::autocast_call(op, boxes.scalar_type(), boxes, scores, iou_threshold);
}

}  // namespace
}  // namespace dff

#define DFF_REGISTER_AUTOCAST(KEY)                                                 \
  TORCH_LIBRARY_IMPL(dff, KEY, m) {                                                \
    m.impl("psroi_pool", &dff::psroi_pool_autocast<c10::DispatchKey::KEY>);        \
    m.impl("flow_warp", &dff::flow_warp_autocast<c10::DispatchKey::KEY>);          \
    m.impl("proposal", &dff::proposal_autocast<c10::DispatchKey::KEY>);            \
    m.impl("nms", &dff::nms_autocast<c10::DispatchKey::KEY>);                      \
  }

DFF_REGISTER_AUTOCAST(AutocastCPU)
DFF_REGISTER_AUTOCAST(AutocastCUDA)
