"""DFF (docs/fidelity.md §5): FlowNet-S output geometry, the propagation (warp x scale), the eq_flag rule, gradients
end to end, the key-frame schedule of inference, the batched mode, and FlowNet pretraining."""
import json
import os

import numpy as np
import pytest
import torch

from dff_rfcn.model import DFF
from dff_rfcn.tester import VideoDetector, frame_position, is_key_frame
from lib.config import load_config, update_from_list
from lib.core.tester import split_frames
from lib.dataset.loader import feature_size
from lib.model.detection import FeatureNet
from lib.model.flownet import FlowNetS
from lib.utils.checkpoint import save_checkpoint
from lib.utils.fileio import load_torch
from tests.small_run import ROOT

SYNTH_CFG = os.path.join(ROOT, 'experiments/dff_rfcn/cfgs/synthetic_vid_cpu.yaml')
REAL_CFG = os.path.join(ROOT, 'experiments/dff_rfcn/cfgs/resnet_v1_101_flownet_imagenet_vid_rfcn_end2end_ohem.yaml')


def small_cfg(*extra):
    return update_from_list(load_config(SYNTH_CFG), ["network.pretrained=''", "network.pretrained_flow=''", *extra])


def small_dff(seed=0):
    torch.manual_seed(seed)
    model = DFF(small_cfg())
    # a non-trivial FlowNet output: random flow head and scale branch (the init makes scale == 1, flow ~ 0)
    torch.nn.init.normal_(model.flownet.Convolution5.weight, 0, 0.05)
    torch.nn.init.normal_(model.flownet.Convolution5_scale.weight, 0, 0.01)
    return model.eval()


def image(seed, h=96, w=160):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, h, w, generator=g) * 255 - 120


def im_info(h=96, w=160):
    return torch.tensor([[h, w, 1.0]])


# ------------------------------------------------------------------ FlowNet geometry (docs/fidelity.md §5.1)
def test_flownet_output_matches_feature_map_for_every_side_200_to_1099():
    cfg_small = small_cfg()
    with torch.device('meta'):
        flownet, feat_small = FlowNetS(), FeatureNet(cfg_small)
    mismatches = []
    for side in range(200, 1100):
        other = 1299 - side  # every side appears once as height and once as width
        x = torch.empty(1, 3, side, other, device='meta')
        flow, scale = flownet(x, x)
        feat = (feature_size(side), feature_size(other))  # the backbone's stride-16 size (checked below)
        if tuple(flow.shape[2:]) != feat or tuple(scale.shape[2:]) != feat or flow.shape[1] != 2:
            mismatches.append((side, other, tuple(flow.shape), tuple(scale.shape), feat))
        if side % 10 == 0:  # the small backbone of the CPU configs on every 10th size
            assert tuple(feat_small(x).shape[2:]) == feat, side
    assert not mismatches, mismatches[:5]
    # the real ResNet-v1-101 feature network on a spread of sizes (same strides as the small one, checked)
    with torch.device('meta'):
        feat_real = FeatureNet(load_config(REAL_CFG))
    for side in list(range(200, 1100, 97)) + [599, 600, 601, 1000, 1099]:
        x = torch.empty(1, 3, side, 1299 - side, device='meta')
        assert feat_real(x).shape[1:] == (1024,) + tuple(flownet(x, x)[0].shape[2:]), side


STRIDE8 = ('network.RCNN_FEAT_STRIDE=8', 'network.RPN_FEAT_STRIDE=8', 'network.ANCHOR_SCALES=[4,8,16]')


def test_stride_8_backbone_and_flownet_share_one_grid():
    """network.RCNN_FEAT_STRIDE 8 (not in the original; docs/configuration.md): res4 keeps stride 1 and is dilated
    by 2, res5 by 4; FlowNet predicts at its stride-8 map without resize_concat5, flow in stride-8 cells (x5)."""
    cfg = small_cfg(*STRIDE8)
    with torch.device('meta'):
        feat, flownet = FeatureNet(cfg), FlowNetS(cfg)
    bb = feat.backbone
    assert bb.feat_stride == 8 and flownet.feat_stride == 8 and flownet.flow_scale == 5.0
    assert bb.res4a_branch2a.stride == (1, 1) and bb.res4a_branch2b.dilation == (2, 2)
    assert bb.res5a_branch2b.dilation == (4, 4) and bb.res5a_branch2b.padding == (4, 4)
    for side in range(96, 700, 7):
        other = 799 - side
        x = torch.empty(1, 3, side, other, device='meta')
        expect = (feature_size(side, 3), feature_size(other, 3))
        assert tuple(feat(x).shape[2:]) == expect, side
        flow, scale = flownet(x, x)
        assert tuple(flow.shape[2:]) == expect and tuple(scale.shape[2:]) == expect, side


