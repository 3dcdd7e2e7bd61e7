// Flow warp, CPU. Per-element math: common/element_math.h (shared with cuda/).
// The four taps of each output pixel are computed once per image and reused for every channel.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <tuple>
#include <vector>

#include "../common/checks.h"
#include "../common/reduced_float.h"
#include "../common/element_math.h"

namespace dff {
namespace {

// flow: one image's (2, H, W) flow, read through its strides (any memory format).
template <typename scalar_t>
void compute_taps(const scalar_t* flow, at::IntArrayRef strides, int64_t H, int64_t W,
                  std::vector<math::WarpTaps<scalar_t>>& taps) {
  const int64_t HW = H * W, sC = strides[1], sH = strides[2], sW = strides[3];
  taps.resize(HW);
  at::parallel_for(0, HW, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const int64_t at = (p / W) * sH + (p % W) * sW;
      const scalar_t x = static_cast<scalar_t>(p % W) + flow[at];
      const scalar_t y = static_cast<scalar_t>(p / W) + flow[sC + at];
      taps[p] = math::warp_taps(x, y, static_cast<int>(H), static_cast<int>(W));
    }
  });
}

at::Tensor flow_warp_forward_cpu(const at::Tensor& data, const at::Tensor& flow) {
  check_flow_warp_args(data, flow);
  // NCHW or channels_last data is read in place and the output has its memory format; the flow is read
  // through its strides
  const bool nhwc = channels_last_only(data);
  auto d = nhwc ? data : data.contiguous();
  auto out = at::empty_like(d);
  const int64_t N = d.size(0), C = d.size(1), H = d.size(2), W = d.size(3), HW = H * W;
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(d.scalar_type(), "flow_warp_forward_cpu", [&] {
    std::vector<math::WarpTaps<scalar_t>> taps;
    for (int64_t n = 0; n < N; ++n) {
      compute_taps(flow.data_ptr<scalar_t>() + n * flow.stride(0), flow.strides(), H, W, taps);
      const scalar_t* dp = d.data_ptr<scalar_t>() + n * C * HW;
      scalar_t* op = out.data_ptr<scalar_t>() + n * C * HW;
      if (nhwc) {  // a pixel's C channels are contiguous: the taps are read once per pixel
        at::parallel_for(0, HW, 16, [&](int64_t begin, int64_t end) {
          for (int64_t p = begin; p < end; ++p)
            for (int64_t c = 0; c < C; ++c) op[p * C + c] = math::warp_sample(dp + c, taps[p], C);
        });
        continue;
      }
      at::parallel_for(0, C, 1, [&](int64_t begin, int64_t end) {
        for (int64_t c = begin; c < end; ++c) {
          const scalar_t* plane = dp + c * HW;
          scalar_t* o = op + c * HW;
          for (int64_t p = 0; p < HW; ++p) o[p] = math::warp_sample(plane, taps[p]);
        }
      });
    }
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> flow_warp_backward_cpu(const at::Tensor& grad, const at::Tensor& data,
                                                          const at::Tensor& flow) {
  check_flow_warp_args(data, flow);
  TORCH_CHECK(grad.sizes() == data.sizes(), "flow_warp backward: grad ", sizes_str(grad), " != data ",
              sizes_str(data));
  auto g = grad.to(data.scalar_type()).contiguous();
  auto d = data.contiguous();
  auto f = flow.contiguous();
  auto grad_data = at::zeros_like(d);
  auto grad_flow = at::zeros_like(f);
  const int64_t N = d.size(0), C = d.size(1), H = d.size(2), W = d.size(3), HW = H * W;
  if (d.numel() == 0) return {grad_data, grad_flow};
  AT_DISPATCH_FLOATING_TYPES(d.scalar_type(), "flow_warp_backward_cpu", [&] {
    std::vector<math::WarpTaps<scalar_t>> taps;
    for (int64_t n = 0; n < N; ++n) {
      compute_taps(f.data_ptr<scalar_t>() + n * 2 * HW, f.strides(), H, W, taps);
      const scalar_t* gp = g.data_ptr<scalar_t>() + n * C * HW;
      const scalar_t* dp = d.data_ptr<scalar_t>() + n * C * HW;
      scalar_t* gdp = grad_data.data_ptr<scalar_t>() + n * C * HW;
      scalar_t* gfp = grad_flow.data_ptr<scalar_t>() + n * 2 * HW;
      // d/d data: scatter, one channel plane per task (no races).
      at::parallel_for(0, C, 1, [&](int64_t begin, int64_t end) {
        for (int64_t c = begin; c < end; ++c) {
          const scalar_t* go = gp + c * HW;
          scalar_t* gd = gdp + c * HW;
          for (int64_t p = 0; p < HW; ++p) {
            scalar_t w[4];
            math::warp_weights(taps[p], w);
            for (int k = 0; k < 4; ++k)
              if (taps[p].off[k] >= 0) gd[taps[p].off[k]] += w[k] * go[p];
          }
        }
      });
      // d/d flow: sum over channels, one block of pixels per task (no races).
      at::parallel_for(0, HW, 512, [&](int64_t begin, int64_t end) {
        for (int64_t c = 0; c < C; ++c) {
          const scalar_t* go = gp + c * HW;
          const scalar_t* plane = dp + c * HW;
          for (int64_t p = begin; p < end; ++p) {
            scalar_t dx, dy;
            math::warp_sample_grad_xy(plane, taps[p], &dx, &dy);
            gfp[p] += go[p] * dx;
            gfp[HW + p] += go[p] * dy;
          }
        }
      });
    }
  });
  return {grad_data, grad_flow};
}

}  // namespace
}  // namespace dff

TORCH_LIBRARY_IMPL(dff, CPU, m) {
  m.impl("flow_warp", dff::in_float32<&dff::flow_warp_forward_cpu>);
  m.impl("_flow_warp_backward", dff::in_float32<&dff::flow_warp_backward_cpu>);
}
