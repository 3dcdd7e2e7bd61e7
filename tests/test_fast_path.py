"""The inference fast path (lib/model/fast_path.py, TEST.FAST_PATH / --fast): BN folding equals the unfolded
model; through the fast path the MXNet parity fixtures still pass at float32 tolerance (each piece alone and
all of them); channels_last maps go through DetectionHeads and the custom ops without copies; bfloat16
autocast keeps rois and outputs in float32; torch.compile's entry points and its fallback; the config key,
`--fast` and the test folders; the testers and demos run it."""
import copy
import os

import numpy as np
import pytest
import torch
from torch.profiler import profile

import lib.ops as ops
from lib.config import load_config, update_from_list
from lib.config.config import ConfigError, _defaults
from lib.core import experiment
from lib.core.experiment import parse_args
from lib.model import fast_path as FP
from lib.model.detection import DetectionHeads
from lib.model.fast_path import FastPath, fast_overrides, fold_batchnorm
from lib.model.frozen_bn import BN_TYPES
from tests.small_run import ROOT
from tests.test_convert_mxnet import FIX, _compare, _image, convert_params, fix, load_params, tiny_model

REAL = ['experiments/rfcn/cfgs/resnet_v1_101_imagenet_vid_rfcn_end2end_ohem.yaml',
        'experiments/dff_rfcn/cfgs/resnet_v1_101_flownet_imagenet_vid_rfcn_end2end_ohem.yaml']
SYNTH = os.path.join(ROOT, 'experiments', 'rfcn', 'cfgs', 'synthetic_vid_cpu.yaml')
PIECES = {'all (float32)': FastPath(), 'fold_bn alone': FastPath(channels_last=False, gemm=False),
          'channels_last alone': FastPath(fold_bn=False, gemm=False),
          'gemm alone': FastPath(fold_bn=False, channels_last=False)}


@pytest.fixture(scope='module')
def golden():
    z = np.load(os.path.join(FIX, 'parity_outputs.npz'))
    return {k: z[k] for k in z.files}


def parity_model(kind, fast=None):
    model = tiny_model(kind)
    model.load_state_dict(convert_params(load_params(fix(kind)), model).state_dict)
    return fast.prepare(model, 'cpu') if fast is not None else model


def detect_all(model, z):
    """The parity outputs: the baseline's frame, or DFF's key frame and its current frame (from our key features)."""
    key, cur, info = _image(z, 'key_image_u8'), _image(z, 'cur_image_u8'), torch.from_numpy(z['im_info'])
    with torch.no_grad():
        if not hasattr(model, 'detect_key'):
            return {'rfcn': model.detect(key, info)}, model.feature(key)
        out, feat = model.detect_key(key, info)
        return {'dff_key': out, 'dff_cur': model.detect_cur(cur, info, key, feat)}, feat


def randomise_bn(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, BN_TYPES):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.3)
    return model


# ------------------------------------------------------------------------------------------- BN folding
@pytest.mark.parametrize('train_bn', [False, True])
def test_bn_folding_equals_the_unfolded_model(train_bn):
    """Frozen BN (the original) and nn.BatchNorm2d in eval mode (TRAIN_BN): folded into the convs, the
    feature network gives the unfolded one's conv_feat (float rounding), no BN is left, folding twice is a
    no-op and a model in training mode is refused."""
    from rfcn.model import RFCN
    cfg = update_from_list(load_config(SYNTH), [f'network.TRAIN_BN={str(train_bn).lower()}', 'device=cpu'])
    torch.manual_seed(0)
    model = randomise_bn(RFCN(cfg)).eval()
    folded = copy.deepcopy(model)
    n_bn = sum(isinstance(m, BN_TYPES) for m in model.modules())
    assert fold_batchnorm(folded) == n_bn > 0
    assert not any(isinstance(m, BN_TYPES) for m in folded.modules()) and folded.feature.backbone.conv1.bias is not None
    assert fold_batchnorm(folded) == 0
    x = torch.randn(1, 3, 96, 160) * 50
    with torch.no_grad():
        ref, got = model.feature(x), folded.feature(x)
    assert ref.abs().max() > 0.1
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))
    with pytest.raises(ValueError, match='training mode'):
        fold_batchnorm(copy.deepcopy(model).train())


