#!/usr/bin/env python
"""The speed / accuracy curve of DFF's key frames (docs/key_frames.md): one trained DFF tested with fixed
key-frame intervals and with the adaptive schedule at several thresholds, on one test set.

    python tools/key_frame_sweep.py --checkpoint CKPT [--cfg experiments/dff_rfcn/cfgs/synthetic_vid_cpu.yaml]
        [--intervals 1,2,3,5,10,15,20] [--adaptive bad_fraction=0.05 bad_fraction=0.1,max_interval=30 ...]
        [--out DIR] [--set dataset.test_image_set=VID_val_hard_videos ...]

Each run is the DFF test itself (dff_rfcn/tester.py test_dff, with TEST.KEY_FRAME_SCHEDULE /
KEY_FRAME_INTERVAL and the adaptive thresholds set), into <out>/<run>/ (det_*_all.txt, eval.json); a run
whose eval.json is already there for the same checkpoint, test set and settings is read, not run again
(--rerun: run it again, e.g. after the data were regenerated). Writes
<out>/key_frame_sweep.json (per run: schedule, parameters, mAP, motion mAPs, key frames, frames, key-frame
fraction, network time per frame) and <out>/key_frame_sweep.png (mAP versus time per frame and versus
key-frame fraction, the fixed intervals and the adaptive runs), and prints the table in markdown.
--adaptive: one run per argument, comma-separated name=value among max_interval, cut_thresh, warp_error,
bad_fraction, trigger, renewal_cost, score_drop (TEST.KEY_FRAME_MAX_INTERVAL, _CUT_THRESH, _WARP_ERROR,
_BAD_FRACTION, _TRIGGER, _RENEWAL_COST, _SCORE_DROP; the others from the config). --out defaults to
<output_path>/<cfg name>/key_frame_sweep/<test_image_set>.
"""
import argparse
import copy
import json
import os

from lib.config import load_config, update_from_list
from lib.utils.cli import run_cli
from lib.utils.fileio import atomic_write, write_text
from lib.utils.provenance import file_info

DEFAULT_INTERVALS = (1, 2, 3, 5, 10, 15, 20)
# the adaptive runs by default: the tuned settings (docs/key_frames.md) at several renewal costs (0.325: the
# default), and the earlier rule (a bad-cell fraction, no score drop) for comparison
DEFAULT_ADAPTIVE = ('renewal_cost=0.15', 'renewal_cost=0.2', 'renewal_cost=0.25', 'renewal_cost=0.325',
                    'renewal_cost=0.45', 'trigger=fraction,bad_fraction=0.03,score_drop=0')
ADAPTIVE_KEYS = {'max_interval': 'KEY_FRAME_MAX_INTERVAL', 'cut_thresh': 'KEY_FRAME_CUT_THRESH',
                 'warp_error': 'KEY_FRAME_WARP_ERROR', 'bad_fraction': 'KEY_FRAME_BAD_FRACTION',
                 'trigger': 'KEY_FRAME_TRIGGER', 'renewal_cost': 'KEY_FRAME_RENEWAL_COST',
                 'score_drop': 'KEY_FRAME_SCORE_DROP'}


def parse_intervals(text):
    try:
        values = [int(v) for v in text.split(',') if v.strip()]
    except ValueError:
        raise ValueError(f"--intervals: expected integers separated by commas (e.g. 1,2,5,10), got {text!r}") from None
    if not values or min(values) < 1:
        raise ValueError(f"--intervals: every interval must be an integer >= 1, got {text!r}")
    return sorted(set(values))


def parse_adaptive(spec):
    """'bad_fraction=0.05,max_interval=30' -> {'KEY_FRAME_BAD_FRACTION': 0.05, 'KEY_FRAME_MAX_INTERVAL': 30}."""
    out = {}
    for item in (s.strip() for s in spec.split(',')):
        name, sep, value = item.partition('=')
        if not sep or name.strip() not in ADAPTIVE_KEYS:
            raise ValueError(f"--adaptive {spec!r}: expected name=value pairs separated by commas, names among "
                             f"{', '.join(ADAPTIVE_KEYS)}; got {item!r}")
        out[ADAPTIVE_KEYS[name.strip()]] = value.strip()
    return out


