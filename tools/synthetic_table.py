#!/usr/bin/env python
"""The README's main job: the original's results table in miniature, on the embedded synthetic dataset
and a CPU. In order, each step skipped when its output is already there (rerun = only what is missing):

  1. generate the synthetic dataset (data/synthetic_vid, first use only),
  2. pretrain FlowNet-S on its Flying Chairs-format pairs (dff_rfcn/train_flownet.py) -> EPE vs zero flow,
  3. train + test the frame baseline (experiments/rfcn/rfcn_end2end_train_test.py),
  4. train + test DFF (experiments/dff_rfcn/dff_rfcn_end2end_train_test.py), starting from 2 and 3,
  5. test the same DFF model with the flow forced to zero (key features copied, not warped),
  6. print the table (mAP@0.5, motion buckets, time per frame of the CPU-sized synthetic networks),
  7. measure the real-size speed on this machine (tools/benchmark.py --quick: 600x1000, ResNet-v1-101 + R-FCN
     and FlowNet-S, random weights, key frame every 10) and print it after the accuracy table; both tables
     go to <output>/synthetic_table.md.

    python tools/synthetic_table.py [--seed N] [--fresh] [--output DIR] [--no-speed] [--set KEY=VALUE ...]

--seed N generates the dataset with generator seed N in its own folder (data/synthetic_vid_seed<N>) and puts
this run's outputs under output/synthetic_seed<N>/ (seed 0 is the default: data/synthetic_vid and the
configs' own output folders). --output DIR puts everything this run writes under DIR (rfcn/, dff_rfcn/,
flownet/, synthetic_table.md) instead. --set overrides apply to both configs (e.g. a smaller dataset); DFF
starts from the baseline checkpoint this run trained, whatever the DFF yaml's network.pretrained says.
--fresh removes this tool's earlier outputs first: only folders it created itself (they hold the marker
file .synthetic_table_output) and only for the synthetic dataset; anything else is refused with one line.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from dff_rfcn.train_flownet import output_path as flownet_path, pretrain_flownet  # noqa: E402
from lib.config import load_config, update_from_list  # noqa: E402
from lib.core.experiment import output_dirs  # noqa: E402
from lib.dataset.synthetic_vid import ensure_dataset  # noqa: E402
from lib.utils.cli import run_cli  # noqa: E402


MARKER = '.synthetic_table_output'  # in every output folder this tool created: the only ones --fresh removes


def claim_output(path):
    """Create an output folder and mark it as this tool's; an existing folder is only used, never marked."""
    if not os.path.isdir(path):
        os.makedirs(path)
        with open(os.path.join(path, MARKER), 'w') as f:
            f.write('created by tools/synthetic_table.py; --fresh may remove this folder\n')


def remove_output(path):
    """--fresh: remove an output folder this tool created (marker inside), refuse anything else."""
    if not os.path.exists(path):
        return
    real = os.path.realpath(path)
    protected = [os.path.realpath(os.path.join(ROOT, d)) for d in ('model', 'data')]
    if real == os.path.realpath(ROOT) or os.path.realpath(ROOT).startswith(real + os.sep) or any(
            real == d or real.startswith(d + os.sep) for d in protected):
        raise ValueError(f"--fresh: refusing to remove {path}: it is the repository, a folder above it, or "
                         f"inside model/ or data/")
    if not os.path.isfile(os.path.join(path, MARKER)):
        raise ValueError(f"--fresh: refusing to remove {path}: this tool did not create it (no {MARKER} inside); "
                         f"remove it yourself, or give --output a new folder")
    shutil.rmtree(path)


def run(script, cfg_path, sets, *args):
    cmd = [sys.executable, os.path.join(ROOT, script), '--cfg', cfg_path, *args]
    if sets:
        cmd += ['--set', *sets]
    print('\n$ ' + ' '.join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in cmd), flush=True)
    proc = subprocess.run(cmd, cwd=ROOT)
    if proc.returncode:
        sys.exit(f"synthetic_table: {os.path.basename(script)} failed with exit code {proc.returncode}")


def eval_json(cfg, cfg_path, suffix=''):
    _, test_dir = output_dirs(cfg, cfg_path)
    path = test_dir + suffix + '/eval.json'
    with open(path) as f:
        return json.load(f), path


def fmt(v, spec='{:.1f}', scale=100.0):
    return 'n/a' if v is None else spec.format(v * scale)


