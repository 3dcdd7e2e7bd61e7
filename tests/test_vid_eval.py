"""Tests of the ImageNet VID evaluation (lib/evaluation/imagenet_vid_eval.py) with hand-worked numbers.

Boxes use the "+1" pixel convention throughout: a box (x1, y1, x2, y2) is (x2-x1+1) x (y2-y1+1) pixels.
"""

import json
import math
import os

import numpy as np
import pytest

from lib.dataset.vid_annotations import parse_vid_xml
from lib.dataset.vid_classes import (IMAGENET_VID_CLASSES, IMAGENET_VID_WNIDS, get_class_list,
                                     register_class_list, wnid_to_index)
from lib.evaluation import imagenet_vid_eval as ve

AIRPLANE = "n02691156"   # class 1
ANTELOPE = "n02419796"   # class 2
VID_C2I = wnid_to_index(IMAGENET_VID_WNIDS)
NAMES3 = ("__background__", "a", "b")


def write_xml(path, objects, width=1280, height=720, folder="val/ILSVRC2015_val_00000000",
              filename="000000"):
    """An annotation file in the ILSVRC VID layout. objects: (wnid, trackid or None, (x1, y1, x2, y2))."""
    parts = ["<annotation>", f"\t<folder>{folder}</folder>", f"\t<filename>{filename}</filename>",
             "\t<source>", "\t\t<database>ILSVRC_2015</database>", "\t</source>",
             "\t<size>", f"\t\t<width>{width}</width>", f"\t\t<height>{height}</height>", "\t</size>"]
    for wnid, trackid, (x1, y1, x2, y2) in objects:
        parts.append("\t<object>")
        if trackid is not None:
            parts.append(f"\t\t<trackid>{trackid}</trackid>")
        parts += [f"\t\t<name>{wnid}</name>", "\t\t<bndbox>", f"\t\t\t<xmax>{x2}</xmax>",
                  f"\t\t\t<xmin>{x1}</xmin>", f"\t\t\t<ymax>{y2}</ymax>", f"\t\t\t<ymin>{y1}</ymin>",
                  "\t\t</bndbox>", "\t\t<occluded>0</occluded>", "\t\t<generated>0</generated>",
                  "\t</object>"]
    parts.append("</annotation>")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")


def gt3(per_frame, paths=None):
    """make_gt for the 3-class list: per_frame = list of [(label, box), ...]; frame ids 1..n."""
    frames, records = [], []
    for k, objs in enumerate(per_frame):
        frames.append((paths[k] if paths else f"val/v0/{k:06d}", k + 1))
        records.append({"boxes": np.array([b for _, b in objs], float).reshape(-1, 4),
                        "labels": np.array([c for c, _ in objs], int)})
    return ve.make_gt(frames, records)


def ev(dets, gt, motion=False):
    return ve.evaluate_detections(np.array(dets, float).reshape(-1, 7), gt, 3, motion=motion,
                                  class_names=NAMES3, verbose=False)


# --------------------------------------------------------------------------------------------- classes

def test_class_list():
    names, wnids = get_class_list("imagenet_vid")
    assert len(names) == len(wnids) == 31
    assert names == IMAGENET_VID_CLASSES and names[0] == wnids[0] == "__background__"
    assert (names[1], wnids[1]) == ("airplane", AIRPLANE)
    assert (names[9], wnids[9]) == ("dog", "n02084071")
    assert (names[30], wnids[30]) == ("zebra", "n02391049")
    assert VID_C2I[ANTELOPE] == 2 and "__background__" not in VID_C2I
    register_class_list("test_synthetic_vid", NAMES3)
    assert get_class_list("test_synthetic_vid") == (NAMES3, NAMES3)
    with pytest.raises(KeyError, match="no_such_list"):
        get_class_list("no_such_list")


# --------------------------------------------------------------------------------------------- XML

