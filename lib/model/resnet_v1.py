"""ResNet-v1 backbone of R-FCN / DFF (`get_resnet_v1`, docs/fidelity.md §3.1), up to res5, total stride 16.

- conv1 7x7/2 pad 3 -> bn_conv1 -> ReLU -> pool1 max 3x3/2 pad 1 with FLOOR output size (MXNet).
- Caffe / v1 bottleneck: branch2a 1x1 (carries the stride) -> BN -> ReLU -> branch2b 3x3 -> BN -> ReLU
  -> branch2c 1x1 (4x channels) -> BN; shortcut = branch1 1x1 (same stride) -> BN in block "a" of every
  stage, identity otherwise; out = ReLU(shortcut + branch2c).
- Strides res2 1, res3 2, res4 2, res5 1; res5's 3x3 convs use dilation 2, pad 2.
  `feat_stride=8` (network.RCNN_FEAT_STRIDE: 8; not in the original, used by the synthetic CPU configs,
  docs/synthetic.md) keeps res4 at stride 1 too and dilates res4 by 2 and res5 by 4 (the DeepLab
  recipe), so the same layers see the same context on a feature grid twice as fine.
- All convs without bias; BN = FrozenBatchNorm2d (global statistics) unless train_bn.

Every layer is registered directly on the module under its official MXNet name (conv1, bn_conv1,
res4b17_branch2b, bn4b17_branch2b, ...), so state-dict keys convert mechanically
(lib/model/mxnet_names.py): `res4b17_branch2b.weight` <-> `arg:res4b17_branch2b_weight`.

Block names (MSRA Caffe release, which the MXNet models were converted from):
  ResNet-50  (3, 4, 6, 3):  letters everywhere: res3a..res3d, res4a..res4f.
  ResNet-101 (3, 4, 23, 3): res2a-c, res3a + res3b1..b3, res4a + res4b1..b22, res5a-c.
  ResNet-152 (3, 8, 36, 3): res2a-c, res3a + res3b1..b7, res4a + res4b1..b35, res5a-c.
Rule ('auto'): units == (3, 4, 6, 3) -> letters for every stage; otherwise a stage with more than 3
blocks is numbered (a, b1, b2, ...) and a stage with at most 3 blocks uses letters (a, b, c). This
reproduces all three official nets; for other `units` it is this port's convention.
`block_naming='letters'` / `'numbered'` force one scheme for every stage.
"""
import string

import torch.nn as nn
import torch.nn.functional as F

from .frozen_bn import make_bn

DEPTH_UNITS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
_LETTER_NAMED_UNITS = (DEPTH_UNITS[50],)
STAGE_STRIDES = (1, 2, 2, 1)
STAGE_DILATIONS = (1, 1, 1, 2)
# total stride -> (strides, dilations) of res2..res5; 16 is the original's
STAGE_LAYOUTS = {16: (STAGE_STRIDES, STAGE_DILATIONS), 8: ((1, 2, 1, 1), (1, 1, 2, 4))}


def block_names(num_blocks, numbered):
    """['a', 'b', 'c', ...] or ['a', 'b1', 'b2', ...]."""
    if num_blocks < 1:
        raise ValueError(f'a stage needs at least one block, got {num_blocks}')
    if numbered:
        return ['a'] + [f'b{i}' for i in range(1, num_blocks)]
    if num_blocks > 26:
        raise ValueError(f'{num_blocks} blocks cannot be named with letters; use numbered names')
    return list(string.ascii_lowercase[:num_blocks])


def stage_block_names(units, block_naming='auto'):
    """Block names of the four stages, e.g. (3, 4, 23, 3) -> [[a, b, c], [a, b1, b2, b3], ...]."""
    units = tuple(int(u) for u in units)
    if len(units) != 4:
        raise ValueError(f'units must have 4 entries (res2..res5), got {units}')
    if block_naming == 'auto':
        numbered = [False] * 4 if units in _LETTER_NAMED_UNITS else [u > 3 for u in units]
    elif block_naming == 'letters':
        numbered = [False] * 4
    elif block_naming == 'numbered':
        numbered = [True] * 4
    else:
        raise ValueError(f"block_naming must be 'auto', 'letters' or 'numbered', got {block_naming!r}")
    return [block_names(u, n) for u, n in zip(units, numbered)]


