"""ImageNet VID detection evaluation (the devkit protocol of the official DFF code) + motion-specific mAP.

Pure numpy / xml.etree / stdlib, so a saved detections file can be re-scored anywhere:

    python -m lib.evaluation.imagenet_vid_eval --dets results/det_VID_val_frames_all.txt \\
        --eval-list data/ILSVRC2015/ImageSets/VID_val_frames.txt \\
        --annotations data/ILSVRC2015/Annotations/VID --classes imagenet_vid [--out eval.json]

Protocol (docs/fidelity.md §8.5, the ILSVRC2015 VID devkit as ported in the official
``lib/dataset/imagenet_vid_eval.py``):

* Ground truth: ``<annotation_root>/<frame_path>.xml`` for every frame of the evaluation list, raw float
  XML coordinates (no clipping), every object counts (no "difficult" flag); ``npos[c]`` = number of gt
  objects of class ``c`` over all frames.
* Per-gt IoU threshold (small-object rule): ``w = xmax - xmin + 1``, ``h = ymax - ymin + 1``,
  ``thr = min(0.5, w*h / ((w + 10) * (h + 10)))``.
* Matching, per frame: the frame's detections (all classes) by confidence, highest first; each one looks
  at the not-yet-matched gts of its own class, computes the IoU with the "+1" pixel convention, keeps
  the gts whose IoU >= their own threshold (and that overlap at all), takes the one with the largest
  IoU (the first such gt on a tie) -> TP, and that gt is marked; no such gt -> FP. Duplicates are FPs.
* Then all detections of all frames by confidence, per class: cumulative TP / FP,
  ``recall = TP / npos[c]``, ``precision = TP / max(TP + FP, eps)``; AP = VOC all-point
  interpolation (prepend (0, 0), append (1, 0), precision made non-increasing from the right, sum of
  delta-recall x precision where the recall changes). mAP = plain mean over the classes that have gt;
  a class without gt gets AP NaN, is left out of the mean, and a warning is printed.
* Frames without detections contribute nothing; a detection on a frame id that is not in the
  evaluation list is an error. Detections file rows: ``frame_id class_index score x1 y1 x2 y2`` with
  the global (1-based) frame ids of the evaluation list.
* Sorting: both sorts are stable (ties keep the order of the detections file); the original used
  numpy's default, unstable quicksort, so only the order among exactly tied scores can differ.

Motion-specific mAP (FGFA's approach, as far as the public description goes: FGFA README, FGFA issue #4,
``vid_eval_motion``):

* Each gt instance gets a motion IoU: for the object with track id ``k`` in frame ``t`` of video ``v``,
  the mean IoU ("+1" convention) between its box and the boxes of track ``k`` in frames ``t-10 .. t+10``
  (``t`` itself excluded) of video ``v`` that are in the evaluation list and annotate that track.
  Video = dirname of the frame path, frame number = int of its basename. **Choice:** an instance with
  no such neighbour (a single-frame track, or no track id) gets motion IoU 1.0, i.e. counts as slow.
  FGFA shipped precomputed values (``imagenet_vid_groundtruth_motion_iou.mat``), not the script.
* Buckets: slow > 0.9, medium 0.7 .. 0.9 (both ends inclusive), fast < 0.7.
* Per bucket: the matching is the one above, over all gts (it does not depend on the bucket). gts outside
  the bucket are ignored: a detection matched to an ignored gt is neither TP nor FP; a detection matched
  to a gt of the bucket is a TP; a detection that matches no gt is an FP of weight 1 in a frame that
  holds gts, and in a frame that holds no gt at all an FP of weight equal to the bucket's share of all
  gts (FGFA's ``empty_weight``). ``npos`` counts only the bucket's gts. Bucket mAP = mean over the
  classes that have gt in the bucket. (FGFA also weighs an unmatched detection by its overlap with
  ignored vs kept gts, and has area ranges; neither is reproduced: the rule above is what is used.)
"""

import argparse
import functools
import hashlib
import json
import math
import os
import pickle
import sys
import warnings

import numpy as np

from lib.config import load_config, update_from_list
from lib.dataset.loader import get_imdb_class, make_imdb
from lib.dataset.vid_annotations import parse_vid_xml
from lib.dataset.vid_classes import dataset_classes, get_class_list, wnid_to_index
from lib.utils.fileio import atomic_write, load_data_pickle, write_text