def test_parse_vid_xml(tmp_path):
    p = tmp_path / "000000.xml"
    # raw floats, a box beyond the image (xmax 1300 > width 1280) is kept as written
    write_xml(p, [(AIRPLANE, 0, (10.5, 20, 1300, 700)), (ANTELOPE, 3, (0, 0, 9, 9)),
                  (ANTELOPE, None, (1, 2, 3, 4))])
    rec = parse_vid_xml(p, VID_C2I)
    assert (rec["height"], rec["width"]) == (720, 1280)
    np.testing.assert_array_equal(rec["boxes"], [[10.5, 20, 1300, 700], [0, 0, 9, 9], [1, 2, 3, 4]])
    assert rec["boxes"].dtype == np.float64
    np.testing.assert_array_equal(rec["labels"], [1, 2, 2])
    np.testing.assert_array_equal(rec["trackids"], [0, 3, -1])
    # no objects -> empty (0, 4)
    write_xml(p, [])
    assert parse_vid_xml(p, VID_C2I)["boxes"].shape == (0, 4)


def test_parse_errors_name_the_file(tmp_path):
    p = tmp_path / "bad_wnid.xml"
    write_xml(p, [(AIRPLANE, 0, (0, 0, 9, 9)), ("n99999999", 1, (0, 0, 9, 9))])
    with pytest.raises(ValueError, match=r"bad_wnid\.xml.*n99999999"):
        parse_vid_xml(p, VID_C2I)
    # the training roidb drops such objects instead (docs/fidelity.md §7.2)
    rec = parse_vid_xml(p, VID_C2I, unknown="drop")
    np.testing.assert_array_equal(rec["labels"], [1])
    np.testing.assert_array_equal(rec["trackids"], [0])
    with pytest.raises(FileNotFoundError, match="missing.xml"):
        parse_vid_xml(tmp_path / "missing.xml", VID_C2I)
    broken = tmp_path / "broken.xml"
    broken.write_text("<annotation><size><width>3</width>")
    with pytest.raises(ValueError, match=r"broken\.xml.*malformed"):
        parse_vid_xml(broken, VID_C2I)
    nonnum = tmp_path / "nonnum.xml"
    write_xml(nonnum, [(AIRPLANE, 0, ("abc", 0, 9, 9))])
    with pytest.raises(ValueError, match=r"nonnum\.xml.*xmin"):
        parse_vid_xml(nonnum, VID_C2I)


def test_gt_iou_thresholds():
    # 10x10: 100/(20*20) = 0.25; 100x100: 10000/12100 > 0.5 -> 0.5; 20x10: 200/(30*20) = 1/3
    thr = ve.gt_iou_thresholds([[0, 0, 9, 9], [0, 0, 99, 99], [0, 0, 19, 9]])
    np.testing.assert_allclose(thr, [0.25, 0.5, 1 / 3])


# --------------------------------------------------------------------------------------------- matching / AP

def test_small_object_threshold():
    # frame 1: 10x10 gt of class 1 (thr 0.25); det (0,0,9,32) is 10x33: IoU = 100/330 = 0.303 -> TP
    # frame 2: 100x100 gt of class 2 (thr 0.5); det (0,0,99,329): IoU = 10000/33000 = 0.303 -> FP
    gt = gt3([[(1, (0, 0, 9, 9))], [(2, (0, 0, 99, 99))]])
    iou, _ = ve._iou_matrix([[0, 0, 9, 32], [0, 0, 99, 329]], [[0, 0, 9, 9], [0, 0, 99, 99]])
    assert iou[0, 0] == pytest.approx(10 / 33) and iou[1, 1] == pytest.approx(10 / 33)
    r = ev([[1, 1, 0.9, 0, 0, 9, 32], [2, 2, 0.9, 0, 0, 99, 329]], gt)
    assert r["AP"] == {"a": 1.0, "b": 0.0}          # class a: one TP of one gt; class b: one FP only
    assert r["mAP"] == pytest.approx(0.5)
    assert r["npos"] == {"a": 1, "b": 1} and r["num_frames"] == 2


def test_duplicates_are_false_positives():
    # gt: frame 1 and frame 2 each hold one class-1 100x100 box (npos 2).
    # dets by score: 0.9 TP (frame 1, IoU 1), 0.8 duplicate on the same gt -> FP, 0.7 TP (frame 2).
    # recall .5 .5 1, precision 1 .5 .667 -> monotone 1 .667 .667 -> AP = .5*1 + .5*2/3 = 5/6
    gt = gt3([[(1, (0, 0, 99, 99))], [(1, (0, 0, 99, 99))]])
    dets = [[1, 1, 0.9, 0, 0, 99, 99], [1, 1, 0.8, 0, 0, 99, 99], [2, 1, 0.7, 0, 0, 99, 99]]
    assert ev(dets, gt)["AP"]["a"] == pytest.approx(5 / 6)
    # without the duplicate: AP 1
    assert ev([dets[0], dets[2]], gt)["AP"]["a"] == pytest.approx(1.0)
    # the higher-scored det takes the gt even with the lower IoU (0.6 vs 1.0): order TP (IoU .6, .9),
    # FP (IoU 1, .8), TP -> again 5/6; box (0,0,59,99) is 60x100: IoU = 6000/10000 = 0.6
    dets2 = [[1, 1, 0.9, 0, 0, 59, 99], [1, 1, 0.8, 0, 0, 99, 99], [2, 1, 0.7, 0, 0, 99, 99]]
    assert ev(dets2, gt)["AP"]["a"] == pytest.approx(5 / 6)


