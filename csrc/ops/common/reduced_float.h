// The one owner of the ops' half / bfloat16 policy. No kernel computes in half or bfloat16: such inputs
// are computed in float32 and the floating results are returned in the input's dtype (integer results,
// nms's indices, stay as they are). The CPU and CUDA kernels only handle float32 and float64; two
// entry points here apply the policy:
//   in_float32<&kernel>   what every CPU / CUDA kernel is registered as: when all floating tensor
//                         arguments share one half / bfloat16 dtype, they run as float32 and the results
//                         come back in that dtype; anything else reaches the kernel unchanged (float32 and
//                         float64 run as they are, a mixture of dtypes is reported by the kernel's checks).
//   autocast_call(op, dtype, args...)
//                         the autocast kernels (autocast/): under torch.autocast mixtures are normal
//                         (bfloat16 activations, float32 rois): every half / bfloat16 argument goes to
//                         float32, and the results come back in `dtype`, the main input's.
#pragma once

#include <ATen/ATen.h>

#include <tuple>

namespace dff {
namespace reduced_float {

inline bool is_reduced(at::ScalarType t) { return t == at::kHalf || t == at::kBFloat16; }

inline at::Tensor to_float32(const at::Tensor& t) { return is_reduced(t.scalar_type()) ? t.to(at::kFloat) : t; }
template <typename V>
const V& to_float32(const V& v) { return v; }

inline at::Tensor restore(const at::Tensor& t, at::ScalarType dtype) {
  return at::isFloatingType(t.scalar_type()) ? t.to(dtype) : t;
}
inline std::tuple<at::Tensor, at::Tensor> restore(const std::tuple<at::Tensor, at::Tensor>& r, at::ScalarType dtype) {
  return {restore(std::get<0>(r), dtype), restore(std::get<1>(r), dtype)};
}

// The dtype shared by all floating tensor arguments (Undefined when there are none or they differ).
struct SharedDtype {
  at::ScalarType dtype = at::ScalarType::Undefined;
  bool mixed = false;
  void note(const at::Tensor& t) {
    if (!t.defined() || !at::isFloatingType(t.scalar_type())) return;
    if (dtype == at::ScalarType::Undefined) dtype = t.scalar_type();
    else if (dtype != t.scalar_type()) mixed = true;
  }
  template <typename V>
  void note(const V&) {}
  bool reduced() const { return !mixed && is_reduced(dtype); }
};

template <auto Kernel>
struct Float32Adapter;

template <typename R, typename... Args, R (*Kernel)(Args...)>
struct Float32Adapter<Kernel> {
  static R call(Args... args) {
    SharedDtype shared;
    (shared.note(args), ...);
    if (!shared.reduced()) return Kernel(args...);
    return restore(Kernel(to_float32(args)...), shared.dtype);
  }
};

template <typename Op, typename... Args>
auto autocast_call(const Op& op, at::ScalarType dtype, const Args&... args) {
  return restore(op.call(to_float32(args)...), dtype);
}

}  // namespace reduced_float

// m.impl("op", in_float32<&op_cpu>): the kernel with the policy above.
template <auto Kernel>
constexpr auto in_float32 = &reduced_float::Float32Adapter<Kernel>::call;

}  // namespace dff
