"""The inference fast path (config TEST.FAST_PATH, `--fast` on the test scripts, the demos and tools/benchmark.py;
what each piece gives: docs/benchmark.md). One switch, four pieces, each of which can be turned off alone:

    TEST.FAST_FOLD_BN        frozen BatchNorm folded into the preceding convolution's weight and bias, once, when
                             the model is prepared (the same numbers up to float rounding: the scale and shift are
                             computed in float64)
    TEST.FAST_CHANNELS_LAST  the model's weights and the images in channels_last memory format (what oneDNN and
                             cuDNN prefer); psroi_pool and flow_warp read such maps in place, the RPN's softmax
                             and the heads use views that hold in any layout
    TEST.FAST_DTYPE          float32 (no autocast), bfloat16 (CPU with native bfloat16, or CUDA) or float16
                             (CUDA): torch.autocast around the networks; the custom ops, the proposal op, the
                             R-FCN pooling and voting and the box decoding stay in float32 (DetectionHeads widens
                             their inputs), so rois and outputs are float32
    TEST.FAST_GEMM           on a CPU, the convolutions oneDNN runs far below the machine's peak in other forms:
                             a transposed convolution whose weight outweighs its map (FlowNet-S's deconv5, deconv4,
                             and deconv3 in float32, at 600x1000: oneDNN re-lays the weight out at every call) as
                             one GEMM + col2im, in bfloat16/float16 one on a larger map (deconv3, deconv2) as a
                             sub-pixel convolution (FastTransposedConv), FlowNet-S's convolutions on maps much
                             smaller than their weights (conv6, conv6_1 at 5x8) as one GEMM over the map's
                             shifted copies (SmallMapConvAsGemm), and the R-FCN score-map convolutions (1x1,
                             7x7 x classes maps) as one GEMM written straight into the NCHW layout psroi_pool reads
                             fastest (a channels_last map costs it twice the time, a conversion five times)
    TEST.FAST_COMPILE        torch.compile of each inference entry point (the key-frame graph detect_key, the
                             non-key graph detect_cur, the baseline's detect); the first call of each compiles
                             (its time is kept in FastPath.first_call_s), a machine without torch.compile
                             support runs eager with a warning

`FastPath.from_config(cfg)` is None when TEST.FAST_PATH is off (the default: eager float32, as the original);
`prepare(model, device)` applies it in place to an RFCN or a DFF in eval mode and returns it. The models'
inference methods keep their signatures, so every caller (testers, demos, benchmark) is unchanged.
"""
import argparse
import contextlib
import functools
import shutil
import sys
import time
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from lib.config.config import FAST_DTYPES

from .flownet import FlowNetS
from .frozen_bn import BN_TYPES
from .resnet_v1 import ResNetV1

DTYPES = {name: getattr(torch, name) for name in FAST_DTYPES}
DTYPE_ALIASES = {'fp32': 'float32', 'bf16': 'bfloat16', 'fp16': 'float16'}
# RFCN / DFF inference methods (flow_to_key + detect_flowed: the adaptive key-frame schedule's non-key frames)
ENTRY_POINTS = ('detect', 'detect_key', 'detect_cur', 'detect_batch', 'flow_to_key', 'detect_flowed')


def fold_conv_bn(conv, bn):
    """conv's weight and bias absorb the BN that follows it (eval-mode BN: running statistics). Computed in
    float64, stored in the conv's dtype."""
    with torch.no_grad():
        scale = bn.weight.double() * torch.rsqrt(bn.running_var.double() + bn.eps)
        bias = bn.bias.double() - bn.running_mean.double() * scale
        if conv.bias is not None:
            bias = bias + conv.bias.double() * scale
        dtype = conv.weight.dtype
        conv.weight.copy_((conv.weight.double() * scale.view(-1, *[1] * (conv.weight.dim() - 1))).to(dtype))
        conv.bias = nn.Parameter(bias.to(dtype), requires_grad=conv.weight.requires_grad)


