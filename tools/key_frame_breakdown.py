#!/usr/bin/env python
"""Re-score a test folder by the frames' distance from their key frame: where DFF loses, and what the warp
buys over copying the key frame's features (docs/synthetic.md, "Where DFF loses").

    python tools/key_frame_breakdown.py DIR [DIR ...] [--interval 10] [--iou 0.5]

DIR: a test output folder holding det_<set>_all.txt and <set>_gt_cache.pkl (written by every test of this
project: the frame baseline's <test_image_set>/ as well as DFF's and its _zero_flow/ folder). Frames are
grouped by their number in the video modulo --interval (the DFF test's key frames are 0, interval, ...):
key frames, 1 .. interval/2 - 1 after one, and the rest; each group is scored with the ImageNet VID protocol
(mAP and the motion buckets). --iou replaces the protocol's 0.5 (e.g. 0.3: does a method lose boxes or only
their placement?). The gt cache is read with lib/utils/fileio.py's load_data_pickle (numpy arrays and plain containers only).
"""
import argparse
import glob
import os

import numpy as np

from lib.evaluation import imagenet_vid_eval as vid_eval
from lib.utils.cli import run_cli
from lib.utils.fileio import load_data_pickle


def frame_groups(frames, interval):
    """(name, boolean mask) per group of frames by their position after the last key frame."""
    try:
        offsets = np.array([int(os.path.basename(path)) % interval for path, _ in frames], np.int64)
    except ValueError:
        raise ValueError("frame paths must end in the frame number (e.g. val/vid_0007/000012)") from None
    half = max(1, interval // 2)
    return [('all frames', offsets >= 0), ('key frames', offsets == 0),
            (f'1-{half - 1} after a key frame' if half > 2 else '1 after a key frame', (offsets >= 1) & (offsets < half)),
            (f'{half}-{interval - 1} after a key frame', offsets >= half)]


def score_groups(dets, gt, interval, num_classes, iou=None):
    """{group name: (mAP, motion mAPs, number of frames)} for the groups of frame_groups."""
    threshold = vid_eval.gt_iou_thresholds
    if iou is not None:
        vid_eval.gt_iou_thresholds = lambda boxes: threshold(boxes, default_thr=iou)
    try:
        out = {}
        for name, mask in frame_groups(gt['frames'], interval):
            idx = np.flatnonzero(mask)
            part = {'frames': [gt['frames'][i] for i in idx], 'records': [gt['records'][i] for i in idx],
                    'class_to_index': gt['class_to_index']}
            ids = np.array([fid for _, fid in part['frames']], np.int64)
            r = vid_eval.evaluate_detections(dets[np.isin(dets[:, 0], ids)], part, num_classes, verbose=False)
            out[name] = (r['mAP'], r['motion'], len(idx))
        return out
    finally:
        vid_eval.gt_iou_thresholds = threshold


def load_folder(folder):
    dets = glob.glob(os.path.join(folder, 'det_*_all.txt'))
    caches = glob.glob(os.path.join(folder, '*_gt_cache.pkl'))
    if len(dets) != 1 or len(caches) != 1:
        raise FileNotFoundError(f"{folder}: expected one det_*_all.txt and one *_gt_cache.pkl (a test output "
                                f"folder), found {len(dets)} and {len(caches)}")
    payload = load_data_pickle(caches[0])  # plain data only (lib/utils/fileio.py): never runs code
    if not isinstance(payload, dict) or 'gt' not in payload:
        raise ValueError(f"{caches[0]}: not a ground-truth cache of this project")
    return vid_eval.read_detections(dets[0]), payload['gt']


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('dirs', nargs='+', metavar='DIR')
    ap.add_argument('--interval', type=int, default=10, help='key-frame interval of the DFF test (10)')
    ap.add_argument('--iou', type=float, default=None, help='IoU threshold instead of the protocol\'s 0.5')
    args = ap.parse_args(argv)
    if args.interval < 1:
        raise ValueError(f"--interval must be >= 1, got {args.interval}")
    for folder in args.dirs:
        dets, gt = load_folder(folder)
        num_classes = len(gt['class_to_index']) + 1
        print(folder + (f'  (IoU {args.iou})' if args.iou is not None else ''))
        for name, (m, motion, n) in score_groups(dets, gt, args.interval, num_classes, args.iou).items():
            buckets = ' / '.join('n/a' if motion is None or motion[b] is None or np.isnan(motion[b])
                                 else f'{100 * motion[b]:.1f}' for b in ('slow', 'medium', 'fast'))
            print(f'  {name:<26} {100 * m:5.1f}   slow / medium / fast {buckets}   ({n} frames)')


if __name__ == '__main__':
    run_cli(main)
