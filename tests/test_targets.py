"""Hand-worked checks of box coding, anchors, RPN / R-CNN targets, OHEM and the four losses
(the original's rpn/ and rcnn/ target code and its config values)."""
import copy
import math

import pytest
import torch

from lib.bbox import bbox_overlaps, bbox_pred, bbox_transform, clip_boxes
from lib.config import load_config
from lib.rcnn import (ohem_select, rcnn_bbox_loss, rcnn_cls_loss, rpn_bbox_loss, rpn_cls_loss, sample_rois,
                      smooth_l1)
from lib.rpn import assign_anchor, generate_anchors, shifted_anchors

YAML = 'experiments/rfcn/cfgs/resnet_v1_101_imagenet_vid_rfcn_end2end_ohem.yaml'

# docs/fidelity.md §3.6, ratio-major / scale-minor
SPEC_ANCHORS = [[-84, -40, 99, 55], [-176, -88, 191, 103], [-360, -184, 375, 199],
                [-56, -56, 71, 71], [-120, -120, 135, 135], [-248, -248, 263, 263],
                [-36, -80, 51, 95], [-80, -168, 95, 183], [-168, -344, 183, 359]]


@pytest.fixture(scope='module')
def base_cfg():
    return load_config(YAML)


@pytest.fixture
def cfg(base_cfg):
    return copy.deepcopy(base_cfg)


def t(x, dtype=torch.float32):
    return torch.tensor(x, dtype=dtype)


# ----------------------------------------------------------------------------------------------- boxes
def test_config_values(cfg):
    T = cfg.TRAIN
    assert (T.RPN_BATCH_SIZE, T.RPN_FG_FRACTION, T.RPN_POSITIVE_OVERLAP, T.RPN_NEGATIVE_OVERLAP) == (256, 0.5, 0.7, 0.3)
    assert (T.BATCH_ROIS, T.BATCH_ROIS_OHEM, T.FG_THRESH, T.BG_THRESH_HI, T.BG_THRESH_LO) == (-1, 128, 0.5, 0.5, 0.0)
    assert tuple(cfg.network.ANCHOR_STDS) == (0.1, 0.1, 0.4, 0.4) and tuple(T.BBOX_STDS) == (0.1, 0.1, 0.2, 0.2)


def test_iou_plus_one():
    a = t([[0, 0, 9, 9]])                                  # 10 x 10 = 100 pixels
    q = t([[5, 5, 14, 14],                                 # 5 x 5 = 25 shared: 25 / 175
           [9, 9, 18, 18],                                 # one shared pixel: 1 / 199
           [10, 0, 19, 9],                                 # adjacent, no shared pixel
           [0, 0, 9, 9],                                   # identical
           [0, 0, 4, 9]])                                  # contained half: 50 / 100
    got = bbox_overlaps(a, q)
    assert got.shape == (1, 5)
    exp = t([[25 / 175, 1 / 199, 0.0, 1.0, 0.5]])
    torch.testing.assert_close(got, exp)
    assert bbox_overlaps(a, q[:0]).shape == (1, 0) and bbox_overlaps(a[:0], q).shape == (0, 5)
    # extra columns (e.g. the class of gt boxes) are ignored
    torch.testing.assert_close(bbox_overlaps(a, torch.cat([q, torch.ones(5, 1)], 1)), exp)