def test_greedy_picks_largest_iou_among_unmatched():
    # two class-1 gts in one frame: gt0 (0,0,99,99), gt1 (40,0,99,99). Det 1 (first in score order)
    # equals gt1: IoU 1 with gt1 and 6000/10000 = 0.6 with gt0 (both >= 0.5) -> takes gt1, the larger;
    # det 2 equals gt0 -> gt0.
    gtb = np.array([[0, 0, 99, 99], [40, 0, 99, 99]], float)
    m = ve._greedy_match(np.array([[40, 0, 99, 99], [0, 0, 99, 99]], float), np.array([1, 1]),
                         gtb, np.array([1, 1]), ve.gt_iou_thresholds(gtb))
    np.testing.assert_array_equal(m, [1, 0])


def test_class_mixing():
    # frame 1: class-1 gt; frame 2: class-2 gt. A class-2 det exactly on the class-1 gt is an FP for
    # class 2 (AP 0: npos 1, no TP) and does not consume the gt: class 1 stays a miss (AP 0) ...
    gt = gt3([[(1, (0, 0, 99, 99))], [(2, (200, 200, 299, 299))]])
    wrong = [1, 2, 0.9, 0, 0, 99, 99]
    r = ev([wrong], gt)
    assert r["AP"] == {"a": 0.0, "b": 0.0} and r["mAP"] == 0.0
    # ... so a lower-scored class-1 det on it is still a TP (class 1 AP 1)
    r = ev([wrong, [1, 1, 0.5, 0, 0, 99, 99]], gt)
    assert r["AP"] == {"a": 1.0, "b": 0.0}


def test_empty_frames():
    # frame 1: one class-1 gt, det .9 on it (TP); frame 2: no gt, det .95 there (FP); frame 3: nothing.
    # order FP, TP: recall 0, 1; precision 0, .5 -> monotone .5 .5 -> AP = 1 * .5 = .5
    gt = gt3([[(1, (0, 0, 99, 99))], [], []])
    dets = [[1, 1, 0.9, 0, 0, 99, 99], [2, 1, 0.95, 0, 0, 99, 99]]
    r = ev(dets, gt)
    assert r["AP"]["a"] == pytest.approx(0.5) and r["num_frames"] == 3
    # class 2 has no gt anywhere: AP NaN, left out of the mAP
    assert math.isnan(r["AP"]["b"]) and r["mAP"] == pytest.approx(0.5)
    # a frame with no detections (frame 3) contributes nothing: same result without it in the list
    assert ev(dets, gt3([[(1, (0, 0, 99, 99))], []]))["AP"]["a"] == pytest.approx(0.5)
    # a detection on a frame id outside the list is an error naming it
    with pytest.raises(ValueError, match="frame id 7"):
        ev(dets + [[7, 1, 0.5, 0, 0, 9, 9]], gt)


def test_nan_class_warning_printed(capsys):
    gt = gt3([[(1, (0, 0, 99, 99))]])
    ve.evaluate_detections(np.zeros((0, 7)), gt, 3, motion=False, class_names=NAMES3)
    err = capsys.readouterr().err
    assert "warning" in err and "(b)" in err


