// Schema of one op of the `dff` library (torch.ops.dff.*). Kernels: cpu/, cuda/; autocast: autocast/;
// autograd formula and fake (meta) kernel: lib/ops/_registrations.py.
#include <torch/library.h>

// Bilinear backward warp along a flow in pixels (MXNet GridGenerator(warp) + BilinearSampler, fused).
TORCH_LIBRARY_FRAGMENT(dff, m) {
  m.def("flow_warp(Tensor data, Tensor flow) -> Tensor");
  m.def("_flow_warp_backward(Tensor grad, Tensor data, Tensor flow) -> (Tensor, Tensor)");
}