class ResNetV1(nn.Module):
    """image (N, 3, H, W) -> res5 output (N, 32*width, H', W'), H' = H/16 with floor rounding at each
    stride-2 layer (600x1000 -> 38x63); H/8 with feat_stride=8 (the module docstring)."""

    def __init__(self, units=DEPTH_UNITS[101], width=64, train_bn=False, block_naming='auto', feat_stride=16):
        super().__init__()
        if int(feat_stride) not in STAGE_LAYOUTS:
            raise ValueError(f'ResNet-v1 feature stride must be one of {sorted(STAGE_LAYOUTS)}, got {feat_stride}')
        self.feat_stride = int(feat_stride)
        strides, dilations = STAGE_LAYOUTS[self.feat_stride]
        self.units = tuple(int(u) for u in units)
        self.width = int(width)
        self.train_bn = bool(train_bn)
        self.stage_blocks = stage_block_names(self.units, block_naming)
        self.conv1 = nn.Conv2d(3, self.width, 7, stride=2, padding=3, bias=False)
        self.bn_conv1 = make_bn(self.width, self.train_bn)
        self.pool1 = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=False)
        # (block prefix such as '4b17', has branch1) in execution order
        self.block_prefixes = []
        in_ch = self.width
        for s, names in enumerate(self.stage_blocks):
            mid = self.width * 2 ** s
            out = 4 * mid
            stride, dil = strides[s], dilations[s]
            for i, b in enumerate(names):
                p = f'{s + 2}{b}'
                first = i == 0
                if first:
                    self._add(p, '1', nn.Conv2d(in_ch, out, 1, stride=stride, bias=False), out)
                self._add(p, '2a', nn.Conv2d(in_ch if first else out, mid, 1, stride=stride if first else 1,
                                             bias=False), mid)
                self._add(p, '2b', nn.Conv2d(mid, mid, 3, padding=dil, dilation=dil, bias=False), mid)
                self._add(p, '2c', nn.Conv2d(mid, out, 1, bias=False), out)
                self.block_prefixes.append((p, first))
            in_ch = out
        self.out_channels = in_ch
        self.reset_parameters()

    def _add(self, prefix, branch, conv, channels):
        self.add_module(f'res{prefix}_branch{branch}', conv)
        self.add_module(f'bn{prefix}_branch{branch}', make_bn(channels, self.train_bn))

    def conv_bn_pairs(self):
        """(conv, BN) attribute names, one pair per BN layer: each BN normalises exactly that conv's output
        (what lib/model/fast_path.py folds)."""
        yield 'conv1', 'bn_conv1'
        for prefix, has_branch1 in self.block_prefixes:
            for branch in (('1',) if has_branch1 else ()) + ('2a', '2b', '2c'):
                yield f'res{prefix}_branch{branch}', f'bn{prefix}_branch{branch}'

    def reset_parameters(self):
        """From-scratch init (pretrained weights normally overwrite it): He-normal (fan_out) convs,
        BN gamma 1, beta 0, mean 0, var 1."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            elif m is not self and hasattr(m, 'reset_parameters'):
                m.reset_parameters()

    def _block(self, x, prefix, has_branch1):
        m = self._modules
        if has_branch1:
            shortcut = m[f'bn{prefix}_branch1'](m[f'res{prefix}_branch1'](x))
        else:
            shortcut = x
        y = F.relu(m[f'bn{prefix}_branch2a'](m[f'res{prefix}_branch2a'](x)))
        y = F.relu(m[f'bn{prefix}_branch2b'](m[f'res{prefix}_branch2b'](y)))
        y = m[f'bn{prefix}_branch2c'](m[f'res{prefix}_branch2c'](y))
        return F.relu(shortcut + y)

    def forward(self, x):
        x = self.pool1(F.relu(self.bn_conv1(self.conv1(x))))
        for prefix, has_branch1 in self.block_prefixes:
            x = self._block(x, prefix, has_branch1)
        return x

    def extra_repr(self):
        return f'units={self.units}, width={self.width}, train_bn={self.train_bn}, feat_stride={self.feat_stride}'


def resnet_v1(depth=101, train_bn=False, width=64):
    """ResNet-v1-50 / 101 / 152 with the official block names."""
    if int(depth) not in DEPTH_UNITS:
        raise ValueError(f'ResNet-v1 depth must be one of {sorted(DEPTH_UNITS)}, got {depth}')
    return ResNetV1(units=DEPTH_UNITS[int(depth)], width=width, train_bn=train_bn)


def build_backbone(cfg):
    net = cfg.network
    if net.RESNET_UNITS:
        units = tuple(net.RESNET_UNITS)
    elif int(net.RESNET_DEPTH) in DEPTH_UNITS:
        units = DEPTH_UNITS[int(net.RESNET_DEPTH)]
    else:
        raise ValueError(f'network.RESNET_DEPTH must be one of {sorted(DEPTH_UNITS)}, got {net.RESNET_DEPTH}')
    return ResNetV1(units=units, width=int(net.RESNET_WIDTH), train_bn=bool(net.TRAIN_BN),
                    feat_stride=feature_stride(cfg))


def feature_stride(cfg):
    """The detector's feature stride (network.RCNN_FEAT_STRIDE, which RPN_FEAT_STRIDE must equal): 16 as in
    the original, or 8 (the module docstring)."""
    net = cfg.network
    rcnn, rpn = net.RCNN_FEAT_STRIDE, net.RPN_FEAT_STRIDE
    if int(rcnn) != rcnn or int(rcnn) not in STAGE_LAYOUTS:
        raise ValueError(f'network.RCNN_FEAT_STRIDE must be one of {sorted(STAGE_LAYOUTS)}, got {rcnn}')
    if int(rpn) != int(rcnn):
        raise ValueError(f'network.RPN_FEAT_STRIDE ({rpn}) must equal network.RCNN_FEAT_STRIDE ({rcnn}): both '
                         'heads read the same feature map')
    return int(rcnn)
