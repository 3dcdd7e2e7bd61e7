// Schema of one op of the `dff` library (torch.ops.dff.*). Kernels: cpu/, cuda/; autocast: autocast/;
// autograd formula and fake (meta) kernel: lib/ops/_registrations.py.
#include <torch/library.h>

// PSROIPooling with MXNet semantics. data (N, output_dim*group_size^2, H, W), rois (R, 5).
TORCH_LIBRARY_FRAGMENT(dff, m) {
  m.def("psroi_pool(Tensor data, Tensor rois, float spatial_scale, int output_dim, int pooled_size, "
        "int group_size) -> Tensor");
  m.def("_psroi_pool_backward(Tensor grad, Tensor rois, float spatial_scale, int output_dim, int pooled_size, "
        "int group_size, int batch_size, int height, int width) -> Tensor");
}