DEFAULT_IOU_THR = 0.5
PIXEL_TOLERANCE = 10
MOTION_WINDOW = 10
MOTION_BUCKETS = ("slow", "medium", "fast")
SLOW_MIN_IOU = 0.9   # slow: motion IoU > 0.9
FAST_MAX_IOU = 0.7   # fast: motion IoU < 0.7; medium: 0.7 <= IoU <= 0.9
DET_FORMAT = "%d %d %.4f %.2f %.2f %.2f %.2f"
_CACHE_VERSION = 1
_EPS = np.finfo(np.float64).eps


# ----------------------------------------------------------------------------------------------------
# small helpers


def _iou_matrix(a, b):
    """IoU ("+1" convention) of every box of ``a`` (n,4) with every box of ``b`` (m,4); also the
    intersection area, so that callers can tell "no overlap" apart."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + 1.0
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + 1.0
    overlap = (iw > 0) & (ih > 0)
    inter = np.where(overlap, iw * ih, 0.0)
    area_a = (a[:, 2] - a[:, 0] + 1.0) * (a[:, 3] - a[:, 1] + 1.0)
    area_b = (b[:, 2] - b[:, 0] + 1.0) * (b[:, 3] - b[:, 1] + 1.0)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(overlap & (union > 0), inter / np.where(union > 0, union, 1.0), 0.0)
    return iou, overlap


def _pair_iou(a, b):
    """Row-wise IoU ("+1" convention) of two (n,4) box arrays; 0 where they do not overlap."""
    iw = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]) + 1.0
    ih = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]) + 1.0
    overlap = (iw > 0) & (ih > 0)
    inter = np.where(overlap, iw * ih, 0.0)
    union = ((a[:, 2] - a[:, 0] + 1.0) * (a[:, 3] - a[:, 1] + 1.0)
             + (b[:, 2] - b[:, 0] + 1.0) * (b[:, 3] - b[:, 1] + 1.0) - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(overlap & (union > 0), inter / np.where(union > 0, union, 1.0), 0.0)


def _json_clean(obj):
    """NaN -> None, numpy scalars -> Python, recursively (eval.json stays strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): _json_clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_clean(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return None if math.isnan(value) or math.isinf(value) else value
    return obj


# ----------------------------------------------------------------------------------------------------
# annotations

def gt_iou_thresholds(boxes, default_thr=DEFAULT_IOU_THR, pixel_tolerance=PIXEL_TOLERANCE):
    """Per-gt IoU threshold ``min(0.5, w*h / ((w+10)*(h+10)))``, w/h with the "+1" convention."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    w = boxes[:, 2] - boxes[:, 0] + 1.0
    h = boxes[:, 3] - boxes[:, 1] + 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        thr = (w * h) / ((w + pixel_tolerance) * (h + pixel_tolerance))
    return np.minimum(default_thr, thr)


# ----------------------------------------------------------------------------------------------------
# frame lists

def _data_lines(path):
    """(line number, stripped line) for the non-blank lines of a text file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"file not found: {path}")
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if line:
                yield lineno, line


def _check_unique_ids(frames, path):
    seen = {}
    for k, (frame_path, frame_id) in enumerate(frames):
        if frame_id in seen:
            raise ValueError(f"{path}: frame id {frame_id} is used by both {seen[frame_id]!r} and "
                             f"{frame_path!r}")
        seen[frame_id] = frame_path


def load_eval_frames(imageset_file):
    """Read a per-frame list (``frame_path global_frame_id`` per line, e.g.
    ``val/ILSVRC2015_val_00000000/000000 1``) into a list of (frame_path, frame_id)."""
    frames = []
    for lineno, line in _data_lines(imageset_file):
        parts = line.split()
        try:
            if len(parts) != 2:
                raise ValueError
            frames.append((parts[0], int(parts[1])))
        except ValueError:
            raise ValueError(f"{os.fspath(imageset_file)}:{lineno}: malformed line {line!r}; expected "
                             f"'frame_path global_frame_id'") from None
    _check_unique_ids(frames, os.fspath(imageset_file))
    return frames


