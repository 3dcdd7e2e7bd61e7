// dff::_build_info() -> str: what the extension was compiled with, "cpu" or
// "cpu+cuda <version> archs <list>" (init.sh and the tests print it).
#include <torch/library.h>

#include <string>

namespace {
std::string build_info() {
#if defined(DFF_WITH_CUDA)
  return std::string("cpu+cuda ") + DFF_CUDA_VERSION_STR + " archs " + DFF_CUDA_ARCHS_STR;
#else
  return "cpu";
#endif
}
}  // namespace

TORCH_LIBRARY_FRAGMENT(dff, m) { m.def("_build_info() -> str"); }
TORCH_LIBRARY_IMPL(dff, CompositeExplicitAutograd, m) { m.impl("_build_info", &build_info); }
