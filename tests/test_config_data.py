"""Config (original keys and values, clear errors) and the ImageNet VID imdb / training loader on data
written in the ILSVRC2015 layout: parsing, flipping, filtering, cache invalidation, order, bad input."""
import os
import shutil

import numpy as np
import pytest

from lib.config import load_config, update_from_list
from lib.config.config import ConfigError
from lib.dataset.imagenet_vid import ImageNetVID, append_flipped_images, filter_roidb
from lib.dataset.loader import EpochOrder, MicroBatchSampler, TrainDataset, feature_size, load_train_roidb
from lib.dataset.synthetic_dataset import SyntheticVID
from lib.dataset.synthetic_vid import ensure_dataset
from tests.small_run import TINY_SYNTHETIC

RFCN_CFG = 'experiments/rfcn/cfgs/resnet_v1_101_imagenet_vid_rfcn_end2end_ohem.yaml'
DFF_CFG = 'experiments/dff_rfcn/cfgs/resnet_v1_101_flownet_imagenet_vid_rfcn_end2end_ohem.yaml'


# ------------------------------------------------------------------------------------------ config
def test_real_yamls_carry_the_spec_values():
    for path in (RFCN_CFG, DFF_CFG):
        c = load_config(path)
        assert c.CLASS_AGNOSTIC is True and c.SCALES == [(600, 1000)]
        assert list(c.network.PIXEL_MEANS) == [103.06, 115.90, 123.15]
        assert list(c.network.FIXED_PARAMS) == ['conv1', 'bn_conv1', 'res2', 'bn2', 'gamma', 'beta']
        assert list(c.network.ANCHOR_SCALES) == [8, 16, 32] and list(c.network.ANCHOR_RATIOS) == [0.5, 1, 2]
        assert list(c.network.ANCHOR_STDS) == [0.1, 0.1, 0.4, 0.4] and c.network.NORMALIZE_RPN
        assert c.dataset.NUM_CLASSES == 31 and c.dataset.image_set == 'DET_train_30classes+VID_train_15frames'
        assert (c.TRAIN.lr, str(c.TRAIN.lr_step), c.TRAIN.lr_factor) == (0.00025, '1.333', 0.1)
        assert (c.TRAIN.begin_epoch, c.TRAIN.end_epoch, c.TRAIN.momentum, c.TRAIN.wd) == (0, 2, 0.9, 0.0005)
        assert (c.TRAIN.BATCH_ROIS, c.TRAIN.BATCH_ROIS_OHEM, c.TRAIN.ENABLE_OHEM) == (-1, 128, True)
        assert list(c.TRAIN.BBOX_STDS) == [0.1, 0.1, 0.2, 0.2]
        assert (c.TRAIN.RPN_PRE_NMS_TOP_N, c.TRAIN.RPN_POST_NMS_TOP_N, c.TEST.RPN_POST_NMS_TOP_N) == (6000, 300, 300)
        assert (c.TEST.NMS, c.TEST.max_per_image) == (0.3, 300)
        assert c.network.DFF_FEAT_DIM == 1024
    d = load_config(DFF_CFG)
    assert d.dataset.test_image_set == 'VID_val_videos' and d.TEST.KEY_FRAME_INTERVAL == 10
    assert (d.TRAIN.MIN_OFFSET, d.TRAIN.MAX_OFFSET) == (-9, 0)
    assert load_config(RFCN_CFG).dataset.test_image_set == 'VID_val_frames'


def test_unknown_key_names_the_key_and_the_nearest(tmp_path):
    p = tmp_path / 'bad.yaml'
    p.write_text('TRAIN:\n  lr_stpe: "1.333"\n')
    with pytest.raises(ConfigError, match=r"bad\.yaml: unknown config key 'TRAIN\.lr_stpe'; did you mean 'TRAIN\.lr_step'"):
        load_config(str(p))
    with pytest.raises(ConfigError, match="unknown config key 'network.PIXEL_MEAN'"):
        update_from_list(load_config(RFCN_CFG), ['network.PIXEL_MEAN=[1,2,3]'])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        update_from_list(load_config(RFCN_CFG), ['TRAIN.lr'])
    with pytest.raises(ConfigError, match="'TRAIN' is a section"):
        update_from_list(load_config(RFCN_CFG), ['TRAIN=3'])
    with pytest.raises(FileNotFoundError, match='nope.yaml'):
        load_config(str(tmp_path / 'nope.yaml'))


def test_set_overrides_parse_yaml_values():
    c = update_from_list(load_config(RFCN_CFG), ['TRAIN.lr=0.001', 'SCALES=[96,160]', 'TRAIN.FLIP=false'])
    assert c.TRAIN.lr == 0.001 and c.SCALES == [(96, 160)] and c.TRAIN.FLIP is False


# ------------------------------------------------------------------------------------------ imdb
@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('tiny') / 'synthetic_vid')
    ensure_dataset(root, **TINY_SYNTHETIC)
    return root


def _copy(tiny, tmp_path):
    dst = str(tmp_path / 'ILSVRC2015')
    shutil.copytree(tiny, dst)
    return dst


