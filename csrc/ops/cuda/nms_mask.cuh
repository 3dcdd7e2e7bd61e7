// Pairwise suppression bitmask for greedy NMS on boxes sorted by priority (64 boxes per block);
// reduced on the host by dff::reduce_nms_mask. IoU: math::iou_plus1 (shared with the CPU path).
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "../common/element_math.h"
#include "../common/greedy_nms.h"
#include "cuda_helpers.cuh"

namespace dff {
namespace cuda {

constexpr int kNmsBlock = 64;

template <typename T>
__global__ void nms_mask_kernel(int64_t K, T threshold, const T* boxes, unsigned long long* mask) {
  const int64_t row_start = blockIdx.y, col_start = blockIdx.x;
  const int64_t blocks = (K + kNmsBlock - 1) / kNmsBlock;
  const int row_size = static_cast<int>(min(K - row_start * kNmsBlock, static_cast<int64_t>(kNmsBlock)));
  const int col_size = static_cast<int>(min(K - col_start * kNmsBlock, static_cast<int64_t>(kNmsBlock)));
  __shared__ T block_boxes[kNmsBlock * 4];
  if (threadIdx.x < col_size)
    for (int k = 0; k < 4; ++k)
      block_boxes[threadIdx.x * 4 + k] = boxes[(kNmsBlock * col_start + threadIdx.x) * 4 + k];
  __syncthreads();
  if (threadIdx.x < row_size) {
    const int64_t cur = kNmsBlock * row_start + threadIdx.x;
    const T* cb = boxes + cur * 4;
    const T area_c = math::box_area_plus1(cb);
    unsigned long long bits = 0;
    for (int i = (row_start == col_start) ? threadIdx.x + 1 : 0; i < col_size; ++i) {
      const T* ob = block_boxes + i * 4;
      if (math::iou_plus1(cb, ob, area_c, math::box_area_plus1(ob)) > threshold) bits |= 1ULL << i;
    }
    mask[cur * blocks + col_start] = bits;
  }
}

// Greedy NMS of `sorted_boxes` (K, 4) on the device; returns kept positions (host), at most max_keep.
inline std::vector<int64_t> nms_sorted_cuda(const at::Tensor& sorted_boxes, double threshold, int64_t max_keep) {
  const int64_t K = sorted_boxes.size(0);
  if (K == 0) return {};
  const int64_t blocks = (K + kNmsBlock - 1) / kNmsBlock;
  auto mask = at::empty({K * blocks}, sorted_boxes.options().dtype(at::kLong));
  auto stream = c10::cuda::getCurrentCUDAStream();
  const dim3 grid(static_cast<unsigned int>(blocks), static_cast<unsigned int>(blocks));
  AT_DISPATCH_FLOATING_TYPES(sorted_boxes.scalar_type(), "nms_mask_cuda", [&] {
    nms_mask_kernel<scalar_t><<<grid, kNmsBlock, 0, stream>>>(
        K, static_cast<scalar_t>(threshold), sorted_boxes.data_ptr<scalar_t>(),
        reinterpret_cast<unsigned long long*>(mask.data_ptr<int64_t>()));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  auto host = mask.cpu();
  return reduce_nms_mask(reinterpret_cast<const uint64_t*>(host.data_ptr<int64_t>()), K, max_keep);
}

inline at::Tensor to_index_tensor(const std::vector<int64_t>& v, const at::Device& device) {
  auto t = at::empty({static_cast<int64_t>(v.size())}, at::TensorOptions().dtype(at::kLong));
  std::copy(v.begin(), v.end(), t.data_ptr<int64_t>());
  return t.to(device);
}

}  // namespace cuda
}  // namespace dff
