"""Custom ops (lib.ops): float64 references from the original's formulas (docs/fidelity.md §2), gradcheck, opcheck, the
grid_sample equivalence, golden fixtures made with MXNet 1.9.1, errors and edge cases. Each test that
takes `device` runs on the CPU and on CUDA (tests/conftest.py; skipped without a GPU); the references
are computed on the CPU."""
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

import lib.ops as ops
from tests.op_reference import base_anchors_ref, flow_warp_ref, nms_ref, proposal_ref, psroi_pool_ref

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "mxnet_ops", "ops_golden.npz")


@pytest.fixture(scope="module")
def golden():
    return np.load(FIXTURES, allow_pickle=False)


def edge_rois(n_img, img_h, img_w, gen, n_random=12):
    """Random rois plus the hard cases: partly/wholly outside, tiny, huge, .5 corners, inverted."""
    hand = [
        [0, -20, -10, 0.4 * img_w, 0.5 * img_h],          # partly outside (top-left)
        [n_img - 1, 0.8 * img_w, 0.7 * img_h, 1.5 * img_w, 1.4 * img_h],  # partly outside (bottom-right)
        [0, 2 * img_w, 2 * img_h, 3 * img_w, 3 * img_h],   # wholly outside
        [n_img - 1, 7, 9, 7, 9],                           # tiny (single pixel)
        [0, -3 * img_w, -3 * img_h, 4 * img_w, 4 * img_h],  # huge
        [0, 2.5, 3.5, 10.5, 11.5],                         # .5 corners (round half away from zero)
        [n_img - 1, 20, 18, 6, 4],                         # inverted
    ]
    rnd = []
    for _ in range(n_random):
        x1, y1 = gen.uniform(-0.2, 0.9) * img_w, gen.uniform(-0.2, 0.9) * img_h
        rnd.append([gen.integers(n_img), x1, y1, x1 + gen.uniform(1, 0.8 * img_w), y1 + gen.uniform(1, 0.8 * img_h)])
    return torch.tensor(hand + rnd, dtype=torch.float64)


# ----------------------------------------------------------------------------------------- psroi_pool
@pytest.mark.parametrize("output_dim,pooled,group,scale", [(3, 3, 3, 0.25), (2, 7, 7, 0.0625), (3, 4, 2, 0.5)])
def test_psroi_pool_matches_reference(device, output_dim, pooled, group, scale):
    gen = np.random.default_rng(output_dim * 100 + pooled)
    N, H, W = 2, 11, 14
    data = torch.from_numpy(gen.standard_normal((N, output_dim * group * group, H, W)))
    rois = edge_rois(N, H / scale, W / scale, gen)
    expected = psroi_pool_ref(data, rois, scale, output_dim, pooled, group)
    data, rois = data.to(device), rois.to(device)
    got64 = ops.psroi_pool(data, rois, scale, output_dim, pooled, group).cpu()
    torch.testing.assert_close(got64, expected, rtol=1e-12, atol=1e-12)
    got32 = ops.psroi_pool(data.float(), rois.float(), scale, output_dim, pooled, group).cpu()
    torch.testing.assert_close(got32.double(), expected, rtol=1e-5, atol=1e-5)
    # empty bins give exactly 0 (roi 2 is wholly outside the map)
    assert (got64[2] == 0).all()


def test_psroi_pool_backward_matches_reference(device):
    gen = np.random.default_rng(1)
    data = torch.from_numpy(gen.standard_normal((2, 2 * 9, 9, 10))).to(device).requires_grad_(True)
    rois = edge_rois(2, 9 * 8, 10 * 8, gen, n_random=6)
    head = torch.from_numpy(gen.standard_normal((rois.shape[0], 2, 3, 3)))
    (ops.psroi_pool(data, rois.to(device), 0.125, 2, 3, 3) * head.to(device)).sum().backward()
    ref_data = data.detach().cpu().clone().requires_grad_(True)
    (psroi_pool_ref(ref_data, rois, 0.125, 2, 3, 3) * head).sum().backward()
    torch.testing.assert_close(data.grad.cpu(), ref_data.grad, rtol=1e-12, atol=1e-12)