def table(rows, epe):
    base_t = rows[0][1]['time_per_image_s']
    lines = ['| method | mAP@0.5 (%) | slow | medium | fast | time/frame, CPU-sized synthetic nets (s) | ratio |',
             '|---|---|---|---|---|---|---|']
    for name, r in rows:
        m = r.get('motion') or {}
        t = r['time_per_image_s']
        speed = f'{base_t / t:.2f}x' if t and base_t else 'n/a'
        lines.append(f"| {name} | {fmt(r['mAP'])} | {fmt(m.get('slow'))} | {fmt(m.get('medium'))} | "
                     f"{fmt(m.get('fast'))} | {fmt(t, '{:.4f}', 1.0)} | {speed} |")
    lines.append('')
    lines.append(f"FlowNet-S pretraining: validation EPE {epe['epe']:.2f} px, zero flow {epe['zero_flow_epe']:.2f} px "
                 f"({epe['pairs']} pairs)")
    lines.append(f"Validation: {rows[0][1].get('num_frames', 'n/a')} frames; ground-truth instances per motion "
                 f"bucket (slow / medium / fast): " + ' / '.join(str((rows[0][1].get('motion_npos') or {}).get(b, 'n/a'))
                                                                for b in ('slow', 'medium', 'fast')))
    lines.append('The time column is the synthetic networks\' (one block per stage, a quarter-width FlowNet): their '
                 'per-layer overhead, not the method, sets it; the real-size speed is the next table.')
    return '\n'.join(lines)


def speed(interval, size):
    """tools/benchmark.py --quick --fast in a subprocess at size (h, w) -> its JSON figures (None if it failed):
    the eager path and, side by side, the inference fast path in float32 and, on a CPU with native bfloat16,
    in bfloat16 (lib/model/fast_path.py)."""
    from lib.model.fast_path import cpu_bfloat16_native
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, 'bench.json')
        cmd = [sys.executable, os.path.join(ROOT, 'tools', 'benchmark.py'), '--quick', '--interval', str(interval),
               '--frames', str(2 * interval), '--height', str(size[0]), '--width', str(size[1]), '--json', out,
               '--fast'] + ([] if cpu_bfloat16_native() else ['float32']) + ['--pairs', '3']
        print('\n$ ' + ' '.join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in cmd), flush=True)
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if proc.returncode or not os.path.isfile(out):
            print(proc.stdout[-2000:] + proc.stderr[-2000:], file=sys.stderr)
            return None
        with open(out) as f:
            return json.load(f)