# ------------------------------------------------------------------------------------------- MXNet parity
@pytest.mark.parametrize('kind', ['rfcn', 'dff'])
@pytest.mark.parametrize('piece', list(PIECES))
def test_mxnet_parity_through_the_fast_path(golden, kind, piece):
    """The MXNet fixtures' rois (< 1e-3 px), cls_prob and bbox_pred (< 1e-4) through the float32 fast path: all
    pieces, BN folding alone, channels_last alone; the features keep the parity test's 1e-5 relative bound."""
    fast = copy.deepcopy(PIECES[piece])
    outs, feat = detect_all(parity_model(kind, fast), golden)
    g = golden['rfcn_conv_feat' if kind == 'rfcn' else 'dff_key_conv_feat']
    assert np.abs(feat.float().numpy() - g).max() < 1e-5 * np.abs(g).max()
    assert feat.is_contiguous(memory_format=torch.channels_last) == fast.channels_last
    report = {}
    for prefix, out in outs.items():
        _compare(out, golden, prefix, report)


@pytest.mark.parametrize('fast', [FastPath(fold_bn=False, channels_last=False, dtype='bfloat16'),
                                  FastPath(dtype='bfloat16')], ids=['bfloat16 alone', 'all + bfloat16'])
def test_bfloat16_autocast_keeps_the_ops_and_outputs_in_float32(golden, fast):
    """Under bfloat16 autocast the networks run in bfloat16 (conv_feat is bfloat16, within bfloat16's precision
    of float32's), while proposals, pooling, voting and box decoding stay float32: rois, cls_prob and bbox_pred
    are float32 and sane."""
    outs, feat = detect_all(parity_model('dff', fast), golden)
    g = golden['dff_key_conv_feat']
    assert feat.dtype == torch.bfloat16
    assert np.abs(feat.float().numpy() - g).max() < 3e-2 * np.abs(g).max()
    for out in outs.values():
        assert {v.dtype for v in out.values()} == {torch.float32}
        assert torch.isfinite(out['bbox_pred']).all() and out['rois'].shape == (300, 5)
        torch.testing.assert_close(out['cls_prob'].sum(1), torch.ones(300))


@pytest.mark.parametrize('k, dilation, padding, size', [(3, 6, 6, (10, 13)), (3, 3, 2, (7, 9)), (3, 6, 6, (3, 4)),
                                                    (1, 4, 0, (5, 5)), (3, (3, 5), (1, 4), (9, 11))])