def test_transform_by_hand_and_round_trip():
    ex = t([[0, 0, 9, 9]])        # w = h = 10, centre (4.5, 4.5)
    gt = t([[2, 2, 11, 21]])      # w = 10, h = 20, centre (6.5, 11.5)
    got = bbox_transform(ex, gt)
    torch.testing.assert_close(got, t([[0.2, 0.7, 0.0, math.log(2.0)]]))
    torch.testing.assert_close(bbox_pred(ex, got), gt)

    g = torch.Generator().manual_seed(0)
    xy = torch.rand(20, 2, generator=g) * 100
    wh = torch.rand(20, 2, generator=g) * 80 + 1
    boxes = torch.cat([xy, xy + wh], 1).double()
    xy2 = torch.rand(20, 2, generator=g) * 100
    gts = torch.cat([xy2, xy2 + torch.rand(20, 2, generator=g) * 80 + 1], 1).double()
    d = bbox_transform(boxes, gts)
    torch.testing.assert_close(bbox_pred(boxes, d), gts)
    # k = 2 column groups decode independently
    two = bbox_pred(boxes, torch.cat([torch.zeros_like(d), d], 1))
    torch.testing.assert_close(two[:, :4], boxes)
    torch.testing.assert_close(two[:, 4:], gts)
    assert bbox_pred(boxes[:0], d[:0]).shape == (0, 4)


def test_pred_decode_by_hand():
    # w = 10, cx = 4.5; dx = 0.1 -> cx 5.5; dw = log 2 -> w 20 -> x1 = 5.5 - 9.5 = -4, x2 = 15
    got = bbox_pred(t([[0, 0, 9, 9]]), t([[0.1, 0.0, math.log(2.0), 0.0]]))
    torch.testing.assert_close(got, t([[-4.0, 0.0, 15.0, 9.0]]))


def test_clip_boxes():
    b = t([[-5, -3, 120, 90, 10, 20, 30, 40]])
    got = clip_boxes(b, 80, 100)           # height 80, width 100
    torch.testing.assert_close(got, t([[0, 0, 99, 79, 10, 20, 30, 40]]))
    assert b[0, 0] == -5                   # input untouched


# --------------------------------------------------------------------------------------------- anchors
def test_anchors_equal_spec_table():
    a = generate_anchors(16, (0.5, 1, 2), (8, 16, 32))
    assert a.dtype == torch.float32 and a.shape == (9, 4)
    assert a.tolist() == [[float(v) for v in row] for row in SPEC_ANCHORS]
    assert generate_anchors().tolist() == a.tolist()


def test_shifted_anchor_order():
    base = generate_anchors()
    H, W, A = 2, 3, 9
    all_a = shifted_anchors(H, W, 16, base)
    assert all_a.shape == (H * W * A, 4)
    for h in range(H):
        for w in range(W):
            for a in range(A):
                exp = base[a] + t([16 * w, 16 * h, 16 * w, 16 * h])
                assert torch.equal(all_a[(h * W + w) * A + a], exp)


# ------------------------------------------------------------------------------------------ RPN targets
LINE = t([[0, 0, 15, 15]])   # a single 16 x 16 base anchor: on a 1 x 4 map the anchors are x = 0, 16, 32, 48


def test_rpn_inside_anchors_real_anchors(cfg):
    # 150 x 200 image, 10 x 13 map. Worked out by hand: inside (x1>=0, y1>=0, x2<200, y2<150) are only
    # anchor 3 ([-56,-56,71,71]) at h=4, w=4..8 and anchor 0 ([-84,-40,99,55]) at w=6, h=3..5.
    out = assign_anchor(10, 13, torch.zeros(0, 5), 150, 200, cfg, generator=torch.Generator().manual_seed(0))
    lab = out['label']
    assert lab.shape == (9, 10, 13) and lab.dtype == torch.int64
    assert out['bbox_target'].shape == (36, 10, 13) and out['bbox_weight'].shape == (36, 10, 13)
    inside = {(a, h, w) for a, h, w in torch.nonzero(lab != -1).tolist()}
    assert inside == {(3, 4, w) for w in range(4, 9)} | {(0, h, 6) for h in range(3, 6)}
    assert (lab[lab != -1] == 0).all()            # no gt: every inside anchor is a negative (8 < 256 kept)
    assert out['bbox_weight'].abs().sum() == 0 and out['bbox_target'].abs().sum() == 0


