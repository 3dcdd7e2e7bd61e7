// PSROIPooling, CUDA. Per-element math: common/element_math.h (shared with cpu/).
#include <torch/library.h>

#include "../common/checks.h"
#include "../common/reduced_float.h"
#include "../common/element_math.h"
#include "cuda_helpers.cuh"

namespace dff {
namespace {

// Output element i of (R, output_dim, P, P): its roi's batch index, the input channel it reads and its bin.
struct OutputBin {
  int64_t batch;
  int channel;
  math::PSBin bin;
};

template <typename T>
__device__ OutputBin output_bin(int64_t i, const T* rois, T scale, int H, int W, int output_dim, int P, int G) {
  const int pw = static_cast<int>(i % P), ph = static_cast<int>((i / P) % P);
  const int ctop = static_cast<int>((i / P / P) % output_dim);
  const T* roi = rois + (i / P / P / output_dim) * 5;
  return {static_cast<int64_t>(roi[0]), math::psroi_channel(ctop, ph, pw, P, G),
          math::psroi_bin(roi, scale, P, H, W, ph, pw)};
}

template <typename T>
__global__ void psroi_forward_kernel(int64_t total, const T* data, const T* rois, T scale, int64_t sN, int64_t sC,
                                     int64_t sH, int64_t sW, int H, int W, int output_dim, int P, int G, T* out) {
  DFF_CUDA_1D_LOOP(i, total) {
    const OutputBin o = output_bin(i, rois, scale, H, W, output_dim, P, G);
    out[i] = math::psroi_bin_mean(data + o.batch * sN + o.channel * sC, sH, sW, o.bin);
  }
}

template <typename T>
__global__ void psroi_backward_kernel(int64_t total, const T* grad, const T* rois, T scale, int64_t C, int H, int W,
                                      int output_dim, int P, int G, T* grad_data) {
  DFF_CUDA_1D_LOOP(i, total) {
    const OutputBin o = output_bin(i, rois, scale, H, W, output_dim, P, G);
    if (o.bin.empty()) continue;
    const T v = grad[i] / static_cast<T>(o.bin.area());
    T* plane = grad_data + (o.batch * C + o.channel) * H * W;
    for (int h = o.bin.hstart; h < o.bin.hend; ++h)
      for (int w = o.bin.wstart; w < o.bin.wend; ++w) atomicAdd(plane + h * W + w, v);
  }
}

at::Tensor psroi_pool_forward_cuda(const at::Tensor& data, const at::Tensor& rois, double spatial_scale,
                                   int64_t output_dim, int64_t pooled_size, int64_t group_size) {
  check_psroi_args(data, rois, spatial_scale, output_dim, pooled_size, group_size);
  check_roi_batch_index("psroi_pool", rois, data.size(0));
  c10::cuda::CUDAGuard guard(data.device());
  const int64_t R = rois.size(0);
  auto out = at::zeros({R, output_dim, pooled_size, pooled_size}, data.options());
  const int64_t total = out.numel();
  if (total == 0 || data.numel() == 0) return out;
  auto r = rois.contiguous();  // `data` is read through its strides (channels_last is not copied)
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(data.scalar_type(), "psroi_pool_forward_cuda", [&] {
    psroi_forward_kernel<scalar_t><<<cuda::blocks_for(total), cuda::kThreads, 0, stream>>>(
        total, data.data_ptr<scalar_t>(), r.data_ptr<scalar_t>(), static_cast<scalar_t>(spatial_scale),
        data.stride(0), data.stride(1), data.stride(2), data.stride(3), static_cast<int>(data.size(2)),
        static_cast<int>(data.size(3)), static_cast<int>(output_dim), static_cast<int>(pooled_size),
        static_cast<int>(group_size), out.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

at::Tensor psroi_pool_backward_cuda(const at::Tensor& grad, const at::Tensor& rois, double spatial_scale,
                                    int64_t output_dim, int64_t pooled_size, int64_t group_size, int64_t batch_size,
                                    int64_t height, int64_t width) {
  check_psroi_grad(grad, rois, output_dim, pooled_size);
  c10::cuda::CUDAGuard guard(grad.device());
  const int64_t C = output_dim * group_size * group_size;
  auto grad_data = at::zeros({batch_size, C, height, width}, grad.options());
  const int64_t total = grad.numel();
  if (total == 0 || grad_data.numel() == 0) return grad_data;
  auto g = grad.contiguous();
  auto r = rois.to(grad.scalar_type()).contiguous();
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "psroi_pool_backward_cuda", [&] {
    psroi_backward_kernel<scalar_t><<<cuda::blocks_for(total), cuda::kThreads, 0, stream>>>(
        total, g.data_ptr<scalar_t>(), r.data_ptr<scalar_t>(), static_cast<scalar_t>(spatial_scale), C,
        static_cast<int>(height), static_cast<int>(width), static_cast<int>(output_dim), static_cast<int>(pooled_size),
        static_cast<int>(group_size), grad_data.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grad_data;
}

}  // namespace
}  // namespace dff

TORCH_LIBRARY_IMPL(dff, CUDA, m) {
  m.impl("psroi_pool", dff::in_float32<&dff::psroi_pool_forward_cuda>);
  m.impl("_psroi_pool_backward", dff::in_float32<&dff::psroi_pool_backward_cuda>);
}
