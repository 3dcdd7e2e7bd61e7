// Schema of one op of the `dff` library (torch.ops.dff.*). Kernels: cpu/, cuda/; autocast: autocast/;
// autograd formula and fake (meta) kernel: lib/ops/_registrations.py.
#include <torch/library.h>

// Batched RPN proposal (MXNet MultiProposal). Returns rois (N*post, 5) and scores (N*post, 1).
TORCH_LIBRARY_FRAGMENT(dff, m) {
  m.def("proposal(Tensor cls_prob, Tensor bbox_pred, Tensor im_info, int feature_stride, float[] scales, "
        "float[] ratios, int pre_nms_top_n, int post_nms_top_n, float nms_threshold, float min_size) "
        "-> (Tensor, Tensor)");
}