def run_configs(cfg, intervals, adaptive):
    """[(run name, schedule, parameters, cfg)] of the sweep; the values checked as any --set is."""
    runs = []
    for k in intervals:
        c = update_from_list(copy.deepcopy(cfg), ['TEST.KEY_FRAME_SCHEDULE=fixed', f'TEST.KEY_FRAME_INTERVAL={k}'],
                             source='--intervals')
        runs.append((f'fixed{k}', 'fixed', {'KEY_FRAME_INTERVAL': k}, c))
    for spec in adaptive:
        values = parse_adaptive(spec)
        c = update_from_list(copy.deepcopy(cfg), ['TEST.KEY_FRAME_SCHEDULE=adaptive']
                             + [f'TEST.{k}={v}' for k, v in values.items()], source=f'--adaptive {spec}')
        params = {k: c.TEST[k] for k in ADAPTIVE_KEYS.values()}
        runs.append(('adaptive_' + adaptive_label(params, '_'), 'adaptive', params, c))
    return runs


def adaptive_label(params, sep=' '):
    """The adaptive run's settings in short: max30 cut0.1 err32 renewal0.1 drop0.05 (trigger 'renewal') or
    ... bad0.03 [drop0.05] (trigger 'fraction'; drop only when on)."""
    t = params['KEY_FRAME_TRIGGER']
    parts = [('max', 'KEY_FRAME_MAX_INTERVAL'), ('cut', 'KEY_FRAME_CUT_THRESH'), ('err', 'KEY_FRAME_WARP_ERROR'),
             ('bad', 'KEY_FRAME_BAD_FRACTION') if t == 'fraction' else ('renewal', 'KEY_FRAME_RENEWAL_COST')]
    if t == 'renewal' or params['KEY_FRAME_SCORE_DROP'] > 0:
        parts.append(('drop', 'KEY_FRAME_SCORE_DROP'))
    return sep.join(f'{short}{params[key]:g}' for short, key in parts)


def reusable(eval_json, checkpoint, settings, cfg):
    """The eval.json of an earlier run of the same checkpoint with the same settings on the same test set,
    else None."""
    try:
        with open(eval_json) as f:
            old = json.load(f)
    except (OSError, ValueError):
        return None
    run = old.get('run') or {}
    info = file_info(checkpoint)
    same_ckpt = info is not None and (run.get('checkpoint') or {}).get('sha256') == info['sha256']
    old_settings = {k: v for k, v in (run.get('settings') or {}).items() if k in settings}
    data = (run.get('config') or {}).get('dataset') or {}
    same_set = all(data.get(k) == cfg.dataset[k] for k in ('dataset', 'dataset_path', 'test_image_set'))
    return old if same_ckpt and same_set and old_settings == settings and 'stats' in old else None


def row(name, schedule, params, result, eval_json):
    stats = result['stats']
    motion = result.get('motion') or {}
    return {'run': name, 'schedule': schedule, 'parameters': params, 'mAP': result['mAP'],
            'motion_mAP': {b: motion.get(b) for b in ('slow', 'medium', 'fast')},
            'key_frames': stats['key_frames'], 'frames': stats['frames'],
            'key_fraction': stats['key_frames'] / stats['frames'], 'key_reasons': stats.get('key_reasons', {}),
            'flow_discarded': stats.get('flow_discarded', 0), 'time_per_frame_s': result.get('time_per_image_s'),
            'eval_json': eval_json}


def _pct(v):
    return 'n/a' if v is None else f'{100 * v:.1f}'


def table(rows):
    lines = ['| run | key frames / frames | mAP | slow / medium / fast | time per frame |',
             '|---|---|---|---|---|']
    for r in rows:
        m = r['motion_mAP']
        t = r['time_per_frame_s']
        lines.append(f"| {r['run']} | {r['key_frames']} / {r['frames']} ({100 * r['key_fraction']:.1f}%) | "
                     f"{_pct(r['mAP'])} | {_pct(m['slow'])} / {_pct(m['medium'])} / {_pct(m['fast'])} | "
                     f"{'n/a' if t is None else f'{1000 * t:.1f} ms'} |")
    return '\n'.join(lines)


