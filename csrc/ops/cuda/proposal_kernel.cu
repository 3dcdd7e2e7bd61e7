// Batched RPN proposal (MXNet MultiProposal semantics), CUDA: decode + scoring kernel, stable
// device sort, NMS bitmask kernel, host greedy reduction, then the cycled output rows.
#include <torch/library.h>

#include <tuple>
#include <vector>

#include "../common/checks.h"
#include "../common/reduced_float.h"
#include "../common/element_math.h"
#include "nms_mask.cuh"

namespace dff {
namespace {

template <typename T>
__global__ void proposal_decode_kernel(int64_t total, const T* cls, const T* del, const T* im_info, const float* anchors,
                                       int64_t A, int64_t H, int64_t W, int64_t stride, T min_size, T* boxes,
                                       T* scores) {
  DFF_CUDA_1D_LOOP(i, total) {
    const int64_t count = H * W * A;
    const int64_t b = i / count, idx = i % count;
    const int64_t a = idx % A, cell = idx / A, w = cell % W, h = cell / W;
    const auto img = math::proposal_image(im_info + b * 3, stride, min_size);
    scores[i] = math::proposal_anchor(anchors, cls + b * 2 * A * H * W, del + b * 4 * A * H * W, A, H, W, stride, a, h,
                                      w, img, boxes + i * 4);
  }
}

std::tuple<at::Tensor, at::Tensor> proposal_cuda(const at::Tensor& cls_prob, const at::Tensor& bbox_pred,
                                                 const at::Tensor& im_info, int64_t feature_stride,
                                                 at::ArrayRef<double> scales, at::ArrayRef<double> ratios,
                                                 int64_t pre_nms_top_n, int64_t post_nms_top_n, double nms_threshold,
                                                 double min_size) {
  const std::vector<double> sc(scales.begin(), scales.end()), ra(ratios.begin(), ratios.end());
  check_proposal_args(cls_prob, bbox_pred, im_info, feature_stride, sc, ra, pre_nms_top_n, post_nms_top_n);
  c10::cuda::CUDAGuard guard(cls_prob.device());
  const int64_t N = cls_prob.size(0), H = cls_prob.size(2), W = cls_prob.size(3);
  const int64_t A = static_cast<int64_t>(sc.size() * ra.size()), count = H * W * A;
  auto rois = at::zeros({N * post_nms_top_n, 5}, cls_prob.options());
  auto out_scores = at::zeros({N * post_nms_top_n, 1}, cls_prob.options());
  for (int64_t b = 0; b < N; ++b) rois.select(1, 0).narrow(0, b * post_nms_top_n, post_nms_top_n).fill_(b);
  if (count == 0 || N == 0) return {rois, out_scores};

  auto anchors_host = at::empty({A, 4}, at::TensorOptions().dtype(at::kFloat));
  for (size_t i = 0; i < ra.size(); ++i)
    for (size_t j = 0; j < sc.size(); ++j)
      math::base_anchor(static_cast<float>(feature_stride), static_cast<float>(ra[i]), static_cast<float>(sc[j]),
                        anchors_host.data_ptr<float>() + 4 * (i * sc.size() + j));
  auto anchors = anchors_host.to(cls_prob.device());
  auto cp = cls_prob.contiguous(), bp = bbox_pred.contiguous(), ip = im_info.contiguous();
  auto boxes = at::empty({N, count, 4}, cls_prob.options());
  auto scores = at::empty({N, count}, cls_prob.options());
  const int64_t total = N * count;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(cp.scalar_type(), "proposal_decode_cuda", [&] {
    proposal_decode_kernel<scalar_t><<<cuda::blocks_for(total), cuda::kThreads, 0, stream>>>(
        total, cp.data_ptr<scalar_t>(), bp.data_ptr<scalar_t>(), ip.data_ptr<scalar_t>(), anchors.data_ptr<float>(), A,
        H, W, feature_stride, static_cast<scalar_t>(min_size), boxes.data_ptr<scalar_t>(), scores.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  const int64_t pre = pre_nms_top_n > 0 ? std::min(pre_nms_top_n, count) : count;
  const int64_t post = std::min(post_nms_top_n, pre);
  for (int64_t b = 0; b < N; ++b) {
    auto sorted = at::sort(scores[b], /*stable=*/true, /*dim=*/0, /*descending=*/true);
    auto top = std::get<1>(sorted).narrow(0, 0, pre);
    auto top_boxes = boxes[b].index_select(0, top).contiguous();
    auto keep = cuda::nms_sorted_cuda(top_boxes, nms_threshold, post);
    if (keep.empty()) continue;
    std::vector<int64_t> rows(post_nms_top_n);
    for (int64_t i = 0; i < post_nms_top_n; ++i) rows[i] = keep[i % keep.size()];
    auto idx = cuda::to_index_tensor(rows, cls_prob.device());
    rois.narrow(0, b * post_nms_top_n, post_nms_top_n).narrow(1, 1, 4).copy_(top_boxes.index_select(0, idx));
    out_scores.narrow(0, b * post_nms_top_n, post_nms_top_n)
        .select(1, 0)
        .copy_(std::get<0>(sorted).narrow(0, 0, pre).index_select(0, idx));
  }
  return {rois, out_scores};
}

}  // namespace
}  // namespace dff

TORCH_LIBRARY_IMPL(dff, CUDA, m) { m.impl("proposal", dff::in_float32<&dff::proposal_cuda>); }
