// Launch helpers for the CUDA kernels. Only ATen/ATen.h and c10/cuda/* are included here (the
// kernels must build against a bare CUDA toolkit, without the headers ATen/cuda/CUDAContext.h needs).
#pragma once

#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <cstdint>

#define DFF_CUDA_1D_LOOP(i, n) \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)

namespace dff {
namespace cuda {

constexpr int kThreads = 256;

inline unsigned int blocks_for(int64_t n) {
  return static_cast<unsigned int>(std::max<int64_t>(1, std::min<int64_t>((n + kThreads - 1) / kThreads, 4096)));
}

}  // namespace cuda
}  // namespace dff
