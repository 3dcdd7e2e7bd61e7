// Batched RPN proposal with MXNet MultiProposal semantics, CPU.
// Per image: decode all H*W*A anchors (enumeration index (h*W + w)*A + a), score = foreground prob
// (channel A + a), invalid cells (h >= int(im_h/stride) or w >= int(im_w/stride)) and boxes smaller
// than min_size*im_scale get score -1, stable sort by score, keep the top pre_nms_top_n, greedy NMS,
// then the kept boxes cycled to exactly post_nms_top_n rows.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <tuple>
#include <vector>

#include "../common/checks.h"
#include "../common/reduced_float.h"
#include "../common/element_math.h"
#include "../common/greedy_nms.h"

namespace dff {
namespace {

std::tuple<at::Tensor, at::Tensor> proposal_cpu(const at::Tensor& cls_prob, const at::Tensor& bbox_pred,
                                                const at::Tensor& im_info, int64_t feature_stride,
                                                at::ArrayRef<double> scales, at::ArrayRef<double> ratios,
                                                int64_t pre_nms_top_n, int64_t post_nms_top_n,
                                                double nms_threshold, double min_size) {
  const std::vector<double> sc(scales.begin(), scales.end()), ra(ratios.begin(), ratios.end());
  check_proposal_args(cls_prob, bbox_pred, im_info, feature_stride, sc, ra, pre_nms_top_n, post_nms_top_n);
  const int64_t N = cls_prob.size(0), H = cls_prob.size(2), W = cls_prob.size(3);
  const int64_t A = static_cast<int64_t>(sc.size() * ra.size());
  const int64_t count = H * W * A;
  auto rois = at::zeros({N * post_nms_top_n, 5}, cls_prob.options());
  auto out_scores = at::zeros({N * post_nms_top_n, 1}, cls_prob.options());
  auto cp = cls_prob.contiguous();
  auto bp = bbox_pred.contiguous();
  auto ip = im_info.contiguous();

  std::vector<float> anchors(4 * A);
  for (size_t i = 0; i < ra.size(); ++i)
    for (size_t j = 0; j < sc.size(); ++j)
      math::base_anchor(static_cast<float>(feature_stride), static_cast<float>(ra[i]), static_cast<float>(sc[j]),
                        &anchors[4 * (i * sc.size() + j)]);

  AT_DISPATCH_FLOATING_TYPES(cp.scalar_type(), "proposal_cpu", [&] {
    using T = scalar_t;
    at::parallel_for(0, N, 1, [&](int64_t begin, int64_t end) {
      std::vector<T> boxes(4 * count), scores(count);
      for (int64_t b = begin; b < end; ++b) {
        const T* cls = cp.data_ptr<T>() + b * 2 * A * H * W;
        const T* del = bp.data_ptr<T>() + b * 4 * A * H * W;
        const auto img = math::proposal_image(ip.data_ptr<T>() + b * 3, feature_stride, static_cast<T>(min_size));
        for (int64_t h = 0; h < H; ++h)
          for (int64_t w = 0; w < W; ++w)
            for (int64_t a = 0; a < A; ++a) {
              const int64_t idx = (h * W + w) * A + a;
              scores[idx] = math::proposal_anchor(anchors.data(), cls, del, A, H, W, feature_stride, a, h, w, img,
                                                  &boxes[4 * idx]);
            }
        auto order = stable_argsort_desc(scores.data(), count);
        const int64_t pre = pre_nms_top_n > 0 ? std::min(pre_nms_top_n, count) : count;
        const int64_t post = std::min(post_nms_top_n, pre);
        std::vector<T> sorted(4 * pre);
        for (int64_t i = 0; i < pre; ++i)
          for (int k = 0; k < 4; ++k) sorted[4 * i + k] = boxes[4 * order[i] + k];
        auto keep = greedy_nms_sorted(sorted.data(), pre, static_cast<T>(nms_threshold), post);
        const int64_t kept = static_cast<int64_t>(keep.size());
        T* rp = rois.data_ptr<T>() + b * post_nms_top_n * 5;
        T* sp = out_scores.data_ptr<T>() + b * post_nms_top_n;
        for (int64_t i = 0; i < post_nms_top_n; ++i) rp[5 * i] = static_cast<T>(b);
        if (kept == 0) continue;  // only for an empty feature map: boxes and scores stay 0
        for (int64_t i = 0; i < post_nms_top_n; ++i) {
          const int64_t k = keep[i % kept];
          for (int j = 0; j < 4; ++j) rp[5 * i + 1 + j] = sorted[4 * k + j];
          sp[i] = scores[order[k]];
        }
      }
    });
  });
  return {rois, out_scores};
}

}  // namespace
}  // namespace dff

TORCH_LIBRARY_IMPL(dff, CPU, m) { m.impl("proposal", dff::in_float32<&dff::proposal_cpu>); }