def test_dilated_conv_as_one_matrix_product(k, dilation, padding, size):
    """DilatedConvAsGemm (what the reduced-precision CPU path puts in place of a convolution with dilation > 2)
    computes the convolution's sums: equal in float32 (NCHW and channels_last input, maps smaller than the
    dilation too), its output channels_last; under bfloat16 autocast it returns bfloat16."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(6, 5, k, padding=padding, dilation=dilation)
    x = torch.randn(2, 6, *size)
    gemm = FP.DilatedConvAsGemm(conv, torch.float32)
    with torch.no_grad():
        ref = conv(x)
        for inp in (x, x.contiguous(memory_format=torch.channels_last)):
            out = gemm(inp)
            assert out.shape == ref.shape and out.is_contiguous(memory_format=torch.channels_last)
            torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = FP.DilatedConvAsGemm(conv, torch.bfloat16)(x)
        assert out.dtype == torch.bfloat16
        torch.testing.assert_close(out.float(), ref, rtol=0.05, atol=0.05)


@pytest.mark.parametrize('c_in, size', [(24, (2, 3)), (24, (4, 5)), (5, (3, 4))])
def test_transposed_conv_as_one_matrix_product(c_in, size):
    """FastTransposedConv (TEST.FAST_GEMM, FlowNet-S's ConvTranspose2d(k4, s2, p1)) gives the transposed
    convolution's sums in float64: by GEMM + col2im where the input has more channels than pixels (24 > 6),
    by the module's own convolution elsewhere (24 < 20, 5 < 12), in both memory formats, keeping the input's;
    under bfloat16 autocast it returns bfloat16 within its precision: by GEMM where the channels outnumber
    twice the pixels (24 > 12), by the sub-pixel convolution elsewhere (24 < 40, 5 < 24), never by the
    module's own reduced-precision deconvolution."""
    torch.manual_seed(0)
    deconv = torch.nn.ConvTranspose2d(c_in, 7, 4, 2, 1).double()
    gemm = FP.FastTransposedConv(deconv)
    x = torch.randn(2, c_in, *size, dtype=torch.float64)
    own = []
    with torch.no_grad():
        ref = deconv(x)
        gemm.deconv.register_forward_hook(lambda *a: own.append(1))
        for inp in (x, x.contiguous(memory_format=torch.channels_last)):
            out = gemm(inp)
            assert out.shape == ref.shape and out.dtype == torch.float64
            assert out.is_contiguous(memory_format=torch.channels_last if inp is not x else torch.contiguous_format)
            torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
        assert len(own) == (0 if c_in > size[0] * size[1] else 2)
        fl = FP.FastTransposedConv(torch.nn.ConvTranspose2d(c_in, 7, 4, 2, 1))
        fl.deconv.load_state_dict({k: v.float() for k, v in deconv.state_dict().items()})
        own.clear()
        fl.deconv.register_forward_hook(lambda *a: own.append(1))
        for inp in (x.float(), x.float().contiguous(memory_format=torch.channels_last)):
            with torch.autocast('cpu', dtype=torch.bfloat16):
                out = fl(inp)
            assert out.dtype == torch.bfloat16 and out.shape == ref.shape
            assert out.is_contiguous(memory_format=torch.contiguous_format if inp.is_contiguous()
                                     else torch.channels_last)
            torch.testing.assert_close(out.double(), ref, rtol=0.05, atol=0.02 * float(ref.abs().max()))
        assert not own
        assert (fl._subpixel is None) == (c_in > 2 * size[0] * size[1])


@pytest.mark.parametrize('k, s, p', [(4, 2, 1), (4, 2, 0), (2, 2, 0), (3, 1, 1), (6, 2, 2), (4, 4, 0), (3, 2, 1)])
def test_transposed_conv_as_subpixel_convolution(k, s, p):
    """The sub-pixel form of a transposed convolution (one stride-1 convolution with s*s phases of the kernel, a
    pixel shuffle, a crop) has its sums in float64 for every kernel / stride / padding whose phases a symmetric
    padding covers; (k3, s2, p1), whose last phase it does not, keeps the module's own deconvolution. The
    weight is rebuilt when the deconvolution's changes."""
    torch.manual_seed(0)
    deconv = torch.nn.ConvTranspose2d(6, 5, k, s, p).double()
    fast = FP.FastTransposedConv(deconv)
    x = torch.randn(2, 6, 5, 7, dtype=torch.float64)
    fits = fast._subpixel_fits(5, 7)
    assert fits == ((k, s, p) != (3, 2, 1))
    if not fits:
        return
    with torch.no_grad():
        torch.testing.assert_close(fast._subpixel_conv(x, torch.float64), deconv(x), rtol=1e-12, atol=1e-12)
        deconv.weight.mul_(-2.0)
        torch.testing.assert_close(fast._subpixel_conv(x, torch.float64), deconv(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('k, stride, pad, bias', [(3, 1, 1, True), (3, 2, 1, True), (5, 2, 2, False), (3, 2, 0, True),
                                                 (7, 2, 3, True)])
def test_small_map_convolution_as_one_matrix_product(k, stride, pad, bias):
    """SmallMapConvAsGemm (TEST.FAST_GEMM, FlowNet-S's k x k convolutions): where the output has fewer pixels than a
    64th of c_in*k*k, one matrix product over the padded map's strided copies, with the convolution's sums in
    float64 in both memory formats (a channels_last result); elsewhere the convolution itself; under bfloat16
    autocast a bfloat16 result within its precision."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(40, 6, k, stride, pad, bias=bias).double()
    small = FP.SmallMapConvAsGemm(conv)
    as_channels_last = FP.SmallMapConvAsGemm(torch.nn.Conv2d(40, 6, k, stride, pad, bias=bias).double())
    as_channels_last.conv.load_state_dict(conv.state_dict())
    as_channels_last.conv.to(memory_format=torch.channels_last)  # the weight read in either memory format
    own, branches = [], set()
    conv.register_forward_hook(lambda *a: own.append(1))
    for size in ((2, 2), (3, 4), (9, 11), (17, 19)):
        if (size[0] + 2 * pad - k) // stride + 1 < 1:
            continue
        x = torch.randn(2, 40, *size, dtype=torch.float64)
        with torch.no_grad():
            ref = torch.nn.functional.conv2d(x, conv.weight, conv.bias, stride, pad)
            h_out, w_out = ref.shape[2:]
            gemm = h_out * w_out * 64 < 40 * k * k
            assert small.uses_gemm(x) == gemm
            branches.add(gemm)
            own.clear()
            for inp in (x, x.contiguous(memory_format=torch.channels_last)):
                out = small(inp)
                assert out.shape == ref.shape and out.dtype == torch.float64
                torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
                torch.testing.assert_close(as_channels_last(inp), ref, rtol=1e-12, atol=1e-12)
                if gemm:
                    assert out.is_contiguous(memory_format=torch.channels_last)
            assert len(own) == (0 if gemm else 2)
            fl = FP.SmallMapConvAsGemm(torch.nn.Conv2d(40, 6, k, stride, pad, bias=bias))
            fl.conv.load_state_dict({n: v.float() for n, v in conv.state_dict().items()})
            with torch.autocast('cpu', dtype=torch.bfloat16):
                out = fl(x.float())
            assert out.dtype == torch.bfloat16
            torch.testing.assert_close(out.double(), ref, rtol=0.05, atol=0.03 * float(ref.abs().max()))
    assert branches == {True, False}
    assert FP.SmallMapConvAsGemm.applies(conv)
    assert not FP.SmallMapConvAsGemm.applies(torch.nn.Conv2d(4, 4, 3, dilation=2))
    assert not FP.SmallMapConvAsGemm.applies(torch.nn.Conv2d(4, 4, 1))


def test_score_map_convs_write_nchw_for_psroi_pool():
    """TEST.FAST_GEMM: the R-FCN score-map convolutions (rfcn_cls, rfcn_bbox) become PointwiseConvToNCHW: the
    convolution's sums (float64), written as a contiguous NCHW map from a channels_last input (the layout
    psroi_pool reads per channel plane), batch 1 and 2; with the piece off they stay convolutions."""
    from dff_rfcn.model import DFF
    cfg = update_from_list(load_config(SYNTH), ['device=cpu'])
    torch.manual_seed(0)
    model = FastPath().prepare(DFF(cfg).eval(), 'cpu')
    assert isinstance(model.heads.rfcn_cls, FP.PointwiseConvToNCHW)
    assert isinstance(model.heads.rfcn_bbox, FP.PointwiseConvToNCHW)
    n_deconv = sum(isinstance(m, torch.nn.ConvTranspose2d) for m in DFF(cfg).flownet.modules())
    assert n_deconv == 8 == sum(isinstance(m, FP.FastTransposedConv) for m in model.flownet.modules())
    off = FastPath(gemm=False).prepare(DFF(cfg).eval(), 'cpu')
    assert type(off.heads.rfcn_cls) is torch.nn.Conv2d
    assert not any(isinstance(m, FP.FastTransposedConv) for m in off.modules())
    conv = torch.nn.Conv2d(16, 9, 1).double()
    for n in (1, 2):
        x = torch.randn(n, 16, 5, 7, dtype=torch.float64)
        with torch.no_grad():
            out = FP.PointwiseConvToNCHW(conv)(x.contiguous(memory_format=torch.channels_last))
            torch.testing.assert_close(out, conv(x), rtol=1e-12, atol=1e-12)
        assert out.is_contiguous()


def test_flownet_pools_its_inputs_first_on_the_fast_path():
    """The fast path has FlowNet-S pool each image before concatenating and scaling them (the original: scale,
    then pool the pair): the same flow and scale map (float64, odd sizes: ceil pooling), and only there; images
    stay in the layout they come in (feature maps become channels_last)."""
    from lib.model.flownet import FlowNetS
    torch.manual_seed(0)
    net = FlowNetS(feat_dim=16, width_mult=0.25).double().eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                torch.nn.init.normal_(m.weight, 0, 0.05)
    cur, key = (torch.randn(1, 3, 97, 161, dtype=torch.float64) * 50 for _ in range(2))
    with torch.no_grad():
        ref = net(cur, key)
        net.pool_inputs_first = True
        got = net(cur, key)
    assert ref[0].abs().max() > 1e-3
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    from dff_rfcn.model import DFF
    cfg = update_from_list(load_config(SYNTH), ['device=cpu'])
    assert DFF(cfg).flownet.pool_inputs_first is False
    fast = FastPath()
    assert fast.prepare(DFF(cfg).eval(), 'cpu').flownet.pool_inputs_first is True
    image, feat = torch.randn(1, 3, 8, 8), torch.randn(1, 16, 8, 8)
    assert fast.layout(image) is image and fast.layout(feat).is_contiguous(memory_format=torch.channels_last)


def test_flownet_pools_a_key_image_once_on_the_fast_path():
    """On the fast path the key image's pooling is kept while the same key tensor comes back unchanged (the
    non-key frames of an interval): pooled once, the same flow as pooling it again; a new key tensor, or the
    same one changed in place, is pooled afresh (the flow follows it); under autograd nothing is kept."""
    from lib.model.flownet import FlowNetS
    torch.manual_seed(0)
    net = FlowNetS(feat_dim=16, width_mult=0.25).double().eval()
    net.pool_inputs_first = True
    cur, key = (torch.randn(1, 3, 33, 49, dtype=torch.float64) * 50 for _ in range(2))
    pools = []
    real_pool = torch.nn.functional.avg_pool2d

    def counting_pool(x, *args, **kwargs):
        pools.append(x)
        return real_pool(x, *args, **kwargs)

    def flow(c, k):
        with torch.no_grad():
            return net(c, k)[0]

    torch.nn.functional.avg_pool2d = counting_pool
    try:
        first = flow(cur, key)
        n_first = sum(p is key for p in pools)
        again = flow(cur * 0.5, key)
        assert n_first == 1 and sum(p is key for p in pools) == 1  # not pooled a second time
        net.pool_inputs_first = False
        torch.testing.assert_close(again, flow(cur * 0.5, key), rtol=1e-10, atol=1e-10)
        net.pool_inputs_first = True
        key2 = key.flip(-1).contiguous()
        torch.testing.assert_close(flow(cur, key2), FlowNetS.forward(net, cur, key2.clone())[0].detach(),
                                   rtol=1e-10, atol=1e-10)
        key.mul_(-1.0)  # in place: the kept pooling is stale
        changed = flow(cur, key)
        assert not torch.allclose(changed, first)
        with torch.no_grad():
            net._pooled_key = None
            torch.testing.assert_close(changed, net(cur, key.clone())[0], rtol=1e-10, atol=1e-10)
        pools.clear()
        with torch.enable_grad():
            net(cur, key)
            net(cur, key)
        assert sum(p is key for p in pools) == 2
    finally:
        torch.nn.functional.avg_pool2d = real_pool


def test_reduced_precision_converts_the_convolutions_once():
    """FAST_DTYPE bfloat16: every convolution's weights are bfloat16 from the start (no cast per call), a
    dilation-6 convolution becomes DilatedConvAsGemm on a CPU, while the BN statistics (unfolded) and the
    heads' normalisation buffers stay float32."""
    from dff_rfcn.model import DFF
    cfg = update_from_list(load_config(SYNTH), ['device=cpu'])
    torch.manual_seed(0)
    model = FastPath(fold_bn=False, dtype='bfloat16').prepare(DFF(cfg).eval(), 'cpu')
    convs = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert convs and {m.weight.dtype for m in convs} == {torch.bfloat16}
    assert isinstance(model.feature.feat_conv_3x3, FP.DilatedConvAsGemm)
    assert model.feature.feat_conv_3x3.weight_matrix.dtype == torch.bfloat16
    bns = [m for m in model.modules() if isinstance(m, BN_TYPES)]
    assert bns and {m.running_var.dtype for m in bns} == {torch.float32}
    assert model.heads.bbox_stds.dtype == torch.float32


def test_float16_needs_cuda_and_unknown_dtypes_are_refused():
    with pytest.raises(ValueError, match='float16 needs a CUDA device'):
        FastPath(dtype='float16').prepare(tiny_model('rfcn'), 'cpu')
    with pytest.raises(ValueError, match="TEST.FAST_DTYPE: expected one of float32, bfloat16, float16, got 'half'"):
        FastPath(dtype='half')
    with pytest.raises(ValueError, match='eval mode'):
        FastPath().prepare(tiny_model('rfcn').train(), 'cpu')


# ------------------------------------------------------------------------------------------- channels_last
def test_channels_last_through_the_heads_and_the_ops_without_copies():
    """DetectionHeads on a channels_last conv_feat (its RPN used .view, which such a map refused) gives the
    contiguous map's outputs; psroi_pool and flow_warp read channels_last in place (the profiler sees no copy
    of the map) with the same numbers, flow_warp's output keeps the format."""
    cfg = update_from_list(load_config(SYNTH), ['device=cpu'])
    torch.manual_seed(0)
    heads = DetectionHeads(cfg).eval()
    feat = torch.rand(1, 128, 12, 20) * 4
    info = torch.tensor([[192.0, 320.0, 1.0]])
    with torch.no_grad():
        ref = heads(feat, info)
        got = heads(feat.contiguous(memory_format=torch.channels_last), info)
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], rtol=1e-5, atol=1e-6)

    g = torch.Generator().manual_seed(0)
    maps = torch.randn(2, 8 * 49, 20, 30, generator=g)
    rois = torch.cat([torch.tensor([[0.], [1.]]).repeat(20, 1), torch.rand(40, 2, generator=g) * 200,
                      torch.rand(40, 2, generator=g) * 200 + 250], 1)
    data, flow = torch.randn(2, 64, 20, 30, generator=g), torch.randn(2, 2, 20, 30, generator=g) * 3
    cl = {'maps': maps.contiguous(memory_format=torch.channels_last),
          'data': data.contiguous(memory_format=torch.channels_last),
          'flow': flow.contiguous(memory_format=torch.channels_last)}
    with profile(record_shapes=True) as prof:
        pooled = ops.psroi_pool(cl['maps'], rois, 1 / 16, 8, 7)
        warped = ops.flow_warp(cl['data'], cl['flow'])
    copies = [e.input_shapes for e in prof.events() if e.name in ('aten::copy_', 'aten::clone', 'aten::contiguous')]
    big = [s for s in copies if s and s[0] and int(np.prod(s[0])) >= 2 * 20 * 30]
    assert not big, big
    assert torch.equal(pooled, ops.psroi_pool(maps, rois, 1 / 16, 8, 7))
    assert torch.equal(warped, ops.flow_warp(data, flow))
    assert warped.is_contiguous(memory_format=torch.channels_last) and not warped.is_contiguous()