def test_rpn_labels_real_anchors(cfg):
    # gt = anchor 3 at (h=4, w=6) = [40, 8, 167, 135] (128 x 128).
    # anchor 3 at w=5 / w=7: IoU 112*128 / (2*128^2 - 112*128) = 0.778 >= 0.7 -> fg; w=6: IoU 1 -> fg;
    # w=4 / w=8: IoU 96*128 / (2*128^2 - 96*128) = 0.6 -> ignore; anchor 0 at w=6 (184 x 96):
    # 128*96 / (17664 + 16384 - 12288) = 0.565 -> ignore.
    gt = t([[40, 8, 167, 135, 3]])
    out = assign_anchor(10, 13, gt, 150, 200, cfg, generator=torch.Generator().manual_seed(0))
    lab = out['label']
    assert {tuple(x) for x in torch.nonzero(lab == 1).tolist()} == {(3, 4, 5), (3, 4, 6), (3, 4, 7)}
    assert (lab == 0).sum() == 0
    for a, h, w in [(3, 4, 4), (3, 4, 8), (0, 3, 6), (0, 4, 6), (0, 5, 6)]:   # inside, 0.3 <= IoU < 0.7
        assert lab[a, h, w] == -1
    tg, wt = out['bbox_target'], out['bbox_weight']
    # anchor [24, 8, 151, 135] -> gt: dx = 16 / 128 = 0.125, normalised by 0.1 -> 1.25; channels a*4 + k
    torch.testing.assert_close(tg[12:16, 4, 5], t([1.25, 0, 0, 0]))
    torch.testing.assert_close(tg[12:16, 4, 6], t([0, 0, 0, 0]))
    torch.testing.assert_close(tg[12:16, 4, 7], t([-1.25, 0, 0, 0]))
    # targets exist for every inside anchor (here an ignored one, dx = 32 / 128 / 0.1), weights only on fg
    torch.testing.assert_close(tg[12:16, 4, 4], t([2.5, 0, 0, 0]))
    assert wt[12:16, 4, 4].sum() == 0 and wt[12:16, 4, 5].tolist() == [1, 1, 1, 1]
    assert wt.sum() == 12
    # outside anchors: target 0
    assert tg[:, 0, 0].abs().sum() == 0


def test_rpn_tie_rule_and_border(cfg):
    # anchors x = 0, 16, 32, 48 (16 x 16); image 16 x 63: x2 = 63 is not < 63 -> the last anchor is outside.
    # gt [8, 0, 23, 15] straddles anchors 0 and 1 with IoU 128 / 384 = 1/3 each: both are the gt's best (tie)
    gt = t([[8, 0, 23, 15, 1]])
    out = assign_anchor(1, 4, gt, 16, 63, cfg, base_anchors=LINE)
    assert out['label'].tolist() == [[[1, 1, 0, -1]]]
    # dx = +-8 / 16 / 0.1; anchor 2 (negative) still gets its target towards the gt: (15.5 - 39.5) / 16 / 0.1
    torch.testing.assert_close(out['bbox_target'][:, 0, :], t([[5.0, -5.0, -15.0, 0.0], [0] * 4, [0] * 4, [0] * 4]))
    assert out['bbox_weight'][:, 0, :].tolist() == [[1, 1, 0, 0]] * 4


def test_rpn_best_anchor_beats_negative_and_dh_norm(cfg):
    # a 4 x 4 gt: IoU with anchor 0 = 16 / 256 < 0.3, but it is the gt's best -> positive (assigned after
    # the negatives, RPN_CLOBBER_POSITIVES false)
    out = assign_anchor(1, 4, t([[0, 0, 3, 3, 1]]), 16, 64, cfg, base_anchors=LINE)
    assert out['label'].tolist() == [[[1, 0, 0, 0]]]
    # gt [0, 0, 15, 31]: IoU 0.5 with anchor 0; dy = (15.5 - 7.5) / 16 = 0.5 -> 5.0; dh = log 2 / 0.4
    out = assign_anchor(1, 4, t([[0, 0, 15, 31, 1]]), 16, 64, cfg, base_anchors=LINE)
    assert out['label'].tolist() == [[[1, 0, 0, 0]]]
    torch.testing.assert_close(out['bbox_target'][:4, 0, 0], t([0.0, 5.0, 0.0, math.log(2.0) / 0.4]))


