"""What the train_test entry scripts of the baseline and DFF share: options, output folders, the
train -> test sequence. Each script supplies its model, its training data and its test function.

Outputs under <output_path>/<cfg name>/: <image_set>/<model_prefix>-<epoch>.pth, train.log, and
<test_image_set>/det_<test_image_set>_all.txt + eval.json (the last line printed names eval.json)."""
import argparse
import os

import torch

from lib.config import load_config, update_from_list
from lib.core.trainer import resolve_device, train
from lib.dataset.loader import accumulation_steps
from lib.utils import dist


def parse_args(doc, argv=None):
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--cfg', required=True, help='experiment yaml')
    p.add_argument('--resume', action='store_true', help='continue the last run in the output folder')
    p.add_argument('--skip-train', action='store_true')
    p.add_argument('--skip-test', action='store_true')
    p.add_argument('--checkpoint', default=None,
                   help='test this checkpoint (.pth of this project or an official MXNet .params) instead of '
                        'the trained <model_prefix>-<end_epoch>.pth; implies --skip-train')
    p.add_argument('--thresh', type=float, default=None, help='test score threshold (default TEST.thresh)')
    p.add_argument('--set', nargs='*', action='extend', default=[], metavar='KEY=VALUE',
                   help='config overrides (yaml values); may be repeated')
    return p.parse_args(argv)


def output_dirs(cfg, cfg_path):
    name = os.path.splitext(os.path.basename(cfg_path))[0]
    root = os.path.join(cfg.output_path, name)
    return os.path.join(root, cfg.dataset.image_set.replace('+', '_')), os.path.join(root, cfg.dataset.test_image_set)


def train_test(doc, build_model, init_weights, make_train_data, test_fn, argv=None, log=print):
    """build_model(cfg) -> nn.Module; init_weights(model, cfg): pretrained weights before training;
    make_train_data(cfg) -> (dataset, collator); test_fn(cfg, checkpoint, out_dir, thresh=, model=) -> result."""
    args = parse_args(doc, argv)
    cfg = update_from_list(load_config(args.cfg), args.set)
    resolve_device(cfg)  # a device that is not there, or a gpus split that does not fit: said now, not later
    if not (args.checkpoint or args.skip_train):
        accumulation_steps(cfg, int(os.environ.get('WORLD_SIZE', '1')))
    train_dir, test_dir = output_dirs(cfg, args.cfg)
    final = os.path.join(train_dir, f'{cfg.TRAIN.model_prefix}-{int(cfg.TRAIN.end_epoch):04d}.pth')
    torch.manual_seed(int(cfg.seed))  # the same initial weights on every rank and every run
    model = build_model(cfg)
    trained = False
    if args.checkpoint:
        final = args.checkpoint
    elif not args.skip_train:
        init_weights(model, cfg)
        dataset, collator = make_train_data(cfg)
        train(cfg, model, dataset, collator, train_dir, cfg.TRAIN.model_prefix, resume=args.resume, log=log)
        trained = True
        if int(cfg.TRAIN.MAX_ITERS):
            final = os.path.join(train_dir, f'{cfg.TRAIN.model_prefix}-last.pth')
    result = None
    if not args.skip_test:
        result = test_fn(cfg, final, test_dir, thresh=args.thresh, model=model if trained else None)
        if dist.rank() == 0:
            t = result['time_per_image_s']
            log(f"mAP@0.5 = {result['mAP']:.4f}  time/frame = {'n/a' if t is None else f'{t:.4f} s'}")
            log(f"eval.json: {result['eval_json']}")
    dist.destroy()
    return result