# ------------------------------------------------------------------------------------------- torch.compile
def test_compile_entry_points_and_the_fallback(golden, capsys, monkeypatch):
    """TEST.FAST_COMPILE: every inference entry point goes through torch.compile (here its 'eager' backend:
    the tracing, without code generation) with the same outputs, and each first call's time is kept;
    where torch.compile cannot run, one warning line and the eager path."""
    fast = FastPath(compile=True, compile_backend='eager')
    outs, _ = detect_all(parity_model('dff', fast), golden)
    assert set(fast.first_call_s) == {'detect_key', 'detect_cur'} and min(fast.first_call_s.values()) > 0
    ref, _ = detect_all(parity_model('dff', FastPath()), golden)
    for k in ref:
        for name in ref[k]:
            torch.testing.assert_close(outs[k][name], ref[k][name])
    # bfloat16: FlowNet-S's sub-pixel deconvolutions (their weight built at the first call) and small-map GEMMs
    # traced too
    forms = []
    monkeypatch.setattr(FP.FastTransposedConv, 'subpixel_weight',
                        lambda self, *a, _real=FP.FastTransposedConv.subpixel_weight: (forms.append('sub'), _real(self, *a))[1])
    fast16 = FastPath(dtype='bfloat16', compile=True, compile_backend='eager')
    outs, _ = detect_all(parity_model('dff', fast16), golden)
    ref, _ = detect_all(parity_model('dff', FastPath(dtype='bfloat16')), golden)
    assert forms
    for k in ref:
        for name in ref[k]:
            torch.testing.assert_close(outs[k][name], ref[k][name])
    monkeypatch.setattr(FP, 'compile_unavailable_reason', lambda device_type: 'no C++ compiler on PATH')
    monkeypatch.setattr(torch, 'compile', lambda *a, **k: pytest.fail('torch.compile called'))
    fallback = FastPath(compile=True)
    outs, _ = detect_all(parity_model('rfcn', fallback), golden)
    err = capsys.readouterr().err
    assert 'warning: TEST.FAST_COMPILE: torch.compile is unavailable (no C++ compiler on PATH); running eager' in err
    assert set(fallback.first_call_s) == {'detect'}