def test_psroi_pool_gradcheck(device):
    gen = np.random.default_rng(2)
    data = torch.from_numpy(gen.standard_normal((2, 3 * 4, 6, 7))).to(device).requires_grad_(True)
    rois = torch.tensor([[0, 1, 2, 40, 30], [1, -5, 3, 20, 50], [1, 10, 10, 12, 11]], dtype=torch.float64,
                        device=device)
    assert torch.autograd.gradcheck(lambda d: ops.psroi_pool(d, rois, 0.125, 3, 2, 2), (data,))
    assert torch.autograd.gradcheck(lambda d: ops.psroi_pool(d, rois, 0.125, 3, 3, 2), (data,))


def test_psroi_pool_empty_rois(device):
    data = torch.randn(1, 2 * 9, 5, 5, device=device, requires_grad=True)
    out = ops.psroi_pool(data, torch.zeros(0, 5, device=device), 1.0, 2, 3)
    assert out.shape == (0, 2, 3, 3)
    out.sum().backward()
    assert data.grad.shape == data.shape and (data.grad == 0).all()


def test_psroi_pool_errors_name_the_problem(device):
    data = torch.randn(2, 2 * 9, 5, 5, device=device)
    with pytest.raises(RuntimeError, match=r"18 channels but output_dim \* group_size\^2 = 3 \* 3\^2 = 27"):
        ops.psroi_pool(data, torch.zeros(1, 5, device=device), 1.0, 3, 3)
    with pytest.raises(RuntimeError, match=r"`rois` must be \(R, 5\).*got \[4, 4\]"):
        ops.psroi_pool(data, torch.zeros(4, 4, device=device), 1.0, 2, 3)
    with pytest.raises(RuntimeError, match=r"batch indices in \[0, 2\] but `data` has batch size 2"):
        ops.psroi_pool(data, torch.tensor([[0, 0, 0, 3, 3], [2, 0, 0, 3, 3.]], device=device), 1.0, 2, 3)
    with pytest.raises(RuntimeError, match="dtype"):
        ops.psroi_pool(data, torch.zeros(1, 5, dtype=torch.float64, device=device), 1.0, 2, 3)


def test_psroi_pool_matches_mxnet(golden, device):
    for i in range(4):
        if f"psroi{i}_data" not in golden:
            continue
        scale, output_dim, pooled, group = golden[f"psroi{i}_params"]
        data = torch.from_numpy(golden[f"psroi{i}_data"]).to(device).requires_grad_(True)
        rois = torch.from_numpy(golden[f"psroi{i}_rois"]).to(device)
        out = ops.psroi_pool(data, rois, scale, int(output_dim), int(pooled), int(group))
        torch.testing.assert_close(out.cpu(), torch.from_numpy(golden[f"psroi{i}_out"]), rtol=1e-5, atol=1e-5)
        out.backward(torch.from_numpy(golden[f"psroi{i}_grad_out"]).to(device))
        torch.testing.assert_close(data.grad.cpu(), torch.from_numpy(golden[f"psroi{i}_grad_data"]), rtol=1e-5,
                                   atol=1e-5)


def test_psroi_pool_differs_from_torchvision_where_the_spec_says():
    # MXNet rounds image coordinates, adds +1 to the far edge and keeps bins floor/ceil; torchvision
    # rounds the scaled coordinates and has no +1: on this roi the first bin differs.
    data = torch.arange(49 * 4 * 4, dtype=torch.float64).reshape(1, 49, 4, 4) % 7
    rois = torch.tensor([[0, 5, 5, 40, 40.], [0, 9, 3, 30, 55]], dtype=torch.float64)
    ours = ops.psroi_pool(data, rois, 1 / 16, 1, 7)
    tv = torchvision.ops.ps_roi_pool(data, rois, 7, 1 / 16)
    assert not torch.allclose(ours, tv)
    torch.testing.assert_close(ours, psroi_pool_ref(data, rois, 1 / 16, 1, 7, 7))


