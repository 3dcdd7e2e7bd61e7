// NMS with the +1 pixel convention, CUDA (bitmask kernel + host greedy reduction).
#include <torch/library.h>

#include "../common/checks.h"
#include "../common/reduced_float.h"
#include "nms_mask.cuh"

namespace dff {
namespace {

at::Tensor nms_cuda(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold) {
  check_nms_args(boxes, scores);
  c10::cuda::CUDAGuard guard(boxes.device());
  if (boxes.size(0) == 0) return at::empty({0}, boxes.options().dtype(at::kLong));
  auto order = std::get<1>(at::sort(scores, /*stable=*/true, /*dim=*/0, /*descending=*/true));
  auto sorted = boxes.index_select(0, order).contiguous();
  auto keep = cuda::nms_sorted_cuda(sorted, iou_threshold, 0);
  return order.index_select(0, cuda::to_index_tensor(keep, boxes.device()));
}

}  // namespace
}  // namespace dff

TORCH_LIBRARY_IMPL(dff, CUDA, m) { m.impl("nms", dff::in_float32<&dff::nms_cuda>); }
