// Input validation shared by the CPU and CUDA kernels: wrong shapes, dtypes, devices or batch
// sizes raise a c10::Error whose message names the argument and the offending sizes.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <vector>

namespace dff {

inline std::string sizes_str(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

// A channels_last (NHWC) tensor that is not also NCHW-contiguous: the kernels that read channels_last in
// place (flow_warp) take this path; a pixel's channels are then contiguous.
inline bool channels_last_only(const at::Tensor& t) {
  return t.dim() == 4 && t.is_contiguous(at::MemoryFormat::ChannelsLast) && !t.is_contiguous();
}

inline void check_same_device_dtype(const char* op, const std::vector<std::pair<const char*, at::Tensor>>& ts) {
  const auto& first = ts.front();
  for (const auto& kv : ts) {
    TORCH_CHECK(kv.second.device() == first.second.device(), op, ": `", kv.first, "` is on ",
                kv.second.device(), " but `", first.first, "` is on ", first.second.device());
    TORCH_CHECK(kv.second.scalar_type() == first.second.scalar_type(), op, ": `", kv.first, "` has dtype ",
                kv.second.scalar_type(), " but `", first.first, "` has dtype ", first.second.scalar_type(),
                " (cast them to one floating dtype)");
  }
  TORCH_CHECK(at::isFloatingType(first.second.scalar_type()), op, ": expected floating-point inputs, got ",
              first.second.scalar_type());
}

// Batch indices in rois[:, 0] (truncated to int as the original) must address an image of the batch.
inline void check_roi_batch_index(const char* op, const at::Tensor& rois, int64_t batch) {
  if (rois.size(0) == 0) return;
  auto bi = rois.select(1, 0).to(at::kDouble).trunc();
  const double lo = bi.min().item<double>(), hi = bi.max().item<double>();
  TORCH_CHECK(lo >= 0 && hi < static_cast<double>(batch), op,
              ": rois[:, 0] holds batch indices in [", lo, ", ", hi, "] but `data` has batch size ", batch,
              " (rois are [batch_index, x1, y1, x2, y2])");
}

inline void check_psroi_args(const at::Tensor& data, const at::Tensor& rois, double spatial_scale,
                             int64_t output_dim, int64_t pooled_size, int64_t group_size) {
  const char* op = "psroi_pool";
  TORCH_CHECK(data.dim() == 4, op, ": `data` must be 4-D (N, output_dim*group_size^2, H, W), got ",
              sizes_str(data));
  TORCH_CHECK(rois.dim() == 2 && rois.size(1) == 5, op,
              ": `rois` must be (R, 5) = [batch_index, x1, y1, x2, y2], got ", sizes_str(rois));
  TORCH_CHECK(output_dim > 0 && pooled_size > 0 && group_size > 0, op,
              ": output_dim, pooled_size and group_size must be positive, got ", output_dim, ", ",
              pooled_size, ", ", group_size);
  TORCH_CHECK(data.size(1) == output_dim * group_size * group_size, op, ": `data` has ", data.size(1),
              " channels but output_dim * group_size^2 = ", output_dim, " * ", group_size, "^2 = ",
              output_dim * group_size * group_size, " (data ", sizes_str(data), ")");
  TORCH_CHECK(spatial_scale > 0, op, ": spatial_scale must be positive, got ", spatial_scale);
  check_same_device_dtype(op, {{"data", data}, {"rois", rois}});
}

// The gradient handed to psroi_pool's backward: (R, output_dim, pooled_size, pooled_size).
inline void check_psroi_grad(const at::Tensor& grad, const at::Tensor& rois, int64_t output_dim, int64_t pooled_size) {
  TORCH_CHECK(grad.dim() == 4 && grad.size(0) == rois.size(0) && grad.size(1) == output_dim &&
                  grad.size(2) == pooled_size && grad.size(3) == pooled_size,
              "psroi_pool backward: grad ", sizes_str(grad), " does not match (R, output_dim, pooled, pooled) = (",
              rois.size(0), ", ", output_dim, ", ", pooled_size, ", ", pooled_size, ")");
}

inline void check_flow_warp_args(const at::Tensor& data, const at::Tensor& flow) {
  const char* op = "flow_warp";
  TORCH_CHECK(data.dim() == 4, op, ": `data` must be 4-D (N, C, H, W), got ", sizes_str(data));
  TORCH_CHECK(flow.dim() == 4 && flow.size(1) == 2, op, ": `flow` must be (N, 2, H, W), got ", sizes_str(flow));
  TORCH_CHECK(flow.size(0) == data.size(0) && flow.size(2) == data.size(2) && flow.size(3) == data.size(3),
              op, ": `flow` ", sizes_str(flow), " does not match `data` ", sizes_str(data),
              " in batch size or spatial size");
  check_same_device_dtype(op, {{"data", data}, {"flow", flow}});
}

inline void check_proposal_args(const at::Tensor& cls_prob, const at::Tensor& bbox_pred, const at::Tensor& im_info,
                                int64_t feature_stride, const std::vector<double>& scales,
                                const std::vector<double>& ratios, int64_t pre_nms_top_n, int64_t post_nms_top_n) {
  const char* op = "proposal";
  const int64_t A = static_cast<int64_t>(scales.size() * ratios.size());
  TORCH_CHECK(A > 0, op, ": scales and ratios must not be empty");
  TORCH_CHECK(cls_prob.dim() == 4 && cls_prob.size(1) == 2 * A, op, ": `cls_prob` must be (N, 2*A, H, W) with A = ",
              A, " anchors, got ", sizes_str(cls_prob));
  TORCH_CHECK(bbox_pred.dim() == 4 && bbox_pred.size(1) == 4 * A, op,
              ": `bbox_pred` must be (N, 4*A, H, W) with A = ", A, ", got ", sizes_str(bbox_pred));
  TORCH_CHECK(bbox_pred.size(0) == cls_prob.size(0) && bbox_pred.size(2) == cls_prob.size(2) &&
                  bbox_pred.size(3) == cls_prob.size(3),
              op, ": `bbox_pred` ", sizes_str(bbox_pred), " does not match `cls_prob` ", sizes_str(cls_prob));
  TORCH_CHECK(im_info.dim() == 2 && im_info.size(1) == 3 && im_info.size(0) == cls_prob.size(0), op,
              ": `im_info` must be (N, 3) = [height, width, scale] with N = ", cls_prob.size(0), ", got ",
              sizes_str(im_info));
  TORCH_CHECK(feature_stride > 0, op, ": feature_stride must be positive, got ", feature_stride);
  TORCH_CHECK(post_nms_top_n > 0, op, ": post_nms_top_n must be positive, got ", post_nms_top_n);
  (void)pre_nms_top_n;  // <= 0 means "all", as in MXNet
  check_same_device_dtype(op, {{"cls_prob", cls_prob}, {"bbox_pred", bbox_pred}, {"im_info", im_info}});
}

inline void check_nms_args(const at::Tensor& boxes, const at::Tensor& scores) {
  const char* op = "nms";
  TORCH_CHECK(boxes.dim() == 2 && boxes.size(1) == 4, op, ": `boxes` must be (K, 4) = [x1, y1, x2, y2], got ",
              sizes_str(boxes));
  TORCH_CHECK(scores.dim() == 1 && scores.size(0) == boxes.size(0), op, ": `scores` must be (K,) with K = ",
              boxes.size(0), ", got ", sizes_str(scores));
  check_same_device_dtype(op, {{"boxes", boxes}, {"scores", scores}});
}

}  // namespace dff
