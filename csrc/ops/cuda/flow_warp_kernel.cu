// Flow warp, CUDA. Per-element math: common/element_math.h (shared with cpu/).
#include <torch/library.h>

#include <tuple>

#include "../common/checks.h"
#include "../common/reduced_float.h"
#include "../common/element_math.h"
#include "cuda_helpers.cuh"

namespace dff {
namespace {

// Flow strides (channel, row, column): any memory format.
template <typename T>
__device__ math::WarpTaps<T> taps_at(const T* flow_n, int64_t fc, int64_t fh, int64_t fw, int64_t p, int H, int W) {
  const int64_t at = (p / W) * fh + (p % W) * fw;
  const T x = static_cast<T>(p % W) + flow_n[at];
  const T y = static_cast<T>(p / W) + flow_n[fc + at];
  return math::warp_taps(x, y, H, W);
}

// data and out: NCHW (sC = H*W, sW = 1) or channels_last (sC = 1, sW = C); a row is W pixels.
template <typename T>
__global__ void flow_warp_forward_kernel(int64_t total, const T* data, const T* flow, int64_t C, int H, int W,
                                         int64_t sN, int64_t sC, int64_t sW, int64_t fn, int64_t fc, int64_t fh,
                                         int64_t fw, T* out) {
  const int64_t HW = static_cast<int64_t>(H) * W;
  DFF_CUDA_1D_LOOP(i, total) {
    const int64_t p = i % HW, nc = i / HW, n = nc / C, c = nc % C;
    const math::WarpTaps<T> t = taps_at(flow + n * fn, fc, fh, fw, p, H, W);
    const int64_t base = n * sN + c * sC;
    out[base + p * sW] = math::warp_sample(data + base, t, sW);
  }
}

// One thread per (n, pixel): loops over channels, scatters into grad_data (atomics: taps of
// neighbouring pixels overlap) and sums the flow gradient (no atomics).
template <typename T>
__global__ void flow_warp_backward_kernel(int64_t total, const T* grad, const T* data, const T* flow, int64_t C,
                                          int H, int W, T* grad_data, T* grad_flow) {
  const int64_t HW = static_cast<int64_t>(H) * W;
  DFF_CUDA_1D_LOOP(i, total) {
    const int64_t p = i % HW, n = i / HW;
    const math::WarpTaps<T> t = taps_at(flow + n * 2 * HW, HW, static_cast<int64_t>(W), int64_t(1), p, H, W);
    T w[4];
    math::warp_weights(t, w);
    T gx = T(0), gy = T(0);
    for (int64_t c = 0; c < C; ++c) {
      const int64_t plane = (n * C + c) * HW;
      const T go = grad[plane + p];
      for (int k = 0; k < 4; ++k)
        if (t.off[k] >= 0) atomicAdd(grad_data + plane + t.off[k], w[k] * go);
      T dx, dy;
      math::warp_sample_grad_xy(data + plane, t, &dx, &dy);
      gx += go * dx;
      gy += go * dy;
    }
    grad_flow[n * 2 * HW + p] = gx;
    grad_flow[n * 2 * HW + HW + p] = gy;
  }
}

at::Tensor flow_warp_forward_cuda(const at::Tensor& data, const at::Tensor& flow) {
  check_flow_warp_args(data, flow);
  c10::cuda::CUDAGuard guard(data.device());
  // NCHW or channels_last data is read in place (the output has its format); the flow through its strides
  const bool nhwc = channels_last_only(data);
  auto d = nhwc ? data : data.contiguous();
  auto out = at::empty_like(d);
  const int64_t total = d.numel();
  if (total == 0) return out;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(d.scalar_type(), "flow_warp_forward_cuda", [&] {
    flow_warp_forward_kernel<scalar_t><<<cuda::blocks_for(total), cuda::kThreads, 0, stream>>>(
        total, d.data_ptr<scalar_t>(), flow.data_ptr<scalar_t>(), d.size(1), static_cast<int>(d.size(2)),
        static_cast<int>(d.size(3)), d.size(1) * d.size(2) * d.size(3), nhwc ? int64_t(1) : d.size(2) * d.size(3),
        nhwc ? d.size(1) : int64_t(1), flow.stride(0), flow.stride(1), flow.stride(2), flow.stride(3),
        out.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> flow_warp_backward_cuda(const at::Tensor& grad, const at::Tensor& data,
                                                           const at::Tensor& flow) {
  check_flow_warp_args(data, flow);
  TORCH_CHECK(grad.sizes() == data.sizes(), "flow_warp backward: grad ", sizes_str(grad), " != data ",
              sizes_str(data));
  c10::cuda::CUDAGuard guard(data.device());
  auto g = grad.to(data.scalar_type()).contiguous();
  auto d = data.contiguous();
  auto f = flow.contiguous();
  auto grad_data = at::zeros_like(d);
  auto grad_flow = at::zeros_like(f);
  const int64_t total = d.size(0) * d.size(2) * d.size(3);
  if (d.numel() == 0) return {grad_data, grad_flow};
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(d.scalar_type(), "flow_warp_backward_cuda", [&] {
    flow_warp_backward_kernel<scalar_t><<<cuda::blocks_for(total), cuda::kThreads, 0, stream>>>(
        total, g.data_ptr<scalar_t>(), d.data_ptr<scalar_t>(), f.data_ptr<scalar_t>(), d.size(1),
        static_cast<int>(d.size(2)), static_cast<int>(d.size(3)), grad_data.data_ptr<scalar_t>(),
        grad_flow.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {grad_data, grad_flow};
}

}  // namespace
}  // namespace dff

TORCH_LIBRARY_IMPL(dff, CUDA, m) {
  m.impl("flow_warp", dff::in_float32<&dff::flow_warp_forward_cuda>);
  m.impl("_flow_warp_backward", dff::in_float32<&dff::flow_warp_backward_cuda>);
}