def test_stride_8_flow_is_in_stride_8_cells():
    """The same FlowNet weights at stride 16 and 8: a constant predicted flow of v (flow/20 at half resolution)
    is 2.5 v cells of 16 pixels and 5 v cells of 8 pixels: the same displacement in pixels."""
    torch.manual_seed(0)
    a, b = FlowNetS(small_cfg()), FlowNetS(small_cfg(*STRIDE8))
    b.load_state_dict(a.state_dict())
    for net in (a, b):
        with torch.no_grad():
            net.Convolution5.weight.zero_()
            net.Convolution5.bias.copy_(torch.tensor([0.4, -0.2]))
    x = image(1)
    fa, fb = a(x, x)[0], b(x, x)[0]
    torch.testing.assert_close(fa[0, :, 0, 0] * 16, fb[0, :, 0, 0] * 8)
    assert fb.shape[-1] == 2 * fa.shape[-1]


def test_stride_8_dff_trains_and_tests_through_the_real_collator():
    cfg = small_cfg(*STRIDE8)
    torch.manual_seed(0)
    model = DFF(cfg)
    grads, losses = _grads(model, _train_batch(model, cfg, [0.0, 1.0]))
    assert all(torch.isfinite(v) for v in losses.values()) and float(losses['rpn_cls_loss'].detach()) > 0
    assert float(grads['flownet.Convolution5.weight'].abs().sum()) > 0
    model.eval()
    with torch.no_grad():
        out, key_feat = model.detect_key(image(3), im_info())
        assert key_feat.shape[2:] == (feature_size(96, 3), feature_size(160, 3))
        model.detect_cur(image(4), im_info(), image(3), key_feat)


@pytest.mark.parametrize('sets, key', [
    (('network.RCNN_FEAT_STRIDE=32', 'network.RPN_FEAT_STRIDE=32'), 'network.RCNN_FEAT_STRIDE'),
    (('network.RCNN_FEAT_STRIDE=8',), 'network.RPN_FEAT_STRIDE'),
    (('network.RCNN_FEAT_STRIDE=12.5', 'network.RPN_FEAT_STRIDE=12.5'), 'network.RCNN_FEAT_STRIDE'),
])
def test_feature_stride_the_network_cannot_give_is_refused(sets, key):
    """Before, any RCNN_FEAT_STRIDE built the stride-16 network and pooled at 1/stride: a silent wrong answer."""
    with pytest.raises(ValueError, match=key.replace('.', r'\.')):
        DFF(small_cfg(*sets))


def test_flownet_real_width_channels_and_scale_init():
    net = FlowNetS()
    assert net.flow_conv1.weight.shape == (64, 6, 7, 7)
    assert net.conv6_1.weight.shape == (1024, 1024, 3, 3)
    assert net.Convolution5_scale.weight.shape == (1024, 194, 1, 1)  # 194 = 64 + 128 + 2 channels at stride 8
    assert float(net.Convolution5_scale.weight.detach().abs().max()) == 0.0
    assert torch.equal(net.Convolution5_scale.bias, torch.ones(1024))
    x = torch.randn(1, 3, 64, 96) * 50
    flow, scale = net(x, x.flip(3))
    assert torch.equal(scale, torch.ones_like(scale))  # weight 0, bias 1: the scale map starts at exactly 1


def test_flownet_input_order_is_current_then_key():
    net = FlowNetS(width_mult=0.125).eval()
    cur, key = image(1, 64, 96), image(2, 64, 96)
    with torch.no_grad():
        a, _ = net(cur, key)
        b, _ = net(key, cur)
        w = net.flow_conv1.weight.clone()
        net.flow_conv1.weight.copy_(torch.cat([w[:, 3:], w[:, :3]], 1))  # swap the two images' filters
        c, _ = net(key, cur)
    assert not torch.allclose(a, b)
    torch.testing.assert_close(a, c)


