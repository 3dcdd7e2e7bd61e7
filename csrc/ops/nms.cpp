// Schema of one op of the `dff` library (torch.ops.dff.*). Kernels: cpu/, cuda/; autocast: autocast/;
// autograd formula and fake (meta) kernel: lib/ops/_registrations.py.
#include <torch/library.h>

// Greedy NMS with the +1 pixel convention; kept indices sorted by descending score.
TORCH_LIBRARY_FRAGMENT(dff, m) { m.def("nms(Tensor boxes, Tensor scores, float iou_threshold) -> Tensor"); }
