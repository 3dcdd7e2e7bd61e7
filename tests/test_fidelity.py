"""Behaviours of the original that change results, each where a port easily differs (docs/fidelity.md): images read
with IMREAD_COLOR | IMREAD_IGNORE_ORIENTATION, full float32 (no TF32) unless a config key allows it, the
aspect-grouping loader's unshuffled chunks when the roidb length is a multiple of the update size,
TRAIN.BBOX_NORMALIZATION_PRECOMPUTED true by default, a random one of several SCALES per image, DFF's key-frame
offsets and unrounded boxes, MXNet's SGD and lr step, the test post-processing and the heads' initialisation."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from lib.config import load_config, update_from_list
from lib.config.config import _defaults
from lib.dataset.loader import EpochOrder, TrainDataset, load_train_roidb
from lib.dataset.synthetic_vid import ensure_dataset
from lib.utils.image import choose_scale, prepare_image, read_image
from tests.small_run import ROOT, tiny_overrides

RFCN_CFG = os.path.join(ROOT, 'experiments', 'rfcn', 'cfgs', 'synthetic_vid_cpu.yaml')
DFF_CFG = os.path.join(ROOT, 'experiments', 'dff_rfcn', 'cfgs', 'synthetic_vid_cpu.yaml')
REAL_CFGS = [os.path.join(ROOT, 'experiments', 'rfcn', 'cfgs', 'resnet_v1_101_imagenet_vid_rfcn_end2end_ohem.yaml'),
             os.path.join(ROOT, 'experiments', 'dff_rfcn', 'cfgs',
                          'resnet_v1_101_flownet_imagenet_vid_rfcn_end2end_ohem.yaml')]


def test_exif_orientation_is_not_applied(tmp_path):
    """A JPEG stored 40 x 80 with EXIF orientation 6 ('rotate 90'): cv2.IMREAD_COLOR alone returns it
    rotated to 80 x 40; the original's flags keep the stored pixels, where the annotation's boxes are."""
    stored = np.zeros((40, 80, 3), np.uint8)
    stored[:, :20] = 255  # a white band on the left of the stored image
    exif = Image.Exif()
    exif[0x0112] = 6
    path = str(tmp_path / 'rotated.JPEG')
    Image.fromarray(stored).save(path, exif=exif.tobytes(), quality=98)
    im = read_image(path)
    assert im.shape == (40, 80, 3)
    assert im[:, :15].mean() > 240 and im[:, 30:].mean() < 15
    cfg = update_from_list(load_config(RFCN_CFG), ['SCALES=[40,80]'])
    data, im_info = prepare_image(path, cfg, expected_size=(40, 80))
    assert tuple(data.shape) == (3, 40, 80) and im_info.tolist() == [40, 80, 1.0]


def test_tf32_off_unless_the_config_allows_it():
    from lib.utils.device import resolve_device
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True  # torch's cuDNN default
        cfg = update_from_list(load_config(RFCN_CFG), ['device=cpu'])
        assert cfg.ALLOW_TF32 is False
        resolve_device(cfg)  # every train / test / demo run resolves its device through this
        assert torch.backends.cudnn.allow_tf32 is False and torch.backends.cuda.matmul.allow_tf32 is False
        resolve_device(update_from_list(cfg, ['ALLOW_TF32=true']))
        assert torch.backends.cudnn.allow_tf32 is True and torch.backends.cuda.matmul.allow_tf32 is True
        for path in REAL_CFGS:
            assert load_config(path).ALLOW_TF32 is False
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _original_reset(roidb, batch_size, rng):
    """A model of the epoch order of the original's AnchorLoader.reset (rfcn/core/loader.py) with shuffle and
    aspect grouping: the landscape images in random order, then the portrait ones in random order; then the
    whole chunks of batch_size change places, but only when the image count is not a multiple of batch_size
    (the original slices with [:-extra], which is empty when extra == 0); the remainder stays at the end."""
    landscape = [i for i, r in enumerate(roidb) if r['width'] >= r['height']]
    portrait = [i for i, r in enumerate(roidb) if r['width'] < r['height']]
    order = np.concatenate([rng.permutation(landscape), rng.permutation(portrait)]).astype(np.int64)
    extra = len(order) % batch_size
    if extra:
        chunks = order[:len(order) - extra].reshape(-1, batch_size)
        order[:len(order) - extra] = chunks[rng.permutation(len(chunks))].reshape(-1)
    return order


def _portrait_chunk_positions(chunks, roidb):
    return [k for k, c in enumerate(chunks) if any(roidb[i]['width'] < roidb[i]['height'] for i in c)]


@pytest.mark.parametrize('n_landscape', [8, 9])
def test_chunk_order_quirk_of_the_aspect_grouping_loader(n_landscape):
    """8 landscape + 4 portrait images, 4 per update: 12 % 4 == 0, the original never shuffles the chunks,
    so the portrait chunk is the last of every epoch; with 9 landscape images (extra = 1) it shuffles them.
    TRAIN.ORIGINAL_CHUNK_ORDER=false shuffles always."""
    roidb = [{'width': 10, 'height': 5}] * n_landscape + [{'width': 5, 'height': 10}] * 4
    divisible = len(roidb) % 4 == 0
    rng = np.random.default_rng(0)
    original = [_portrait_chunk_positions(_original_reset(roidb, 4, rng)[:len(roidb) // 4 * 4].reshape(-1, 4), roidb)
                for _ in range(20)]
    ours = [_portrait_chunk_positions(EpochOrder(roidb, 4, seed=1).order(e), roidb) for e in range(20)]
    shuffled = [_portrait_chunk_positions(EpochOrder(roidb, 4, seed=1, original_chunk_order=False).order(e), roidb)
                for e in range(20)]
    if divisible:
        assert all(p == [2] for p in original) and all(p == [2] for p in ours)
        assert any(p != [2] for p in shuffled)
    else:  # the chunk holding the portrait images moves around in both
        assert len({tuple(p) for p in original}) > 1 and len({tuple(p) for p in ours}) > 1
    assert _defaults().TRAIN.ORIGINAL_CHUNK_ORDER is True
    # every landscape image still comes in random order
    assert len({tuple(EpochOrder(roidb, 4, seed=1).order(e)[0]) for e in range(20)}) > 1


def test_bbox_normalization_precomputed_by_default():
    assert _defaults().TRAIN.BBOX_NORMALIZATION_PRECOMPUTED is True
    # the synthetic configs set it explicitly (true), so they are unchanged; the real ones too
    for path in [RFCN_CFG, DFF_CFG] + REAL_CFGS:
        assert 'BBOX_NORMALIZATION_PRECOMPUTED: true' in open(path).read()
        assert load_config(path).TRAIN.BBOX_NORMALIZATION_PRECOMPUTED is True
    # a config that does not name it gets the original's normalised regression targets
    from lib.rcnn.proposal_target import sample_rois
    cfg = _defaults()
    cfg.TRAIN.BATCH_ROIS = -1  # every candidate kept, fg first: nothing random
    gt = torch.tensor([[10., 10., 50., 50., 1.]])
    rois = torch.tensor([[0., 12., 12., 52., 52.]])
    _, labels, targets, _ = sample_rois(rois, gt, 2, cfg)
    assert labels.tolist() == [1, 1]
    raw = torch.tensor([(30 - 32) / 41, (30 - 32) / 41, 0.0, 0.0])  # centres 32 -> 30, widths 41
    torch.testing.assert_close(targets[0, 4:8], raw / torch.tensor([0.1, 0.1, 0.2, 0.2]))


@pytest.fixture(scope='module')
def tiny_cfg(tmp_path_factory):
    root = tmp_path_factory.mktemp('fidelity')
    cfg = update_from_list(load_config(DFF_CFG), tiny_overrides(root) + ['SCALES=[[96,160],[64,120]]'])
    ensure_dataset(cfg.dataset.dataset_path, **dict(cfg.dataset.SYNTHETIC))
    return cfg


def test_several_scales_one_at_random_per_image_reproducible(tiny_cfg):
    """The original: scale_ind = random.randrange(len(SCALES)) per image, in training and testing. Here a
    draw from (seed, epoch, image): both scales occur, the same seed gives the same sizes, and DFF's key
    frame gets its current frame's scale (one draw per pair, as get_pair_image)."""
    from dff_rfcn.dataset import PairDataset
    roidb = load_train_roidb(tiny_cfg)
    ds = PairDataset(roidb, tiny_cfg)
    items = [(e, i) for e in range(2) for i in range(0, len(roidb), 3)]
    sizes = [tuple(ds[it]['data'].shape[1:]) for it in items]
    assert set(sizes) == {(96, 160), (64, 107)}  # 64 / 96 = 2/3: 160 * 2/3 = 106.7 -> 107
    assert [tuple(ds[it]['data'].shape[1:]) for it in items] == sizes  # reproducible
    for it in items:
        item = ds[it]
        assert item['data'].shape == item['data_ref'].shape
        assert item['im_info'][2] in (1.0, pytest.approx(64 / 96))
    other = update_from_list(load_config(DFF_CFG), [f'SCALES=[[96,160],[64,120]]', 'seed=5'])
    assert [choose_scale(other, 'train', e, i) for e, i in items] != [
        choose_scale(tiny_cfg, 'train', e, i) for e, i in items]  # another seed, other draws
    # testing: per frame for the baseline, per video for DFF (its key frame and the frames warped from it)
    from lib.core.tester import test_scale_index
    frames = [{'image': f'v{v}/{k}.JPEG', 'index': f'v{v}/{k:06d}', 'video': f'v{v}'} for v in range(6) for k in range(10)]
    per_frame = [test_scale_index(tiny_cfg, f, by_video=False) for f in frames]
    per_video = [test_scale_index(tiny_cfg, f, by_video=True) for f in frames]
    assert set(per_frame) == {0, 1} and set(per_video) == {0, 1}
    assert all(len(set(per_video[v * 10:(v + 1) * 10])) == 1 for v in range(6))
    assert any(len(set(per_frame[v * 10:(v + 1) * 10])) == 2 for v in range(6))
    # a single scale (every config of the original, the synthetic ones): always it, no draw
    single = load_config(RFCN_CFG)
    assert {choose_scale(single, 'train', e, i) for e, i in items} == {0}
    ds1 = TrainDataset(roidb, update_from_list(load_config(RFCN_CFG), ['SCALES=[96,160]']))
    assert {tuple(ds1[it]['data'].shape[1:]) for it in items} == {(96, 160)}


