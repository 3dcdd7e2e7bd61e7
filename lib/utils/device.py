"""The torch device of a run: cfg.device resolved against what torch sees, the device of this process
under torchrun, and the float32 precision (no TF32 unless ALLOW_TF32)."""
import torch

from lib.config import ConfigError


def resolve_device(cfg):
    """cfg.device ('auto', 'cpu', 'cuda' or 'cuda:N'; checked when the config is read) -> 'cpu', 'cuda' or
    'cuda:N'. A CUDA device that is not there is a ConfigError (one 'error:' line through run_cli). Also sets
    the float32 precision (TF32 only with ALLOW_TF32)."""
    set_float32_precision(cfg)
    device = cfg.device
    if device not in ('auto', 'cpu') and not str(device).startswith('cuda'):
        raise ConfigError(f"device: expected one of auto, cpu, cuda, cuda:N, got {device!r}")
    if device == 'auto':
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    if device.startswith('cuda'):
        if not torch.cuda.is_available():
            raise ConfigError(f"device: {device!r} but torch sees no CUDA device (torch.cuda.is_available() is "
                              f"False); use device=cpu, or auto")
        index = device.partition(':')[2]
        if index and int(index) >= torch.cuda.device_count():
            raise ConfigError(f"device: {device!r} but torch sees {torch.cuda.device_count()} CUDA device(s); "
                              f"use cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
    return device


def process_device(device, local_rank, world):
    """The torch.device of this process for a resolved device: under torchrun 'cuda' is cuda:LOCAL_RANK."""
    if device == 'cuda':
        return torch.device('cuda', local_rank)
    if device.startswith('cuda') and world > 1:
        raise ConfigError(f"device: {device!r} names one GPU, but torchrun started {world} processes: use "
                          f"device=cuda (each process takes cuda:LOCAL_RANK)")
    return torch.device(device)


def set_float32_precision(cfg):
    """Full float32 unless ALLOW_TF32: torch lets cuDNN run float32 convolutions in TF32 on Ampere and
    newer GPUs by default (10-bit mantissa); the original (MXNet, CUDA 8/9) computed them in float32."""
    allow = bool(cfg.get('ALLOW_TF32', False))
    torch.backends.cudnn.allow_tf32 = allow
    torch.backends.cuda.matmul.allow_tf32 = allow
