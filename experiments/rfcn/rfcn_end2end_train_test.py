#!/usr/bin/env python
"""Train the frame baseline (R-FCN) end to end, then test it: the original's rfcn_end2end_train_test.py.

    python experiments/rfcn/rfcn_end2end_train_test.py --cfg experiments/rfcn/cfgs/synthetic_vid_cpu.yaml
    torchrun --nproc_per_node 4 experiments/rfcn/rfcn_end2end_train_test.py --cfg experiments/rfcn/cfgs/resnet_v1_101_imagenet_vid_rfcn_end2end_ohem.yaml
Options: --resume (continue the last run in the output folder), --skip-train, --skip-test,
--set KEY=VALUE (config overrides, e.g. --set TRAIN.ACCUMULATE_GRAD=4), --thresh (test score threshold).
Outputs under <output_path>/<cfg name>/: <image_set>/<model_prefix>-<epoch>.pth, train.log, and
<test_image_set>/det_<test_image_set>_all.txt + eval.json (the last line printed names eval.json).
"""
import argparse
import os

import torch

import _init_paths  # noqa: F401

from lib.config import load_config, update_from_list
from lib.core.trainer import train
from lib.dataset.loader import BatchCollator, TrainDataset, load_train_roidb
from lib.utils import dist
from lib.utils.pretrained import load_pretrained
from rfcn.model import RFCN
from rfcn.test import test_rfcn


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--cfg', required=True, help='experiment yaml')
    p.add_argument('--resume', action='store_true')
    p.add_argument('--skip-train', action='store_true')
    p.add_argument('--skip-test', action='store_true')
    p.add_argument('--thresh', type=float, default=None, help='test score threshold (default TEST.thresh)')
    p.add_argument('--set', nargs='*', default=[], metavar='KEY=VALUE')
    return p.parse_args(argv)


def output_dirs(cfg, cfg_path):
    name = os.path.splitext(os.path.basename(cfg_path))[0]
    root = os.path.join(cfg.output_path, name)
    return os.path.join(root, cfg.dataset.image_set.replace('+', '_')), os.path.join(root, cfg.dataset.test_image_set)


def main(argv=None):
    args = parse_args(argv)
    cfg = update_from_list(load_config(args.cfg), args.set)
    train_dir, test_dir = output_dirs(cfg, args.cfg)
    final = os.path.join(train_dir, f'{cfg.TRAIN.model_prefix}-{int(cfg.TRAIN.end_epoch):04d}.pth')
    torch.manual_seed(int(cfg.seed))  # the same initial weights on every rank and every run
    model = RFCN(cfg)
    if not args.skip_train:
        load_pretrained(model.feature.backbone, cfg.network.pretrained, cfg.network.pretrained_epoch)
        dataset = TrainDataset(load_train_roidb(cfg), cfg)
        train(cfg, model, dataset, BatchCollator(cfg), train_dir, cfg.TRAIN.model_prefix, resume=args.resume)
        if int(cfg.TRAIN.MAX_ITERS):
            final = os.path.join(train_dir, f'{cfg.TRAIN.model_prefix}-last.pth')
    if not args.skip_test:
        result = test_rfcn(cfg, final, test_dir, thresh=args.thresh,
                           model=None if args.skip_train else model)
        if dist.rank() == 0:
            print(f"mAP@0.5 = {result['mAP']:.4f}  time/frame = {result['time_per_image_s']}")
            print(f"eval.json: {result['eval_json']}")
    dist.destroy()


if __name__ == '__main__':
    main()