# ------------------------------------------------------------------------------------------- config, CLI, runs
def test_config_key_command_line_and_test_folder(tmp_path):
    d = _defaults().TEST
    assert d.FAST_PATH is False and FastPath.from_config(_defaults()) is None  # default: eager float32
    for path in REAL:
        text = open(os.path.join(ROOT, path)).read()
        assert 'FAST' not in text and load_config(os.path.join(ROOT, path)).TEST.FAST_PATH is False
    cfg = update_from_list(load_config(SYNTH), ['TEST.FAST_PATH=true', 'TEST.FAST_CHANNELS_LAST=false'])
    assert FastPath.from_config(cfg) == FastPath(fold_bn=True, channels_last=False, dtype='float32')
    with pytest.raises(ConfigError, match="--set: TEST.FAST_DTYPE: expected one of float32, bfloat16, float16, "
                                          "got 'half'"):
        update_from_list(load_config(SYNTH), ['TEST.FAST_DTYPE=half'])
    with pytest.raises(ConfigError, match='TEST.FAST_PATH: expected true or false'):
        update_from_list(load_config(SYNTH), ['TEST.FAST_PATH=yes please'])
    assert fast_overrides(parse_args('', ['--cfg', 'x']).fast) == []
    assert fast_overrides(parse_args('', ['--cfg', 'x', '--fast']).fast) == ['TEST.FAST_PATH=true']
    assert fast_overrides(parse_args('', ['--cfg', 'x', '--fast', 'bf16']).fast) == ['TEST.FAST_PATH=true',
                                                                                    'TEST.FAST_DTYPE=bfloat16']
    with pytest.raises(SystemExit):
        parse_args('', ['--cfg', 'x', '--fast', 'fp8'])
    yaml_cfg = load_config(SYNTH)
    fast_cfg = update_from_list(load_config(SYNTH), fast_overrides('bfloat16'))
    test_dir = str(tmp_path / 'VID_val_frames')
    assert experiment.test_folder(test_dir, yaml_cfg, yaml_cfg) == test_dir
    assert experiment.test_folder(test_dir, fast_cfg, yaml_cfg) == test_dir + '_fast_fold_bn-channels_last-gemm-bfloat16'