# ----------------------------------------------------------------------------------------- flow_warp
def random_flow(gen, N, H, W, scale=2.0):
    flow = gen.standard_normal((N, 2, H, W)) * scale
    flow[:, :, 0, :] += 3 * H  # a row pointing far outside
    flow[:, 0, :, -1] += 1.5   # right column partly outside
    return torch.from_numpy(flow)


def test_flow_warp_matches_reference_and_grid_sample(device):
    gen = np.random.default_rng(3)
    N, C, H, W = 3, 5, 7, 9
    data = torch.from_numpy(gen.standard_normal((N, C, H, W)))
    flow = random_flow(gen, N, H, W)
    out = ops.flow_warp(data.to(device), flow.to(device)).cpu()
    torch.testing.assert_close(out, flow_warp_ref(data, flow), rtol=1e-12, atol=1e-12)
    # = grid_sample(align_corners=True, zeros) on the pixel grid + flow
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    gx = (xs + flow[:, 0]) / ((W - 1) / 2) - 1
    gy = (ys + flow[:, 1]) / ((H - 1) / 2) - 1
    gs = F.grid_sample(data, torch.stack([gx, gy], -1), mode="bilinear", padding_mode="zeros", align_corners=True)
    torch.testing.assert_close(out, gs, rtol=1e-10, atol=1e-10)
    out32 = ops.flow_warp(data.float().to(device), flow.float().to(device)).cpu()
    torch.testing.assert_close(out32.double(), out, rtol=1e-5, atol=1e-5)