def test_dff_key_frame_offsets_eq_flag_and_unrounded_boxes(tiny_cfg, monkeypatch):
    """get_pair_image: the key frame is the listed frame plus a uniform offset in [MIN_OFFSET, MAX_OFFSET] =
    [-9, 0], clipped to the video; eq_flag = 1 exactly when it is the listed frame, and for DET images (their
    own key). DFF's gt boxes are scaled only; the baseline's (get_image) are also rounded and clipped."""
    from dff_rfcn.dataset import PairDataset
    roidb = load_train_roidb(tiny_cfg)
    ds = PairDataset(roidb, tiny_cfg)
    loaded = []

    def fake_load(entry, path=None, scale_index=0):  # no image decoding: record which frame is read
        loaded.append(path)
        return torch.zeros(3, 4, 4), np.array([50, 80, 0.55], np.float32)

    monkeypatch.setattr(ds, 'load', fake_load)
    offsets, det_items = set(), 0
    for epoch in range(8):
        for index, entry in enumerate(roidb):
            loaded.clear()
            item = ds[(epoch, index)]
            if 'pattern' not in entry:
                det_items += 1
                assert item['eq_flag'] == 1.0 and loaded == [None] and item['data_ref'] is item['data']
                continue
            seg = entry['frame_seg_id']
            ref = seg if len(loaded) == 1 else int(os.path.basename(loaded[1]).split('.')[0])
            assert max(seg - 9, 0) <= ref <= seg
            assert item['eq_flag'] == float(ref == seg)
            if seg >= 9:
                offsets.add(ref - seg)
    assert offsets == set(range(-9, 1)) and det_items > 0
    entry = {'boxes': np.array([[10, 20, 150, 95]], np.uint16), 'gt_classes': np.array([3], np.int32)}
    im_info = np.array([50, 80, 0.55], np.float32)
    raw = ds.gt_boxes(entry, 0.55, im_info, round_clip=False)
    np.testing.assert_allclose(raw, [[5.5, 11.0, 82.5, 52.25, 3.0]], rtol=1e-6)
    # the baseline: np.round (half to even: 5.5 -> 6, 82.5 -> 82), then clipped to the image (W-1, H-1)
    np.testing.assert_array_equal(TrainDataset(roidb, tiny_cfg).gt_boxes(entry, 0.55, im_info),
                                  [[6.0, 11.0, 79.0, 49.0, 3.0]])