def test_rpn_zero_overlap_gt_quirk(cfg):
    # as the original's np.where(overlaps == gt_max_overlaps): a gt that overlaps no inside anchor has max
    # IoU 0, so every inside anchor with IoU 0 to it becomes positive
    gt = t([[0, 0, 15, 15, 1], [100, 100, 110, 110, 2]])
    out = assign_anchor(1, 4, gt, 16, 64, cfg, base_anchors=LINE)
    assert out['label'].tolist() == [[[1, 1, 1, 1]]]


def test_rpn_layout_matches_shifted_anchors(cfg):
    base = t([[0, 0, 15, 15], [0, 0, 7, 15]])                # A = 2
    H, W, A = 3, 4, 2
    gt = t([[5, 3, 40, 30, 1]])
    out = assign_anchor(H, W, gt, 100, 100, cfg, base_anchors=base)
    anchors = shifted_anchors(H, W, 16, base.double())
    tgt = bbox_transform(anchors, gt.double().expand(len(anchors), 5)) / torch.tensor([0.1, 0.1, 0.4, 0.4]).double()
    for h in range(H):
        for w in range(W):
            for a in range(A):
                i = (h * W + w) * A + a
                torch.testing.assert_close(out['bbox_target'][a * 4:a * 4 + 4, h, w], tgt[i].float())


def test_rpn_subsampling_counts(cfg):
    # 20 x 20 map of 16 x 16 anchors in a 320 x 320 image: all 400 inside. 200 gts equal to 200 anchors
    # -> 200 positives (IoU 1), 200 negatives (IoU 0). Kept: 128 fg, 256 - 128 = 128 bg.
    H = W = 20
    anchors = shifted_anchors(H, W, 16, LINE)
    pick = torch.randperm(400, generator=torch.Generator().manual_seed(1))[:200]
    gt = torch.cat([anchors[pick], torch.ones(200, 1)], 1)
    out1 = assign_anchor(H, W, gt, 320, 320, cfg, generator=torch.Generator().manual_seed(7), base_anchors=LINE)
    out2 = assign_anchor(H, W, gt, 320, 320, cfg, generator=torch.Generator().manual_seed(7), base_anchors=LINE)
    out3 = assign_anchor(H, W, gt, 320, 320, cfg, generator=torch.Generator().manual_seed(8), base_anchors=LINE)
    lab = out1['label'].flatten()             # A = 1: index h*W + w = anchor index
    assert (lab == 1).sum() == 128 and (lab == 0).sum() == 128 and (lab == -1).sum() == 144
    is_gt = torch.zeros(400, dtype=torch.bool)
    is_gt[pick] = True
    assert is_gt[lab == 1].all() and not is_gt[lab == 0].any()
    assert out1['bbox_weight'].sum() == 128 * 4
    assert torch.equal(out1['label'], out2['label'])            # reproducible
    assert not torch.equal(out1['label'], out3['label'])
    # few positives: the negatives fill up to 256
    out = assign_anchor(H, W, gt[:10], 320, 320, cfg, generator=torch.Generator().manual_seed(0), base_anchors=LINE)
    assert (out['label'] == 1).sum() == 10 and (out['label'] == 0).sum() == 246


def test_rpn_no_gt_subsampled(cfg):
    out = assign_anchor(20, 20, torch.zeros(0, 5), 320, 320, cfg, generator=torch.Generator().manual_seed(0),
                        base_anchors=LINE)
    assert (out['label'] == 0).sum() == 256 and (out['label'] == -1).sum() == 144
    assert out['bbox_weight'].sum() == 0
    # tiny image without any inside anchor
    out = assign_anchor(2, 2, t([[0, 0, 5, 5, 1]]), 10, 10, cfg)
    assert (out['label'] == -1).all()


