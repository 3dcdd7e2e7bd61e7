"""tools/key_frame_breakdown.py: frames grouped by their distance from the key frame, scored separately."""
import importlib.util
import os
import pickle

import numpy as np
import pytest

from lib.evaluation.imagenet_vid_eval import make_gt, write_detections

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tool():
    spec = importlib.util.spec_from_file_location('key_frame_breakdown',
                                                  os.path.join(ROOT, 'tools', 'key_frame_breakdown.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _gt_and_dets(n=20):
    """One object per frame of a 20-frame video; detections exact on frames 0-4 and 10-14, shifted by half
    the box on 5-9 and 15-19 (IoU 1/3: a miss at 0.5, a hit at 0.3)."""
    frames = [(f'val/vid_0000/{t:06d}', t + 1) for t in range(n)]
    box = np.array([[20.0, 20.0, 59.0, 59.0]])
    records = [{'boxes': box, 'labels': [1], 'trackids': [0], 'height': 100, 'width': 100} for _ in frames]
    rows = []
    for t in range(n):
        shift = 20.0 if t % 10 >= 5 else 0.0
        rows.append((t + 1, 1, 0.9, 20.0 + shift, 20.0, 59.0 + shift, 59.0))
    return make_gt(frames, records, {'n00000001': 1}), np.array(rows)


def test_groups_are_scored_apart_and_the_iou_threshold_is_restored():
    tool = _tool()
    gt, dets = _gt_and_dets()
    res = tool.score_groups(dets, gt, 10, 2)
    assert res['all frames'][2] == 20 and res['key frames'][2] == 2
    assert res['key frames'][0] == pytest.approx(1.0) and res['1-4 after a key frame'][0] == pytest.approx(1.0)
    assert res['5-9 after a key frame'][0] == pytest.approx(0.0)
    loose = tool.score_groups(dets, gt, 10, 2, iou=0.3)
    assert loose['5-9 after a key frame'][0] == pytest.approx(1.0)
    import lib.evaluation.imagenet_vid_eval as vid_eval
    assert vid_eval.gt_iou_thresholds(np.array([[0.0, 0.0, 99.0, 99.0]]))[0] == pytest.approx(0.5)


def test_a_test_folder_is_read_and_a_pickle_with_code_is_refused(tmp_path, capsys):
    tool = _tool()
    gt, dets = _gt_and_dets()
    good = tmp_path / 'good'
    good.mkdir()
    write_detections(good / 'det_VID_val_videos_all.txt', dets)
    with open(good / 'VID_val_videos_gt_cache.pkl', 'wb') as f:
        pickle.dump({'version': 1, 'key': 'k', 'gt': gt}, f)
    tool.main([str(good)])
    out = capsys.readouterr().out
    assert '5-9 after a key frame' in out and '(20 frames)' in out

    class Code:
        def __reduce__(self):
            return (os.system, ('true',))

    bad = tmp_path / 'bad'
    bad.mkdir()
    write_detections(bad / 'det_x_all.txt', dets)
    with open(bad / 'x_gt_cache.pkl', 'wb') as f:
        pickle.dump({'gt': Code()}, f)
    with pytest.raises(ValueError, match='x_gt_cache.pkl could not be read safely: it asks for (posix|os).system'):
        tool.main([str(bad)])
    with pytest.raises(FileNotFoundError, match='expected one det_'):
        tool.main([str(tmp_path)])