# ------------------------------------------------------------------ propagation (docs/fidelity.md §5.2)
def _set_constant_flow(model, dx, dy):
    """FlowNet that outputs the constant flow (dx, dy) in feature pixels and the scale map 1."""
    fl = model.flownet
    with torch.no_grad():
        fl.Convolution5.weight.zero_()
        fl.Convolution5.bias.copy_(torch.tensor([dx, dy]) / FlowNetS.FLOW_SCALE)
        fl.Convolution5_scale.weight.zero_()
        fl.Convolution5_scale.bias.fill_(1.0)


def test_zero_flow_and_unit_scale_return_the_key_features_exactly():
    model = small_dff()
    _set_constant_flow(model, 0.0, 0.0)
    key, cur = image(3), image(4)
    with torch.no_grad():
        key_feat = model.feature(key)
        out = model.propagate(key_feat, cur, key)
        assert torch.equal(out, key_feat)
        # and the detections of a non-key frame are then the key frame's own
        k_out, cached = model.detect_key(key, im_info())
        c_out = model.detect_cur(cur, im_info(), key, cached)
    for name in ('rois', 'cls_prob', 'bbox_pred'):
        assert torch.equal(k_out[name], c_out[name]), name


@pytest.mark.parametrize('dx,dy', [(2, 0), (0, -1), (-3, 2)])
def test_constant_flow_shifts_the_features_by_that_many_pixels(dx, dy):
    model = small_dff()
    _set_constant_flow(model, float(dx), float(dy))
    key, cur = image(5), image(6)
    with torch.no_grad():
        key_feat = model.feature(key)
        out = model.propagate(key_feat, cur, key)
    h, w = key_feat.shape[2:]
    # out[y, x] = key_feat[y + dy, x + dx]; zero where that lies outside the map
    expected = torch.zeros_like(key_feat)
    ys, yd = slice(max(0, -dy), min(h, h - dy)), slice(max(0, dy), min(h, h + dy))
    xs, xd = slice(max(0, -dx), min(w, w - dx)), slice(max(0, dx), min(w, w + dx))
    expected[:, :, ys, xs] = key_feat[:, :, yd, xd]
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)
    assert float(key_feat.abs().sum()) > 0


def test_scale_map_multiplies_the_warped_features():
    model = small_dff()
    _set_constant_flow(model, 0.0, 0.0)
    with torch.no_grad():
        model.flownet.Convolution5_scale.bias.copy_(torch.linspace(0.5, 2.0, model.flownet.Convolution5_scale.bias.numel()))
        key = image(7)
        key_feat = model.feature(key)
        out = model.propagate(key_feat, image(8), key)
    torch.testing.assert_close(out, key_feat * model.flownet.Convolution5_scale.bias.view(1, -1, 1, 1))


def test_zero_flow_ablation_copies_the_key_features():
    model = small_dff()
    key, cur = image(9), image(10)
    with torch.no_grad():
        key_feat = model.feature(key)
        warped = model.propagate(key_feat, cur, key)
        model.zero_flow = True
        copied = model.propagate(key_feat, cur, key)
        _, scale = model.flownet(cur, key)
    assert not torch.allclose(warped, copied)
    torch.testing.assert_close(copied, key_feat * scale)


# ------------------------------------------------------------------ training graph (docs/fidelity.md §5.3)
def _train_batch(model, cfg, eq_flags, seed=11):
    """A training batch through the real collator (anchor targets included), one item per eq_flag."""
    from dff_rfcn.dataset import PairCollator
    items = []
    for i, eq in enumerate(eq_flags):
        cur = image(seed + i)[0]
        items.append({'data': cur, 'data_ref': cur if eq else image(seed + 100 + i)[0],
                      'im_info': np.array([96, 160, 1.0], np.float32),
                      'gt_boxes': np.array([[20, 16, 70, 60, 1], [90, 30, 150, 90, 3]], np.float32),
                      'eq_flag': float(eq), 'epoch': 0, 'index': i})
    return PairCollator(cfg)(items)


def _grads(model, batch):
    model.train()
    model.zero_grad(set_to_none=True)
    losses = model(batch)
    sum(losses.values()).backward()
    return {k: p.grad for k, p in model.named_parameters()}, losses