def test_ap_interpolation():
    # TP, FP, TP, FP with npos 3: recall 1/3 1/3 2/3 2/3, precision 1 1/2 2/3 1/2
    # monotone from the right: 1 2/3 2/3 1/2 -> AP = 1/3*1 + 1/3*2/3 = 5/9
    assert ve.voc_ap([1 / 3, 1 / 3, 2 / 3, 2 / 3], [1, 1 / 2, 2 / 3, 1 / 2]) == pytest.approx(5 / 9)
    assert ve.voc_ap([], []) == 0.0
    # same sequence through the evaluator: three frames with one class-1 gt each, frame 3 missed
    gt = gt3([[(1, (0, 0, 99, 99))], [(1, (0, 0, 99, 99))], [(1, (0, 0, 99, 99))]])
    far = (500, 500, 599, 599)
    dets = [[1, 1, 0.9, 0, 0, 99, 99], [1, 1, 0.8, *far], [2, 1, 0.7, 0, 0, 99, 99], [2, 1, 0.6, *far]]
    assert ev(dets, gt)["AP"]["a"] == pytest.approx(5 / 9)


# --------------------------------------------------------------------------------------------- motion

def motion_gt():
    """Video v0, frames 0..4 (ids 1..5) + frame 5 (id 6) without gt; video v1 frames 0 and 20 (ids 7, 8).
    track 0 (class 1): static (0,0,99,99); track 1 (class 1): 100x100, moves 50 px right per frame;
    v1 track 0: moves, but its two frames are 20 apart (outside the +-10 window)."""
    frames, records = [], []
    for k in range(5):
        frames.append((f"val/v0/{k:06d}", k + 1))
        records.append({"boxes": np.array([[0, 0, 99, 99], [200 + 50 * k, 0, 299 + 50 * k, 99]], float),
                        "labels": np.array([1, 1]), "trackids": np.array([0, 1])})
    frames.append(("val/v0/000005", 6))
    records.append({"boxes": np.zeros((0, 4)), "labels": np.zeros(0, int)})
    for n, (k, x) in enumerate([(0, 0), (20, 300)]):
        frames.append((f"val/v1/{k:06d}", 7 + n))
        records.append({"boxes": np.array([[x, 0, x + 99, 99]], float), "labels": np.array([2]),
                        "trackids": np.array([0])})
    return ve.make_gt(frames, records)


def test_motion_iou_values():
    m = ve.compute_motion_iou(motion_gt())
    # static track: IoU 1 with every neighbour
    np.testing.assert_allclose([r[0] for r in m[:5]], 1.0)
    # moving track: shift by 1 frame -> overlap 50x100 = 5000, union 20000-5000 -> IoU 1/3; shift >= 2
    # frames -> 0. frame 0: neighbours 1..4 -> (1/3+0+0+0)/4 = 1/12; frames 1..3: two neighbours at
    # distance 1 -> 2/3/4 = 1/6; frame 4 -> 1/12
    np.testing.assert_allclose([r[1] for r in m[:5]], [1 / 12, 1 / 6, 1 / 6, 1 / 6, 1 / 12])
    assert len(m[5]) == 0
    # v1: frames 0 and 20 are 20 apart -> no neighbour -> 1.0 (slow), despite the motion
    np.testing.assert_allclose([m[6][0], m[7][0]], [1.0, 1.0])
    np.testing.assert_array_equal(ve.motion_buckets([0.9, 0.7, 0.9001, 0.6999, 1.0]), [1, 1, 0, 2, 0])


def test_motion_bucket_ap():
    gt = motion_gt()
    # class 1 gts: 5 slow (static track) + 5 fast (moving track); class 2: 2 slow (v1).
    # total gts 12: slow share 7/12, fast share 5/12, medium none.
    static = [[k + 1, 1, 0.9, 0, 0, 99, 99] for k in range(5)]                       # 5 TP (slow)
    moving = [[k + 1, 1, 0.8, 200 + 50 * k, 0, 299 + 50 * k, 99] for k in range(2)]  # 2 TP (fast)
    empty_fp = [[6, 1, 0.95, 0, 0, 99, 99]]                                          # frame 6 has no gt
    r = ve.evaluate_detections(np.array(empty_fp + static + moving, float), gt, 3, class_names=NAMES3,
                               verbose=False)
    # overall class a (npos 10): FP, 7 TP -> precision climbs to 7/8, monotone 7/8 everywhere,
    # recall 0.7 -> AP = 0.7 * 7/8 = 0.6125; class b: npos 2, no dets -> 0
    assert r["AP"]["a"] == pytest.approx(0.6125) and r["AP"]["b"] == 0.0
    # slow, class a (npos 5): empty-frame FP of weight 7/12, then 5 TP (moving dets are ignored):
    # final precision 5/(5+7/12) = 60/67, monotone -> AP = 60/67; class b slow: npos 2, AP 0
    # -> slow mAP = (60/67 + 0)/2
    assert r["motion_AP"]["slow"]["a"] == pytest.approx(60 / 67)
    assert r["motion"]["slow"] == pytest.approx(30 / 67)
    # fast, class a (npos 5): FP of weight 5/12, then 2 TP: precision 2/(2+5/12) = 24/29, recall .4
    # -> AP = 0.4 * 24/29; class b has no fast gt -> fast mAP = that AP alone
    assert r["motion"]["fast"] == pytest.approx(0.4 * 24 / 29)
    assert math.isnan(r["motion"]["medium"])
    assert r["motion_npos"] == {"slow": 7, "medium": 0, "fast": 5}

    # an unmatched det in a frame that holds gts is an FP of weight 1 in every bucket
    gt_frame_fp = [[1, 1, 0.95, 600, 600, 699, 699]]
    r = ve.evaluate_detections(np.array(gt_frame_fp + static + moving, float), gt, 3,
                               class_names=NAMES3, verbose=False)
    assert r["motion_AP"]["slow"]["a"] == pytest.approx(5 / 6)     # FP, 5 TP
    assert r["motion"]["fast"] == pytest.approx(0.4 * 2 / 3)       # FP, 2 TP, recall .4


