"""Shared test parameters: the devices the op tests run on.

`device` runs a test on the CPU and on CUDA; the CUDA case is skipped (with the reason) where torch sees
no GPU, and where the op library was built without its CUDA kernels (lib.ops.build_info() == 'cpu')."""
import pytest
import torch

NO_GPU = 'no CUDA device: torch.cuda.is_available() is False'

DEVICES = [pytest.param('cpu', id='cpu'),
           pytest.param('cuda', id='cuda', marks=pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_GPU))]


@pytest.fixture(params=DEVICES)
def device(request):
    if request.param == 'cuda':
        import lib.ops
        info = lib.ops.build_info()
        if not info.startswith('cpu+cuda'):
            pytest.skip(f"the op library was built without CUDA kernels (build_info() = {info!r}): rebuild with "
                        f"CUDA_HOME set (setup.py)")
    return request.param