def test_dff_roi_sampling_draws_from_the_batch_generators():
    """DFF calls the heads' one loss entry as the baseline does (DetectionHeads.training_losses): the roi
    sampling of image b draws from batch['generators'][b], not from the global RNG. (With the shipped
    configs, BATCH_ROIS -1 and BG_THRESH_LO 0, it draws nothing; with BATCH_ROIS 32 it samples.)"""
    from lib.dataset.loader import SALT_ROI_SAMPLING, item_generator
    cfg = small_cfg('TRAIN.BATCH_ROIS=32', 'TRAIN.ENABLE_OHEM=false')
    torch.manual_seed(0)
    model = DFF(cfg).train()

    def losses(global_seed, salt=None):
        batch = _train_batch(model, cfg, [0.0, 1.0])
        if salt is not None:
            batch['generators'] = [item_generator(0, 0, i, salt) for i in range(2)]
        torch.manual_seed(global_seed)
        with torch.no_grad():
            return model(batch)

    a, b = losses(1, SALT_ROI_SAMPLING), losses(2, SALT_ROI_SAMPLING)
    assert all(torch.equal(a[k], b[k]) for k in a)  # the generators decide, whatever the global RNG
    other = losses(1, SALT_ROI_SAMPLING + 100)
    assert any(not torch.equal(a[k], other[k]) for k in a)  # other generators, another sample
    plain1, plain2 = losses(1), losses(2)  # without generators the global RNG decides
    assert any(not torch.equal(plain1[k], plain2[k]) for k in plain1)


def test_gradients_reach_flownet_and_backbone_through_the_warp():
    cfg = small_cfg()
    model = small_dff()
    grads, losses = _grads(model, _train_batch(model, cfg, [0.0]))
    assert all(torch.isfinite(v) for v in losses.values())

    def norm(prefix):
        gs = [g for k, g in grads.items() if k.startswith(prefix) and g is not None]
        return sum(float(g.abs().sum()) for g in gs)

    for prefix in ('flownet.flow_conv1', 'flownet.conv6_1', 'flownet.Convolution5.', 'flownet.Convolution5_scale.weight',
                   'feature.backbone.conv1', 'feature.feat_conv_3x3', 'heads.rfcn_cls'):
        assert norm(prefix) > 0, prefix
    # the scale branch's bias is frozen (lr_mult 0 in the original): it must not be trained
    from lib.model.params import param_groups
    groups, _ = param_groups(model, cfg.network.FIXED_PARAMS, cfg.TRAIN.wd)
    frozen = {id(p) for g in groups if g['lr_mult'] == 0 for p in g['params']}
    assert frozen == {id(model.flownet.Convolution5_scale.bias)}


def test_eq_flag_batches_leave_flownet_out_of_the_graph():
    cfg = small_cfg()
    model = small_dff()
    grads, _ = _grads(model, _train_batch(model, cfg, [1.0]))
    assert all(g is None for k, g in grads.items() if k.startswith('flownet.'))
    assert grads['feature.feat_conv_3x3.weight'] is not None
    # eq_flag = 1 means the current frame's own features: the same losses as without FlowNet at all
    torch.manual_seed(0)
    l_eq = _grads(model, _train_batch(model, cfg, [1.0]))[1]
    batch = _train_batch(model, cfg, [1.0])
    model.zero_grad()
    torch.manual_seed(0)
    feat = model.feature(batch['data'])
    l_plain = model.heads(feat, batch['im_info'], batch['gt_boxes'], batch['rpn_label'], batch['rpn_bbox_target'],
                          batch['rpn_bbox_weight'])
    for k in l_eq:
        torch.testing.assert_close(l_eq[k], l_plain[k])


def test_mixed_batch_uses_warped_features_only_where_eq_flag_is_0():
    cfg = small_cfg()
    model = small_dff()
    batch = _train_batch(model, cfg, [1.0, 0.0])
    grads, losses = _grads(model, batch)
    assert all(torch.isfinite(v) for v in losses.values())
    assert grads['flownet.flow_conv1.weight'] is not None and float(grads['flownet.flow_conv1.weight'].abs().sum()) > 0