def test_flow_warp_backward_matches_grid_sample(device):
    gen = np.random.default_rng(4)
    N, C, H, W = 2, 4, 6, 8
    data = torch.from_numpy(gen.standard_normal((N, C, H, W))).to(device).requires_grad_(True)
    flow = random_flow(gen, N, H, W).to(device).requires_grad_(True)
    head = torch.from_numpy(gen.standard_normal((N, C, H, W))).to(device)
    (ops.flow_warp(data, flow) * head).sum().backward()
    d2 = data.detach().clone().requires_grad_(True)
    f2 = flow.detach().clone().requires_grad_(True)
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float64, device=device),
                            torch.arange(W, dtype=torch.float64, device=device), indexing="ij")
    grid = torch.stack([(xs + f2[:, 0]) / ((W - 1) / 2) - 1, (ys + f2[:, 1]) / ((H - 1) / 2) - 1], -1)
    (F.grid_sample(d2, grid, padding_mode="zeros", align_corners=True) * head).sum().backward()
    torch.testing.assert_close(data.grad, d2.grad, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(flow.grad, f2.grad, rtol=1e-8, atol=1e-8)


def test_flow_warp_gradcheck(device):
    gen = np.random.default_rng(5)
    data = torch.from_numpy(gen.standard_normal((2, 3, 5, 6))).to(device).requires_grad_(True)
    flow = torch.from_numpy(gen.standard_normal((2, 2, 5, 6)) * 1.7 + 0.25).to(device).requires_grad_(True)
    assert torch.autograd.gradcheck(ops.flow_warp, (data, flow))


def test_flow_warp_zero_and_integer_flow(device):
    data = torch.randn(2, 4, 6, 7, device=device)
    assert torch.equal(ops.flow_warp(data, torch.zeros(2, 2, 6, 7, device=device)), data)
    flow = torch.zeros(2, 2, 6, 7, device=device)
    flow[:, 0] = 2.0   # sample 2 px to the right
    flow[:, 1] = -1.0  # and 1 px up
    out = ops.flow_warp(data, flow)
    assert torch.equal(out[:, :, 1:, :-2], data[:, :, :-1, 2:])
    assert (out[:, :, 0] == 0).all() and (out[:, :, :, -2:] == 0).all()


def test_flow_warp_errors_and_empty(device):
    def randn(*shape):
        return torch.randn(*shape, device=device)
    with pytest.raises(RuntimeError, match=r"`flow` \[1, 2, 5, 5\] does not match `data` \[1, 3, 5, 6\]"):
        ops.flow_warp(randn(1, 3, 5, 6), randn(1, 2, 5, 5))
    with pytest.raises(RuntimeError, match=r"`flow` must be \(N, 2, H, W\)"):
        ops.flow_warp(randn(1, 3, 5, 6), randn(1, 3, 5, 6))
    assert ops.flow_warp(randn(0, 3, 4, 4), randn(0, 2, 4, 4)).shape == (0, 3, 4, 4)


def test_flow_warp_matches_mxnet(golden, device):
    for i in range(3):
        data = torch.from_numpy(golden[f"warp{i}_data"]).to(device).requires_grad_(True)
        flow = torch.from_numpy(golden[f"warp{i}_flow"]).to(device).requires_grad_(True)
        out = ops.flow_warp(data, flow)
        torch.testing.assert_close(out.cpu(), torch.from_numpy(golden[f"warp{i}_out"]), rtol=1e-5, atol=1e-5)
        out.backward(torch.from_numpy(golden[f"warp{i}_grad_out"]).to(device))
        torch.testing.assert_close(data.grad.cpu(), torch.from_numpy(golden[f"warp{i}_grad_data"]), rtol=1e-5,
                                   atol=1e-5)
        # MXNet normalises the flow to [-1, 1] and back in float32, so a sample landing exactly on a
        # grid line can come back as k - 1e-7 and take the other one-sided derivative: compare the
        # flow gradient away from exact grid hits only (fixtures README).
        _, _, H, W = data.shape
        ys, xs = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
        fl = flow.detach().cpu()
        pos = torch.stack([xs + fl[:, 0], ys + fl[:, 1]], 1)  # an exact hit in x only changes d/dx, in y d/dy
        mask = pos != torch.round(pos)
        expected = torch.from_numpy(golden[f"warp{i}_grad_flow"])
        torch.testing.assert_close(flow.grad.cpu()[mask], expected[mask], rtol=1e-4, atol=1e-4)
        assert mask.float().mean() > (0.15 if i == 1 else 0.95)  # warp1 is mostly exact hits by design


# ----------------------------------------------------------------------------------------- proposal
SPEC_ANCHORS = torch.tensor([[-84, -40, 99, 55], [-176, -88, 191, 103], [-360, -184, 375, 199],
                             [-56, -56, 71, 71], [-120, -120, 135, 135], [-248, -248, 263, 263],
                             [-36, -80, 51, 95], [-80, -168, 95, 183], [-168, -344, 183, 359]], dtype=torch.float64)


def test_base_anchors_equal_the_spec_table(device):
    torch.testing.assert_close(base_anchors_ref(), SPEC_ANCHORS)
    # The op's anchors: zero deltas on a huge image, a distinct score per anchor of cell (h=2, w=3),
    # nothing suppressed (threshold 1): the first 9 rows are that cell's anchors, clipped at 0.
    A, H, W = 9, 4, 5
    cls = torch.zeros(1, 2 * A, H, W)
    cls[0, A:, 2, 3] = torch.linspace(0.99, 0.9, A)
    rois, _ = ops.proposal(cls.to(device), torch.zeros(1, 4 * A, H, W, device=device),
                           torch.tensor([[4000., 4000., 1.]], device=device),
                           pre_nms_top_n=-1, post_nms_top_n=A, nms_threshold=1.0)
    rois = rois.cpu()
    expected = (SPEC_ANCHORS + torch.tensor([48, 32, 48, 32.])).clamp(min=0)
    torch.testing.assert_close(rois[:, 1:].double(), expected)


def random_rpn(gen, N, H, W, A=9, quantise=None):
    logits = gen.standard_normal((N, 2, A * H, W))
    prob = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    if quantise:
        prob = np.round(prob / quantise) * quantise
    cls = torch.from_numpy(prob.reshape(N, 2 * A, H, W))
    deltas = gen.standard_normal((N, 4 * A, H, W)) * 0.3
    deltas[:, 2::4][:, :, 0, 0] = -6.5  # some collapsed (inverted after +1) boxes
    return cls, torch.from_numpy(deltas)


@pytest.mark.parametrize("case", [
    dict(N=2, H=6, W=8, im_info=[[96, 128, 1.0], [80, 112, 1.6]], pre=6000, post=300, min_size=0),
    dict(N=1, H=10, W=12, im_info=[[160, 192, 1.0]], pre=100, post=30, min_size=0),
    dict(N=2, H=5, W=7, im_info=[[80, 112, 2.0], [64, 100, 0.5]], pre=6000, post=50, min_size=16),
    dict(N=1, H=4, W=5, im_info=[[64, 80, 1.0]], pre=6000, post=60, min_size=0, quantise=0.25),
])
def test_proposal_matches_reference(device, case):
    gen = np.random.default_rng(case["H"] * 7 + case["N"])
    cls, deltas = random_rpn(gen, case["N"], case["H"], case["W"], quantise=case.get("quantise"))
    im_info = torch.tensor(case["im_info"], dtype=torch.float64)
    kw = dict(pre_nms_top_n=case["pre"], post_nms_top_n=case["post"], min_size=case["min_size"])
    ref_rois, ref_scores = proposal_ref(cls, deltas, im_info, **kw)
    rois, scores = (t.cpu() for t in ops.proposal(cls.to(device), deltas.to(device), im_info.to(device), **kw))
    assert rois.shape == (case["N"] * case["post"], 5) and scores.shape == (case["N"] * case["post"], 1)
    torch.testing.assert_close(rois, ref_rois, rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(scores, ref_scores, rtol=0, atol=0)
    rois32, scores32 = (t.cpu() for t in ops.proposal(cls.float().to(device), deltas.float().to(device),
                                                      im_info.float().to(device), **kw))
    torch.testing.assert_close(rois32.double(), ref_rois, rtol=1e-5, atol=2e-3)
    torch.testing.assert_close(scores32.double(), ref_scores, rtol=1e-6, atol=1e-6)


def test_proposal_matches_mxnet(golden, device):
    for i in range(5):
        stride, pre, post, thr, min_size = golden[f"prop{i}_params"]
        rois, scores = ops.proposal(torch.from_numpy(golden[f"prop{i}_cls_prob"]).to(device),
                                    torch.from_numpy(golden[f"prop{i}_bbox_pred"]).to(device),
                                    torch.from_numpy(golden[f"prop{i}_im_info"]).to(device), feature_stride=int(stride),
                                    pre_nms_top_n=int(pre), post_nms_top_n=int(post), nms_threshold=float(thr),
                                    min_size=float(min_size))
        rois, scores = rois.cpu(), scores.cpu()
        torch.testing.assert_close(rois, torch.from_numpy(golden[f"prop{i}_rois"]), rtol=1e-5, atol=1e-3,
                                   msg=lambda m: f"prop{i}: {m}")
        torch.testing.assert_close(scores, torch.from_numpy(golden[f"prop{i}_scores"]), rtol=0, atol=0)


def test_proposal_errors_and_no_grad(device):
    cls, deltas = torch.rand(2, 18, 4, 5, device=device), torch.randn(2, 36, 4, 5, device=device)
    info1, info2 = torch.tensor([[64., 80., 1.]], device=device), torch.tensor([[64., 80., 1.]] * 2, device=device)
    with pytest.raises(RuntimeError, match=r"`im_info` must be \(N, 3\).*N = 2, got \[1, 3\]"):
        ops.proposal(cls, deltas, info1)
    with pytest.raises(RuntimeError, match=r"`bbox_pred` must be \(N, 4\*A, H, W\) with A = 9, got \[2, 32, 4, 5\]"):
        ops.proposal(cls, deltas[:, :32], info2)
    with pytest.raises(RuntimeError, match=r"`cls_prob` must be \(N, 2\*A, H, W\)"):
        ops.proposal(cls, deltas, info2, scales=(8, 16))
    cls.requires_grad_(True)
    rois, scores = ops.proposal(cls, deltas, info2, post_nms_top_n=7)
    assert not rois.requires_grad and rois.shape == (14, 5)
    assert (rois[:7, 0] == 0).all() and (rois[7:, 0] == 1).all()


# ----------------------------------------------------------------------------------------- nms
def test_nms_plus_one_convention_and_reference(device):
    boxes = torch.tensor([[0, 0, 9, 9], [5, 0, 14, 9]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8])
    # +1 convention: IoU = 50 / 150 = 0.333 > 0.3 -> suppressed; torchvision (no +1): 36 / 126 = 0.286 -> kept.
    assert ops.nms(boxes.to(device), scores.to(device), 0.3).tolist() == [0]
    assert torchvision.ops.nms(boxes, scores, 0.3).tolist() == [0, 1]
    gen = np.random.default_rng(6)
    xy = gen.uniform(0, 80, (300, 2))
    b = torch.from_numpy(np.concatenate([xy, xy + gen.uniform(1, 40, (300, 2))], 1))
    s = torch.from_numpy(np.round(gen.uniform(0, 1, 300), 2))  # ties: lower index first
    for thr in (0.3, 0.5, 0.7):
        assert torch.equal(ops.nms(b.to(device), s.to(device), thr).cpu(), nms_ref(b, s, thr))
        assert torch.equal(ops.nms(b.float().to(device), s.float().to(device), thr).cpu(), nms_ref(b, s, thr))


def test_nms_empty_and_errors(device):
    assert ops.nms(torch.zeros(0, 4, device=device), torch.zeros(0, device=device), 0.5).shape == (0,)
    with pytest.raises(RuntimeError, match=r"`scores` must be \(K,\) with K = 3, got \[2\]"):
        ops.nms(torch.zeros(3, 4, device=device), torch.zeros(2, device=device), 0.5)


# ----------------------------------------------------------------------------------------- dispatcher
def test_opcheck(device):
    gen = np.random.default_rng(7)
    data = torch.from_numpy(gen.standard_normal((2, 2 * 9, 6, 7))).float().to(device).requires_grad_(True)
    rois = torch.tensor([[0, 1, 2, 40, 30], [1, -5, 3, 20, 50]], dtype=torch.float32, device=device)
    torch.library.opcheck(torch.ops.dff.psroi_pool.default, (data, rois, 0.125, 2, 3, 3))
    flow = torch.randn(2, 2, 6, 7, device=device, requires_grad=True)
    torch.library.opcheck(torch.ops.dff.flow_warp.default, (data, flow))
    cls, deltas = random_rpn(gen, 2, 4, 5)
    torch.library.opcheck(torch.ops.dff.proposal.default,
                          (cls.float().to(device), deltas.float().to(device),
                           torch.tensor([[64., 80., 1.]] * 2, device=device), 16, [8., 16., 32.],
                           [0.5, 1., 2.], 100, 20, 0.7, 0.))
    boxes = torch.tensor([[0, 0, 9, 9], [5, 0, 14, 9], [30, 30, 40, 40.]], device=device)
    torch.library.opcheck(torch.ops.dff.nms.default, (boxes, torch.tensor([0.9, 0.8, 0.7], device=device), 0.3),
                          test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_runs_in_float32_and_returns_input_dtype(device, dtype):
    data = torch.randn(1, 2 * 9, 6, 7, device=device)
    rois = torch.tensor([[0, 1, 2, 40, 30.]], device=device)
    flow = torch.randn(1, 2, 6, 7, device=device)
    with torch.autocast(device, dtype=dtype):
        out = ops.psroi_pool(data.to(dtype), rois, 0.125, 2, 3)
        warped = ops.flow_warp(data.to(dtype), flow)
    assert out.dtype == dtype and warped.dtype == dtype
    torch.testing.assert_close(out.float(), ops.psroi_pool(data.to(dtype).float(), rois, 0.125, 2, 3),
                               rtol=1e-2, atol=1e-2)
    torch.testing.assert_close(warped.float(), ops.flow_warp(data.to(dtype).float(), flow), rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_and_bfloat16_are_computed_in_float32(device, dtype):
    """Outside autocast too (csrc/ops/common/reduced_float.h): inputs of one reduced dtype give exactly the
    float32 result of the same (rounded) values, returned in that dtype; a mixture of dtypes is an error
    naming the arguments, as for float32 against float64."""
    gen = np.random.default_rng(8)
    data = torch.from_numpy(gen.standard_normal((2, 2 * 9, 6, 7))).to(device, dtype).requires_grad_(True)
    rois = torch.tensor([[0, 1, 2, 40, 30], [1, -5, 3, 20, 50]], dtype=dtype, device=device)
    out = ops.psroi_pool(data, rois, 0.125, 2, 3)
    ref = ops.psroi_pool(data.detach().float(), rois.float(), 0.125, 2, 3)
    assert out.dtype == dtype and torch.equal(out, ref.to(dtype))
    flow = torch.from_numpy(gen.standard_normal((2, 2, 6, 7))).to(device, dtype).requires_grad_(True)
    warped = ops.flow_warp(data, flow)
    assert warped.dtype == dtype and torch.equal(warped, ops.flow_warp(data.detach().float(), flow.detach().float())
                                                 .to(dtype))
    warped.sum().backward()  # the backward kernels follow the same rule
    assert data.grad.dtype == dtype and flow.grad.dtype == dtype
    f32_data, f32_flow = data.detach().float().requires_grad_(True), flow.detach().float().requires_grad_(True)
    ops.flow_warp(f32_data, f32_flow).sum().backward()
    # (psroi_pool's output took no backward: data.grad is the warp's alone)
    assert torch.equal(data.grad, f32_data.grad.to(dtype)) and torch.equal(flow.grad, f32_flow.grad.to(dtype))
    cls, deltas = random_rpn(gen, 1, 4, 5)
    im_info = torch.tensor([[64., 80., 1.]])
    rois_h, scores_h = ops.proposal(cls.to(device, dtype), deltas.to(device, dtype), im_info.to(device, dtype),
                                    post_nms_top_n=20)
    rois_f, scores_f = ops.proposal(cls.to(dtype).float().to(device), deltas.to(dtype).float().to(device),
                                    im_info.to(dtype).float().to(device), post_nms_top_n=20)
    assert rois_h.dtype == scores_h.dtype == dtype
    assert torch.equal(rois_h, rois_f.to(dtype)) and torch.equal(scores_h, scores_f.to(dtype))
    boxes = torch.tensor([[0, 0, 9, 9], [5, 0, 14, 9], [30, 30, 40, 40.]], device=device)
    keep = ops.nms(boxes.to(dtype), torch.tensor([0.9, 0.8, 0.7], device=device, dtype=dtype), 0.3)
    assert keep.dtype == torch.long and keep.tolist() == [0, 2]
    with pytest.raises(RuntimeError, match=r"`rois` has dtype Float but `data` has dtype (Half|BFloat16)"):
        ops.psroi_pool(data.detach(), rois.float(), 0.125, 2, 3)


def test_torch_compile_traces_the_ops(device):
    def f(d, fl):
        return ops.flow_warp(d, fl).sum(1)

    data, flow = torch.randn(1, 3, 5, 6, device=device), torch.randn(1, 2, 5, 6, device=device)
    compiled = torch.compile(f, backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(data, flow), f(data, flow))


def test_build_info():
    info = ops.build_info()
    assert info == "cpu" or info.startswith("cpu+cuda ")
    if os.environ.get("DFF_EXPECT_CUDA_BUILD") == "1":
        assert info.startswith("cpu+cuda "), f"the CUDA kernels were not compiled: build_info() = {info!r}"
