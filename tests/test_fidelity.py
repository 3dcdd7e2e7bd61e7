"""Behaviours of the original that change results, each against the port's earlier behaviour: images read
with IMREAD_COLOR | IMREAD_IGNORE_ORIENTATION, full float32 (no TF32) unless a config key allows it, the
aspect-grouping loader's unshuffled chunks when the roidb length is a multiple of the update size,
TRAIN.BBOX_NORMALIZATION_PRECOMPUTED true by default, and a random one of several SCALES per image."""
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
    """The original's AnchorLoader.reset with shuffle and aspect grouping (rfcn/core/loader.py), verbatim
    but for the RNG: returns the image order of one epoch."""
    widths = np.array([r['width'] for r in roidb])
    heights = np.array([r['height'] for r in roidb])
    horz = (widths >= heights)
    vert = np.logical_not(horz)
    horz_inds = np.where(horz)[0]
    vert_inds = np.where(vert)[0]
    inds = np.hstack((rng.permutation(horz_inds), rng.permutation(vert_inds)))
    extra = inds.shape[0] % batch_size
    inds_ = np.reshape(inds[:-extra], (-1, batch_size))
    row_perm = rng.permutation(np.arange(inds_.shape[0]))
    inds[:-extra] = np.reshape(inds_[row_perm, :], (-1,))
    return inds


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
