// PSROIPooling, CPU. Per-element math: common/element_math.h (shared with cuda/).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "../common/checks.h"
#include "../common/reduced_float.h"
#include "../common/element_math.h"

namespace dff {
namespace {

// The P*P bins of every roi, computed once (they do not depend on the channel); stored bin-major,
// [(ph*P + pw)*R + n], so the backward's walk over the rois of one bin reads contiguously.
template <typename scalar_t>
std::vector<math::PSBin> roi_bins(const scalar_t* rp, int64_t R, scalar_t scale, int P, int64_t H, int64_t W) {
  std::vector<math::PSBin> bins(R * P * P);
  at::parallel_for(0, R, 8, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n)
      for (int ph = 0; ph < P; ++ph)
        for (int pw = 0; pw < P; ++pw)
          bins[(ph * P + pw) * R + n] = math::psroi_bin(rp + n * 5, scale, P, static_cast<int>(H), static_cast<int>(W), ph, pw);
  });
  return bins;
}

at::Tensor psroi_pool_forward_cpu(const at::Tensor& data, const at::Tensor& rois, double spatial_scale,
                                  int64_t output_dim, int64_t pooled_size, int64_t group_size) {
  check_psroi_args(data, rois, spatial_scale, output_dim, pooled_size, group_size);
  check_roi_batch_index("psroi_pool", rois, data.size(0));
  const int64_t R = rois.size(0), C = data.size(1), H = data.size(2), W = data.size(3);
  const int P = static_cast<int>(pooled_size), G = static_cast<int>(group_size);
  auto out = at::zeros({R, output_dim, pooled_size, pooled_size}, data.options());
  if (R == 0 || data.numel() == 0) return out;
  auto d = data.contiguous();
  auto r = rois.contiguous();
  AT_DISPATCH_FLOATING_TYPES(d.scalar_type(), "psroi_pool_forward_cpu", [&] {
    const scalar_t* dp = d.data_ptr<scalar_t>();
    const scalar_t* rp = r.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    const auto bins = roi_bins(rp, R, static_cast<scalar_t>(spatial_scale), P, H, W);
    at::parallel_for(0, R * output_dim, 16, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const int64_t n = i / output_dim;
        const int ctop = static_cast<int>(i % output_dim);
        const int64_t b = static_cast<int64_t>(rp[n * 5]);
        for (int ph = 0; ph < P; ++ph)
          for (int pw = 0; pw < P; ++pw) {
            const int c = math::psroi_channel(ctop, ph, pw, P, G);
            op[(i * P + ph) * P + pw] =
                math::psroi_bin_mean(dp + (b * C + c) * H * W, static_cast<int>(W), bins[(ph * P + pw) * R + n]);
          }
      }
    });
  });
  return out;
}

// Scatter of the gradient. Each input channel c = (ctop*G + gh)*G + gw receives only from the
// output positions (ctop, ph, pw) that map to it, so parallelising over input channels needs no atomics.
at::Tensor psroi_pool_backward_cpu(const at::Tensor& grad, const at::Tensor& rois, double spatial_scale,
                                   int64_t output_dim, int64_t pooled_size, int64_t group_size, int64_t batch_size,
                                   int64_t height, int64_t width) {
  TORCH_CHECK(grad.dim() == 4 && grad.size(0) == rois.size(0) && grad.size(1) == output_dim &&
                  grad.size(2) == pooled_size && grad.size(3) == pooled_size,
              "psroi_pool backward: grad ", sizes_str(grad), " does not match (R, output_dim, pooled, pooled) = (",
              rois.size(0), ", ", output_dim, ", ", pooled_size, ", ", pooled_size, ")");
  const int64_t C = output_dim * group_size * group_size, H = height, W = width, R = rois.size(0);
  const int P = static_cast<int>(pooled_size), G = static_cast<int>(group_size);
  auto grad_data = at::zeros({batch_size, C, H, W}, grad.options());
  if (R == 0 || grad_data.numel() == 0) return grad_data;
  auto g = grad.contiguous();
  auto r = rois.to(grad.scalar_type()).contiguous();
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "psroi_pool_backward_cpu", [&] {
    const scalar_t* gp = g.data_ptr<scalar_t>();
    const scalar_t* rp = r.data_ptr<scalar_t>();
    scalar_t* gd = grad_data.data_ptr<scalar_t>();
    const auto bins = roi_bins(rp, R, static_cast<scalar_t>(spatial_scale), P, H, W);
    at::parallel_for(0, C, 1, [&](int64_t begin, int64_t end) {
      std::vector<int> rows, cols;
      for (int64_t c = begin; c < end; ++c) {
        const int ctop = static_cast<int>(c / (G * G));
        const int gh = static_cast<int>((c / G) % G), gw = static_cast<int>(c % G);
        rows.clear();
        cols.clear();
        for (int p = 0; p < P; ++p) {
          if (math::psroi_channel(ctop, p, 0, P, G) == (ctop * G + gh) * G) rows.push_back(p);
          if (math::psroi_channel(ctop, 0, p, P, G) == ctop * G * G + gw) cols.push_back(p);
        }
        for (int64_t n = 0; n < R; ++n) {
          const int64_t b = static_cast<int64_t>(rp[n * 5]);
          scalar_t* plane = gd + (b * C + c) * H * W;
          for (int ph : rows)
            for (int pw : cols) {
              const math::PSBin& bin = bins[(ph * P + pw) * R + n];
              if (bin.empty()) continue;
              const scalar_t v = gp[((n * output_dim + ctop) * P + ph) * P + pw] / static_cast<scalar_t>(bin.area());
              for (int h = bin.hstart; h < bin.hend; ++h)
                for (int w = bin.wstart; w < bin.wend; ++w) plane[h * W + w] += v;
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