def speed_table(r, interval):
    b, d = r['baseline'], r['dff']
    raw = r['raw']['rfcn']
    size = f"{raw['input'][0]}x{raw['input'][1]}"
    what = 'the real size' if size == '600x1000' else 'not the real size'
    lines = [f"Speed on this machine at {size} ({what}; ResNet-v1-101 + R-FCN, FlowNet-S, random weights, "
             f"{raw['threads']} threads, network time per frame, tools/benchmark.py --quick):", '',
             '| method | time/frame (s) | speed-up |', '|---|---:|---:|',
             f"| Frame baseline (R-FCN) | {b['network']:.3f} | 1.00x |",
             f"| DFF key frame | {d['network_key']:.3f} | {b['network'] / d['network_key']:.2f}x |",
             f"| DFF non-key frame | {d['network_nonkey']:.3f} | {b['network'] / d['network_nonkey']:.2f}x |",
             f"| DFF average (key frame every {interval}) | {d['network']:.3f} | {b['network'] / d['network']:.2f}x |"]
    paths = r.get('paths') or {}
    if len(paths) > 1:  # --fast: the paths timed side by side in one process (medians of interleaved rounds)
        lines += ['', 'The inference fast path (--fast, lib/model/fast_path.py: BN folded, channels_last, GEMMs for the convolutions oneDNN runs slowly; fast-bfloat16: '
                      'and bfloat16 autocast), side by side with the eager path in one process (tools/benchmark.py '
                      '--fast --pairs 3: medians of 3 interleaved rounds; the eager row is timed again there):', '',
                  '| path | baseline (s/frame) | DFF key | DFF non-key | DFF average | DFF speed-up (of the FLOP ratio) '
                  '| baseline gain | DFF gain |',
                  '|---|---:|---:|---:|---:|---:|---:|---:|']
        lines += [f"| {name} | {f['baseline']:.3f} | {f['key']:.3f} | {f['non-key']:.3f} | {f['average']:.3f} | "
                  f"{f['speedup']:.2f}x ({100 * f['speedup_of_flop_ratio']:.0f}% of {f['flop_ratio']:.2f}x) | "
                  f"{f['gain_baseline']:.2f}x | {f['gain_dff']:.2f}x |" for name, f in paths.items()]
    return '\n'.join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--rfcn-cfg', default='experiments/rfcn/cfgs/synthetic_vid_cpu.yaml')
    ap.add_argument('--dff-cfg', default='experiments/dff_rfcn/cfgs/synthetic_vid_cpu.yaml')
    ap.add_argument('--fresh', action='store_true', help='remove earlier outputs of these configs first')
    ap.add_argument('--set', nargs='*', action='extend', default=[], metavar='KEY=VALUE',
                    help='overrides for both configs (may be repeated)')
    ap.add_argument('--output', default=None, help='one folder for all outputs of this run')
    ap.add_argument('--seed', type=int, default=0,
                    help='generator seed of the synthetic dataset (N > 0: data/synthetic_vid_seed<N>, '
                         'outputs under output/synthetic_seed<N>/)')
    ap.add_argument('--no-speed', action='store_true', help='skip the real-size speed table')
    ap.add_argument('--speed-size', default='600x1000', metavar='HxW',
                    help='input size of the speed table (default: the real size, 600x1000)')
    args = ap.parse_args(argv)
    try:
        speed_size = tuple(int(v) for v in args.speed_size.lower().split('x'))
        assert len(speed_size) == 2 and min(speed_size) >= 32
    except (ValueError, AssertionError):
        raise ValueError(f"--speed-size: expected HxW with both sides >= 32 (e.g. 600x1000), got {args.speed_size!r}") from None
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    seed_sets = []
    if args.seed:
        data = f'./data/synthetic_vid_seed{args.seed}'
        seed_sets = [f'dataset.SYNTHETIC.seed={args.seed}', f'dataset.dataset_path={data}',
                     f'FLOW_PRETRAIN.dataset_path={data}/FlowPairs']
        args.output = args.output or os.path.join(ROOT, 'output', f'synthetic_seed{args.seed}')
    rsets, dsets = seed_sets + list(args.set), seed_sets + list(args.set)
    if args.output:
        out_root = os.path.abspath(args.output)
        rsets.append(f'output_path={out_root}/rfcn')
        dsets += [f'output_path={out_root}/dff_rfcn', f'network.pretrained_flow={out_root}/flownet/flownet_synthetic']
    os.chdir(ROOT)
    start = time.time()
    rcfg = update_from_list(load_config(args.rfcn_cfg), rsets)
    dcfg = update_from_list(load_config(args.dff_cfg), dsets)
    if dict(rcfg.dataset.SYNTHETIC) != dict(dcfg.dataset.SYNTHETIC) or rcfg.dataset.dataset_path != dcfg.dataset.dataset_path:
        sys.exit('synthetic_table: the two configs must use the same synthetic dataset (dataset.SYNTHETIC, dataset_path)')
    outputs = (rcfg.output_path, dcfg.output_path, os.path.dirname(flownet_path(dcfg)))
    if args.fresh:
        for c in (rcfg, dcfg):
            if c.dataset.dataset != 'SyntheticVID':
                raise ValueError(f"--fresh is for the synthetic configs only; this one uses dataset "
                                 f"{c.dataset.dataset} (its outputs are never removed by this tool)")
        for path in outputs:
            remove_output(path)
    for path in outputs:
        claim_output(path)
    print(f'[1/6] synthetic dataset under {dcfg.dataset.dataset_path}', flush=True)
    ensure_dataset(dcfg.dataset.dataset_path, **dict(dcfg.dataset.SYNTHETIC))
    weights = flownet_path(dcfg)
    print(f'[2/6] FlowNet-S pretraining -> {weights}', flush=True)
    if not os.path.isfile(weights):
        pretrain_flownet(dcfg, resume=True)  # a killed pretraining continues where it stopped
    epe = json.load(open(weights[:-4] + '.json'))
    print('[3/6] frame baseline: train + test', flush=True)
    run('experiments/rfcn/rfcn_end2end_train_test.py', args.rfcn_cfg, rsets, '--resume')
    baseline = os.path.join(output_dirs(rcfg, args.rfcn_cfg)[0],
                            f'{rcfg.TRAIN.model_prefix}-{int(rcfg.TRAIN.end_epoch):04d}.pth')
    print(f'[4/6] DFF: train (from {baseline} and the pretrained FlowNet) + test', flush=True)
    dff_sets = dsets + [f'network.pretrained={baseline}']
    run('experiments/dff_rfcn/dff_rfcn_end2end_train_test.py', args.dff_cfg, dff_sets, '--resume')
    print('[5/6] DFF with the flow forced to zero (same model, same videos)', flush=True)
    run('experiments/dff_rfcn/dff_rfcn_end2end_train_test.py', args.dff_cfg, dff_sets + ['TEST.ZERO_FLOW=true'],
        '--skip-train')
    rows = [('Frame baseline (R-FCN)', eval_json(rcfg, args.rfcn_cfg)[0]),
            (f'DFF (key frame every {dcfg.TEST.KEY_FRAME_INTERVAL})', eval_json(dcfg, args.dff_cfg)[0]),
            ('DFF, flow forced to zero', eval_json(dcfg, args.dff_cfg, '_zero_flow')[0])]
    text = table(rows, epe)
    print(f'\n[6/7] accuracy ({time.time() - start:.0f} s so far)\n\n{text}\n', flush=True)
    if not args.no_speed:
        print('[7/7] speed at the real size (tools/benchmark.py --quick)', flush=True)
        interval = int(dcfg.TEST.KEY_FRAME_INTERVAL)
        r = speed(interval, speed_size)
        text += '\n\n' + (speed_table(r, interval) if r else 'Real-size speed: tools/benchmark.py failed (see above).')
    out = os.path.join(args.output or os.path.dirname(dcfg.output_path.rstrip('/')), 'synthetic_table.md')
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, 'w') as f:
        f.write(text + '\n')
    print(f'\nresults ({time.time() - start:.0f} s in all)\n\n{text}\n\nwritten to {out}')


if __name__ == '__main__':
    run_cli(main)
