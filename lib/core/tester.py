"""Testing shared by the frame baseline and DFF (docs/fidelity.md §8): per-frame post-processing, frames split
across ranks, the original detections file, and the ImageNet VID evaluation into eval.json.

A detector is any callable `detect(frame, data, im_info) -> (scores (R, C), boxes (R, 4*k))` in
original-image pixels; DFF's keeps key-frame state, so each rank gets whole videos in order. A detector
with an `eval_stats()` method (counts, e.g. DFF's key frames) has them summed over the ranks into
eval.json's 'stats'.

Memory does not grow with the dataset: each rank writes its detections frame by frame to its own file
<output_dir>/.det_<image_set>_all.txt.rank<r>.part (the ranks share the output folder) and keeps only
where each frame's lines are; rank 0 then merges the files into det_<image_set>_all.txt, frames in
frame-id order (the original's rows, sorted by frame id, class, descending score), and removes them.
The evaluation then reads that file, as the original's did.
"""
import copy
import functools
import os
import time

import numpy as np
import torch
from tqdm import tqdm

import lib.ops as ops
from lib.dataset.loader import make_imdb
from lib.dataset.vid_classes import wnid_to_index
from lib.evaluation.imagenet_vid_eval import (evaluate_detections, format_detections, imdb_annotations,
                                              print_ap_table, read_detections, write_eval_json, write_frame_list)
from lib.model.fast_path import FastPath
from lib.model.weights import load_model_weights
from lib.utils import dist
from lib.utils.device import process_device, resolve_device
from lib.utils.fileio import atomic_write
from lib.utils.image import choose_scale, prepare_image
from lib.utils.outputs import make_dirs, remove_empty_dirs, remove_file
from lib.utils.provenance import run_record


def postprocess(scores, boxes, thresh, nms_thresh=0.3, max_per_image=300, class_agnostic=True):
    """docs/fidelity.md §8.1: per class j >= 1 keep scores > thresh, greedy NMS (IoU > nms_thresh suppressed, +1
    areas), then at most max_per_image over all classes (threshold at the max_per_image-th score, >= kept).
    Returns an (M, 6) float array of rows [class, score, x1, y1, x2, y2]."""
    rows = []
    num_classes = scores.shape[1]
    for j in range(1, num_classes):
        inds = torch.nonzero(scores[:, j] > thresh).flatten()
        if inds.numel() == 0:
            continue
        cls_scores = scores[inds, j]
        cols = slice(4, 8) if class_agnostic else slice(4 * j, 4 * j + 4)
        cls_boxes = boxes[inds, cols]
        keep = ops.nms(cls_boxes, cls_scores, nms_thresh)
        dets = torch.cat([torch.full((keep.numel(), 1), float(j), dtype=cls_scores.dtype, device=cls_scores.device),
                          cls_scores[keep, None], cls_boxes[keep]], 1)
        rows.append(dets)
    if not rows:
        return np.zeros((0, 6), np.float32)
    dets = torch.cat(rows).cpu().numpy()
    if max_per_image > 0 and len(dets) > max_per_image:
        image_thresh = np.sort(dets[:, 1])[-max_per_image]
        dets = dets[dets[:, 1] >= image_thresh]
    return dets