def test_mxnet_sgd_update_and_the_lr_step():
    """MXNet's SGD: mom = momentum * mom - lr * (grad + wd * w); w += mom. An lr change affects only new
    gradients (torch.optim.SGD would rescale the whole buffer), and a parameter without a gradient still
    gets momentum and weight decay. The lr drops by lr_factor at update int(lr_step * |roidb| / images per
    update)."""
    from lib.core.trainer import MXNetSGD, lr_schedule
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    idle = torch.nn.Parameter(torch.tensor([3.0]))
    opt = MXNetSGD([{'params': [w, idle], 'weight_decay': 0.01, 'lr_mult': 1.0}], lr=0.1, momentum=0.9)
    g = torch.tensor([0.5, 0.5])
    w.grad = g.clone()
    opt.step()
    mom1 = -0.1 * (g + 0.01 * torch.tensor([1.0, -2.0]))
    w1 = torch.tensor([1.0, -2.0]) + mom1
    torch.testing.assert_close(w.detach(), w1)
    torch.testing.assert_close(idle.detach(), torch.tensor([3.0 - 0.1 * 0.01 * 3.0]))
    for group in opt.param_groups:
        group['lr'] = 0.01
    w.grad = g.clone()
    opt.step()
    torch.testing.assert_close(w.detach(), w1 + 0.9 * mom1 - 0.01 * (g + 0.01 * w1))
    cfg = load_config(REAL_CFGS[1])
    lr_at, steps = lr_schedule(cfg, 1000, 4)
    assert steps == [333]  # int(1.333 * 1000 / 4)
    assert lr_at(0) == lr_at(332) == 0.00025 and lr_at(333) == pytest.approx(0.000025)


