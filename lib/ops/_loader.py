"""Loads the compiled op library once and registers the Python-side parts (fake kernels, autograd)."""
import glob
import os

import torch

_HERE = os.path.dirname(os.path.abspath(__file__))
OPS_MODULE = "lib.ops._C"  # the ImportError's name: the entry scripts report it as one line (lib/utils/cli.py)
_loaded = False


def load_library():
    """Load lib/ops/_C*.so into torch.ops.dff (idempotent)."""
    global _loaded
    if _loaded:
        return
    candidates = sorted(glob.glob(os.path.join(_HERE, "_C*.so")) + glob.glob(os.path.join(_HERE, "_C*.pyd")))
    if not candidates:
        raise ImportError(
            "The DFF custom ops are not built (no lib/ops/_C*.so). From the repository root run `bash init.sh`, "
            "or `python setup.py build_ext --inplace` (README: Installation).", name=OPS_MODULE)
    try:
        torch.ops.load_library(candidates[0])
    except OSError as e:
        raise ImportError(
            f"Could not load {candidates[0]}: {e}. It was probably built against another torch version: rebuild with "
            "`python setup.py build_ext --inplace` (README: Troubleshooting).", name=OPS_MODULE) from e
    from . import _registrations  # noqa: F401  # lazy: fake kernels + autograd, need the schemas loaded
    _loaded = True


def build_info():
    """What the op library was compiled with: 'cpu' or 'cpu+cuda <version> archs <list>'."""
    load_library()
    return torch.ops.dff._build_info()
