"""Key frames where the video needs them (docs/key_frames.md): the fixed schedule is the original's, the adaptive
one starts a key frame on a shot cut, on a propagation it cannot trust and at its maximum interval; the harder
synthetic split (lib/dataset/synthetic_vid.py) leaves the dataset it is added to untouched; tools/key_frame_sweep.py
end to end on a tiny model."""
import json
import os

import numpy as np
import pytest
import torch

from dff_rfcn.key_schedule import (AdaptiveSchedule, FixedSchedule, KeyObjects, colour_histograms, foreground,
                                   histogram_distance, schedule_from_config, warp_disagreement)
from dff_rfcn.tester import VideoDetector
from lib.config import ConfigError, load_config, update_from_list
from lib.dataset import synthetic_vid as sv
from lib.utils.checkpoint import save_checkpoint
from tests.small_run import ROOT, run_script, tiny_overrides
from tests.test_bad_inputs import _snapshot
from tests.test_dff import _frames, _Recorder, im_info, small_cfg, small_dff
from tests.test_synthetic_vid import _all_files

CFG = os.path.join(ROOT, 'experiments/dff_rfcn/cfgs/synthetic_vid_cpu.yaml')
NEVER = dict(cut_thresh=1.0, warp_error=1e9, bad_fraction=1.0, trigger='fraction', score_drop=0)  # only the maximum interval starts key frames


