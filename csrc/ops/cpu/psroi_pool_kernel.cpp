// PSROIPooling, CPU. Per-element math: common/element_math.h (shared with cuda/).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../common/checks.h"
#include "../common/reduced_float.h"
#include "../common/element_math.h"

namespace dff {
namespace {

// The P*P bins of every roi, computed once (they do not depend on the channel); roi-major, [n*P*P + ph*P + pw].
template <typename scalar_t>
std::vector<math::PSBin> roi_bins(const scalar_t* rp, int64_t R, scalar_t scale, int P, int64_t H, int64_t W) {
  std::vector<math::PSBin> bins(R * P * P);
  at::parallel_for(0, R, 8, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n)
      for (int ph = 0; ph < P; ++ph)
        for (int pw = 0; pw < P; ++pw)
          bins[(n * P + ph) * P + pw] = math::psroi_bin(rp + n * 5, scale, P, static_cast<int>(H), static_cast<int>(W), ph, pw);
  });
  return bins;
}

// Input channel of bin (ph, pw) relative to its class's first channel (psroi_channel is class-major:
// channel(ctop, ph, pw) = ctop*G*G + channel(0, ph, pw)), times `stride`.
inline std::vector<int64_t> bin_channel_offsets(int P, int G, int64_t stride) {
  std::vector<int64_t> off(P * P);
  for (int ph = 0; ph < P; ++ph)
    for (int pw = 0; pw < P; ++pw) off[ph * P + pw] = math::psroi_channel(0, ph, pw, P, G) * stride;
  return off;
}

at::Tensor psroi_pool_forward_cpu(const at::Tensor& data, const at::Tensor& rois, double spatial_scale,
                                  int64_t output_dim, int64_t pooled_size, int64_t group_size) {
  check_psroi_args(data, rois, spatial_scale, output_dim, pooled_size, group_size);
  check_roi_batch_index("psroi_pool", rois, data.size(0));
  const int64_t R = rois.size(0), H = data.size(2), W = data.size(3);
  const int P = static_cast<int>(pooled_size), G = static_cast<int>(group_size);
  auto out = at::empty({R, output_dim, pooled_size, pooled_size}, data.options());  // every bin is written
  if (R == 0) return out;
  if (data.numel() == 0) return out.zero_();
  // `data` is read through its strides: a channels_last map (what a channels_last 1x1 conv gives) is not copied
  const int64_t sN = data.stride(0), sC = data.stride(1), sH = data.stride(2), sW = data.stride(3);
  auto r = rois.contiguous();
  AT_DISPATCH_FLOATING_TYPES(data.scalar_type(), "psroi_pool_forward_cpu", [&] {
    const scalar_t* dp = data.data_ptr<scalar_t>();
    const scalar_t* rp = r.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    const int PP = P * P;
    const auto bins = roi_bins(rp, R, static_cast<scalar_t>(spatial_scale), P, H, W);
    const auto channel = bin_channel_offsets(P, G, sC);
    // Output class ctop reads only its G*G input channels: class by class (all rois of one class, then the
    // next) keeps those channels in cache, where roi by roi would sweep the whole map for every roi.
    at::parallel_for(0, output_dim * R, 32, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const int64_t ctop = i / R, n = i % R;
        const scalar_t* cls = dp + static_cast<int64_t>(rp[n * 5]) * sN + ctop * G * G * sC;
        const math::PSBin* bin = &bins[n * PP];
        scalar_t* o = op + (n * output_dim + ctop) * PP;
        for (int k = 0; k < PP; ++k) o[k] = math::psroi_bin_mean(cls + channel[k], sH, sW, bin[k]);
      }
    });
  });
  return out;
}

// Scatter of the gradient. Output class ctop sends gradient only to its own G*G input channels, so
// parallelising over classes needs no atomics; each task zeroes its channels just before scattering into
// them (in cache), and within a channel the contributions add up roi by roi, bin by bin.
at::Tensor psroi_pool_backward_cpu(const at::Tensor& grad, const at::Tensor& rois, double spatial_scale,
                                   int64_t output_dim, int64_t pooled_size, int64_t group_size, int64_t batch_size,
                                   int64_t height, int64_t width) {
  check_psroi_grad(grad, rois, output_dim, pooled_size);
  const int64_t C = output_dim * group_size * group_size, H = height, W = width, R = rois.size(0);
  const int P = static_cast<int>(pooled_size), G = static_cast<int>(group_size);
  if (R == 0) return at::zeros({batch_size, C, H, W}, grad.options());
  auto grad_data = at::empty({batch_size, C, H, W}, grad.options());
  if (grad_data.numel() == 0) return grad_data;
  auto g = grad.contiguous();
  auto r = rois.to(grad.scalar_type()).contiguous();
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "psroi_pool_backward_cpu", [&] {
    const scalar_t* gp = g.data_ptr<scalar_t>();
    const scalar_t* rp = r.data_ptr<scalar_t>();
    scalar_t* gd = grad_data.data_ptr<scalar_t>();
    const int PP = P * P;
    const int64_t HW = H * W, class_size = static_cast<int64_t>(G) * G * HW;
    const auto bins = roi_bins(rp, R, static_cast<scalar_t>(spatial_scale), P, H, W);
    const auto channel = bin_channel_offsets(P, G, HW);
    at::parallel_for(0, output_dim, 1, [&](int64_t begin, int64_t end) {
      for (int64_t ctop = begin; ctop < end; ++ctop) {
        for (int64_t b = 0; b < batch_size; ++b) std::fill_n(gd + b * C * HW + ctop * class_size, class_size, scalar_t(0));
        for (int64_t n = 0; n < R; ++n) {
          scalar_t* cls = gd + static_cast<int64_t>(rp[n * 5]) * C * HW + ctop * class_size;
          const scalar_t* go = gp + (n * output_dim + ctop) * PP;
          const math::PSBin* bin = &bins[n * PP];
          for (int k = 0; k < PP; ++k) {
            if (bin[k].empty()) continue;
            const scalar_t v = go[k] / static_cast<scalar_t>(bin[k].area());
            scalar_t* plane = cls + channel[k];
            for (int h = bin[k].hstart; h < bin[k].hend; ++h)
              for (int w = bin[k].wstart; w < bin[k].wend; ++w) plane[h * W + w] += v;
          }
        }
      }
    });
  });
  return grad_data;
}

}  // namespace
}  // namespace dff

TORCH_LIBRARY_IMPL(dff, CPU, m) {
  m.impl("psroi_pool", dff::in_float32<&dff::psroi_pool_forward_cpu>);
  m.impl("_psroi_pool_backward", dff::in_float32<&dff::psroi_pool_backward_cpu>);
}
