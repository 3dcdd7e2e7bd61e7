"""torch.distributed helpers that also work in a single process (no process group)."""
import os

import torch
import torch.distributed as td


def is_dist():
    return td.is_available() and td.is_initialized()


def rank():
    return td.get_rank() if is_dist() else 0


def world_size():
    return td.get_world_size() if is_dist() else 1


def init_from_env(device):
    """Join the process group torchrun describes (RANK/WORLD_SIZE/LOCAL_RANK); gloo on CPU, nccl on GPU.
    Returns (rank, world_size, local_rank); (0, 1, 0) when not launched by torchrun."""
    if 'RANK' not in os.environ or int(os.environ.get('WORLD_SIZE', '1')) == 1:
        return 0, 1, 0
    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    if not is_dist():
        if device.startswith('cuda'):
            torch.cuda.set_device(local_rank)
        td.init_process_group(backend='nccl' if device.startswith('cuda') else 'gloo')
    return td.get_rank(), td.get_world_size(), local_rank


def all_gather_object(obj):
    if not is_dist():
        return [obj]
    out = [None] * world_size()
    td.all_gather_object(out, obj)
    return out


def barrier():
    if is_dist():
        td.barrier()


def destroy():
    if is_dist():
        td.destroy_process_group()