def _texture(seed, h=96, w=160, hue=0.0):
    """A smooth random texture as a network input (1, 3, h, w), mean-subtracted; its colour set by `hue`."""
    g = torch.Generator().manual_seed(seed)
    base = torch.nn.functional.interpolate(torch.rand(1, 3, h // 8, w // 8, generator=g), size=(h, w),
                                           mode='bilinear', align_corners=False)
    tint = torch.tensor([np.cos(hue), np.cos(hue + 2.1), np.cos(hue + 4.2)], dtype=torch.float32).view(1, 3, 1, 1)
    return (base * 60 + tint * 70).float()


def _run(det, frames, images):
    out = []
    for f, x in zip(frames, images):
        out.append(det(f, x, im_info()))
    return out


# ------------------------------------------------------------------ the fixed schedule is the original's
def test_fixed_schedule_gives_the_original_key_frames_and_outputs():
    frames = _frames([('val/a', 23), ('val/b', 5), ('val/c', 11)])
    images = [torch.full((1, 3, 4, 4), float(f['frame_id'])) for f in frames]
    old, new = _Recorder(), _Recorder()
    _run(VideoDetector(old, 10), frames, images)
    det = VideoDetector(new, schedule=schedule_from_config(small_cfg()))  # TEST.KEY_FRAME_SCHEDULE default: fixed
    _run(det, frames, images)
    assert new.calls == old.calls and det.stats == {'key': 6, 'cur': 33}
    assert det.eval_stats() == {'frames': 39, 'key_frames': 6, 'key_reasons': {'first': 3, 'interval': 3},
                                'flow_discarded': 0}
    assert schedule_from_config(small_cfg()).settings() == {'KEY_FRAME_SCHEDULE': 'fixed', 'KEY_FRAME_INTERVAL': 10}


def test_fixed_schedule_outputs_equal_the_key_and_propagated_paths():
    """The real network: frames 0 and 3 key, the others detect_cur from the last key frame; the adaptive path
    (FlowNet once, then warp + heads) gives the same numbers when its tests never fire."""
    model = small_dff()
    frames = _frames([('val/a', 7)])
    images = [_texture(1) + 3 * k for k in range(7)]
    with torch.no_grad():
        expected = []
        for k, x in enumerate(images):
            if k % 3 == 0:
                out, feat = model.detect_key(x, im_info())
                key = x
            else:
                out = model.detect_cur(x, im_info(), key, feat)
            expected.append(out['cls_prob'])
    for schedule in (FixedSchedule(3), AdaptiveSchedule(max_interval=3, **NEVER)):
        det = VideoDetector(model, schedule=schedule)
        got = []
        for f, x in zip(frames, images):
            det(f, x, im_info())
            got.append(det.last)
        assert [g['is_key'] for g in got] == [True, False, False, True, False, False, True]
    # same outputs through VideoDetector (scores are the cls_prob rows)
    for schedule in (FixedSchedule(3), AdaptiveSchedule(max_interval=3, **NEVER)):
        det = VideoDetector(model, schedule=schedule)
        for f, x, exp in zip(frames, images, expected):
            scores, _ = det(f, x, im_info())
            torch.testing.assert_close(scores, exp, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ the adaptive schedule
def test_adaptive_starts_a_key_frame_at_a_shot_cut_without_running_flownet():
    model = small_dff()
    calls = []
    model.flownet.register_forward_hook(lambda m, i, o: calls.append(1))
    frames = _frames([('val/a', 8)])
    scene_a, scene_b = _texture(1, hue=0.0), _texture(2, hue=2.5)
    images = [scene_a.roll(k, 3) for k in range(4)] + [scene_b.roll(k, 3) for k in range(4)]
    assert histogram_distance(colour_histograms(images[3]), colour_histograms(images[4])) > 0.3
    assert histogram_distance(colour_histograms(images[2]), colour_histograms(images[3])) < 0.05
    det = VideoDetector(model, schedule=AdaptiveSchedule(max_interval=100, cut_thresh=0.3, warp_error=1e9, score_drop=0))
    reasons = []
    for f, x in zip(frames, images):
        det(f, x, im_info())
        reasons.append(det.last['reason'])
    assert reasons == ['first', None, None, None, 'cut', None, None, None]
    assert len(calls) == 6 and det.flow_discarded == 0  # FlowNet ran on the 6 propagated frames only
    assert det.eval_stats()['key_reasons'] == {'cut': 1, 'first': 1}


def test_adaptive_respects_the_maximum_interval():
    model = small_dff()
    frames = _frames([('val/a', 10), ('val/b', 4)])
    still = _texture(3)
    det = VideoDetector(model, schedule=AdaptiveSchedule(max_interval=3, cut_thresh=0.3, warp_error=1e9, score_drop=0))
    keys = []
    for f in frames:
        det(f, still, im_info())
        keys.append((f['video'], f['frame_seg_id'], det.last['reason']))
    assert [k for k in keys if k[2]] == [('val/a', 0, 'first'), ('val/a', 3, 'max_interval'),
                                         ('val/a', 6, 'max_interval'), ('val/a', 9, 'max_interval'),
                                         ('val/b', 0, 'first'), ('val/b', 3, 'max_interval')]


class _FlowStub(_Recorder):
    """A DFF stand-in whose FlowNet always says 'nothing moved'."""

    def flow_to_key(self, data, key_data):
        self.calls.append(('flow', float(data.flatten()[0])))
        h, w = data.shape[-2] // 16, data.shape[-1] // 16
        return torch.zeros(1, 2, h, w), torch.ones(1, 1, h, w)

    def detect_flowed(self, info, key_feat, flow, scale):
        self.calls.append(('flowed',))
        return self._out()


def test_adaptive_makes_a_key_frame_where_the_warped_key_frame_disagrees():
    """An object enters (a bright square the key frame did not have): the warped key image disagrees on its
    cells, so the frame becomes a key frame, after FlowNet ran (counted in flow_discarded)."""
    rec = _FlowStub()
    base = _texture(4)
    entered = base.clone()
    entered[..., 16:64, 32:96] += 120.0  # 3 x 4 cells of 6 x 10: 20% of the cells
    frames = _frames([('val/a', 4)])
    det = VideoDetector(rec, schedule=AdaptiveSchedule(max_interval=100, cut_thresh=1.0, warp_error=30,
                                                       bad_fraction=0.1, trigger='fraction', score_drop=0))
    for f, x in zip(frames, [base, base, entered, entered]):
        det(f, x, im_info())
    kinds = [c[0] for c in rec.calls]
    assert kinds == ['key', 'flow', 'flowed', 'flow', 'key', 'flow', 'flowed']
    assert det.flow_discarded == 1 and det.eval_stats()['key_reasons'] == {'first': 1, 'propagation': 1}
    err = warp_disagreement(entered, base, torch.zeros(1, 2, 6, 10))
    assert err.shape == (6, 10) and float((err > 30).float().mean()) == pytest.approx(0.2)
    shifted = torch.zeros(1, 2, 6, 10)
    shifted[:, 0] = 3.0  # cells 7..9 of each row look 3 cells right of the key frame's edge: not counted
    err = warp_disagreement(base, base.roll(-48, 3), shifted)
    assert float(err[:, 7:].abs().max()) == 0 and float(err[:, :7].max()) > 0


def _growing(n, k0=0):
    """n frames of one scene whose cells 0 .. t-1 (row-major, of the 6 x 10 feature cells) are brightened in frame t:
    a frame differs from an earlier one on (t - k) cells: an error that grows by one cell a frame."""
    base = _texture(5)
    out = []
    for t in range(n):
        x = base.clone()
        for c in range(t):
            r, q = divmod(c, 10)
            x[..., 16 * r:16 * r + 16, 16 * q:16 * q + 16] += 120.0
        out.append(x)
    return out


def _keys(det, frames, images):
    keys, signals = [], []
    for f, x in zip(frames, images):
        det(f, x, im_info())
        signals.append(det.last)
        if det.last['is_key']:
            keys.append(f['frame_seg_id'])
    return keys, signals


def test_renewal_trigger_renews_once_the_error_has_grown_enough():
    """Errors e_g = g / 60 (g frames after the key frame): 'renewal' keys when g e_g - (e_1 + .. + e_g) = g (g - 1) / 120
    exceeds the cost (0.11: at g = 5, not at g = 4 where it is 0.1), 'fraction' when e_g exceeds the bad fraction (0.06)."""
    frames = _frames([('val/a', 12)])
    images = _growing(12)
    common = dict(max_interval=100, cut_thresh=1.0, warp_error=30, score_drop=0)
    keys, signals = _keys(VideoDetector(_FlowStub(), schedule=AdaptiveSchedule(trigger='renewal', renewal_cost=0.11,
                                                                                **common)), frames, images)
    assert keys == [0, 5, 10]
    assert [round(s['renewal'], 4) for s in signals[1:5]] == [0.0, round(2 / 120, 4), 0.05, 0.1]
    assert signals[5]['reason'] == 'propagation' and signals[5]['bad_fraction'] == pytest.approx(5 / 60)
    keys, _ = _keys(VideoDetector(_FlowStub(), schedule=AdaptiveSchedule(trigger='fraction', bad_fraction=0.06,
                                                                          **common)), frames, images)
    assert keys == [0, 4, 8]  # 4 / 60 > 0.06 > 3 / 60
    # a slow error still renews (later), where a fixed bad fraction never would
    slow = [images[t // 3] for t in range(30)]  # one more cell every 3 frames
    keys, _ = _keys(VideoDetector(_FlowStub(), schedule=AdaptiveSchedule(trigger='renewal', renewal_cost=0.11,
                                                                          **common)), _frames([('val/b', 30)]), slow)
    assert keys[0] == 0 and len(keys) >= 2 and keys[1] > 5
    keys, _ = _keys(VideoDetector(_FlowStub(), schedule=AdaptiveSchedule(trigger='fraction', bad_fraction=0.2,
                                                                          **common)), _frames([('val/b', 30)]), slow)
    assert keys == [0]


def _dets(rows):
    """(scores (R, 3), class-agnostic boxes (R, 8)) from rows (class, score, x1, y1, x2, y2)."""
    scores = torch.zeros(len(rows), 3)
    boxes = torch.zeros(len(rows), 8)
    for i, (c, sc, *box) in enumerate(rows):
        scores[i, c] = sc
        scores[i, 0] = 1 - sc
        boxes[i, 4:] = torch.tensor(box, dtype=torch.float32)
    return scores, boxes


KEY_DETS = [(1, 0.9, 10, 10, 50, 50), (1, 0.8, 12, 10, 52, 50),   # one object (NMS keeps the first)
            (2, 0.7, 100, 20, 150, 80), (1, 0.3, 60, 60, 90, 90)]  # a second one; one too weak to follow
FOLLOWED = [[(1, 0.6, 14, 10, 54, 50), (2, 0.7, 100, 20, 150, 80)],  # A lost 0.3
            [(1, 0.5, 18, 10, 58, 50), (2, 0.2, 200, 120, 240, 160)]]  # A (followed to its new place) lost 0.4, B gone


def test_key_objects_follow_the_key_frames_detections():
    objs = KeyObjects()
    objs.start(*_dets(KEY_DETS))
    assert objs.key_scores.tolist() == pytest.approx([0.9, 0.7]) and objs.drop == 0
    objs.follow(*_dets(FOLLOWED[0]))
    assert objs.drop == pytest.approx(0.3)
    objs.follow(*_dets(FOLLOWED[1]))
    assert objs.drop == pytest.approx(0.4 + 0.7)
    assert objs.boxes[0].tolist() == [18, 10, 58, 50] and objs.boxes[1].tolist() == [100, 20, 150, 80]
    # class-specific boxes (R, 4C): the box of the best foreground class
    scores = torch.tensor([[0.1, 0.2, 0.7], [0.1, 0.6, 0.3]])
    boxes = torch.arange(24, dtype=torch.float32).view(2, 12)
    fg, box = foreground(scores, boxes)
    assert fg.tolist() == pytest.approx([0.7, 0.6]) and box.tolist() == [[8, 9, 10, 11], [16, 17, 18, 19]]


class _ScriptedStub(_FlowStub):
    """_FlowStub whose detections are scripted: the key frame's, then one list per propagated frame."""

    def __init__(self, key_rows, rows):
        super().__init__()
        self.key_rows, self.rows = key_rows, list(rows)

    @staticmethod
    def _as_out(rows):
        scores, boxes = _dets(rows)
        rois = torch.cat([torch.zeros(len(rows), 1), boxes[:, 4:]], 1)
        return {'rois': rois, 'cls_prob': scores, 'bbox_pred': torch.zeros(len(rows), 12)}

    def detect_key(self, data, info):
        self.calls.append(('key', float(data.flatten()[0])))
        return self._as_out(self.key_rows), data * 2

    def detect_flowed(self, info, key_feat, flow, scale):
        self.calls.append(('flowed',))
        return self._as_out(self.rows.pop(0))


def test_score_drop_of_the_key_frames_objects_starts_a_key_frame():
    """The same image every frame (no cell disagrees): only the objects' score drop can make a key frame; the
    drop a frame's detections show counts from the next frame on (the test runs before the heads)."""
    frames = _frames([('val/a', 5)])
    still = [_texture(6)] * 5
    schedule = AdaptiveSchedule(max_interval=100, cut_thresh=1.0, warp_error=30, trigger='fraction',
                                bad_fraction=0.02, score_drop=0.05)
    rec = _ScriptedStub(KEY_DETS, FOLLOWED + [KEY_DETS])
    keys, signals = _keys(VideoDetector(rec, schedule=schedule), frames, still)
    assert keys == [0, 3]
    assert [round(s.get('score_drop', -1), 4) for s in signals[1:4]] == [0.0, 0.3, 1.1]
    assert signals[3]['error'] == pytest.approx(0.05 * 1.1) and signals[3]['reason'] == 'propagation'
    # with the drop weighted 0 nothing happens
    rec = _ScriptedStub(KEY_DETS, FOLLOWED + [KEY_DETS, KEY_DETS])
    keys, _ = _keys(VideoDetector(rec, schedule=AdaptiveSchedule(max_interval=100, cut_thresh=1.0, warp_error=30,
                                                                  trigger='fraction', bad_fraction=0.02,
                                                                  score_drop=0)), frames, still)
    assert keys == [0]


def test_schedule_config_keys_and_errors():
    cfg = small_cfg('TEST.KEY_FRAME_SCHEDULE=adaptive', 'TEST.KEY_FRAME_MAX_INTERVAL=7',
                    'TEST.KEY_FRAME_BAD_FRACTION=0.25', 'TEST.KEY_FRAME_TRIGGER=fraction', 'TEST.KEY_FRAME_RENEWAL_COST=0.3',
                    'TEST.KEY_FRAME_SCORE_DROP=0.5')
    s = schedule_from_config(cfg)
    assert isinstance(s, AdaptiveSchedule) and s.max_interval == 7 and s.bad_fraction == 0.25
    assert (s.trigger, s.renewal_cost, s.score_drop) == ('fraction', 0.3, 0.5)
    assert s.settings()['KEY_FRAME_TRIGGER'] == 'fraction' and s.settings()['KEY_FRAME_SCORE_DROP'] == 0.5
    assert isinstance(schedule_from_config(cfg, key_interval=4), FixedSchedule)
    assert schedule_from_config(small_cfg(), key_interval='adaptive').name == 'adaptive'
    with pytest.raises(ValueError, match="integer >= 1 or 'adaptive'"):
        schedule_from_config(cfg, key_interval='often')
    with pytest.raises(ValueError, match='at least 1'):
        schedule_from_config(cfg, key_interval=0)
    with pytest.raises(ValueError, match='KEY_FRAME_TRIGGER: expected one of fraction, renewal'):
        AdaptiveSchedule(trigger='sometimes')
    for bad, msg in (('TEST.KEY_FRAME_SCHEDULE=sometimes', 'one of fixed, adaptive'),
                     ('TEST.KEY_FRAME_MAX_INTERVAL=0', 'an integer >= 1'),
                     ('TEST.KEY_FRAME_WARP_ERROR=-2', 'a number >= 0'),
                     ('TEST.KEY_FRAME_TRIGGER=often', 'one of fraction, renewal'),
                     ('TEST.KEY_FRAME_RENEWAL_COST=-1', 'a number >= 0'),
                     ('TEST.KEY_FRAME_SCORE_DROP=-0.1', 'a number >= 0')):
        with pytest.raises(ConfigError, match=msg):
            small_cfg(bad)


def test_adaptive_tests_get_a_folder_of_their_own(tmp_path):
    from dff_rfcn.test import TEST_SETTINGS
    from lib.core.experiment import test_folder
    yaml_cfg = load_config(CFG)
    cfg = update_from_list(load_config(CFG), ['TEST.KEY_FRAME_SCHEDULE=adaptive', 'TEST.KEY_FRAME_BAD_FRACTION=0.1'])
    base = str(tmp_path / 'VID_val_videos')
    assert test_folder(base, cfg, yaml_cfg, settings=TEST_SETTINGS) == base + '_adaptive_bad0.1'
    assert test_folder(base, yaml_cfg, yaml_cfg, settings=TEST_SETTINGS) == base


# ------------------------------------------------------------------ the harder split
TINY = dict(train_videos=1, train_frames=3, val_videos=1, val_frames=2, det_images=2, flow_pairs=2)
HARD = dict(hard_videos=3, hard_frames=14, hard_tune_videos=1)


def _digests(root):
    """{relative path: (sha256, mtime)} of every file under root."""
    shas, mtimes = _snapshot(root), _all_files(root)
    return {k: (shas[k], mtimes[k]) for k in shas}


def test_hard_split_is_added_without_touching_the_dataset_and_is_deterministic(tmp_path):
    a, b, c = (str(tmp_path / x) for x in 'abc')
    for root, seed in ((a, 0), (b, 0), (c, 1)):
        sv.generate(root, seed=seed, **TINY)
    before = _digests(a)
    meta = sv.ensure_hard_split(a, **HARD)
    after = _digests(a)
    assert {k: after[k] for k in before} == before  # every file of the dataset: same bytes, not rewritten
    new = sorted(set(after) - set(before))
    assert sv.HARD_META_FILE in new and all(
        f == sv.HARD_META_FILE or f.startswith(('Data/VID/val_hard', 'Annotations/VID/val_hard'))
        or f in {f'ImageSets/{s}.txt' for s in sv.HARD_IMAGE_SETS} for f in new)
    assert sum(f.startswith('Data/VID/val_hard/') for f in new) == 3 * 14
    assert sum(f.startswith('Data/VID/val_hard_tune/') for f in new) == 14
    assert meta['params']['height'] == sv.DEFAULT_SIZES['height'] and meta['seed'] == 0
    assert sv.generate(a, seed=0, **TINY)['params'] == sv.resolve_params(**TINY)  # still complete: a no-op
    assert _digests(a) == after
    assert sv.ensure_hard_split(a, **HARD)['seconds'] == meta['seconds'] and _digests(a) == after  # a no-op

    sv.ensure_hard_split(b, **HARD)
    sv.ensure_hard_split(c, **HARD)
    db, dc = _digests(b), _digests(c)
    hard_files = [f for f in new if f != sv.HARD_META_FILE]
    assert all(after[f][0] == db[f][0] for f in hard_files)          # same seed: the same bytes
    assert sum(after[f][0] != dc[f][0] for f in hard_files if f.endswith('.JPEG')) > 40  # another seed: other videos

    sv.ensure_hard_split(a, **dict(HARD, hard_videos=1))  # other sizes: only the harder split is redone
    again = _digests(a)
    assert {k: again[k] for k in before} == before
    assert sum(f.startswith('Data/VID/val_hard/') for f in again) == 14


def test_hard_split_has_cuts_and_objects_entering():
    params = sv.resolve_params()
    shots = entering = 0
    for v in range(6):
        video, _ = sv.hard_video(0, 'val_hard', v, 30, params)
        again, _ = sv.hard_video(0, 'val_hard', v, 30, params)
        assert video.starts == again.starts
        shots += len(video.starts)
        first = {}
        for t in range(30):
            _, objs, _, _ = video.render(t)
            for o in objs:
                first.setdefault(o['trackid'], t)
        entering += sum(t > video.starts[k // sv._HARD_TRACKS] for k, t in first.items())
        cuts = video.starts[1:]
        if cuts:  # a different scene from one frame to the next
            a, _, _, _ = video.render(cuts[0] - 1)
            b, _, _, _ = video.render(cuts[0])
            assert np.abs(a - b).mean() > 20
    assert shots > 6 and entering > 0


def test_hard_split_through_the_imdb(tmp_path):
    from lib.dataset.loader import make_imdb
    cfg = update_from_list(load_config(CFG), tiny_overrides(str(tmp_path), extra_synthetic=HARD)
                           + ['dataset.test_image_set=VID_val_hard_videos'])
    frames = make_imdb(cfg, cfg.dataset.test_image_set).test_frames()
    assert len(frames) == 3 * 14 and frames[0]['video'] == 'val_hard/ILSVRC2015_val_hard_00000000'
    assert [f['frame_id'] for f in frames] == list(range(1, 43))
    assert os.path.isfile(frames[-1]['image'])


# ------------------------------------------------------------------ tools/key_frame_sweep.py
@pytest.fixture(scope='module')
def tiny_checkpoint(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('ck') / 'dff_tiny.pth')
    save_checkpoint(path, {'model': small_dff().state_dict()})
    return path


def test_sweep_runs_end_to_end_and_writes_json_and_png(tmp_path, tiny_checkpoint):
    out = str(tmp_path / 'sweep')
    sets = tiny_overrides(str(tmp_path), extra_synthetic=dict(HARD, hard_videos=2, hard_frames=6)) + [
        'dataset.test_image_set=VID_val_hard_videos', "network.pretrained=''", "network.pretrained_flow=''"]
    args = ['--checkpoint', tiny_checkpoint, '--intervals', '1,3', '--adaptive',
            'trigger=fraction,bad_fraction=0.05,score_drop=0', 'renewal_cost=0.5,max_interval=4,score_drop=0.1', '--out', out]
    proc = run_script('tools/key_frame_sweep.py', CFG, sets, *args)
    with open(os.path.join(out, 'key_frame_sweep.json')) as f:
        summary = json.load(f)
    runs = {r['run']: r for r in summary['runs']}
    assert list(runs) == ['fixed1', 'fixed3', 'adaptive_max30_cut0.1_err32_bad0.05',
                          'adaptive_max4_cut0.1_err32_renewal0.5_drop0.1']
    assert runs['fixed1']['key_frames'] == 12 and runs['fixed1']['frames'] == 12 and runs['fixed1']['key_fraction'] == 1
    assert runs['fixed3']['key_frames'] == 4 and runs['fixed3']['parameters'] == {'KEY_FRAME_INTERVAL': 3}
    ad = runs['adaptive_max4_cut0.1_err32_renewal0.5_drop0.1']
    assert ad['schedule'] == 'adaptive' and ad['parameters']['KEY_FRAME_MAX_INTERVAL'] == 4
    assert ad['parameters']['KEY_FRAME_TRIGGER'] == 'renewal' and ad['parameters']['KEY_FRAME_SCORE_DROP'] == 0.1
    assert runs['adaptive_max30_cut0.1_err32_bad0.05']['parameters']['KEY_FRAME_TRIGGER'] == 'fraction'  # the earlier rule
    assert 2 <= ad['key_frames'] <= 12 and sum(ad['key_reasons'].values()) == ad['key_frames']
    for r in runs.values():
        assert 0 <= r['mAP'] <= 1 and set(r['motion_mAP']) == {'slow', 'medium', 'fast'}
        assert r['time_per_frame_s'] > 0 and os.path.isfile(r['eval_json'])
    with open(os.path.join(out, 'key_frame_sweep.png'), 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    assert '| fixed3 | 4 / 12 (33.3%) |' in proc.stdout
    again = run_script('tools/key_frame_sweep.py', CFG, sets, *args)  # everything is there: read back, not run again
    assert again.stdout.count('reusing') == 4


@pytest.mark.parametrize('flags, message', [
    (['--intervals', '0,5'], '--intervals: every interval must be an integer >= 1'),
    (['--intervals', 'ten'], '--intervals: expected integers'),
    (['--adaptive', 'often=2'], "--adaptive 'often=2': expected name=value pairs"),
    (['--adaptive', 'bad_fraction=-1'], 'TEST.KEY_FRAME_BAD_FRACTION: expected a number >= 0'),
    (['--adaptive', 'trigger=often'], 'TEST.KEY_FRAME_TRIGGER: expected one of fraction, renewal'),
    (['--checkpoint', '/nonexistent/dff.pth'], 'checkpoint not found: /nonexistent/dff.pth'),
])
def test_sweep_bad_options_give_one_error_line(tmp_path, flags, message, tiny_checkpoint):
    args = ['--checkpoint', tiny_checkpoint] + flags if '--checkpoint' not in flags else flags
    proc = run_script('tools/key_frame_sweep.py', CFG, tiny_overrides(str(tmp_path)), *args, check=False)
    assert proc.returncode == 2
    err = [line for line in proc.stderr.splitlines() if line.strip()]
    assert err[0].startswith('error: ') and message in err[0] and 'Traceback' not in proc.stderr