def fold_batchnorm(model):
    """Fold every BN of every ResNetV1 in `model` into its conv (ResNetV1.conv_bn_pairs); the BN becomes
    nn.Identity. Only for inference: the model must be in eval mode. Returns the number of BN layers folded."""
    if model.training:
        raise ValueError('fold_batchnorm: the model is in training mode; BN folding is for inference (call .eval())')
    folded = 0
    for module in list(model.modules()):
        if not isinstance(module, ResNetV1):
            continue
        for conv_name, bn_name in module.conv_bn_pairs():
            bn = getattr(module, bn_name)
            if isinstance(bn, BN_TYPES):
                fold_conv_bn(getattr(module, conv_name), bn)
                setattr(module, bn_name, nn.Identity())
                folded += 1
    return folded


def _im2col(x, kernel_size, stride, dilation, padding, dtype, channels_inner=True):
    """The k_h*k_w shifted (strided, dilated) copies of a 4-d map as one (n h_out w_out, K) matrix in ``dtype``:
    row (image, y, x) holds the input pixels output (y, x) reads, those outside the map zero. K is ordered
    (k_h, k_w, c_in) when ``channels_inner`` (the memory order of a channels_last weight), else (c_in, k_h, k_w)
    (an NCHW weight), so that the matching (c_out, K) weight matrix is a view. The padding is not copied: each
    tap's out-of-map border is zeroed in place. Returns (columns, h_out, w_out)."""
    n, c, h, w = x.shape
    (k_h, k_w), (s_h, s_w), (d_h, d_w), (p_h, p_w) = kernel_size, stride, dilation, padding
    h_out = (h + 2 * p_h - d_h * (k_h - 1) - 1) // s_h + 1
    w_out = (w + 2 * p_w - d_w * (k_w - 1) - 1) // s_w + 1
    src = x.permute(0, 2, 3, 1).to(dtype)  # (n, h, w, c): a view of a channels_last map
    cols = x.new_empty((n, h_out, w_out, k_h, k_w, c) if channels_inner else (n, h_out, w_out, c, k_h, k_w),
                       dtype=dtype)

    def valid(offset, size, out, step):  # outputs [lo, hi) whose input index out * step + offset is in the map
        lo = min(max(0, -(offset // step)), out)
        return lo, max(min(out, (size - 1 - offset) // step + 1), lo)

    for i in range(k_h):
        for j in range(k_w):
            oy, ox = i * d_h - p_h, j * d_w - p_w  # output (y, x) reads input (y s_h + oy, x s_w + ox)
            (y0, y1), (x0, x1) = valid(oy, h, h_out, s_h), valid(ox, w, w_out, s_w)
            tap = cols[:, :, :, i, j] if channels_inner else cols[..., i, j]
            tap[:, :y0].zero_()
            tap[:, y1:].zero_()
            tap[:, y0:y1, :x0].zero_()
            tap[:, y0:y1, x1:].zero_()
            if y1 > y0 and x1 > x0:
                tap[:, y0:y1, x0:x1] = src[:, y0 * s_h + oy:(y1 - 1) * s_h + oy + 1:s_h,
                                           x0 * s_w + ox:(x1 - 1) * s_w + ox + 1:s_w]
    k = k_h * k_w * c
    return cols.view(-1, k), h_out, w_out


class DilatedConvAsGemm(nn.Module):
    """A stride-1 convolution as one matrix product over the k*k shifted copies of its input (im2col), the
    out-of-map positions zero: the same sums as the convolution's. The fast path uses it for the convolutions
    with a dilation above 2 (DFF's feat_conv_3x3: dilation 6) under reduced precision on a CPU, where oneDNN's
    bfloat16 convolution takes a slow path (feat_conv at 600x1000: 0.8 s in bfloat16, 0.2 s in float32,
    0.1 s this way)."""

    def __init__(self, conv, dtype):
        super().__init__()
        k_h, k_w = conv.kernel_size
        self.kernel_size, self.dilation, self.padding = (k_h, k_w), conv.dilation, conv.padding
        self.out_channels = conv.out_channels
        with torch.no_grad():  # (k_h, k_w, c_in) rows, the order of the shifted copies below
            w = conv.weight.detach().permute(2, 3, 1, 0).reshape(-1, conv.out_channels)
            self.register_buffer('weight_matrix', w.to(dtype).contiguous())
            bias = conv.bias.detach() if conv.bias is not None else torch.zeros(conv.out_channels)
            self.register_buffer('bias', bias.to(dtype))

    @staticmethod
    def applies(module):
        return (isinstance(module, nn.Conv2d) and module.stride == (1, 1) and module.groups == 1
                and max(module.dilation) > 2 and module.padding_mode == 'zeros' and isinstance(module.padding, tuple))

    def forward(self, x):
        dtype = _compute_dtype(x)
        cols, h_out, w_out = _im2col(x, self.kernel_size, (1, 1), self.dilation, self.padding, dtype)
        out = torch.addmm(self.bias.to(dtype), cols, self.weight_matrix.to(dtype))
        return out.view(x.shape[0], h_out, w_out, self.out_channels).permute(0, 3, 1, 2)


def _compute_dtype(x):
    """The dtype a matrix product on x runs in: autocast's where it is on, else x's."""
    return torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype


def _columns(x):
    """(n, c, h * w) view of a 4-d map in either memory format (no copy for NCHW or channels_last)."""
    n, c, h, w = x.shape
    if x.is_contiguous():
        return x.reshape(n, c, h * w)
    return x.permute(0, 2, 3, 1).reshape(n, h * w, c).transpose(1, 2)


def _subpixel_taps(k, s, p):
    """Sub-pixel form of one axis of a transposed convolution (kernel k, stride s, padding p, dilation 1):
    output o = s m + r (phase r) sums input i = m + d times kernel tap t, where t = r + p - s d. Returns
    ([(r, d, t), ...], d_min, d_max)."""
    taps = [(r, (r + p - t) // s, t) for r in range(s) for t in range(k) if (r + p - t) % s == 0]
    ds = [d for _, d, _ in taps]
    return taps, min(ds), max(ds)


class FastTransposedConv(nn.Module):
    """A ConvTranspose2d (groups 1, no output padding) run by the fastest of three forms of the same sums, chosen
    per call from the map's size and the compute dtype (measured at 600x1000 on an AVX512-BF16 CPU, FlowNet-S's
    deconv5..deconv2, in the whole non-key frame: docs/benchmark.md):
      - one matrix product + col2im (F.fold) where the weight outweighs the map: more input channels than pixels
        in float32, twice as many in bfloat16/float16 (deconv5, deconv4): there oneDNN's deconvolution spends most
        of its time re-laying the weight out at every call (deconv5: 17-19 ms against 4-5 ms this way);
      - in bfloat16/float16 on a larger map (deconv3, deconv2), a sub-pixel convolution: one stride-1
        convolution of the input with s*s*c_out output channels (each phase's taps of the kernel, zeros
        elsewhere) and a pixel shuffle, since oneDNN's reduced-precision deconvolution runs at a sixth of its
        convolution's speed there (deconv2: 7.9 -> 2.4 ms). Float32 keeps the deconvolution (the convolution
        does 2.25x the multiply-adds: slower there);
      - elsewhere the module's own convolution.
    The sub-pixel weight is built from the deconvolution's at the first call in a dtype and memory format, and
    rebuilt when that weight changes."""

    def __init__(self, deconv):
        super().__init__()
        c_in, c_out_g, k_h, k_w = deconv.weight.shape
        self.deconv = deconv
        self.kernel_size, self.stride, self.padding, self.dilation = (k_h, k_w), deconv.stride, deconv.padding, \
            deconv.dilation
        with torch.no_grad():  # the weight in NCHW order, so that its (c_out k_h k_w, c_in) matrix is a view (no copy)
            deconv.weight.data = deconv.weight.data.contiguous()
        self._subpixel = None  # (key, weight, bias) of the last sub-pixel weight built
        (s_h, s_w), (d_h, d_w) = self.stride, self.dilation
        self._axes = None  # the sub-pixel geometry, where it applies: ((taps, d_min, d_max) per axis)
        if s_h == s_w and (d_h, d_w) == (1, 1):
            axes = (_subpixel_taps(k_h, s_h, self.padding[0]), _subpixel_taps(k_w, s_w, self.padding[1]))
            if all(d_min <= 0 for _, d_min, _ in axes):  # the convolution's padding: -d_min
                self._axes = axes

    @staticmethod
    def applies(module):
        return (isinstance(module, nn.ConvTranspose2d) and module.groups == 1
                and tuple(module.output_padding) == (0, 0) and module.padding_mode == 'zeros')

    def forward(self, x):
        n, c, h, w = x.shape
        dtype = _compute_dtype(x)
        reduced = dtype in (torch.bfloat16, torch.float16)
        if c > (2 if reduced else 1) * h * w:
            return self._gemm(x, dtype)
        if reduced and self._subpixel_fits(h, w):
            return self._subpixel_conv(x, dtype)
        return self.deconv(x)

    def _subpixel_fits(self, h, w):
        """Whether the sub-pixel convolution, padded by -d_min on each side, yields every output phase."""
        if self._axes is None:
            return False
        s = self.stride[0]
        return all(size - d_min - d_max >= -(-out // s)
                   for size, out, (_, d_min, d_max) in zip((h, w), self._output_size(h, w), self._axes))

    def _output_size(self, h, w):
        (k_h, k_w), (s_h, s_w), (p_h, p_w), (d_h, d_w) = self.kernel_size, self.stride, self.padding, self.dilation
        return (h - 1) * s_h - 2 * p_h + d_h * (k_h - 1) + 1, (w - 1) * s_w - 2 * p_w + d_w * (k_w - 1) + 1

    def _gemm(self, x, dtype):
        c = x.shape[1]
        weight = self.deconv.weight.reshape(c, -1).t()  # rows (c_out, k_h, k_w): the column order F.fold reads
        cols = torch.matmul(weight.to(dtype), _columns(x).to(dtype))  # (n, c_out k_h k_w, h w)
        y = F.fold(cols, self._output_size(*x.shape[2:]), self.kernel_size, dilation=self.dilation,
                   padding=self.padding, stride=self.stride)
        if self.deconv.bias is not None:
            y = y + self.deconv.bias.to(dtype).view(1, -1, 1, 1)
        if not x.is_contiguous():  # keep the caller's memory format
            y = y.contiguous(memory_format=torch.channels_last)
        return y

    def subpixel_weight(self, dtype, channels_last):
        """(weight (s*s*c_out, c_in, K_h, K_w), bias (s*s*c_out,) or None) of the sub-pixel convolution: output
        channel (co, r_y, r_x) holds the taps that phase reads, at offset d - d_min."""
        w = self.deconv.weight
        key = (dtype, channels_last, w.data_ptr(), w._version)
        if self._subpixel is None or self._subpixel[0] != key:
            c_in, c_out = w.shape[:2]
            s = self.stride[0]
            (taps_y, dmin_y, dmax_y), (taps_x, dmin_x, dmax_x) = self._axes
            sub = w.new_zeros(c_out, s, s, c_in, dmax_y - dmin_y + 1, dmax_x - dmin_x + 1, dtype=torch.float64)
            w64 = w.detach().double()
            for r_y, d_y, t_y in taps_y:
                for r_x, d_x, t_x in taps_x:
                    sub[:, r_y, r_x, :, d_y - dmin_y, d_x - dmin_x] = w64[:, :, t_y, t_x].t()
            sub = sub.flatten(0, 2).to(dtype)
            if channels_last:
                sub = sub.contiguous(memory_format=torch.channels_last)
            b = self.deconv.bias
            bias = None if b is None else b.detach().to(dtype).repeat_interleave(s * s)
            self._subpixel = (key, sub, bias)
        return self._subpixel[1:]

    def _subpixel_conv(self, x, dtype):
        h_out, w_out = self._output_size(*x.shape[2:])
        weight, bias = self.subpixel_weight(dtype, not x.is_contiguous())
        pad = (-self._axes[0][1], -self._axes[1][1])
        y = F.pixel_shuffle(F.conv2d(x.to(dtype), weight, bias, padding=pad), self.stride[0])
        return y[:, :, :h_out, :w_out]  # pixel_shuffle keeps the memory format


class SmallMapConvAsGemm(nn.Module):
    """A convolution (groups 1, dilation 1) whose map is small against its weight as one matrix product over
    its input's k*k shifted, strided copies (_im2col, shared with DilatedConvAsGemm), reading the convolution's
    own weight in place (in either memory format): where the output has fewer pixels than a 64th of the products' depth (c_in*k*k) -- FlowNet-S's
    conv6 and conv6_1 at 5x8 with 4.7 M and 9.4 M weights at 600x1000 -- oneDNN re-lays the weight out at every
    call and the layer is bound by that traffic (conv6_1, caches cold: 18.7 -> 5.0 ms float32, 3.7 -> 2.8 ms
    bfloat16); elsewhere the convolution itself runs. The same sums as the convolution's."""

    def __init__(self, conv):
        super().__init__()
        self.conv = conv

    @staticmethod
    def applies(module):
        return (isinstance(module, nn.Conv2d) and module.groups == 1 and module.dilation == (1, 1)
                and module.kernel_size != (1, 1) and module.padding_mode == 'zeros'
                and isinstance(module.padding, tuple))

    def _output_size(self, h, w):
        (k_h, k_w), (s_h, s_w), (p_h, p_w) = self.conv.kernel_size, self.conv.stride, self.conv.padding
        return (h + 2 * p_h - k_h) // s_h + 1, (w + 2 * p_w - k_w) // s_w + 1

    def uses_gemm(self, x):
        k_h, k_w = self.conv.kernel_size
        h_out, w_out = self._output_size(*x.shape[2:])
        return h_out * w_out * 64 < x.shape[1] * k_h * k_w

    def forward(self, x):
        if not self.uses_gemm(x):
            return self.conv(x)
        conv, dtype = self.conv, _compute_dtype(x)
        channels_inner = not conv.weight.is_contiguous()  # a channels_last weight: c_in innermost
        cols, h_out, w_out = _im2col(x, conv.kernel_size, conv.stride, (1, 1), conv.padding, dtype, channels_inner)
        weight = (conv.weight.permute(0, 2, 3, 1) if channels_inner else conv.weight).reshape(conv.out_channels, -1)
        weight = weight.to(dtype)
        if conv.bias is not None:
            out = torch.addmm(conv.bias.to(dtype), cols, weight.t())
        else:
            out = torch.mm(cols, weight.t())
        return out.view(x.shape[0], h_out, w_out, -1).permute(0, 3, 1, 2)  # a channels_last map


class PointwiseConvToNCHW(nn.Module):
    """A 1x1 convolution (stride 1, groups 1) as one matrix product whose result is an NCHW map, whatever the
    input's memory format: the R-FCN score maps, which psroi_pool reads per channel plane."""

    def __init__(self, conv):
        super().__init__()
        self.conv = conv

    @staticmethod
    def applies(module):
        return (isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1) and module.stride == (1, 1)
                and module.groups == 1 and module.padding == (0, 0))

    def forward(self, x):
        n, c, h, w = x.shape
        dtype = _compute_dtype(x)
        weight = self.conv.weight.reshape(self.conv.out_channels, -1)  # a view in either memory format (1x1)
        weight, cols = weight.to(dtype), _columns(x).to(dtype)
        bias = self.conv.bias
        if bias is not None and n == 1:
            y = torch.addmm(bias.to(dtype)[:, None], weight, cols[0])[None]
        else:
            y = torch.matmul(weight, cols)
            if bias is not None:
                y = y + bias.to(dtype)[:, None]
        return y.view(n, -1, h, w)


def gemm_modules(model):
    """TEST.FAST_GEMM on a CPU: every ConvTranspose2d becomes FastTransposedConv (which decides per call), the
    R-FCN score-map convolutions (those a module names in PSROI_INPUTS: DetectionHeads' rfcn_cls / rfcn_bbox)
    PointwiseConvToNCHW, FlowNet-S's k x k convolutions SmallMapConvAsGemm (which decides per call: its
    encoder ends at 1/64 of the image, where the weights outweigh the maps); each keeps the convolution it
    replaces and reads its weight (no copy). Returns the number of modules replaced."""
    replaced = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if FastTransposedConv.applies(child) and child.weight.device.type == 'cpu':
                setattr(module, name, FastTransposedConv(child))
                replaced += 1
            elif (name in getattr(module, 'PSROI_INPUTS', ())
                  and PointwiseConvToNCHW.applies(child) and child.weight.device.type == 'cpu'):
                setattr(module, name, PointwiseConvToNCHW(child))
                replaced += 1
            elif (isinstance(module, FlowNetS) and SmallMapConvAsGemm.applies(child)
                  and child.weight.device.type == 'cpu'):
                setattr(module, name, SmallMapConvAsGemm(child))
                replaced += 1
    return replaced


def convs_to_dtype(model, dtype):
    """The convolutions' weights and biases in `dtype` once (autocast would cast them at every call); the rest
    of the model (BN statistics, the heads' normalisation buffers) stays float32. Convolutions with a dilation
    above 2 become DilatedConvAsGemm on a CPU. Returns the number of convolutions converted."""
    converted = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if DilatedConvAsGemm.applies(child) and child.weight.device.type == 'cpu':
                setattr(module, name, DilatedConvAsGemm(child, dtype))
                converted += 1
            elif isinstance(child, (nn.Conv2d, nn.ConvTranspose2d)):
                child.to(dtype)
                converted += 1
    return converted


def compile_unavailable_reason(device_type):
    """Why torch.compile cannot run here ('' when it can)."""
    dynamo = getattr(torch, '_dynamo', None)
    if not hasattr(torch, 'compile') or dynamo is None:
        return f'torch {torch.__version__} has no torch.compile'
    if not dynamo.is_dynamo_supported():
        return f'torch.compile does not support Python {sys.version.split()[0]}'
    if device_type == 'cpu' and not any(shutil.which(c) for c in ('g++', 'c++', 'clang++')):
        return 'no C++ compiler on PATH (the CPU backend of torch.compile needs one)'
    return ''


def cpu_bfloat16_native():
    """Whether this CPU computes bfloat16 convolutions natively (AVX512-BF16 / AMX); elsewhere oneDNN emulates
    them, slower than float32."""
    check = getattr(getattr(torch.ops, 'mkldnn', None), '_is_mkldnn_bf16_supported', None)
    try:
        return bool(check()) if check is not None else False
    except RuntimeError:
        return False


@dataclass
class FastPath:
    fold_bn: bool = True
    channels_last: bool = True
    dtype: str = 'float32'
    gemm: bool = True
    compile: bool = False
    compile_backend: str = 'inductor'  # torch.compile's backend ('eager' in the tests: tracing without codegen)
    first_call_s: dict = field(default_factory=dict, compare=False)  # entry point -> seconds of its first call

    @classmethod
    def from_config(cls, cfg):
        """The fast path of cfg.TEST (None when TEST.FAST_PATH is false)."""
        t = cfg.TEST
        if not t.FAST_PATH:
            return None
        return cls(fold_bn=bool(t.FAST_FOLD_BN), channels_last=bool(t.FAST_CHANNELS_LAST), dtype=str(t.FAST_DTYPE),
                   gemm=bool(t.FAST_GEMM), compile=bool(t.FAST_COMPILE))

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ValueError(f"TEST.FAST_DTYPE: expected one of {', '.join(DTYPES)}, got {self.dtype!r}")

    @property
    def autocast_dtype(self):
        return None if self.dtype == 'float32' else DTYPES[self.dtype]

    def describe(self):
        """e.g. 'fold_bn+channels_last+gemm+bfloat16' ('eager float32' when nothing is on)."""
        parts = [name for name, on in (('fold_bn', self.fold_bn), ('channels_last', self.channels_last),
                                       ('gemm', self.gemm)) if on]
        parts += [self.dtype] if self.dtype != 'float32' else []
        parts += ['compile'] if self.compile else []
        return '+'.join(parts) or 'eager float32'

    def settings(self):
        """What a test run records (eval.json)."""
        return {'fold_bn': self.fold_bn, 'channels_last': self.channels_last, 'dtype': self.dtype,
                'gemm': self.gemm, 'compile': self.compile}

    def check_device(self, device):
        """A dtype this device cannot run is an error; one it only emulates, a warning."""
        device_type = torch.device(device).type
        if device_type == 'cpu':
            if self.dtype == 'float16':
                raise ValueError('TEST.FAST_DTYPE = float16 needs a CUDA device; on a CPU use bfloat16')
            if self.dtype == 'bfloat16' and not cpu_bfloat16_native():
                print('warning: TEST.FAST_DTYPE = bfloat16: this CPU has no native bfloat16 (AVX512-BF16 / AMX); '
                      'it runs emulated and slower than float32', file=sys.stderr)
        elif device_type == 'cuda' and self.dtype == 'bfloat16' and not torch.cuda.is_bf16_supported():
            raise ValueError(f'TEST.FAST_DTYPE = bfloat16: {torch.cuda.get_device_name(device)} has no bfloat16; '
                             'use float16')

    def autocast(self, device_type):
        """The autocast context of this fast path (a null context for float32)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type, dtype=self.autocast_dtype)

    def layout(self, x):
        """A feature map in the fast path's memory format (anything else unchanged). Images (3 channels) stay as
        they come: the networks' first layers take either format at the same speed, and converting a 600x1000
        image costs about 2 ms, paid for both images on every non-key frame."""
        if self.channels_last and isinstance(x, torch.Tensor) and x.dim() == 4 and x.shape[1] > 3:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def prepare(self, model, device):
        """Apply the fast path in place to `model` (an RFCN or a DFF, already on `device`, in eval mode):
        fold BN, convert the weights' memory format, and replace its inference methods (ENTRY_POINTS) by ones
        that take inputs in that format and run under autocast (and torch.compile). Returns the model."""
        device_type = torch.device(device).type
        self.check_device(device)
        if model.training:
            raise ValueError('the fast path is for inference: put the model in eval mode first')
        if self.fold_bn:
            fold_batchnorm(model)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        for module in model.modules():  # FlowNet-S's input: each image pooled, then scaled (the same sums)
            if hasattr(module, 'pool_inputs_first'):
                module.pool_inputs_first = True
        if self.gemm:
            gemm_modules(model)
        if self.autocast_dtype is not None:
            convs_to_dtype(model, self.autocast_dtype)
        compile_now = self.compile
        if compile_now:
            reason = compile_unavailable_reason(device_type)
            if reason:
                print(f'warning: TEST.FAST_COMPILE: torch.compile is unavailable ({reason}); running eager',
                      file=sys.stderr)
                compile_now = False
        running = []  # the entry point being run: one it calls (detect_cur -> flow_to_key) runs plain, inside it
        for name in ENTRY_POINTS:
            method = getattr(model, name, None)
            if method is not None:
                setattr(model, name, self._entry_point(name, method, device_type, compile_now, running))
        return model

    def _entry_point(self, name, method, device_type, compile_now, running):
        def run(*args):
            with self.autocast(device_type):
                return method(*args)

        if compile_now:  # inductor with freezing: the weights become constants (oneDNN prepacks them on a CPU)
            options = {'freezing': True} if self.compile_backend == 'inductor' else None
            run = torch.compile(run, dynamic=False, backend=self.compile_backend, options=options)

        @functools.wraps(method)
        def fast(*args):
            if running:  # called from another entry point: already in its autocast (and its compiled graph)
                return method(*args)
            args = [self.layout(a) for a in args]
            running.append(name)
            try:
                if name in self.first_call_s:
                    return run(*args)
                t0 = time.perf_counter()
                out = run(*args)
                if device_type == 'cuda':
                    torch.cuda.synchronize()
                self.first_call_s[name] = time.perf_counter() - t0
                return out
            finally:
                running.pop()

        return fast


def prepare_inference(model, cfg, device):
    """The model as the config's test runs it: with cfg's fast path applied (TEST.FAST_PATH), or unchanged.
    Returns (model, FastPath or None)."""
    fast = FastPath.from_config(cfg)
    if fast is None:
        return model, None
    return fast.prepare(model, device), fast


# ----------------------------------------------------------------------------- command line
def fast_dtype_name(text):
    """A TEST.FAST_DTYPE name or alias ('bf16') -> the name; a ValueError for anything else."""
    dtype = DTYPE_ALIASES.get(text, text) if isinstance(text, str) else text
    if dtype not in DTYPES:
        raise ValueError(f"expected one of {', '.join(DTYPES)} (or {', '.join(DTYPE_ALIASES)}), got {text!r}")
    return dtype


def _fast_dtype(text):
    try:
        return text if text == '' else fast_dtype_name(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_fast_argument(parser):
    """`--fast [DTYPE]` of the test scripts, the demos and the benchmark."""
    parser.add_argument('--fast', nargs='?', const='', default=None, type=_fast_dtype, metavar='DTYPE',
                        help='inference fast path (TEST.FAST_PATH: BN folded into the convolutions, channels_last, '
                             "on a CPU GEMMs for the convolutions oneDNN runs slowly); "
                             'DTYPE bfloat16 (bf16) or float16 (fp16, CUDA) adds autocast (TEST.FAST_DTYPE); '
                             'each piece can be turned off with --set TEST.FAST_FOLD_BN=false, '
                             'TEST.FAST_CHANNELS_LAST=false, TEST.FAST_GEMM=false; TEST.FAST_COMPILE=true adds '
                             'torch.compile')


def fast_overrides(value):
    """The config overrides (update_from_list items) of a parsed `--fast` value or of load_detector's `fast`:
    None: none (the config's TEST.FAST_PATH); False: off; True or '': on (the config's TEST.FAST_DTYPE); a dtype
    name or alias: on, in that dtype."""
    if value is None:
        return []
    if isinstance(value, bool) or value == '':
        return [f"TEST.FAST_PATH={'false' if value is False else 'true'}"]
    try:
        return ['TEST.FAST_PATH=true', f'TEST.FAST_DTYPE={fast_dtype_name(value)}']
    except ValueError as e:
        raise ValueError(f'fast: {e}') from None


def describe_fast_path(cfg):
    """What a run with cfg infers with: FastPath.describe() of its fast path, or 'eager float32' when it is off."""
    fast = FastPath.from_config(cfg)
    return 'eager float32' if fast is None else fast.describe()


def fast_path_tag(cfg):
    """The test-folder suffix of cfg's fast path ('' when off), e.g. 'fast_fold_bn-channels_last-gemm-bfloat16'."""
    fast = FastPath.from_config(cfg)
    return '' if fast is None else 'fast_' + fast.describe().replace('+', '-').replace(' ', '-')