def test_tester_runs_the_fast_path_on_a_copy_and_records_it(tmp_path):
    """run_model_test with TEST.FAST_PATH: the detections of the float32 fast path are the eager ones (same
    mAP, same rows), eval.json records the pieces, and the model handed in (just trained) keeps its BN."""
    import json

    from lib.dataset.synthetic_vid import ensure_dataset
    from rfcn.model import RFCN
    from rfcn.tester import test_rfcn
    from tests.small_run import tiny_overrides
    cfg = update_from_list(load_config(SYNTH), tiny_overrides(tmp_path) + ['device=cpu'])
    ensure_dataset(cfg.dataset.dataset_path, **dict(cfg.dataset.SYNTHETIC))
    torch.manual_seed(0)
    model = randomise_bn(RFCN(cfg))
    eager = test_rfcn(cfg, None, str(tmp_path / 'eager'), model=model)
    fast = test_rfcn(update_from_list(copy.deepcopy(cfg), fast_overrides('')), None, str(tmp_path / 'fast'),
                     model=model)
    assert any(isinstance(m, BN_TYPES) for m in model.modules()) and model.feature.backbone.conv1.bias is None
    assert fast['mAP'] == pytest.approx(eager['mAP'], abs=1e-3)
    rows = [np.loadtxt(r['det_file'], ndmin=2) for r in (eager, fast)]
    assert rows[0].shape == rows[1].shape and len(rows[0]) > 0
    np.testing.assert_allclose(rows[1], rows[0], atol=2e-4 + 1e-2)
    recorded = json.load(open(fast['eval_json']))['run']['settings']['FAST_PATH']
    assert recorded == {'fold_bn': True, 'channels_last': True, 'dtype': 'float32', 'gemm': True, 'compile': False}


