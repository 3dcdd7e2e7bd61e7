"""Batch normalisation as the official DFF / R-FCN symbols use it (docs/fidelity.md §3.2, §6.2).

MXNet `BatchNorm(use_global_stats=True, fix_gamma=False, eps=1e-5)`: the stored moving mean/var are
always used (in training too) and never updated, while gamma/beta are ordinary learnable arguments
(trained for res3-res5, frozen for conv1/res2 by FIXED_PARAMS, see lib/model/params.py).

`make_bn(n, train_bn=True)` gives a regular nn.BatchNorm2d instead, for models trained from scratch on
CPU (config key network.TRAIN_BN); the original never does that.
"""
import torch
import torch.nn as nn


class FrozenBatchNorm2d(nn.Module):
    """y = (x - running_mean) / sqrt(running_var + eps) * weight + bias, in train and eval mode alike.

    weight (gamma) and bias (beta) are nn.Parameters (gradients flow to them); running_mean and
    running_var are buffers that no forward pass changes. Computed as one per-channel scale and shift.
    State-dict keys are those of nn.BatchNorm2d minus `num_batches_tracked` (dropped when loading a
    BatchNorm2d state dict, so the two are interchangeable).
    """

    def __init__(self, num_features, eps=1e-5):
        super().__init__()
        self.num_features = int(num_features)
        self.eps = float(eps)
        self.weight = nn.Parameter(torch.ones(self.num_features))
        self.bias = nn.Parameter(torch.zeros(self.num_features))
        self.register_buffer('running_mean', torch.zeros(self.num_features))
        self.register_buffer('running_var', torch.ones(self.num_features))

    def reset_parameters(self):
        with torch.no_grad():
            self.weight.fill_(1.0)
            self.bias.zero_()
            self.running_mean.zero_()
            self.running_var.fill_(1.0)

    def forward(self, x):
        scale = self.weight * torch.rsqrt(self.running_var + self.eps)
        shift = self.bias - self.running_mean * scale
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return x * scale.to(x.dtype).reshape(shape) + shift.to(x.dtype).reshape(shape)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        # nn.BatchNorm2d state dicts carry a step counter with no meaning here (and no MXNet counterpart)
        state_dict.pop(prefix + 'num_batches_tracked', None)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def extra_repr(self):
        return f'{self.num_features}, eps={self.eps}'


def make_bn(num_features, train_bn=False):
    """FrozenBatchNorm2d (the original: global statistics) or, with train_bn, nn.BatchNorm2d(eps=1e-5)
    that normalises with batch statistics in train mode and updates its running statistics."""
    if train_bn:
        return nn.BatchNorm2d(num_features, eps=1e-5)
    return FrozenBatchNorm2d(num_features, eps=1e-5)


BN_TYPES = (FrozenBatchNorm2d, nn.modules.batchnorm._BatchNorm)
