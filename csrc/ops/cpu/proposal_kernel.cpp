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
  if (is_reduced_float(cls_prob)) {
    auto r = proposal_cpu(cls_prob.to(at::kFloat), bbox_pred.to(at::kFloat), im_info.to(at::kFloat), feature_stride,
                          scales, ratios, pre_nms_top_n, post_nms_top_n, nms_threshold, min_size);
    return {std::get<0>(r).to(cls_prob.scalar_type()), std::get<1>(r).to(cls_prob.scalar_type())};
  }
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
        const T* info = ip.data_ptr<T>() + b * 3;
        const T im_h = info[0], im_w = info[1], im_scale = info[2];
        const int64_t real_h = static_cast<int64_t>(im_h / static_cast<T>(feature_stride));
        const int64_t real_w = static_cast<int64_t>(im_w / static_cast<T>(feature_stride));
        const T min_sz = static_cast<T>(min_size) * im_scale;
        for (int64_t h = 0; h < H; ++h)
          for (int64_t w = 0; w < W; ++w)
            for (int64_t a = 0; a < A; ++a) {
              const int64_t idx = (h * W + w) * A + a, cell = h * W + w;
              const T anchor[4] = {static_cast<T>(anchors[4 * a + 0] + w * feature_stride),
                                   static_cast<T>(anchors[4 * a + 1] + h * feature_stride),
                                   static_cast<T>(anchors[4 * a + 2] + w * feature_stride),
                                   static_cast<T>(anchors[4 * a + 3] + h * feature_stride)};
              T* box = &boxes[4 * idx];
              math::decode_clip_box(anchor, del[(a * 4 + 0) * H * W + cell], del[(a * 4 + 1) * H * W + cell],
                                    del[(a * 4 + 2) * H * W + cell], del[(a * 4 + 3) * H * W + cell], im_h, im_w, box);
              T score = cls[(A + a) * H * W + cell];
              if (h >= real_h || w >= real_w) score = T(-1);
              const T iw = box[2] - box[0] + T(1), ih = box[3] - box[1] + T(1);
              if (iw < min_sz || ih < min_sz) {
                box[0] -= min_sz / 2;
                box[1] -= min_sz / 2;
                box[2] += min_sz / 2;
                box[3] += min_sz / 2;
                score = T(-1);
              }
              scores[idx] = score;
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

TORCH_LIBRARY_IMPL(dff, CPU, m) { m.impl("proposal", &dff::proposal_cpu); }