def test_demo_fast_flag(tmp_path):
    """rfcn/demo.py --fast (through rfcn/api.py's load_detector) detects what the eager demo detects."""
    import cv2

    from lib.utils.checkpoint import save_checkpoint
    from rfcn.demo import main
    from rfcn.model import RFCN
    sets = ['SCALES=[96,160]', 'device=cpu']
    torch.manual_seed(0)
    ck = str(tmp_path / 'rfcn.pth')
    save_checkpoint(ck, {'model': randomise_bn(RFCN(update_from_list(load_config(SYNTH), sets))).state_dict()})
    frames = tmp_path / 'frames'
    frames.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(frames / f'{i}.png'), rng.integers(0, 255, (96, 160, 3), dtype=np.uint8))
    runs = [main(['--cfg', SYNTH, '--checkpoint', ck, '--input', str(frames), '--output', str(tmp_path / name),
                  '--quiet', '--thresh', '0.01', *flag, '--set', *sets]) for name, flag in (('e', []), ('f', ['--fast']))]
    assert sum(len(d) for d in runs[0]['detections']) > 0
    assert (runs[0]['fast_path'], runs[1]['fast_path']) == ('eager float32', 'fold_bn+channels_last+gemm')
    for a, b in zip(runs[0]['detections'], runs[1]['detections']):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-3)
