"""Builds the project's custom ops (csrc/ops) into lib/ops/_C*.so against the installed PyTorch; the package
metadata and the list of packages are in pyproject.toml.

    pip install --no-build-isolation -e .        # editable: the ops built in place (init.sh adds
                                                 # --config-settings editable_mode=compat)
    pip install --no-build-isolation .           # an ordinary install (every package + the ops)
    python setup.py build_ext --inplace          # the ops alone, in place

CPU kernels are always built. CUDA kernels are built when a CUDA toolkit is found:
- CUDA_HOME (or CUDA_PATH) if set; otherwise the toolkit that the `nvcc` on PATH belongs to (asked
  from nvcc itself, so wrapper scripts are followed); otherwise /usr/local/cuda.
- TORCH_CUDA_ARCH_LIST if set; otherwise the visible GPUs' architectures, or, with no GPU to query,
  every architecture this CUDA version still supports from sm_75 up to sm_90, plus PTX for newer GPUs.
Environment switches: FORCE_CUDA=1 insists on CUDA and fails loudly without it; FORCE_CUDA=0 builds
the CPU kernels only; MAX_JOBS limits parallel compile jobs; DFF_BUILD_TEMP is the folder of the object
files (default build/temp.<platform>-<python>, the one `build_ext --inplace` uses, for every route, so
that ninja recompiles only what changed, also under pip, which otherwise compiles in a new temporary
folder each time).
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import sysconfig

from setuptools import setup

ROOT = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join("csrc", "ops")

# Architectures by CUDA major version, used when no GPU can be queried. CUDA 13 dropped
# everything below sm_75; the newest listed one also gets PTX so newer GPUs can JIT it.
DEFAULT_ARCHS = {
    11: "6.0;7.0;7.5;8.0;8.6+PTX",
    12: "7.0;7.5;8.0;8.6;8.9;9.0+PTX",
    13: "7.5;8.0;8.6;8.9;9.0+PTX",
}


def _env_flag(name):
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    return value.lower() not in ("0", "false", "no", "off")


def _toolkit_from_nvcc(nvcc):
    """The toolkit root nvcc really uses: `nvcc --dryrun` prints `#$ TOP=<root>/bin/..`."""
    try:
        out = subprocess.run([nvcc, "--dryrun", "-x", "cu", "-c", os.devnull, "-o", os.devnull],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"^#\$ TOP=(.+)$", out.stdout + out.stderr, re.M)
    if m:
        root = os.path.realpath(m.group(1).strip())
        if os.path.isfile(os.path.join(root, "bin", "nvcc")):
            return root
    root = os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))
    return root if os.path.isfile(os.path.join(root, "include", "cuda_runtime.h")) else None


def find_cuda_home():
    for var in ("CUDA_HOME", "CUDA_PATH"):
        path = os.environ.get(var)
        if path:
            if os.path.isfile(os.path.join(path, "bin", "nvcc")):
                return os.path.realpath(path)
            sys.exit(f"setup.py: {var}={path} has no bin/nvcc; point it at a CUDA toolkit or unset it")
    nvcc = shutil.which("nvcc")
    if nvcc:
        root = _toolkit_from_nvcc(nvcc)
        if root:
            return root
    if os.path.isfile("/usr/local/cuda/bin/nvcc"):
        return os.path.realpath("/usr/local/cuda")
    return None


def nvcc_version(cuda_home):
    out = subprocess.run([os.path.join(cuda_home, "bin", "nvcc"), "--version"], capture_output=True, text=True)
    m = re.search(r"release (\d+)\.(\d+)", out.stdout)
    if not m:
        sys.exit(f"setup.py: cannot read the CUDA version from {cuda_home}/bin/nvcc --version:\n{out.stdout}")
    return int(m.group(1)), int(m.group(2))


force_cuda = _env_flag("FORCE_CUDA")
cuda_home = None if force_cuda is False else find_cuda_home()
if force_cuda and not cuda_home:
    sys.exit("setup.py: FORCE_CUDA=1 but no CUDA toolkit was found: set CUDA_HOME to the toolkit root "
             "(the folder holding bin/nvcc)")
if cuda_home:
    # torch.utils.cpp_extension reads CUDA_HOME when it is imported.
    os.environ["CUDA_HOME"] = cuda_home

import torch  # noqa: E402
from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension  # noqa: E402

with_cuda = cuda_home is not None
define_macros = []
extra_cxx = ["-O3"]
extra_nvcc = ["-O3"]
sources = sorted(glob.glob(os.path.join(CSRC, "*.cpp")) + glob.glob(os.path.join(CSRC, "cpu", "*.cpp"))
                 + glob.glob(os.path.join(CSRC, "autocast", "*.cpp")))
if with_cuda:
    major, minor = nvcc_version(cuda_home)
    torch_cuda = torch.version.cuda
    if torch_cuda is None:
        msg = (f"setup.py: found CUDA {major}.{minor} at {cuda_home}, but the installed torch {torch.__version__} "
               "is a CPU-only build")
        if force_cuda:
            sys.exit(msg + "; install a CUDA build of torch (requirements.txt) or unset FORCE_CUDA")
        print(msg + ": building the CPU kernels only", file=sys.stderr)
        with_cuda = False
    elif int(torch_cuda.split(".")[0]) != major:
        msg = (f"setup.py: torch {torch.__version__} was built with CUDA {torch_cuda} but the toolkit at "
               f"{cuda_home} is CUDA {major}.{minor}; major versions must match")
        if force_cuda:
            sys.exit(msg + " (set CUDA_HOME to a matching toolkit)")
        print(msg + ": building the CPU kernels only", file=sys.stderr)
        with_cuda = False
if with_cuda:
    if not os.environ.get("TORCH_CUDA_ARCH_LIST"):
        if torch.cuda.is_available():
            caps = sorted({torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})
            os.environ["TORCH_CUDA_ARCH_LIST"] = ";".join(f"{a}.{b}" for a, b in caps)
        else:
            archs = DEFAULT_ARCHS.get(major)
            if archs is None:
                archs = DEFAULT_ARCHS[max(DEFAULT_ARCHS)]
                print(f"setup.py: CUDA {major} is newer than this script knows; using {archs}", file=sys.stderr)
            os.environ["TORCH_CUDA_ARCH_LIST"] = archs
    arch_list = os.environ["TORCH_CUDA_ARCH_LIST"]
    sources += sorted(glob.glob(os.path.join(CSRC, "cuda", "*.cu")))
    define_macros += [("DFF_WITH_CUDA", None),
                      ("DFF_CUDA_VERSION_STR", f'"{major}.{minor}"'),
                      ("DFF_CUDA_ARCHS_STR", '"' + arch_list.replace(" ", ";") + '"')]
    print(f"setup.py: building CPU + CUDA {major}.{minor} kernels (CUDA_HOME={cuda_home}, "
          f"TORCH_CUDA_ARCH_LIST={arch_list})")
    ext = CUDAExtension("lib.ops._C", sources, define_macros=define_macros,
                        extra_compile_args={"cxx": extra_cxx, "nvcc": extra_nvcc})
else:
    print("setup.py: building the CPU kernels only (no CUDA toolkit found; set CUDA_HOME or FORCE_CUDA=1)"
          if force_cuda is not False else "setup.py: building the CPU kernels only (FORCE_CUDA=0)")
    ext = CppExtension("lib.ops._C", sources, define_macros=define_macros, extra_compile_args={"cxx": extra_cxx})

os.environ.setdefault("MAX_JOBS", str(os.cpu_count() or 1))


class BuildOps(BuildExtension):
    """BuildExtension with ninja, compiling in one lasting folder (DFF_BUILD_TEMP, see above)."""

    def finalize_options(self):
        super().finalize_options()
        self.build_temp = os.environ.get("DFF_BUILD_TEMP") or os.path.join(
            ROOT, "build", f"temp.{sysconfig.get_platform()}-{sys.implementation.cache_tag}")


setup(
    ext_modules=[ext],
    cmdclass={"build_ext": BuildOps.with_options(use_ninja=True)},
)
