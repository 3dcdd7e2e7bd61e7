#!/usr/bin/env python
"""The README's main job: the original's results table in miniature, on the embedded synthetic dataset
and a CPU. In order, each step skipped when its output is already there (rerun = only what is missing):

  1. generate the synthetic dataset (data/synthetic_vid, first use only),
  2. pretrain FlowNet-S on its Flying Chairs-format pairs (dff_rfcn/train_flownet.py) -> EPE vs zero flow,
  3. train + test the frame baseline (experiments/rfcn/rfcn_end2end_train_test.py),
  4. train + test DFF (experiments/dff_rfcn/dff_rfcn_end2end_train_test.py), starting from 2 and 3,
  5. test the same DFF model with the flow forced to zero (key features copied, not warped),
  6. print the table (mAP@0.5, motion buckets, time per frame) and write it to <output>/synthetic_table.md.

    python tools/synthetic_table.py [--rfcn-cfg ...] [--dff-cfg ...] [--fresh] [--set KEY=VALUE ...]

--output DIR puts everything this run writes under DIR (rfcn/, dff_rfcn/, flownet/, synthetic_table.md)
instead of the configs' output_path and pretrained_flow. --set overrides apply to both configs (e.g. a smaller dataset); DFF starts from the baseline checkpoint
this run trained, whatever the DFF yaml's network.pretrained says.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from dff_rfcn.train_flownet import output_path as flownet_path, pretrain_flownet  # noqa: E402
from lib.config import load_config, update_from_list  # noqa: E402
from lib.core.experiment import output_dirs  # noqa: E402
from lib.dataset.synthetic_vid import ensure_dataset  # noqa: E402
from lib.utils.cli import run_cli  # noqa: E402


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
    lines = ['| method | mAP@0.5 (%) | slow | medium | fast | time/frame (s) | speed-up |',
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
    return '\n'.join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--rfcn-cfg', default='experiments/rfcn/cfgs/synthetic_vid_cpu.yaml')
    ap.add_argument('--dff-cfg', default='experiments/dff_rfcn/cfgs/synthetic_vid_cpu.yaml')
    ap.add_argument('--fresh', action='store_true', help='remove earlier outputs of these configs first')
    ap.add_argument('--set', nargs='*', default=[], metavar='KEY=VALUE', help='overrides for both configs')
    ap.add_argument('--output', default=None, help='one folder for all outputs of this run')
    args = ap.parse_args(argv)
    rsets, dsets = list(args.set), list(args.set)
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
    if args.fresh:
        for path in (rcfg.output_path, dcfg.output_path, os.path.dirname(flownet_path(dcfg))):
            shutil.rmtree(path, ignore_errors=True)
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
    out = os.path.join(args.output or os.path.dirname(dcfg.output_path.rstrip('/')), 'synthetic_table.md')
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, 'w') as f:
        f.write(text + '\n')
    print(f'\n[6/6] results ({time.time() - start:.0f} s in all)\n\n{text}\n\nwritten to {out}')


if __name__ == '__main__':
    run_cli(main)