def test_mxnet_sgd_equals_the_per_parameter_update():
    """MXNetSGD over several steps: bit for bit the per-parameter update
    mom = momentum * mom - lr * lr_mult * (grad + wd * w); w += mom, over several steps, two groups (one with
    lr_mult 0 and no weight decay), parameters with and without a gradient, an lr change."""
    from lib.core.trainer import MXNetSGD
    g = torch.Generator().manual_seed(0)
    shapes = [(8, 4, 3, 3), (8,), (5, 8), (3,)]
    ws = [torch.nn.Parameter(torch.randn(s, generator=g)) for s in shapes]
    frozen = [torch.nn.Parameter(torch.randn(4, generator=g))]
    ref_w = [w.detach().clone() for w in ws + frozen]
    ref_mom = [torch.zeros_like(w) for w in ref_w]
    opt = MXNetSGD([{'params': ws, 'weight_decay': 1e-3, 'lr_mult': 1.0},
                    {'params': frozen, 'weight_decay': 0.0, 'lr_mult': 0.0}], lr=0.05, momentum=0.9)
    for step in range(6):
        if step == 3:
            for group in opt.param_groups:
                group['lr'] = 0.005
        lr = opt.param_groups[0]['lr']
        for i, w in enumerate(ws + frozen):
            w.grad = None if (step + i) % 4 == 0 else torch.randn(w.shape, generator=g)
            grad = w.grad if w.grad is not None else torch.zeros_like(w)
            wd, mult = (1e-3, 1.0) if i < len(ws) else (0.0, 0.0)
            if wd:
                grad = grad.add(ref_w[i], alpha=wd)
            ref_mom[i].mul_(0.9).add_(grad, alpha=-lr * mult)
            ref_w[i].add_(ref_mom[i])
        opt.step()
        for w, r in zip(ws + frozen, ref_w):
            assert torch.equal(w.detach(), r)


