"""Testing shared by the frame baseline and DFF (spec 6): per-frame post-processing, frames split
across ranks, the original detections file, and the ImageNet VID evaluation into eval.json.

A detector is any callable `detect(frame, data, im_info) -> (scores (R, C), boxes (R, 4*k))` in
original-image pixels; DFF's keeps key-frame state, so each rank gets whole videos in order.
"""
import os
import time

import numpy as np
import torch
from tqdm import tqdm

import lib.ops as ops
from lib.dataset.imagenet_vid_eval import (evaluate_detections, load_gt, print_ap_table, read_detections,
                                           write_detections, write_eval_json, write_frame_list)
from lib.utils import dist
from lib.utils.image import prepare_image


def postprocess(scores, boxes, thresh, nms_thresh=0.3, max_per_image=300, class_agnostic=True):
    """Spec 6.1: per class j >= 1 keep scores > thresh, greedy NMS (IoU > nms_thresh suppressed, +1
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


def split_frames(frames, rank, world_size, by_video):
    """This rank's frames. by_video: whole videos, each to the rank with the fewest frames so far
    (the original's greedy GPU assignment); else contiguous equal chunks."""
    if world_size == 1:
        return frames
    if not by_video:
        n = len(frames)
        return frames[rank * n // world_size:(rank + 1) * n // world_size]
    videos = {}
    for f in frames:
        videos.setdefault(f['video'], []).append(f)
    load = [0] * world_size
    mine = []
    for v, fs in videos.items():
        r = int(np.argmin(load))
        load[r] += len(fs)
        if r == rank:
            mine.extend(fs)
    return mine


def run_test(cfg, frames, detect, output_dir, image_set, annotation_root, class_names, thresh=None,
             by_video=False, desc='test', device='cpu'):
    """Detect on `frames` (dicts with 'image', 'frame_id', 'video', 'index'), write
    <output_dir>/det_<image_set>_all.txt, evaluate, write eval.json; returns the eval result dict."""
    rank, world = dist.rank(), dist.world_size()
    device = torch.device(device)
    thresh = float(cfg.TEST.thresh if thresh is None else thresh)
    mine = split_frames(frames, rank, world, by_video)
    rows = []
    net_time, n_timed = 0.0, 0
    bar = tqdm(mine, desc=f'{desc} [rank {rank}]', unit='frame', disable=rank != 0 and world > 1, mininterval=2)
    for k, frame in enumerate(bar):
        data, im_info = prepare_image(frame['image'], cfg)
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
                           bool(cfg.CLASS_AGNOSTIC))
        for d in dets:
            rows.append([frame['frame_id'], int(d[0]), float(d[1])] + [float(v) for v in d[2:6]])
        bar.set_postfix(fps=f'{n_timed / net_time:.1f}' if net_time else '-', refresh=False)
    gathered = dist.all_gather_object((rows, net_time, n_timed))
    if rank != 0:
        return None
    rows = sorted((r for g in gathered for r in g[0]), key=lambda r: (r[0], r[1], -r[2]))
    total_time = sum(g[1] for g in gathered)
    total_n = sum(g[2] for g in gathered)
    os.makedirs(output_dir, exist_ok=True)
    det_file = os.path.join(output_dir, f'det_{image_set}_all.txt')
    write_detections(det_file, rows)
    eval_list = os.path.join(output_dir, f'{image_set}_eval.txt')
    write_frame_list(eval_list, [(f['index'], f['frame_id']) for f in frames])
    class_to_index = {w: i for i, w in enumerate(class_names[1]) if i > 0}
    gt = load_gt(annotation_root, [(f['index'], f['frame_id']) for f in frames], class_to_index,
                 cache_file=os.path.join(output_dir, f'{image_set}_gt_cache.pkl'))
    # evaluated as written (scores to 4 decimals, boxes to 2), as the original's evaluation read the file:
    # re-scoring the file gives the same numbers
    det_array = read_detections(det_file).reshape(-1, 7)
    result = evaluate_detections(det_array, gt, len(class_names[0]), motion=True, class_names=list(class_names[0]),
                                 verbose=False)
    result['time_per_image_s'] = (total_time / total_n) if total_n else None
    print(print_ap_table(result, list(class_names[0])))
    eval_json = os.path.join(output_dir, 'eval.json')
    write_eval_json(eval_json, result, result['time_per_image_s'])
    result['det_file'], result['eval_json'] = det_file, eval_json
    return result


def run_model_test(cfg, build_model, checkpoint, output_dir, make_detector, thresh=None, model=None, by_video=False,
               desc='test'):
    """What the baseline's and DFF's test functions share: device and process group from torchrun, the
    model (built and loaded from `checkpoint` unless given) in eval mode on that device, the test imdb's
    frames, run_test. make_detector(model) -> detect(frame, data, im_info) -> (scores, boxes)."""
    from lib.core.trainer import process_device, resolve_device
    from lib.dataset.loader import make_imdb
    from lib.utils.weights import load_model_weights
    device = resolve_device(cfg)
    _, world, local_rank = dist.init_from_env(device)
    dev = process_device(device, local_rank, world)
    if model is None:
        model = build_model(cfg)
        load_model_weights(model, checkpoint, cfg=cfg)
    model.to(dev).eval()
    imdb = make_imdb(cfg, cfg.dataset.test_image_set)
    annotation_root = os.path.join(imdb.data_path, 'Annotations', imdb.det_vid)
    return run_test(cfg, imdb.test_frames(), make_detector(model), output_dir, cfg.dataset.test_image_set,
                    annotation_root, (imdb.classes, imdb.wnids), thresh=thresh, by_video=by_video, desc=desc,
                    device=dev)