# ---------------------------------------------------------------------------------------- R-CNN targets
GT = [[10, 10, 29, 29, 5]]                                    # 20 x 20, class 5
ROIS = [[2, 50, 50, 69, 69],    # IoU 0 -> bg
        [2, 10, 10, 29, 29],    # IoU 1 -> fg
        [2, 10, 10, 29, 33],    # 20 x 24, IoU 400 / 480 -> fg; dy = (19.5 - 21.5) / 24, dh = log(20 / 24)
        [2, 20, 10, 39, 29],    # IoU 200 / 600 -> bg
        [2, 12, 10, 31, 29]]    # IoU 360 / 440 -> fg; dx = -2 / 20


def test_sample_rois_keep_all(cfg):
    rois, labels, tg, wt = sample_rois(t(ROIS), t(GT), 31, cfg)
    # candidates: 5 rois + the gt (index 5); fg first (index order), then bg
    exp_rois = [ROIS[1], ROIS[2], ROIS[4], [2] + GT[0][:4], ROIS[0], ROIS[3]]
    assert rois.tolist() == [[float(v) for v in r] for r in exp_rois]
    assert labels.dtype == torch.int64 and labels.tolist() == [5, 5, 5, 5, 0, 0]
    assert tg.shape == (6, 8) and wt.shape == (6, 8)
    exp = torch.zeros(6, 8)
    exp[1, 4:] = t([0.0, (-2 / 24) / 0.1, 0.0, math.log(20 / 24) / 0.2])
    exp[2, 4:] = t([(-2 / 20) / 0.1, 0.0, 0.0, 0.0])
    torch.testing.assert_close(tg, exp)
    assert wt[:4, 4:].eq(1).all() and wt[:, :4].eq(0).all() and wt[4:].eq(0).all()


def test_sample_rois_class_specific(cfg):
    _, labels, tg, wt = sample_rois(t(ROIS), t(GT), 7, cfg, class_agnostic=False)
    assert tg.shape == (6, 28)
    assert wt[:4, 20:24].eq(1).all() and wt.sum() == 16
    torch.testing.assert_close(tg[2, 20:24], t([-1.0, 0.0, 0.0, 0.0]))


def test_sample_rois_no_gt(cfg):
    rois, labels, tg, wt = sample_rois(t(ROIS), torch.zeros(0, 5), 31, cfg)
    assert rois.shape == (5, 5) and (labels == 0).all() and tg.abs().sum() == 0 and wt.sum() == 0


def test_sample_rois_fixed_batch_pads(cfg):
    # BATCH_ROIS 8: fg quota round(0.25 * 8) = 2 of 4 fg; bg: 2 available (< 6) -> padded by 4 random
    # candidates, which count as background whatever their IoU
    cfg.TRAIN.BATCH_ROIS = 8
    cfg.TRAIN.BATCH_IMAGES = 1
    g = torch.Generator().manual_seed(3)
    rois, labels, tg, wt = sample_rois(t(ROIS), t(GT), 31, cfg, generator=g)
    assert rois.shape == (8, 5) and labels.tolist() == [5, 5, 0, 0, 0, 0, 0, 0]
    assert wt[:2, 4:].eq(1).all() and wt[2:].sum() == 0
    again = sample_rois(t(ROIS), t(GT), 31, cfg, generator=torch.Generator().manual_seed(3))
    assert torch.equal(rois, again[0])