# --------------------------------------------------------------------------------------------- files

def test_detection_file_round_trip(tmp_path):
    p = tmp_path / "det_VID_val_frames_all.txt"
    rows = np.array([[1, 3, 0.123456, 10.126, 20, 30.5, 40.994], [12, 30, 1e-4, 0, 0, 1279, 719]])
    ve.write_detections(p, rows)
    assert p.read_text().splitlines() == ["1 3 0.1235 10.13 20.00 30.50 40.99",
                                          "12 30 0.0001 0.00 0.00 1279.00 719.00"]
    assert sorted(os.listdir(tmp_path)) == [p.name]       # no temp file left behind
    back = ve.read_detections(p)
    assert back.shape == (2, 7)
    np.testing.assert_allclose(back, rows, atol=0.005 + 1e-9)
    ve.write_detections(p, np.zeros((0, 7)))
    assert ve.read_detections(p).shape == (0, 7)


@pytest.mark.parametrize("bad", ["1 1 0.5 0 0 9", "1 1 0.5 0 0 9 x", "1.5 1 0.5 0 0 9 9"])
def test_malformed_detection_line(tmp_path, bad):
    p = tmp_path / "dets.txt"
    p.write_text("1 1 0.9000 0.00 0.00 9.00 9.00\n" + bad + "\n2 1 0.5 0 0 9 9\n")
    with pytest.raises(ValueError, match=r"dets\.txt:2"):
        ve.read_detections(p)


def test_frame_lists(tmp_path):
    f = tmp_path / "VID_val_frames.txt"
    f.write_text("val/ILSVRC2015_val_00000000/000000 1\nval/ILSVRC2015_val_00000000/000001 2\n")
    assert ve.load_eval_frames(f) == [("val/ILSVRC2015_val_00000000/000000", 1),
                                      ("val/ILSVRC2015_val_00000000/000001", 2)]
    f.write_text("val/a/000000 1\nval/a/000001\n")
    with pytest.raises(ValueError, match=r"VID_val_frames\.txt:2"):
        ve.load_eval_frames(f)
    v = tmp_path / "VID_val_videos.txt"
    v.write_text("val/a 1 0 3\nval/b 4 0 2\n")
    expected = [("val/a/000000", 1), ("val/a/000001", 2), ("val/a/000002", 3),
                ("val/b/000000", 4), ("val/b/000001", 5)]
    assert ve.expand_video_list(v) == expected
    assert ve.read_frame_list(v) == expected
    out = tmp_path / "VID_val_videos_eval.txt"
    ve.write_frame_list(out, expected)
    assert ve.read_frame_list(out) == expected