def expand_video_list(videos_file):
    """Expand a ``VID_val_videos.txt``-style list (``video_dir start_frame_id 0 num_frames`` per line) into
    the per-frame list [(``video_dir/%06d`` % k, start_frame_id + k) for k in 0..num_frames-1], the frames
    the DFF test runs on (it writes them out as ``VID_val_videos_eval.txt``)."""
    frames = []
    for lineno, line in _data_lines(videos_file):
        parts = line.split()
        try:
            if len(parts) != 4:
                raise ValueError
            video, start, seg, count = parts[0], int(parts[1]), int(parts[2]), int(parts[3])
            if count < 0:
                raise ValueError
        except ValueError:
            raise ValueError(f"{os.fspath(videos_file)}:{lineno}: malformed line {line!r}; expected "
                             f"'video_dir start_frame_id 0 num_frames'") from None
        if seg != 0:
            raise ValueError(f"{os.fspath(videos_file)}:{lineno}: third column is {seg}, not 0: this "
                             f"looks like a per-frame training list, not a video list")
        frames.extend((f"{video}/{k:06d}", start + k) for k in range(count))
    _check_unique_ids(frames, os.fspath(videos_file))
    return frames


def read_frame_list(path):
    """Either list format, told apart by the column count of the first line (2: per-frame, 4: videos)."""
    for _, line in _data_lines(path):
        if len(line.split()) == 4:
            return expand_video_list(path)
        break
    return load_eval_frames(path)


def write_frame_list(path, frames):
    """Write (frame_path, frame_id) pairs as ``frame_path frame_id`` lines (atomically)."""
    text = "".join(f"{p} {int(i)}\n" for p, i in frames)
    write_text(path, text)


# ----------------------------------------------------------------------------------------------------
# ground truth

def make_gt(frames, records, class_to_index=None):
    """Build the ground-truth structure that :func:`evaluate_detections` takes from in-memory records
    (same fields as :func:`parse_vid_xml` returns; 'trackids' optional). :func:`load_gt` returns the
    same structure: ``{'frames': [(frame_path, frame_id)], 'records': [...], 'class_to_index': {...}}``.
    """
    frames = [(str(p), int(i)) for p, i in frames]
    if len(frames) != len(records):
        raise ValueError(f"{len(frames)} frames but {len(records)} records")
    _check_unique_ids(frames, "ground truth")
    clean = []
    for (frame_path, _), rec in zip(frames, records):
        boxes = np.asarray(rec["boxes"], np.float64).reshape(-1, 4)
        labels = np.asarray(rec["labels"], np.int64).reshape(-1)
        trackids = rec.get("trackids")
        trackids = (np.full(len(labels), -1, np.int64) if trackids is None
                    else np.asarray(trackids, np.int64).reshape(-1))
        if not (len(boxes) == len(labels) == len(trackids)):
            raise ValueError(f"frame {frame_path!r}: boxes/labels/trackids lengths differ")
        clean.append({"height": int(rec.get("height", 0)), "width": int(rec.get("width", 0)),
                      "boxes": boxes, "labels": labels, "trackids": trackids})
    return {"frames": frames, "records": clean,
            "class_to_index": dict(class_to_index) if class_to_index is not None else None}


def _gt_cache_key(annotation_root, frames, xml_paths, class_to_index):
    digest = hashlib.sha256()
    digest.update(f"v{_CACHE_VERSION}\n{os.path.abspath(annotation_root)}\n".encode())
    digest.update(repr(sorted(class_to_index.items())).encode())
    for (frame_path, frame_id), xml_path in zip(frames, xml_paths):
        try:
            st = os.stat(xml_path)
        except FileNotFoundError:
            raise FileNotFoundError(f"annotation file not found: {xml_path}") from None
        digest.update(f"\n{frame_path} {frame_id} {st.st_mtime_ns} {st.st_size}".encode())
    return digest.hexdigest()


def load_gt(annotation_root, frames, class_to_index, cache_file=None):
    """Read ``annotation_root/<frame_path>.xml`` for every (frame_path, frame_id) of ``frames``.

    With ``cache_file``, the result is pickled together with a key made of the annotation root, the
    class map, the frame list and every XML file's mtime and size; the cache is used only when the key
    matches, and rebuilt (and rewritten) otherwise.
    """
    frames = [(str(p), int(i)) for p, i in frames]
    _check_unique_ids(frames, "evaluation list")
    annotation_root = os.fspath(annotation_root)
    xml_paths = [os.path.join(annotation_root, p + ".xml") for p, _ in frames]
    key = None
    if cache_file is not None:
        key = _gt_cache_key(annotation_root, frames, xml_paths, class_to_index)
        if os.path.isfile(cache_file):
            try:
                cached = load_data_pickle(cache_file)  # plain data only: never runs code from the file
                if (isinstance(cached, dict) and cached.get("version") == _CACHE_VERSION
                        and cached.get("key") == key):
                    return cached["gt"]
                print(f"gt cache {cache_file} is stale; rebuilding", file=sys.stderr)
            except Exception as exc:  # unreadable cache: rebuild it
                print(f"gt cache {cache_file} unreadable ({exc!r}); rebuilding", file=sys.stderr)
    records = [parse_vid_xml(p, class_to_index) for p in xml_paths]
    gt = make_gt(frames, records, class_to_index)
    if cache_file is not None:
        payload = {"version": _CACHE_VERSION, "key": key, "gt": gt}
        atomic_write(cache_file, lambda f: pickle.dump(payload, f, pickle.HIGHEST_PROTOCOL), "wb")
    return gt