# ----------------------------------------------------------------------------------------------- OHEM
def test_ohem_keeps_top_k():
    g = torch.Generator().manual_seed(0)
    M, C, k = 10, 4, 4
    score = torch.randn(M, C, generator=g) * 3
    labels = torch.randint(0, C, (M,), generator=g)
    pred = torch.randn(M, 8, generator=g)
    tgt = torch.randn(M, 8, generator=g)
    wt = torch.zeros(M, 8)
    wt[labels > 0, 4:] = 1
    lab_o, wt_o = ohem_select(score, pred, labels, tgt, wt, k)
    # reference loss, written out
    p = torch.softmax(score.double(), 1)[torch.arange(M), labels]
    x = (pred - tgt).double()
    sl1 = torch.where(x.abs() < 1, 0.5 * x * x, x.abs() - 0.5)
    loss = -torch.log(p + 1e-14) + (wt.double() * sl1).sum(1)
    top = set(torch.argsort(loss, descending=True)[:k].tolist())
    assert set(torch.nonzero(lab_o != -1).flatten().tolist()) == top
    for i in range(M):
        if i in top:
            assert lab_o[i] == labels[i] and torch.equal(wt_o[i], wt[i])
        else:
            assert lab_o[i] == -1 and wt_o[i].sum() == 0
    assert labels.min() >= 0 and wt.sum() == (labels > 0).sum() * 4       # inputs untouched
    # fewer rois than k: all kept
    lab_all, _ = ohem_select(score, pred, labels, tgt, wt, 128)
    assert torch.equal(lab_all, labels)


def test_ohem_no_grad():
    score = torch.randn(5, 3, requires_grad=True)
    pred = torch.randn(5, 8, requires_grad=True)
    lab, wt = ohem_select(score, pred, torch.tensor([0, 1, 2, 0, 1]), torch.zeros(5, 8), torch.ones(5, 8), 2)
    assert not lab.requires_grad and not wt.requires_grad and (lab == -1).sum() == 3


# ---------------------------------------------------------------------------------------------- losses
def test_smooth_l1_values():
    x = t([0.5, -2.0, 0.05, 0.5])
    torch.testing.assert_close(smooth_l1(x[:2], 1.0), t([0.125, 1.5]))
    torch.testing.assert_close(smooth_l1(x[2:], 3.0), t([0.5 * 9 * 0.0025, 0.5 - 0.5 / 9]))


def test_rpn_cls_loss_layout_and_norm():
    # A = 2, H = W = 1: channels [bg0, bg1, fg0, fg1]; labels anchor0 = 1, anchor1 = 0
    score = t([[[[1.0]], [[2.0]], [[3.0]], [[-1.0]]]]).requires_grad_()
    label = torch.tensor([[[[1]], [[0]]]])
    got = rpn_cls_loss(score, label)
    exp = (-torch.log_softmax(t([1.0, 3.0]), 0)[1] - torch.log_softmax(t([2.0, -1.0]), 0)[0]) / 2
    torch.testing.assert_close(got, exp)
    got.backward()
    assert score.grad.abs().sum() > 0
    # two images, each normalised by its own number of valid labels, then summed
    g = torch.Generator().manual_seed(0)
    s = torch.randn(2, 6, 2, 2, generator=g)                 # A = 3
    lab = torch.full((2, 3, 2, 2), -1)
    lab[0, 0, 0, 0] = 1
    lab[1, 1, 1, 0], lab[1, 2, 0, 1], lab[1, 0, 1, 1] = 0, 1, 0
    torch.testing.assert_close(rpn_cls_loss(s, lab), rpn_cls_loss(s[:1], lab[:1]) + rpn_cls_loss(s[1:], lab[1:]))
    torch.testing.assert_close(rpn_cls_loss(s[:1], lab[:1]),
                               -torch.log_softmax(torch.stack([s[0, 0, 0, 0], s[0, 3, 0, 0]]), 0)[1])