# ------------------------------------------------------------------ inference schedule (docs/fidelity.md §5.5, §8.2)
class _Recorder(torch.nn.Module):
    """Stands in for DFF: records which path each frame took and which key image it was propagated from."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def detect_key(self, data, info):
        self.calls.append(('key', float(data.flatten()[0])))
        return self._out(), data * 2

    def detect_cur(self, data, info, key_data, key_feat):
        assert torch.equal(key_feat, key_data * 2)  # the cached features of that key frame
        self.calls.append(('cur', float(data.flatten()[0]), float(key_data.flatten()[0])))
        return self._out()

    @staticmethod
    def _out():
        return {'rois': torch.tensor([[0.0, 1, 1, 5, 5]]), 'cls_prob': torch.tensor([[0.5, 0.5]]),
                'bbox_pred': torch.zeros(1, 8)}


def _frames(videos):
    frames, fid = [], 1
    for v, n in videos:
        for k in range(n):
            frames.append({'video': v, 'frame_seg_id': k, 'index': f'{v}/{k:06d}', 'frame_id': fid})
            fid += 1
    return frames


def test_key_frame_schedule_per_video():
    rec = _Recorder()
    det = VideoDetector(rec, 10)
    frames = _frames([('val/a', 23), ('val/b', 5), ('val/c', 11)])
    for f in frames:
        det(f, torch.full((1, 3, 4, 4), float(f['frame_id'])), im_info(4, 4))
    keys = [c[1] for c in rec.calls if c[0] == 'key']
    # key frames: positions 0, 10, 20 of a (ids 1, 11, 21), 0 of b (id 24), 0 and 10 of c (ids 29, 39)
    assert keys == [1.0, 11.0, 21.0, 24.0, 29.0, 39.0]
    for c in rec.calls:
        if c[0] == 'cur':  # each non-key frame is propagated from the last key frame of its own video
            assert c[2] == max(k for k in keys if k <= c[1])
    assert det.stats == {'key': 6, 'cur': 33}


def test_key_frame_schedule_errors_and_positions():
    det = VideoDetector(_Recorder(), 10)
    with pytest.raises(ValueError, match='val/x starts at frame 3'):
        det({'video': 'val/x', 'frame_seg_id': 3, 'index': 'val/x/000003'}, torch.zeros(1, 3, 4, 4), im_info(4, 4))
    assert frame_position({'frame_seg_id': None, 'index': 'val/x/000017'}) == 17
    assert [p for p in range(25) if is_key_frame(p, 10)] == [0, 10, 20]
    assert [p for p in range(5) if is_key_frame(p, 1)] == [0, 1, 2, 3, 4]


def test_videos_are_split_whole_across_ranks():
    frames = _frames([('a', 30), ('b', 10), ('c', 10), ('d', 25)])
    parts = [split_frames(frames, r, 2, by_video=True) for r in range(2)]
    assert sorted(f['frame_id'] for p in parts for f in p) == [f['frame_id'] for f in frames]
    for p in parts:  # every video on one rank only, in order
        for v in {f['video'] for f in p}:
            mine = [f['frame_seg_id'] for f in p if f['video'] == v]
            assert mine == list(range(len([f for f in frames if f['video'] == v])))


def test_batched_mode_equals_key_plus_propagated_frames():
    model = small_dff()
    key = image(20)
    others = torch.cat([image(21), image(22), image(23)])
    info = im_info().repeat(4, 1)
    with torch.no_grad():
        batch_out = model.detect_batch(key, others, info)
        k_out, feat = model.detect_key(key, im_info())
        seq = [k_out] + [model.detect_cur(others[i:i + 1], im_info(), key, feat) for i in range(3)]
    rois = batch_out['rois']
    start = 0
    for b, out in enumerate(seq):
        m = rois[:, 0] == b
        n = int(m.sum())
        torch.testing.assert_close(rois[m][:, 1:], out['rois'][:, 1:], rtol=0, atol=1e-3)
        torch.testing.assert_close(batch_out['cls_prob'][start:start + n], out['cls_prob'], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(batch_out['bbox_pred'][start:start + n], out['bbox_pred'], rtol=1e-4, atol=1e-5)
        start += n


# ------------------------------------------------------------------ FlowNet pretraining (Flying Chairs format)
@pytest.fixture(scope='module')
def flow_pairs(tmp_path_factory):
    from lib.dataset.synthetic_vid import ensure_dataset
    root = str(tmp_path_factory.mktemp('chairs') / 'synthetic_vid')
    ensure_dataset(root, seed=0, height=64, width=96, train_videos=0, val_videos=0, det_images=0, flow_pairs=40,
                   flow_val_fraction=0.2)
    return os.path.join(root, 'FlowPairs')


def test_flownet_pretraining_writes_weights_that_dff_loads(flow_pairs, tmp_path):
    from dff_rfcn.train_flownet import main, output_path
    from lib.model.weights import load_pretrained
    prefix = str(tmp_path / 'flownet_tiny')
    main(['--cfg', SYNTH_CFG, '--set', f'FLOW_PRETRAIN.dataset_path={flow_pairs}', f'network.pretrained_flow={prefix}',
          'FLOW_PRETRAIN.max_iters=40', 'FLOW_PRETRAIN.batch_size=4', 'FLOW_PRETRAIN.num_workers=0',
          'FLOW_PRETRAIN.lr=0.0003', "FLOW_PRETRAIN.lr_step='30'"])
    cfg = small_cfg(f'network.pretrained_flow={prefix}')
    path = output_path(cfg)
    assert path == prefix + '-0000.pth'
    info = json.load(open(path[:-4] + '.json'))
    assert info['pairs'] == 8 and info['iterations'] == 40
    assert np.isfinite(info['epe']) and info['zero_flow_epe'] > 0.5
    state = load_torch(path)
    # the scale branch is DFF's: pretraining leaves it at its initialisation
    assert float(state['Convolution5_scale.weight'].abs().max()) == 0.0
    model = DFF(cfg)
    loaded, skipped = load_pretrained(model.flownet, cfg.network.pretrained_flow, 0, what='network.pretrained_flow')
    assert len(loaded) == len(model.flownet.state_dict()) and not skipped
    torch.testing.assert_close(model.flownet.conv3.weight, state['conv3.weight'])


def test_flownet_pretraining_killed_and_resumed_ends_at_the_same_weights(flow_pairs, tmp_path, monkeypatch):
    """32 train pairs in batches of 8 = 4 iterations per epoch; state saved every 5 iterations (epoch 2,
    batch 1); a crash at iteration 7; --resume replays epoch 2's order, skips its first batch and ends where
    an uninterrupted run of 9 iterations ends."""
    import dff_rfcn.train_flownet as tf

    def cfg_for(prefix, every):
        return update_from_list(load_config(SYNTH_CFG), [
            f'FLOW_PRETRAIN.dataset_path={flow_pairs}', f'network.pretrained_flow={prefix}', 'FLOW_PRETRAIN.max_iters=9',
            'FLOW_PRETRAIN.batch_size=8', 'FLOW_PRETRAIN.num_workers=0', "FLOW_PRETRAIN.lr_step='6'",
            f'FLOW_PRETRAIN.CHECKPOINT_ITERS={every}'])

    ref_path, _ = tf.pretrain_flownet(cfg_for(str(tmp_path / 'ref'), 0), log=lambda *a: None)
    assert not os.path.exists(tf.state_path(cfg_for(str(tmp_path / 'ref'), 0)))
    cfg = cfg_for(str(tmp_path / 'run'), 5)
    real_loss, calls = tf.multiscale_loss, []

    def crashing_loss(*a, **k):
        calls.append(1)
        if len(calls) == 7:
            raise KeyboardInterrupt('killed')
        return real_loss(*a, **k)

    monkeypatch.setattr(tf, 'multiscale_loss', crashing_loss)
    with pytest.raises(KeyboardInterrupt):
        tf.pretrain_flownet(cfg, log=lambda *a: None)
    monkeypatch.setattr(tf, 'multiscale_loss', real_loss)
    assert not os.path.exists(tf.output_path(cfg))
    state = load_torch(tf.state_path(cfg))
    # the engine's schema (lib/core/engine.py): 0-based epoch 1 = the second epoch, its batch 1
    assert (state['global_update'], state['epoch'], state['update_in_epoch']) == (5, 1, 1)
    # a copy in the schema pretraining wrote before the engine (1-based epoch, batch_in_epoch, iteration, the
    # lr scheduler's state, no RNG states) resumes too
    old_cfg = cfg_for(str(tmp_path / 'old'), 5)
    old = {k: v for k, v in state.items() if k not in ('global_update', 'update_in_epoch', 'rng')}
    old.update(epoch=2, batch_in_epoch=1, iteration=5,
               scheduler={'milestones': {6: 1}, 'gamma': 0.5, 'base_lrs': [1e-4], 'last_epoch': 5, '_step_count': 6})
    save_checkpoint(tf.state_path(old_cfg), old)
    messages = []
    path, result = tf.pretrain_flownet(cfg, log=messages.append, resume=True)
    assert 'resumed FlowNet pretraining' in messages[0] and result['iterations'] == 9
    old_messages = []
    old_path, old_result = tf.pretrain_flownet(old_cfg, log=old_messages.append, resume=True)
    assert old_messages[0].startswith('resumed FlowNet pretraining') and 'iteration 5 of 9' in old_messages[0]
    ref = load_torch(ref_path)
    for got in (load_torch(path), load_torch(old_path)):
        for k in ref:
            torch.testing.assert_close(got[k], ref[k], rtol=1e-5, atol=1e-6, msg=k)
    for r in (result, old_result):
        assert json.load(open(ref_path[:-4] + '.json'))['epe'] == pytest.approx(r['epe'], rel=1e-5)


def test_flownet_multiscale_loss_learns_the_flow_of_a_batch(flow_pairs):
    """The pretraining loss and its units: 100 Adam steps on one batch of 4 pairs bring that batch's
    full-resolution EPE from above the zero-flow EPE to well below it. (On held-out pairs this takes
    thousands of steps: the main job, tools/synthetic_table.py, prints both figures.)"""
    from dff_rfcn.train_flownet import evaluate, multiscale_loss
    from lib.dataset.flying_chairs import FlyingChairs, read_split
    train_ids, _ = read_split(flow_pairs)
    loader = torch.utils.data.DataLoader(FlyingChairs(flow_pairs, train_ids[:4], [103.06, 115.9, 123.15]), batch_size=4)
    torch.manual_seed(0)
    net = FlowNetS(feat_dim=8, width_mult=0.25)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    cur, key, flow = next(iter(loader))
    before = evaluate(net, loader, 20.0, 'cpu')
    for _ in range(100):
        loss = multiscale_loss(net(cur, key, multiscale=True)[2], flow, [0.005, 0.01, 0.02, 0.08, 0.32], 20.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = evaluate(net, loader, 20.0, 'cpu')
    assert before['epe'] > before['zero_flow_epe'] > 2.0
    assert after['epe'] < 0.5 * after['zero_flow_epe'], (before, after)


def test_multiscale_loss_is_zero_for_the_downsampled_target():
    from dff_rfcn.train_flownet import full_resolution_flow, multiscale_loss
    flow = torch.zeros(2, 2, 64, 96)
    flow[:, 0], flow[:, 1] = 6.0, -4.0  # a constant flow in input pixels
    # predictions in network units (flow / 20 in half-resolution pixels) at strides 64 .. 4 of the input
    preds = [flow[:, :, ::s, ::s] / 40.0 for s in (64, 32, 16, 8, 4)]
    assert float(multiscale_loss(preds, flow, [0.005, 0.01, 0.02, 0.08, 0.32], 20.0)) == pytest.approx(0.0, abs=1e-5)
    torch.testing.assert_close(full_resolution_flow(preds[-1], (64, 96), 20.0), flow)
    wrong = [p + 0.1 for p in preds]  # 0.1 network units = 4 input pixels per component, at every scale
    loss = float(multiscale_loss(wrong, flow, [0.005, 0.01, 0.02, 0.08, 0.32], 20.0))
    # summed over each scale's pixels: 1x2 (flow6), 2x3, 4x6, 8x12, 16x24 (flow2)
    per_scale = [w * n for w, n in zip([0.32, 0.08, 0.02, 0.01, 0.005], [2, 6, 24, 96, 384])]
    assert loss == pytest.approx(sum(per_scale) * 0.1 * 2 ** 0.5, rel=1e-4)


def test_flying_chairs_layout_errors(tmp_path):
    from lib.dataset.flying_chairs import FlyingChairs, read_split
    with pytest.raises(FileNotFoundError, match='FlyingChairs_train_val.txt'):
        read_split(str(tmp_path))
    (tmp_path / 'FlyingChairs_train_val.txt').write_text('1\n2\n3\n')
    with pytest.raises(ValueError, match="line 3 is '3'"):
        read_split(str(tmp_path))
    (tmp_path / 'FlyingChairs_train_val.txt').write_text('1\n2\n')
    assert read_split(str(tmp_path)) == ([1], [2])
    with pytest.raises(FileNotFoundError, match='00001_img1.ppm'):
        FlyingChairs(str(tmp_path), [1], [0, 0, 0])
