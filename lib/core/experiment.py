"""What the train_test entry scripts of the baseline and DFF share: options, output folders, the
train -> test sequence. Each script supplies its model, its training data and its test function.

Outputs under <output_path>/<cfg name>/: <image_set>/<model_prefix>-<epoch>.pth, train.log (one run per
folder: training where a run already is needs --resume, or a new output_path), and
<test_image_set>/det_<test_image_set>_all.txt + eval.json (the last line printed names eval.json).

Test results go to a folder per checkpoint and settings, so that no test overwrites another's: the
trained checkpoint at the yaml's own test settings -> <test_image_set>; otherwise the folder name gets a
part per difference: _thresh<t> (--thresh or TEST.thresh other than the yaml's), _interval<k> (DFF: a
TEST.KEY_FRAME_INTERVAL other than the yaml's), _adaptive (DFF: TEST.KEY_FRAME_SCHEDULE) and _maxint<n>, _cut<c>,
_warperr<e>, _bad<f> (its thresholds, docs/key_frames.md), _<checkpoint file stem>-<first 8 hex digits of its sha256>
(--checkpoint), _fast_<pieces> (the inference fast path, TEST.FAST_PATH / --fast), and DFF's zero-flow ablation
adds _zero_flow. eval.json records the checkpoint (path, size, sha256), the settings, the effective config, the
git commit, torch / CUDA versions and the device."""
import argparse
import os

import torch

from lib.config import load_config, update_from_list
from lib.core.trainer import train
from lib.dataset.loader import accumulation_steps
from lib.model.fast_path import add_fast_argument, fast_overrides, fast_path_tag
from lib.utils import dist
from lib.utils.device import resolve_device
from lib.utils.provenance import file_info


def parse_args(doc, argv=None, test_only=False):
    """The train_test scripts' options; test_only: the test scripts' (no training options)."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--cfg', required=True, help='experiment yaml')
    if not test_only:
        p.add_argument('--resume', action='store_true', help='continue the last run in the output folder')
        p.add_argument('--skip-train', action='store_true')
        p.add_argument('--skip-test', action='store_true')
    p.add_argument('--checkpoint', default=None,
                   help='test this checkpoint (.pth of this project or an official MXNet .params) instead of '
                        'the trained <model_prefix>-<end_epoch>.pth' + ('' if test_only else '; implies --skip-train'))
    p.add_argument('--thresh', type=float, default=None, help='test score threshold (default TEST.thresh)')
    p.add_argument('--set', nargs='*', action='extend', default=[], metavar='KEY=VALUE',
                   help='config overrides (yaml values); may be repeated')
    add_fast_argument(p)
    args = p.parse_args(argv)
    if test_only:
        args.resume, args.skip_train, args.skip_test = False, True, False
    return args


def output_dirs(cfg, cfg_path):
    name = os.path.splitext(os.path.basename(cfg_path))[0]
    root = os.path.join(cfg.output_path, name)
    return os.path.join(root, cfg.dataset.image_set.replace('+', '_')), os.path.join(root, cfg.dataset.test_image_set)


# folder-name parts of the test settings (default: the key's name in lower case)
SHORT_NAMES = {'TEST.thresh': 'thresh', 'TEST.KEY_FRAME_INTERVAL': 'interval', 'TEST.KEY_FRAME_SCHEDULE': '',
               'TEST.KEY_FRAME_MAX_INTERVAL': 'maxint', 'TEST.KEY_FRAME_CUT_THRESH': 'cut',
               'TEST.KEY_FRAME_WARP_ERROR': 'warperr', 'TEST.KEY_FRAME_BAD_FRACTION': 'bad',
               'TEST.KEY_FRAME_TRIGGER': '', 'TEST.KEY_FRAME_RENEWAL_COST': 'renewal', 'TEST.KEY_FRAME_SCORE_DROP': 'drop'}


def test_folder(test_dir, cfg, yaml_cfg, thresh=None, checkpoint=None, default_checkpoint=None,
                settings=('TEST.thresh',)):
    """The test output folder for these settings (see the module docstring). cfg: the effective config;
    yaml_cfg: the yaml's own (before --set); settings: the dotted keys that shape this test's results
    (TEST.thresh is overridden by `thresh` when given)."""
    parts = []
    for key in settings:
        section, name = key.split('.')
        value = cfg[section][name]
        if key == 'TEST.thresh' and thresh is not None:
            value = thresh
        base = yaml_cfg[section][name]
        if isinstance(value, str) or isinstance(base, str):
            if value != base:
                parts.append(f'{SHORT_NAMES.get(key, name.lower())}{value}')
        elif float(value) != float(base):
            parts.append(f'{SHORT_NAMES.get(key, name.lower())}{float(value):g}')
    if checkpoint and not (default_checkpoint and os.path.exists(default_checkpoint) and os.path.exists(checkpoint)
                           and os.path.samefile(checkpoint, default_checkpoint)):
        info = file_info(checkpoint)
        stem = os.path.splitext(os.path.basename(checkpoint))[0]
        parts.append(f"{stem}-{info['sha256'][:8]}" if info else stem)
    if fast_path_tag(cfg):  # the fast path's results (bfloat16 ones differ) never overwrite the eager ones
        parts.append(fast_path_tag(cfg))
    return test_dir if not parts else f"{test_dir.rstrip('/')}_{'_'.join(parts)}"


def train_test(doc, build_model, init_weights, make_train_data, test_fn, argv=None, log=print,
               test_settings=('TEST.thresh',), test_only=False):
    """build_model(cfg) -> nn.Module; init_weights(model, cfg): pretrained weights before training;
    make_train_data(cfg) -> (dataset, collator); test_fn(cfg, checkpoint, out_dir, thresh=, model=) -> result.
    test_settings: the config keys whose values (other than the yaml's) get their own test folder.
    test_only: no training (test_checkpoint)."""
    args = parse_args(doc, argv, test_only)
    cfg = update_from_list(update_from_list(load_config(args.cfg), args.set), fast_overrides(args.fast), '--fast')
    resolve_device(cfg)  # a device that is not there, or a gpus split that does not fit: said now, not later
    if not (args.checkpoint or args.skip_train):
        accumulation_steps(cfg, int(os.environ.get('WORLD_SIZE', '1')))
    train_dir, test_dir = output_dirs(cfg, args.cfg)
    final = os.path.join(train_dir, f'{cfg.TRAIN.model_prefix}-{int(cfg.TRAIN.end_epoch):04d}.pth')
    test_dir = test_folder(test_dir, cfg, load_config(args.cfg), args.thresh, args.checkpoint, final, test_settings)
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


def test_checkpoint(doc, build_model, test_fn, argv=None, log=print, test_settings=('TEST.thresh',)):
    """What the test scripts (rfcn/test.py, dff_rfcn/test.py, as the original's) run: test --checkpoint, by
    default the trained <model_prefix>-<end_epoch>.pth of the yaml's output folder, into the same test
    folders as train_test."""
    return train_test(doc, build_model, None, None, test_fn, argv, log, test_settings, test_only=True)
