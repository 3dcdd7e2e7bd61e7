// NMS with the +1 pixel convention, CPU.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "../common/checks.h"
#include "../common/reduced_float.h"
#include "../common/greedy_nms.h"

namespace dff {
namespace {

at::Tensor nms_cpu(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold) {
  check_nms_args(boxes, scores);
  const int64_t K = boxes.size(0);
  if (K == 0) return at::empty({0}, boxes.options().dtype(at::kLong));
  auto b = boxes.to(at::kDouble).contiguous();
  auto s = scores.to(at::kDouble).contiguous();
  const double* sp = s.data_ptr<double>();
  auto order = stable_argsort_desc(sp, K);
  std::vector<double> sorted(4 * K);
  const double* bp = b.data_ptr<double>();
  for (int64_t i = 0; i < K; ++i)
    for (int k = 0; k < 4; ++k) sorted[4 * i + k] = bp[4 * order[i] + k];
  auto keep = greedy_nms_sorted(sorted.data(), K, iou_threshold, 0);
  auto out = at::empty({static_cast<int64_t>(keep.size())}, boxes.options().dtype(at::kLong));
  int64_t* op = out.data_ptr<int64_t>();
  for (size_t i = 0; i < keep.size(); ++i) op[i] = order[keep[i]];
  return out;
}

}  // namespace
}  // namespace dff

TORCH_LIBRARY_IMPL(dff, CPU, m) { m.impl("nms", dff::in_float32<&dff::nms_cpu>); }