def test_imdb_roidb_flip_filter_and_cache(tiny, tmp_path):
    root = _copy(tiny, tmp_path)
    cache_root = str(tmp_path / 'data')
    imdb = SyntheticVID('VID_train_15frames', cache_root, root)
    roidb = imdb.gt_roidb()
    assert len(roidb) == 2 * 15
    e = roidb[0]
    assert e['pattern'].endswith('train/ILSVRC2015_train_00000000/%06d.JPEG') and e['frame_seg_len'] == 20
    assert e['boxes'].dtype == np.uint16 and e['gt_classes'].dtype == np.int32
    assert (e['boxes'][:, 2] <= e['width'] - 1).all() and (e['boxes'][:, 3] <= e['height'] - 1).all()
    flipped = append_flipped_images(roidb)
    assert len(flipped) == 60 and flipped[30]['flipped']
    b, f = roidb[0]['boxes'].astype(int), flipped[30]['boxes'].astype(int)
    assert (f[:, 0] == e['width'] - b[:, 2] - 1).all() and (f[:, 2] == e['width'] - b[:, 0] - 1).all()
    assert all(len(r['gt_classes']) for r in filter_roidb(flipped))
    # cached; an edited annotation invalidates the cache
    assert os.path.isfile(os.path.join(cache_root, 'cache', 'SyntheticVID_VID_train_15frames_gt_roidb.pkl'))
    xml = imdb.annotation_path(imdb.image_set_index[0])
    text = open(xml).read()
    first_xmin = text.split('<xmin>')[1].split('<')[0]
    open(xml, 'w').write(text.replace(f'<xmin>{first_xmin}<', '<xmin>1<', 1))
    os.utime(xml, ns=(1, 1))
    again = SyntheticVID('VID_train_15frames', cache_root, root).gt_roidb()
    assert again[0]['boxes'][0, 0] == 1


def test_imdb_errors_name_the_file(tiny, tmp_path):
    root = _copy(tiny, tmp_path)
    with pytest.raises(FileNotFoundError, match='VID_nothere.txt'):
        ImageNetVID('VID_nothere', str(tmp_path), root)
    with pytest.raises(ValueError, match='must start with DET_ or VID_'):
        ImageNetVID('train', str(tmp_path), root)
    sets = os.path.join(root, 'ImageSets')
    with open(os.path.join(sets, 'VID_broken.txt'), 'w') as f:
        f.write('train/ILSVRC2015_train_00000000 1 0 20\ntrain/x 1 2\n')
    with pytest.raises(ValueError, match=r'VID_broken.txt:2: malformed line'):
        ImageNetVID('VID_broken', str(tmp_path), root)
    with open(os.path.join(sets, 'VID_missing.txt'), 'w') as f:
        f.write('train/ILSVRC2015_train_00000099 1 0 20\n')
    with pytest.raises(FileNotFoundError, match=r'ILSVRC2015_train_00000099/000000.JPEG'):
        ImageNetVID('VID_missing', str(tmp_path), root).gt_roidb()
    idx = SyntheticVID('VID_train_15frames', str(tmp_path), root).image_set_index[3]
    xml = os.path.join(root, 'Annotations', 'VID', idx + '.xml')
    open(xml, 'w').write('<annotation><size>')
    with pytest.raises(Exception, match=os.path.basename(xml)):
        SyntheticVID('VID_train_15frames', str(tmp_path / 'c2'), root).gt_roidb()


def test_training_loader_sizes_order_and_a_corrupt_image(tiny, tmp_path):
    from tests.small_run import tiny_overrides
    root = _copy(tiny, tmp_path)
    cfg = update_from_list(load_config('experiments/rfcn/cfgs/synthetic_vid_cpu.yaml'),
                           [o for o in tiny_overrides(tmp_path) if not o.startswith('dataset.dataset_path')]
                           + [f'dataset.dataset_path={root}'])
    roidb = load_train_roidb(cfg)
    assert len(roidb) <= 2 * (2 * 15 + 4) and all(len(r['gt_classes']) for r in roidb)
    order = EpochOrder(roidb, 4, seed=0)
    chunks = order.order(0)
    assert chunks.shape == (len(roidb) // 4, 4)
    assert (order.order(0) == chunks).all() and not (order.order(1) == chunks).all()
    # aspect grouping: landscape and portrait images are permuted apart before chunking
    mixed = [{'width': 10, 'height': 5}] * 6 + [{'width': 5, 'height': 10}] * 6
    for c in EpochOrder(mixed, 2, seed=3, shuffle=True).order(0):
        assert len({mixed[i]['width'] for i in c}) == 1
    # 2 processes x 1 image x 2 accumulation steps cover each update's 4 images exactly once
    seen = []
    for rank in range(2):
        seen += [i for mb in MicroBatchSampler(order, 0, 0, rank, 2, 1, 2) for _, i in mb]
    assert sorted(seen) == sorted(chunks.flatten().tolist())
    ds = TrainDataset(roidb, cfg)
    item = ds[(0, 0)]
    assert tuple(item['data'].shape) == (3, 96, 160) and item['im_info'].tolist() == [96, 160, 1.0]
    assert feature_size(96) == 6 and feature_size(160) == 10 and feature_size(600) == 38 and feature_size(1000) == 63
    open(roidb[0]['image'], 'wb').write(b'not a jpeg')
    with pytest.raises(ValueError, match=os.path.basename(roidb[0]['image'])):
        ds[(0, 0)]