def test_gt_cache_rebuilt_when_xml_changes(tmp_path, monkeypatch):
    root = tmp_path / "Annotations" / "VID"
    frames = [("val/v0/000000", 1), ("val/v0/000001", 2)]
    write_xml(root / "val/v0/000000.xml", [(AIRPLANE, 0, (0, 0, 9, 9))])
    write_xml(root / "val/v0/000001.xml", [(AIRPLANE, 0, (0, 0, 9, 9))])
    cache = tmp_path / "cache" / "gt.pkl"
    gt = ve.load_gt(root, frames, VID_C2I, cache_file=cache)
    assert [len(r["labels"]) for r in gt["records"]] == [1, 1] and cache.is_file()

    # unchanged: served from the cache (parsing would fail here)
    real_parse = ve.parse_vid_xml

    def no_parse(*a, **k):
        raise AssertionError("parsed although the cache is valid")
    monkeypatch.setattr(ve, "parse_vid_xml", no_parse)
    assert [len(r["labels"]) for r in ve.load_gt(root, frames, VID_C2I, cache_file=cache)["records"]] \
        == [1, 1]
    monkeypatch.setattr(ve, "parse_vid_xml", real_parse)

    # an XML changes -> rebuilt
    write_xml(root / "val/v0/000001.xml", [(AIRPLANE, 0, (0, 0, 9, 9)), (ANTELOPE, 1, (5, 5, 50, 50))])
    gt = ve.load_gt(root, frames, VID_C2I, cache_file=cache)
    assert [len(r["labels"]) for r in gt["records"]] == [1, 2]
    # a different frame list -> rebuilt too
    gt = ve.load_gt(root, frames[:1], VID_C2I, cache_file=cache)
    assert len(gt["records"]) == 1
    with pytest.raises(FileNotFoundError, match="000009.xml"):
        ve.load_gt(root, [("val/v0/000009", 9)], VID_C2I, cache_file=cache)


def test_cli_writes_eval_json(tmp_path, capsys):
    root = tmp_path / "Annotations" / "VID"
    # video v0, 3 frames: a static airplane (track 0) in all; an antelope in frame 1 only
    for k in range(3):
        objs = [(AIRPLANE, 0, (10, 10, 109, 109))]
        if k == 1:
            objs.append((ANTELOPE, 1, (300, 300, 399.5, 399)))
        write_xml(root / f"val/v0/{k:06d}.xml", objs, folder="val/v0", filename=f"{k:06d}")
    videos = tmp_path / "VID_val_videos.txt"
    videos.write_text("val/v0 1 0 3\n")
    dets = tmp_path / "results" / "det_VID_val_videos_all.txt"
    rows = [[1, 1, 0.9, 10, 10, 109, 109], [2, 1, 0.7, 10, 10, 109, 109], [2, 2, 0.8, 300, 300, 399, 399],
            [3, 2, 0.95, 0, 0, 50, 50]]
    ve.write_detections(dets, rows)
    out = tmp_path / "eval.json"
    argv = ["--dets", str(dets), "--eval-list", str(videos), "--annotations", str(root),
            "--classes", "imagenet_vid", "--out", str(out)]
    assert ve.main(argv) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert str(out) in printed[-1]
    assert any(line.startswith("airplane") for line in printed)
    saved = json.loads(out.read_text())

    names, wnids = get_class_list("imagenet_vid")
    gt = ve.load_gt(root, ve.expand_video_list(videos), wnid_to_index(wnids))
    direct = ve.evaluate_detections(ve.read_detections(dets), gt, 31, class_names=names, verbose=False)
    # airplane: TP, TP (npos 3) -> 2/3; antelope: FP (.95, frame 3), TP (.8) -> AP .5; mAP = 7/12
    assert direct["mAP"] == pytest.approx(7 / 12)
    assert saved["mAP"] == pytest.approx(direct["mAP"])
    assert saved["AP"]["airplane"] == pytest.approx(2 / 3) and saved["AP"]["zebra"] is None
    assert saved["time_per_image_s"] is None and saved["num_frames"] == 3
    assert set(saved["motion"]) == {"slow", "medium", "fast"}
    # the ground truth comes from --cfg or from --eval-list + --annotations, not from both or neither
    for bad, message in ((argv[:2] + ["--out", str(out)], "give --cfg (the test's config), or --eval-list and "
                                                          "--annotations"),
                         (argv + ["--cfg", "x.yaml"], "--cfg takes the frames and the ground truth from the config"),
                         (argv + ["--set", "TEST.NMS=0.4"], "--set applies to --cfg")):
        assert ve.main(bad) == 2
        assert message in capsys.readouterr().err

    # a bad input gives an error message and a non-zero exit, not a traceback
    assert ve.main(argv[:1] + [str(tmp_path / "nope.txt")] + argv[2:]) == 2
    assert "nope.txt" in capsys.readouterr().err