def plot(rows, path, title):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, label, scale in ((axes[0], 'time_per_frame_s', 'network time per frame (ms)', 1000.0),
                                  (axes[1], 'key_fraction', 'key frames / frames (%)', 100.0)):
        for schedule, style in (('fixed', dict(marker='o', color='tab:blue', linestyle='-')),
                                ('adaptive', dict(marker='s', color='tab:red', linestyle='--'))):
            pts = sorted((scale * r[key], 100 * r['mAP'], r) for r in rows
                         if r['schedule'] == schedule and r[key] is not None)
            if not pts:
                continue
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=schedule, **style)
            for x, y, r in pts:
                p = r['parameters']
                text = (str(p['KEY_FRAME_INTERVAL']) if schedule == 'fixed' else
                        (f"bad {p['KEY_FRAME_BAD_FRACTION']:g}" if p['KEY_FRAME_TRIGGER'] == 'fraction'
                         else f"renewal {p['KEY_FRAME_RENEWAL_COST']:g}"))
                ax.annotate(text, (x, y), textcoords='offset points', xytext=(4, 4), fontsize=8, color=style['color'])
        ax.set_xlabel(label)
        ax.set_ylabel('mAP@0.5 (%)')
        ax.grid(alpha=0.3)
        ax.legend(title='schedule (label: interval / threshold)', fontsize=8, title_fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    try:
        atomic_write(path, lambda f: fig.savefig(f, format='png', dpi=110), 'wb')
    finally:
        plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--cfg', default='experiments/dff_rfcn/cfgs/synthetic_vid_cpu.yaml', help='DFF experiment yaml')
    ap.add_argument('--checkpoint', default=None,
                    help='trained DFF (default: the yaml\'s <model_prefix>-<end_epoch>.pth, as dff_rfcn/test.py)')
    ap.add_argument('--intervals', default=','.join(map(str, DEFAULT_INTERVALS)),
                    help='fixed key-frame intervals, comma-separated (default %(default)s)')
    ap.add_argument('--adaptive', nargs='*', default=list(DEFAULT_ADAPTIVE), metavar='NAME=VALUE[,...]',
                    help='adaptive runs, one per argument (default: %(default)s); none: only fixed intervals')
    ap.add_argument('--out', default=None, help='output folder (default <output_path>/<cfg name>/key_frame_sweep/'
                                                '<test_image_set>)')
    ap.add_argument('--rerun', action='store_true', help='run every test again (no reuse of earlier eval.json)')
    ap.add_argument('--thresh', type=float, default=None, help='test score threshold (default TEST.thresh)')
    ap.add_argument('--set', nargs='*', action='extend', default=[], metavar='KEY=VALUE',
                    help='config overrides (yaml values), e.g. dataset.test_image_set=VID_val_hard_videos')
    args = ap.parse_args(argv)
    from lib.core.experiment import output_dirs
    cfg = update_from_list(load_config(args.cfg), args.set)
    intervals = parse_intervals(args.intervals)
    runs = run_configs(cfg, intervals, args.adaptive)
    train_dir, test_dir = output_dirs(cfg, args.cfg)
    checkpoint = args.checkpoint or os.path.join(train_dir, f'{cfg.TRAIN.model_prefix}-{int(cfg.TRAIN.end_epoch):04d}.pth')
    if not os.path.isfile(checkpoint):
        raise FileNotFoundError(f"checkpoint not found: {checkpoint} (train DFF first, or give --checkpoint)")
    out = args.out or os.path.join(os.path.dirname(test_dir), 'key_frame_sweep', cfg.dataset.test_image_set)

    from dff_rfcn.model import DFF  # lazy: the model loads the custom ops; --help works before they are built
    from dff_rfcn.tester import test_dff
    from lib.model.weights import load_model_weights
    model, loaded = None, file_info(checkpoint)
    rows = []
    for name, schedule, params, c in runs:
        run_dir = os.path.join(out, name)
        eval_json = os.path.join(run_dir, 'eval.json')
        settings = {'KEY_FRAME_SCHEDULE': schedule, **params, 'ZERO_FLOW': False,
                    'thresh': float(c.TEST.thresh if args.thresh is None else args.thresh)}
        result = None if args.rerun else reusable(eval_json, checkpoint, settings, c)
        if result is None:
            if model is None:
                model = DFF(cfg)
                load_model_weights(model, checkpoint, cfg=cfg)
            print(f'key_frame_sweep: {name} on {c.dataset.test_image_set}', flush=True)
            result = test_dff(c, checkpoint, run_dir, thresh=args.thresh, model=model, zero_flow=False)
            if file_info(checkpoint) != loaded:  # eval.json names the file: it must still hold what was tested
                raise ValueError(f"{checkpoint} changed during the sweep (run {name}): its eval.json names a file "
                                 f"that no longer holds the weights tested; run the sweep again")
        else:
            print(f'key_frame_sweep: {name}: reusing {eval_json}', flush=True)
        rows.append(row(name, schedule, params, result, eval_json))
    os.makedirs(out, exist_ok=True)
    summary = {'checkpoint': file_info(checkpoint), 'cfg': os.path.abspath(args.cfg),
               'test_image_set': cfg.dataset.test_image_set, 'runs': rows}
    json_path = os.path.join(out, 'key_frame_sweep.json')
    write_text(json_path, json.dumps(summary, indent=1) + '\n')
    png = os.path.join(out, 'key_frame_sweep.png')
    plot(rows, png, f'DFF key frames on {cfg.dataset.test_image_set} ({os.path.basename(checkpoint)})')
    print(table(rows))
    print(f'key_frame_sweep.json: {json_path}\nkey_frame_sweep.png: {png}')
    return summary


if __name__ == '__main__':
    run_cli(main)