# ----------------------------------------------------------------------------------------------------
# motion IoU

def compute_motion_iou(gt, window=MOTION_WINDOW):
    """Motion IoU of every gt instance, as a list of arrays aligned with ``gt['records']``.

    For the instance of track ``k`` in frame ``t`` of video ``v``: the mean IoU ("+1" convention) with the
    boxes of track ``k`` in the frames ``t-window .. t+window`` of video ``v`` other than ``t`` that are in
    the evaluation list. Video = dirname of the frame path, frame number = int of its basename.
    An instance with no neighbour (single-frame track, or trackid -1) gets 1.0, i.e. counts as slow.
    """
    records = gt["records"]
    out = [np.ones(len(rec["labels"]), np.float64) for rec in records]
    track_ids = {}
    keys, fnos, where_f, where_o, boxes = [], [], [], [], []
    for fi, ((frame_path, _), rec) in enumerate(zip(gt["frames"], records)):
        tracked = np.flatnonzero(rec["trackids"] >= 0)
        if len(tracked) == 0:
            continue
        video, _, base = frame_path.rpartition("/")
        try:
            fno = int(base)
        except ValueError:
            raise ValueError(f"frame {frame_path!r}: cannot read a frame number from {base!r} "
                             f"(needed for the motion IoU of tracked objects)") from None
        for oi in tracked:
            tkey = (video, int(rec["trackids"][oi]))
            keys.append(track_ids.setdefault(tkey, len(track_ids)))
            fnos.append(fno)
            where_f.append(fi)
            where_o.append(oi)
            boxes.append(rec["boxes"][oi])
    n = len(keys)
    if n == 0:
        return out
    keys = np.asarray(keys, np.int64)
    fnos = np.asarray(fnos, np.int64)
    boxes = np.asarray(boxes, np.float64)
    # one sorted key per instance: track-major, frame-minor; tracks spaced so windows never cross
    span = int(fnos.max() - fnos.min()) + 2 * window + 2
    combined = keys * span + (fnos - fnos.min())
    order = np.argsort(combined, kind="stable")
    comb = combined[order]
    b = boxes[order]
    # every pair (i, j) of the same track with 0 < frame_j - frame_i <= window
    start = np.searchsorted(comb, comb, side="right")
    stop = np.searchsorted(comb, comb + window, side="right")
    count = stop - start
    total = int(count.sum())
    sums = np.zeros(n)
    cnts = np.zeros(n)
    if total:
        ii = np.repeat(np.arange(n), count)
        jj = np.arange(total) - np.repeat(np.cumsum(count) - count, count) + np.repeat(start, count)
        ov = _pair_iou(b[ii], b[jj])
        sums = np.bincount(ii, ov, n) + np.bincount(jj, ov, n)
        cnts = np.bincount(ii, minlength=n) + np.bincount(jj, minlength=n)
    miou = np.ones(n)
    has = cnts > 0
    miou[has] = sums[has] / cnts[has]
    where_f = np.asarray(where_f)[order]
    where_o = np.asarray(where_o)[order]
    for value, fi, oi in zip(miou, where_f, where_o):
        out[fi][oi] = value
    return out


def motion_buckets(motion_iou):
    """Bucket index per motion IoU: 0 slow (> 0.9), 1 medium (0.7 .. 0.9 inclusive), 2 fast (< 0.7)."""
    m = np.asarray(motion_iou, np.float64)
    return np.where(m > SLOW_MIN_IOU, 0, np.where(m < FAST_MAX_IOU, 2, 1)).astype(np.int64)


# ----------------------------------------------------------------------------------------------------
# evaluation