def test_all_ignored_is_zero_not_nan():
    score = torch.randn(1, 18, 3, 4, requires_grad=True)
    loss = rpn_cls_loss(score, torch.full((1, 9, 3, 4), -1))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(score.grad).all() and score.grad.abs().sum() == 0
    cls = torch.randn(5, 31, requires_grad=True)
    loss = rcnn_cls_loss(cls, torch.full((5,), -1))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(cls.grad).all()
    assert rcnn_cls_loss(torch.zeros(0, 31), torch.zeros(0, dtype=torch.int64)).item() == 0.0


def test_rpn_bbox_loss_divides_by_batch_size():
    pred = torch.zeros(1, 36, 2, 2, requires_grad=True)
    target = torch.zeros(1, 36, 2, 2)
    weight = torch.zeros(1, 36, 2, 2)
    target[0, 0, 0, 0], weight[0, 0, 0, 0] = 0.5, 1.0      # 0.125
    target[0, 5, 1, 1], weight[0, 5, 1, 1] = -2.0, 1.0     # 1.5
    target[0, 7, 1, 0] = 10.0                               # weight 0: no contribution
    loss = rpn_bbox_loss(pred, target, weight, 256)
    torch.testing.assert_close(loss, torch.tensor(1.625 / 256))
    loss.backward()
    assert pred.grad[0, 0, 0, 0] == -0.5 / 256 and pred.grad[0, 5, 1, 1] == 1.0 / 256
    assert pred.grad[0, 7, 1, 0] == 0
    # N images: per-image losses summed
    p2, t2, w2 = pred.detach().repeat(2, 1, 1, 1), target.repeat(2, 1, 1, 1), weight.repeat(2, 1, 1, 1)
    torch.testing.assert_close(rpn_bbox_loss(p2, t2, w2, 256), torch.tensor(2 * 1.625 / 256))


def test_rcnn_losses():
    g = torch.Generator().manual_seed(0)
    cls = torch.randn(6, 4, generator=g).requires_grad_()
    labels = torch.tensor([1, -1, 0, 3, -1, 2])
    loss = rcnn_cls_loss(cls, labels)
    valid = labels != -1
    exp = torch.nn.functional.cross_entropy(cls[valid], labels[valid], reduction='sum') / 4
    torch.testing.assert_close(loss, exp)
    # per-image normalisation through image_index
    idx = torch.tensor([0, 0, 0, 1, 1, 1])
    torch.testing.assert_close(rcnn_cls_loss(cls, labels, idx),
                               rcnn_cls_loss(cls[:3], labels[:3]) + rcnn_cls_loss(cls[3:], labels[3:]))
    pred = torch.zeros(6, 8, requires_grad=True)
    tgt = torch.zeros(6, 8)
    wt = torch.zeros(6, 8)
    tgt[0, 4:], wt[0, 4:] = 0.5, 1.0                       # 4 * 0.125
    bl = rcnn_bbox_loss(pred, tgt, wt, 128)
    torch.testing.assert_close(bl, torch.tensor(0.5 / 128))
    (loss + bl).backward()
    assert cls.grad[valid].abs().sum() > 0 and cls.grad[~valid].abs().sum() == 0
    assert pred.grad[0, 4:].abs().sum() > 0 and pred.grad[1:].abs().sum() == 0


def test_end_to_end_targets_to_losses(cfg):
    # proposal targets -> OHEM -> losses, gradients reach the heads' outputs
    rois, labels, tg, wt = sample_rois(t(ROIS), t(GT), 31, cfg)
    cls = torch.randn(len(labels), 31, requires_grad=True)
    bp = torch.randn(len(labels), 8, requires_grad=True)
    lab_o, wt_o = ohem_select(cls.detach(), bp.detach(), labels, tg, wt, 3)
    assert (lab_o != -1).sum() == 3
    loss = rcnn_cls_loss(cls, lab_o) + rcnn_bbox_loss(bp, tg, wt_o, 3)
    loss.backward()
    kept = lab_o != -1
    assert cls.grad[kept].abs().sum() > 0 and cls.grad[~kept].abs().sum() == 0
    assert bp.grad[~kept].abs().sum() == 0