def split_positions(frames, rank, world_size, by_video):
    """Positions in `frames` of this rank's frames. by_video: whole videos, each to the rank with the
    fewest frames so far (the original's greedy GPU assignment); else contiguous equal chunks."""
    n = len(frames)
    if world_size == 1:
        return list(range(n))
    if not by_video:
        return list(range(rank * n // world_size, (rank + 1) * n // world_size))
    videos = {}
    for i, f in enumerate(frames):
        videos.setdefault(f['video'], []).append(i)
    load = [0] * world_size
    mine = []
    for v, pos in videos.items():
        r = int(np.argmin(load))
        load[r] += len(pos)
        if r == rank:
            mine.extend(pos)
    return mine


def split_frames(frames, rank, world_size, by_video):
    """This rank's frames (split_positions)."""
    return [frames[i] for i in split_positions(frames, rank, world_size, by_video)]


def test_scale_index(cfg, frame, by_video):
    """Which of cfg.SCALES a test frame is resized to: the original drew one per image at random; DFF
    draws one per video (a key frame and the frames warped from it must have one size)."""
    return choose_scale(cfg, 'test', frame['video'] if by_video else frame.get('index', frame['image']))


def part_file(det_file, rank):
    return os.path.join(os.path.dirname(det_file), f'.{os.path.basename(det_file)}.rank{rank}.part')


class RankFailedError(ValueError):
    """Another process of a distributed test failed (its own error says why); raised on the others so that
    none waits for it."""


def detect_to_file(cfg, frames, detect, det_file, thresh, sizes=None, by_video=False, desc='test', device='cpu'):
    """Detect this rank's share of `frames`, streaming its detection lines to its part file; rank 0 merges
    the parts into `det_file` (atomically) and removes them. sizes: (height, width) per frame, from the
    annotations: each image is checked against it. Returns (seconds, frames timed, the detector's
    eval_stats() summed, or None) over all ranks on rank 0, None on the others."""
    rank, world = dist.rank(), dist.world_size()
    device = torch.device(device)
    mine = split_positions(frames, rank, world, by_video)
    part = part_file(det_file, rank)
    index = np.zeros((len(mine), 3), np.int64)  # position in frames, byte offset, byte length
    net_time, n_timed = 0.0, 0
    try:
        with open(part, 'wb') as out:
            bar = tqdm(mine, desc=f'{desc} [rank {rank}]', unit='frame', disable=rank != 0 and world > 1,
                       mininterval=2)
            offset = 0
            for k, pos in enumerate(bar):
                frame = frames[pos]
                data, im_info = prepare_image(frame['image'], cfg, scale_index=test_scale_index(cfg, frame, by_video),
                                              expected_size=None if sizes is None else sizes[pos])
                data = data.unsqueeze(0).to(device)
                im_info_t = torch.from_numpy(im_info[None]).to(device)
                if device.type == 'cuda':
                    torch.cuda.synchronize(device)
                t0 = time.perf_counter()
                scores, boxes = detect(frame, data, im_info_t)
                if device.type == 'cuda':
                    torch.cuda.synchronize(device)
                if k >= 2:  # as the original demos: average after 2 warm-up frames
                    net_time += time.perf_counter() - t0
                    n_timed += 1
                dets = postprocess(scores, boxes, thresh, float(cfg.TEST.NMS), int(cfg.TEST.max_per_image),
                                   bool(cfg.CLASS_AGNOSTIC)).astype(np.float64)
                dets = dets[np.lexsort((-dets[:, 1], dets[:, 0]))]  # class, then descending score (stable)
                rows = np.concatenate([np.full((len(dets), 1), frame['frame_id'], np.float64), dets], 1)
                text = format_detections(rows).encode()
                out.write(text)
                index[k] = (pos, offset, len(text))
                offset += len(text)
                bar.set_postfix(fps=f'{n_timed / net_time:.1f}' if net_time else '-', refresh=False)
    except Exception as exc:  # noqa: BLE001 - re-raised below, after the other ranks heard of it
        remove_file(part)
        if world == 1:
            raise
        failure = exc
    except BaseException:  # KeyboardInterrupt / SystemExit end every process anyway
        remove_file(part)
        raise
    else:
        failure = None
    counts = detect.eval_stats() if failure is None and hasattr(detect, 'eval_stats') else None
    # every rank reaches the gather, also one that failed (else the others would wait in it forever); then
    # every rank stops: the failing one with its own error, the others naming the rank and what it said
    gathered = dist.all_gather_object((index, net_time, n_timed,
                                       None if failure is None else f'{type(failure).__name__}: {failure}', counts))
    if failure is not None:
        raise failure
    failed = [(r, g[3]) for r, g in enumerate(gathered) if g[3] is not None]
    if failed:
        remove_file(part)  # this rank's finished part: no merge will read it
        raise RankFailedError(f"rank {failed[0][0]} stopped the test: {failed[0][1]}")
    if rank != 0:
        return None
    try:
        where = np.zeros((len(frames), 3), np.int64)  # rank, offset, length of each frame's lines
        for r, (idx, *_) in enumerate(gathered):
            where[idx[:, 0]] = np.stack([np.full(len(idx), r), idx[:, 1], idx[:, 2]], 1)
        frame_ids = np.array([f['frame_id'] for f in frames], np.int64)
        parts = [open(part_file(det_file, r), 'rb') for r in range(world)]
        try:
            def merge(f):
                for pos in np.argsort(frame_ids, kind='stable'):
                    r, off, length = where[pos]
                    if length:
                        parts[r].seek(off)
                        f.write(parts[r].read(length))
            atomic_write(det_file, merge, 'wb')
        finally:
            for fh in parts:
                fh.close()
    finally:
        for r in range(world):
            remove_file(part_file(det_file, r))
    return (sum(g[1] for g in gathered), sum(g[2] for g in gathered),
            None if counts is None else functools.reduce(add_counts, [g[4] for g in gathered]))


def add_counts(a, b):
    """Two dicts of counts (nested dicts of counts too) added key by key."""
    out = dict(a)
    for k, v in b.items():
        out[k] = add_counts(out.get(k, {}), v) if isinstance(v, dict) else out.get(k, 0) + v
    return out


def run_test(cfg, frames, detect, output_dir, image_set, load_annotations, class_names, thresh=None,
             by_video=False, desc='test', device='cpu', run_info=None):
    """Detect on `frames` (dicts with 'image', 'frame_id', 'video', 'index'), write
    <output_dir>/det_<image_set>_all.txt, evaluate, write eval.json (with run_info, what the result was
    computed from, under 'run'); returns the eval result dict. The annotations are read first
    (load_annotations(frame_list, class_to_index, cache_file=): imdb_annotations(imdb)); each
    image is checked against its <size>. A run that fails leaves no file of its own behind (and removes
    the output folder when it created it)."""
    rank = dist.rank()
    thresh = float(cfg.TEST.thresh if thresh is None else thresh)
    created = make_dirs(output_dir)
    det_file = os.path.join(output_dir, f'det_{image_set}_all.txt')
    eval_list = os.path.join(output_dir, f'{image_set}_eval.txt')
    gt_cache = os.path.join(output_dir, f'{image_set}_gt_cache.pkl')
    eval_json = os.path.join(output_dir, 'eval.json')
    try:
        class_to_index = wnid_to_index(class_names[1])
        frame_list = [(f['index'], f['frame_id']) for f in frames]
        if rank == 0:
            gt = load_annotations(frame_list, class_to_index, cache_file=gt_cache)  # imdb_annotations(imdb)
        dist.barrier()
        if rank != 0:
            gt = load_annotations(frame_list, class_to_index, cache_file=gt_cache)
        sizes = [(r['height'], r['width']) for r in gt['records']]
        timing = detect_to_file(cfg, frames, detect, det_file, thresh, sizes=sizes, by_video=by_video, desc=desc,
                                device=device)
        if rank != 0:
            return None
        total_time, total_n, counts = timing
        write_frame_list(eval_list, frame_list)
        # evaluated as written (scores to 4 decimals, boxes to 2), as the original's evaluation read the file:
        # re-scoring the file gives the same numbers
        det_array = read_detections(det_file).reshape(-1, 7)
        result = evaluate_detections(det_array, gt, len(class_names[0]), motion=True,
                                     class_names=list(class_names[0]), verbose=False)
        result['time_per_image_s'] = (total_time / total_n) if total_n else None
        if counts is not None:
            result['stats'] = counts
        print(print_ap_table(result, list(class_names[0])))
        result['run'] = dict(run_info or {}, settings=dict((run_info or {}).get('settings') or {}, thresh=thresh))
        write_eval_json(eval_json, result, result['time_per_image_s'])
    except BaseException:
        if created and rank == 0:
            for path in (det_file, eval_list, gt_cache, eval_json):
                remove_file(path)
            remove_empty_dirs(output_dir, created)
        raise
    result['det_file'], result['eval_json'] = det_file, eval_json
    return result


def run_model_test(cfg, build_model, checkpoint, output_dir, make_detector, thresh=None, model=None, by_video=False,
                   desc='test', settings=None):
    """What the baseline's and DFF's test functions share: device and process group from torchrun, the
    model (built and loaded from `checkpoint` unless given) in eval mode on that device, with the config's
    inference fast path (TEST.FAST_PATH, lib/model/fast_path.py; a given model is copied first), the test
    imdb's frames, run_test. make_detector(model) -> detect(frame, data, im_info) -> (scores, boxes).
    settings: the test settings to record in eval.json (e.g. DFF's key-frame interval)."""
    device = resolve_device(cfg)
    _, world, local_rank = dist.init_from_env(device)
    dev = process_device(device, local_rank, world)
    fast = FastPath.from_config(cfg)
    if model is None:
        model = build_model(cfg)
        load_model_weights(model, checkpoint, cfg=cfg)
    elif fast is not None:
        model = copy.deepcopy(model)  # the fast path changes the model in place: the caller's stays as it was
    model.to(dev).eval()
    if fast is not None:
        fast.prepare(model, dev)
        settings = dict(settings or {}, FAST_PATH=fast.settings())
    imdb = make_imdb(cfg, cfg.dataset.test_image_set)
    load_annotations = imdb_annotations(imdb)  # the XML folder's or the dataset's own records (CocoVID json)
    run_info = run_record(cfg, checkpoint, dev, settings) if dist.rank() == 0 else None
    result = run_test(cfg, imdb.test_frames(), make_detector(model), output_dir, cfg.dataset.test_image_set,
                      load_annotations, (imdb.classes, imdb.wnids), thresh=thresh, by_video=by_video, desc=desc,
                      device=dev, run_info=run_info)
    if fast is not None and fast.compile and dist.rank() == 0:
        print('fast path: first call (torch.compile) ' + ', '.join(f'{k} {v:.1f} s' for k, v in fast.first_call_s.items()))
    return result