def voc_ap(recall, precision):
    """VOC all-point AP: prepend (0, 0), append (1, 0), precision non-increasing from the right, sum of
    delta-recall x precision at the points where the recall changes."""
    mrec = np.concatenate(([0.0], np.asarray(recall, np.float64), [1.0]))
    mpre = np.concatenate(([0.0], np.asarray(precision, np.float64), [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    idx = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))


def _greedy_match(det_boxes, det_labels, gt_boxes, gt_labels, gt_thr):
    """Devkit matching for one frame; detections already sorted by confidence, highest first.
    Returns, per detection, the index of the matched gt or -1."""
    matched = np.full(len(det_boxes), -1, np.int64)
    if len(det_boxes) == 0 or len(gt_boxes) == 0:
        return matched
    iou, overlap = _iou_matrix(det_boxes, gt_boxes)
    valid = (det_labels[:, None] == gt_labels[None, :]) & overlap & (iou >= gt_thr[None, :])
    taken = np.zeros(len(gt_boxes), bool)
    for d in np.flatnonzero(valid.any(axis=1)):
        ok = valid[d] & ~taken
        if ok.any():
            g = int(np.argmax(np.where(ok, iou[d], -np.inf)))
            taken[g] = True
            matched[d] = g
    return matched


def _per_class_ap(labels, scores, tp, fp, npos, num_classes):
    """AP per class 1..num_classes-1 (NaN where npos is 0)."""
    order = np.lexsort((-scores, labels))
    sorted_labels = labels[order]
    bounds = np.searchsorted(sorted_labels, np.arange(num_classes + 1), side="left")
    aps = np.full(num_classes, np.nan)
    for c in range(1, num_classes):
        if npos[c] <= 0:
            continue
        sel = order[bounds[c]:bounds[c + 1]]
        ctp = np.cumsum(tp[sel])
        cfp = np.cumsum(fp[sel])
        rec = ctp / float(npos[c])
        prec = ctp / np.maximum(ctp + cfp, _EPS)
        aps[c] = voc_ap(rec, prec)
    return aps


def _mean_over_present(aps, npos):
    present = [float(aps[c]) for c in range(1, len(aps)) if npos[c] > 0]
    return float(np.mean(present)) if present else float("nan")


def _class_names(gt, num_classes, class_names):
    if class_names is not None:
        names = [str(n) for n in class_names]
        if len(names) != num_classes:
            raise ValueError(f"{len(names)} class names for {num_classes} classes (background included)")
        return names
    names = [f"class_{i}" for i in range(num_classes)]
    for wnid, i in (gt.get("class_to_index") or {}).items():
        if 0 < i < num_classes:
            names[i] = wnid
    return names


def evaluate_detections(dets, gt, num_classes, motion=True, class_names=None, verbose=True):
    """Score detections against ground truth with the ImageNet VID protocol (see the module docstring).

    ``dets``: (M, 7) rows ``frame_id class_index score x1 y1 x2 y2`` (frame ids = the global ids of the
    evaluation list, classes 1..num_classes-1). ``gt``: from :func:`load_gt` / :func:`make_gt`.
    ``class_names``: num_classes names, background first (default: the WNIDs of ``gt``).

    Returns ``{'mAP', 'AP': {name: AP}, 'npos': {name: n}, 'motion': {'slow','medium','fast'} or None,
    'motion_AP': {bucket: {name: AP}}, 'motion_npos': {bucket: n}, 'num_frames', 'num_detections'}``.
    """
    num_classes = int(num_classes)
    names = _class_names(gt, num_classes, class_names)
    dets = np.asarray(dets, np.float64)
    if dets.size == 0:
        dets = dets.reshape(0, 7)
    if dets.ndim != 2 or dets.shape[1] != 7:
        raise ValueError(f"detections must be an (M, 7) array of 'frame_id class_index score x1 y1 x2 "
                         f"y2' rows, got shape {dets.shape}")
    if not np.all(np.isfinite(dets)):
        raise ValueError("detections contain NaN or infinite values")

    frames, records = gt["frames"], gt["records"]
    num_frames = len(frames)
    frame_ids = np.asarray([fid for _, fid in frames], np.int64)
    per_frame = np.asarray([len(r["labels"]) for r in records], np.int64)
    gt_start = np.concatenate(([0], np.cumsum(per_frame))).astype(np.int64)
    gt_boxes = (np.concatenate([r["boxes"] for r in records]) if num_frames
                else np.zeros((0, 4))).reshape(-1, 4)
    gt_labels = (np.concatenate([r["labels"] for r in records]) if num_frames
                 else np.zeros(0, np.int64)).astype(np.int64)
    if len(gt_labels) and (gt_labels.min() < 1 or gt_labels.max() >= num_classes):
        raise ValueError(f"gt class index out of 1..{num_classes - 1}: "
                         f"{int(gt_labels[(gt_labels < 1) | (gt_labels >= num_classes)][0])}")
    gt_thr = gt_iou_thresholds(gt_boxes)
    npos = np.bincount(gt_labels, minlength=num_classes)

    det_fid = dets[:, 0]
    det_cls = dets[:, 1]
    for col, what in ((det_fid, "frame id"), (det_cls, "class index")):
        bad = np.flatnonzero(col != np.round(col))
        if len(bad):
            raise ValueError(f"detection row {int(bad[0])}: {what} {col[bad[0]]!r} is not an integer")
    det_fid = det_fid.astype(np.int64)
    labels = det_cls.astype(np.int64)
    bad = np.flatnonzero((labels < 1) | (labels >= num_classes))
    if len(bad):
        raise ValueError(f"detection row {int(bad[0])}: class index {int(labels[bad[0]])} is outside "
                         f"1..{num_classes - 1}")
    scores = dets[:, 2]
    boxes = dets[:, 3:7]
    num_dets = len(dets)

    # frame id -> position in the evaluation list
    sorter = np.argsort(frame_ids, kind="stable")
    sorted_ids = frame_ids[sorter]
    pos = np.clip(np.searchsorted(sorted_ids, det_fid), 0, max(num_frames - 1, 0))
    found = (sorted_ids[pos] == det_fid) if num_frames else np.zeros(num_dets, bool)
    if not np.all(found):
        unknown = np.unique(det_fid[~found])
        raise ValueError(f"{int((~found).sum())} detections on {len(unknown)} frame id(s) that are not "
                         f"in the evaluation list ({num_frames} frames), e.g. frame id {int(unknown[0])}")
    det_frame = sorter[pos] if num_dets else np.zeros(0, np.int64)

    # matching, frame by frame, detections by confidence
    matched = np.full(num_dets, -1, np.int64)
    order = np.lexsort((-scores, det_frame))
    frame_sorted = det_frame[order]
    cuts = np.flatnonzero(np.diff(frame_sorted)) + 1
    for s, e in zip(np.concatenate(([0], cuts)), np.concatenate((cuts, [num_dets]))):
        if e <= s:
            continue
        f = frame_sorted[s]
        g0, g1 = gt_start[f], gt_start[f + 1]
        if g0 == g1:
            continue
        idx = order[s:e]
        m = _greedy_match(boxes[idx], labels[idx], gt_boxes[g0:g1], gt_labels[g0:g1], gt_thr[g0:g1])
        hit = m >= 0
        matched[idx[hit]] = m[hit] + g0

    hit = matched >= 0
    tp = hit.astype(np.float64)
    fp = 1.0 - tp
    aps = _per_class_ap(labels, scores, tp, fp, npos, num_classes)
    missing = [names[c] for c in range(1, num_classes) if npos[c] == 0]
    if missing and verbose:
        print(f"warning: no ground truth for {len(missing)} class(es) ({', '.join(missing)}): their AP "
              f"is NaN and they are left out of the mAP", file=sys.stderr)
    result = {
        "mAP": _mean_over_present(aps, npos),
        "AP": {names[c]: float(aps[c]) for c in range(1, num_classes)},
        "npos": {names[c]: int(npos[c]) for c in range(1, num_classes)},
        "motion": None,
        "motion_AP": None,
        "motion_npos": None,
        "num_frames": int(num_frames),
        "num_detections": int(num_dets),
    }
    if not motion:
        return result

    bucket = (motion_buckets(np.concatenate(compute_motion_iou(gt))) if len(gt_labels)
              else np.zeros(0, np.int64))
    total_gt = len(gt_labels)
    det_frame_has_gt = per_frame[det_frame] > 0
    result["motion"], result["motion_AP"], result["motion_npos"] = {}, {}, {}
    for b, bname in enumerate(MOTION_BUCKETS):
        in_bucket = bucket == b
        share = float(in_bucket.sum()) / total_gt if total_gt else 0.0
        npos_b = np.bincount(gt_labels[in_bucket], minlength=num_classes)
        tp_b = np.zeros(num_dets)
        fp_b = np.zeros(num_dets)
        tp_b[hit] = in_bucket[matched[hit]]
        fp_b[~hit] = np.where(det_frame_has_gt[~hit], 1.0, share)
        aps_b = _per_class_ap(labels, scores, tp_b, fp_b, npos_b, num_classes)
        result["motion"][bname] = _mean_over_present(aps_b, npos_b)
        result["motion_AP"][bname] = {names[c]: float(aps_b[c]) for c in range(1, num_classes)}
        result["motion_npos"][bname] = int(in_bucket.sum())
    return result


# ----------------------------------------------------------------------------------------------------
# detections file

def _det_rows(rows):
    rows = np.asarray(rows, np.float64)
    if rows.size == 0:
        rows = rows.reshape(0, 7)
    if rows.ndim != 2 or rows.shape[1] != 7:
        raise ValueError(f"detections must be (M, 7) rows, got shape {rows.shape}")
    ints = rows[:, :2]
    if np.any(ints != np.round(ints)):
        raise ValueError("frame ids and class indices must be integers")
    return rows


def format_detections(rows):
    """(M, 7) rows ``frame_id class_index score x1 y1 x2 y2`` as the lines of a detections file."""
    return "".join(DET_FORMAT % (int(r[0]), int(r[1]), r[2], r[3], r[4], r[5], r[6]) + "\n"
                   for r in _det_rows(rows))


def write_detections(path, rows):
    """Write (M, 7) rows ``frame_id class_index score x1 y1 x2 y2`` in the original format
    (``%d %d %.4f %.2f %.2f %.2f %.2f``), through a temp file renamed onto ``path``."""
    rows = _det_rows(rows)

    def write(f):
        chunk = 100000
        for s in range(0, len(rows), chunk):
            f.write(format_detections(rows[s:s + chunk]))

    atomic_write(path, write, "w")


def _check_det_line(line):
    """Reason why a detections line is malformed, or None."""
    parts = line.split()
    if len(parts) != 7:
        return f"{len(parts)} fields instead of 7"
    try:
        values = [float(p) for p in parts]
    except ValueError:
        return "a field is not a number"
    if not all(math.isfinite(v) for v in values):
        return "a field is NaN or infinite"
    if values[0] != round(values[0]) or values[1] != round(values[1]):
        return "frame id / class index not an integer"
    return None


def read_detections(path):
    """Read a detections file into an (M, 7) float64 array; a malformed line raises ValueError naming
    the file and the line number."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"detections file not found: {path}")
    arr = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = np.loadtxt(path, dtype=np.float64, ndmin=2, comments=None)
    except ValueError:
        arr = None
    if arr is not None:
        if arr.size == 0:
            return np.zeros((0, 7), np.float64)
        if (arr.shape[1] == 7 and np.all(np.isfinite(arr))
                and np.all(arr[:, :2] == np.round(arr[:, :2]))):
            return arr
    for lineno, line in _data_lines(path):
        reason = _check_det_line(line)
        if reason:
            raise ValueError(f"{path}:{lineno}: malformed detection line ({reason}): {line!r}; expected "
                             f"'frame_id class_index score x1 y1 x2 y2'")
    raise ValueError(f"{path}: could not be read as detections")  # not reached in practice


# ----------------------------------------------------------------------------------------------------
# reporting + CLI

def print_ap_table(result, class_names):
    """Per-class AP table (and the motion buckets when present) as a string."""
    def pct(v):
        return "   n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:6.2f}"

    names = [n for n in class_names if n in result["AP"]]
    width = max([len("class")] + [len(n) for n in names] + [len("mAP (motion medium)")])
    lines = [f"{'class':<{width}}  AP(%)    npos", "-" * (width + 15)]
    for n in names:
        lines.append(f"{n:<{width}}  {pct(result['AP'][n])}  {result['npos'].get(n, 0):6d}")
    lines.append("-" * (width + 15))
    lines.append(f"{'mAP':<{width}}  {pct(result['mAP'])}  {sum(result['npos'].values()):6d}")
    if result.get("motion"):
        for b in MOTION_BUCKETS:
            n_b = (result.get("motion_npos") or {}).get(b, 0)
            lines.append(f"{'mAP (motion ' + b + ')':<{width}}  {pct(result['motion'][b])}  {n_b:6d}")
    return "\n".join(lines)


def resolve_classes(classes):
    """(names, wnids) from a registered class list name, or from a yaml config: its dataset.CLASSES, else
    its dataset's registered list (so an own dataset's config re-scores its own detections)."""
    if str(classes).endswith((".yaml", ".yml")):
        cfg = load_config(classes)
        return dataset_classes(cfg, get_imdb_class(cfg.dataset.dataset).class_list)
    return get_class_list(classes)


def evaluate_det_file(det_path, eval_list, annotation_root, classes="imagenet_vid", cache_file=None,
                      motion=True, verbose=True):
    """Read a detections file, the evaluation list (either format) and the annotations; score."""
    names, wnids = resolve_classes(classes)
    frames = read_frame_list(eval_list)
    gt = load_gt(annotation_root, frames, wnid_to_index(wnids), cache_file=cache_file)
    dets = read_detections(det_path)
    return evaluate_detections(dets, gt, len(names), motion=motion, class_names=names, verbose=verbose)


def imdb_annotations(imdb):
    """The ground truth of a test imdb, as run_test and the CLI read it: a function (frames, class_to_index,
    cache_file=None) -> ground truth, over the XML folder of an ILSVRC-layout dataset (load_gt) or, for a dataset
    that carries its own records (CocoVID json: `eval_records`), over those (make_gt)."""
    if hasattr(imdb, 'eval_records'):
        def load(frames, class_to_index, cache_file=None):
            return make_gt(frames, imdb.eval_records(frames, class_to_index), class_to_index)
        return load
    return functools.partial(load_gt, os.path.join(imdb.data_path, 'Annotations', imdb.det_vid))


def evaluate_det_file_of_config(det_path, cfg, motion=True, verbose=True):
    """Score a detections file against the test set of a config (dataset.test_image_set of any dataset the
    port reads: ILSVRC layout, CocoVID json, synthetic). Returns (result, class names)."""
    imdb = make_imdb(cfg, cfg.dataset.test_image_set)
    frames = [(f['index'], f['frame_id']) for f in imdb.test_frames()]
    gt = imdb_annotations(imdb)(frames, wnid_to_index(imdb.wnids))
    names = list(imdb.classes)
    result = evaluate_detections(read_detections(det_path).reshape(-1, 7), gt, len(names), motion=motion,
                                 class_names=names, verbose=verbose)
    return result, names


def write_eval_json(path, result, time_per_image_s=None):
    """Write the result (plus ``time_per_image_s``, null when unknown) as strict JSON, atomically."""
    payload = dict(result)
    payload["time_per_image_s"] = time_per_image_s
    text = json.dumps(_json_clean(payload), indent=2, sort_keys=False) + "\n"
    write_text(path, text)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m lib.evaluation.imagenet_vid_eval",
        description="Re-score a saved ImageNet VID detections file (frame_id class score x1 y1 x2 y2).")
    parser.add_argument("--dets", required=True, help="detections file, e.g. results/det_VID_val_frames_all.txt")
    parser.add_argument("--cfg", default=None,
                        help="the yaml config the test ran with: its dataset.test_image_set is the ground truth, "
                             "whatever the dataset (ILSVRC layout, CocoVID json, synthetic); instead of "
                             "--eval-list / --annotations / --classes")
    parser.add_argument("--set", nargs="*", action="extend", default=[], metavar="KEY=VALUE",
                        help="with --cfg: config overrides, as the test's --set")
    parser.add_argument("--eval-list", default=None,
                        help="frame list ('frame_path frame_id') or video list ('video_dir start 0 n')")
    parser.add_argument("--annotations", default=None, help="annotation root, e.g. data/ILSVRC2015/Annotations/VID")
    parser.add_argument("--classes", default="imagenet_vid",
                        help="registered class list name (imagenet_vid, synthetic_vid) or the yaml config of a dataset "
                             "of your own (its dataset.CLASSES)")
    parser.add_argument("--out", default=None, help="eval.json path (default: next to --dets)")
    parser.add_argument("--cache", default=None, help="optional ground-truth cache pickle")
    parser.add_argument("--no-motion", action="store_true", help="skip the motion-specific mAP")
    parser.add_argument("--time-per-image", type=float, default=None,
                        help="seconds per frame to record in eval.json (null when not given)")
    args = parser.parse_args(argv)
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.dets)), "eval.json")
    try:
        if args.cfg is not None:
            if args.eval_list or args.annotations:
                raise ValueError("--cfg takes the frames and the ground truth from the config's test set: "
                                 "leave out --eval-list and --annotations")
            cfg = update_from_list(load_config(args.cfg), args.set)
            result, names = evaluate_det_file_of_config(args.dets, cfg, motion=not args.no_motion)
        else:
            if not (args.eval_list and args.annotations):
                raise ValueError("give --cfg (the test's config), or --eval-list and --annotations")
            if args.set:
                raise ValueError("--set applies to --cfg")
            names, _ = resolve_classes(args.classes)
            result = evaluate_det_file(args.dets, args.eval_list, args.annotations, classes=args.classes,
                                       cache_file=args.cache, motion=not args.no_motion)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"error: {exc.args[0] if isinstance(exc, KeyError) and exc.args else exc}", file=sys.stderr)
        return 2
    print(print_ap_table(result, names))
    write_eval_json(out, result, args.time_per_image)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