def test_post_processing_threshold_nms_and_the_300_cap_keeping_ties():
    """im_detect + pred_eval: per class, scores > thresh (strictly), NMS 0.3; then at most 300 detections,
    cut at the 300th score with >=, so ties at the cut are all kept."""
    from lib.core.tester import postprocess
    n = 400
    x = torch.arange(n, dtype=torch.float32) * 20
    box = torch.stack([x, torch.zeros(n), x + 10, torch.full((n,), 10.0)], 1)
    boxes = torch.cat([torch.zeros(n, 4), box], 1)  # class-agnostic: columns 4..7 for every class
    scores = torch.zeros(n, 2)
    scores[:299, 1], scores[299:, 1] = 0.9, 0.5  # the 300th score (0.5) is shared by 101 boxes
    assert len(postprocess(scores, boxes, 1e-3)) == 400
    scores[299:, 1] = torch.linspace(0.5, 0.4, 101)
    dets = postprocess(scores, boxes, 1e-3)
    assert len(dets) == 300 and dets[:, 1].min() == pytest.approx(0.5)
    scores[:, 1] = 0.25
    scores[:200, 1] = 0.001  # equal to the threshold: dropped
    assert len(postprocess(scores, boxes, 1e-3)) == 200
    # two boxes of IoU > 0.3: the lower-scored one is suppressed; IoU below 0.3 keeps both
    two = torch.tensor([[0, 0, 0, 0, 0, 0, 9, 9], [0, 0, 0, 0, 1, 1, 10, 10], [0, 0, 0, 0, 6, 6, 15, 15.]])
    dets = postprocess(torch.tensor([[0, 0.9], [0, 0.8], [0, 0.7]]), two, 1e-3)
    assert dets[:, 1].tolist() == pytest.approx([0.9, 0.7])


def test_heads_start_from_normal_0_01_and_zero_bias():
    """train_end2end.py: feat_conv_3x3, rpn_cls_score, rpn_bbox_pred, rfcn_cls and rfcn_bbox weights ~ N(0, 0.01),
    biases 0 (the real config's heads)."""
    from lib.model.detection import DetectionHeads, FeatureNet
    from lib.model.resnet_v1 import ResNetV1
    cfg = load_config(REAL_CFGS[0])
    torch.manual_seed(0)
    heads = DetectionHeads(cfg)
    feature = FeatureNet(backbone=ResNetV1(units=(1, 1, 1, 1), width=4), feat_dim=1024)
    for m in (feature.feat_conv_3x3, heads.rpn_cls_score, heads.rpn_bbox_pred, heads.rfcn_cls, heads.rfcn_bbox):
        w = m.weight.detach()
        assert float(w.std()) == pytest.approx(0.01, rel=0.05) and abs(float(w.mean())) < 1e-3
        assert torch.count_nonzero(m.bias.detach()) == 0
    assert tuple(heads.rfcn_cls.weight.shape) == (7 * 7 * 31, 512, 1, 1)
