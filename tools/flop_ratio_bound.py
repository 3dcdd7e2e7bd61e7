#!/usr/bin/env python
"""How close can DFF's speed-up over the frame baseline come to its FLOP ratio on this machine, with the
convolution kernels it has? The FLOP ratio (tools/benchmark.py) prices every multiply-add alike; this tool
prices each convolution of the two networks at what this machine's kernels achieve on that layer's shape.

For each path (eager float32, the float32 fast path, the bfloat16 fast path; --paths), at the real size
(600x1000 unless --height / --width, ResNet-v1-101 + R-FCN and FlowNet-S, random weights and the frames of
tools/benchmark.py) it
  1. times whole frames: the frame baseline, a DFF key frame and a non-key frame (medians of --repeat), and the
     DFF speed-up at key interval --interval, (key + (l-1) non-key) / l against the baseline;
  2. records every convolution layer's input in those frames (nn.Conv2d, nn.ConvTranspose2d and the fast path's
     GEMM forms of them) and times each layer alone on its input, warm, under the path's dtype (medians);
  3. prints the convolution-only speed-up: the same formula with each frame's time replaced by the sum of its
     layers' times alone. It is the speed-up DFF would have if everything besides the convolutions (pooling,
     concatenations, activations, warp, psroi_pool, proposal, dtype hand-overs) cost nothing, with today's
     kernels: an upper bound of what fusing or removing those operations can give.
--layers adds the non-key frame's layers (time, GFLOP, GFLOP/s), slowest first.

    python tools/flop_ratio_bound.py [--paths eager,fast,bfloat16] [--interval 10] [--repeat 5] [--threads N]
                                     [--height 600 --width 1000] [--layers]

Figures vary from run to run by 5-15% on a shared 2-core machine: compare the ratios of one run.
"""
import argparse
import statistics
import sys
import tempfile
import time

import benchmark  # tools/benchmark.py, beside this script: the same models, frames and loader

PATHS = {'eager': None, 'fast': {}, 'bfloat16': {'dtype': 'bfloat16'}}


def median_time(fn, repeat, warmup=1):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def conv_layers(model):
    """The modules whose calls are one convolution each: the fast path's GEMM forms, and the convolutions that
    are not inside one."""
    import torch.nn as nn

    from lib.model import fast_path as fp
    forms = (fp.DilatedConvAsGemm, fp.FastTransposedConv, fp.PointwiseConvToNCHW, fp.SmallMapConvAsGemm)
    inside = {id(c) for m in model.modules() if isinstance(m, forms) for c in m.modules() if c is not m}
    return [m for m in model.modules()
            if isinstance(m, forms + (nn.Conv2d, nn.ConvTranspose2d)) and id(m) not in inside]


def record_layer_inputs(model, run):
    """[(module, input)] of every convolution layer call in run()."""
    calls, handles = [], []
    for m in conv_layers(model):
        handles.append(m.register_forward_hook(lambda mod, inp, out: calls.append((mod, inp[0]))))
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return calls


def time_layers(calls, autocast, repeat):
    """[(seconds alone, FLOPs, input shape, module type)] per call, in order. The FLOPs are the layer's own (a
    transposed convolution's, also where the fast path computes it as a sub-pixel convolution, which does more),
    so that every path has the model's FLOP ratio."""
    from torch.utils.flop_counter import FlopCounterMode

    from lib.model.fast_path import FastTransposedConv
    rows = []
    for module, x in calls:
        with autocast():
            t = median_time(lambda: module(x), repeat, warmup=2)
            with FlopCounterMode(display=False) as counter:
                (module.deconv if isinstance(module, FastTransposedConv) else module)(x)
        rows.append((t, counter.get_total_flops(), tuple(x.shape), type(module).__name__))
    return rows


def speed_up(base, key, non_key, interval):
    return base / ((key + (interval - 1) * non_key) / interval)


def measure_path(settings, args, frames):
    import torch

    from lib.model.fast_path import FastPath
    dev = torch.device('cpu')
    bargs = argparse.Namespace(height=args.height, width=args.width, device='cpu')
    _, dff = benchmark.build('dff', bargs, dev)
    _, rfcn = benchmark.build('rfcn', bargs, dev)
    fast = FastPath(**settings) if settings is not None else None
    if fast is not None:
        dff, rfcn = fast.prepare(dff, dev), fast.prepare(rfcn, dev)

    def autocast():
        return fast.autocast('cpu') if fast is not None else torch.autocast('cpu', enabled=False)

    (key, info), (cur, _) = frames
    with torch.no_grad():
        _, key_feat = dff.detect_key(key, info)
        runs = {'baseline': lambda: rfcn.detect(cur, info), 'key': lambda: dff.detect_key(key, info),
                'non-key': lambda: dff.detect_cur(cur, info, key, key_feat)}
        frame = {part: median_time(run, args.repeat) for part, run in runs.items()}
        layers = {part: time_layers(record_layer_inputs(rfcn if part == 'baseline' else dff, run), autocast,
                                    args.repeat) for part, run in runs.items()}
    convs = {part: sum(r[0] for r in rows) for part, rows in layers.items()}
    flops = {part: sum(r[1] for r in rows) for part, rows in layers.items()}
    return frame, convs, flops, layers['non-key']


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument('--paths', default='eager,fast,bfloat16', help=f"comma-separated, of {', '.join(PATHS)}")
    ap.add_argument('--interval', type=int, default=10, help='the key-frame interval l (default 10)')
    ap.add_argument('--repeat', type=int, default=5, help='timings per median (default 5)')
    ap.add_argument('--threads', type=int, default=0, help='torch threads (default: torch\'s)')
    ap.add_argument('--height', type=int, default=600, help='frame height (default 600)')
    ap.add_argument('--width', type=int, default=1000, help='frame width (default 1000)')
    ap.add_argument('--layers', action='store_true', help="also list the non-key frame's layers")
    args = ap.parse_args(argv)
    paths = [p.strip() for p in args.paths.split(',') if p.strip()]
    unknown = [p for p in paths if p not in PATHS]
    if unknown:
        ap.error(f"--paths: unknown path {unknown[0]!r} (known: {', '.join(PATHS)})")
    if args.interval < 1 or args.repeat < 1:
        ap.error('--interval and --repeat must be at least 1')
    if min(args.height, args.width) < 64:
        ap.error('--height and --width must be at least 64 (the networks\' stride-64 encoder)')

    import torch

    from lib.model.fast_path import cpu_bfloat16_native
    if args.threads:
        torch.set_num_threads(args.threads)
    if 'bfloat16' in paths and not cpu_bfloat16_native():
        print('note: this CPU has no native bfloat16; the bfloat16 path runs emulated', file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        cfg, _ = benchmark.build('rfcn', argparse.Namespace(height=args.height, width=args.width, device='cpu'), 'cpu')
        load = benchmark.frame_loader(cfg, torch.device('cpu'))
        frames = [load(p) for p in benchmark.write_frames(tmp, 2, args.height, args.width)]
    l = args.interval
    print(f'{args.height}x{args.width}, key interval {l}, {torch.get_num_threads()} threads; times in s (medians of {args.repeat})')
    header = ('path', 'FLOP ratio', 'measured: baseline / key / non-key', 'speed-up', '% of FLOP ratio',
              'convs alone: baseline / key / non-key', 'conv-only speed-up', '% of FLOP ratio')
    print('| ' + ' | '.join(header) + ' |')
    print('|' + '---|' * len(header))
    listed = []
    for name in paths:
        frame, convs, flops, non_key_layers = measure_path(PATHS[name], args, frames)
        ratio = speed_up(flops['baseline'], flops['key'], flops['non-key'], l)
        measured = speed_up(frame['baseline'], frame['key'], frame['non-key'], l)
        bound = speed_up(convs['baseline'], convs['key'], convs['non-key'], l)
        print(f"| {name} | {ratio:.2f}x | {frame['baseline']:.3f} / {frame['key']:.3f} / {frame['non-key']:.4f} | "
              f"{measured:.2f}x | {100 * measured / ratio:.0f}% | {convs['baseline']:.3f} / {convs['key']:.3f} / "
              f"{convs['non-key']:.4f} | {bound:.2f}x | {100 * bound / ratio:.0f}% |", flush=True)
        listed.append((name, non_key_layers))
    print('(FLOP ratio: of the convolutions\' FLOPs, all but 0.1% of the networks\'; the same on every path)')
    if args.layers:
        for name, rows in listed:
            print(f'\n{name}: non-key frame layers, slowest first (ms, GFLOP, GFLOP/s, input, module)')
            for t, f, shape, kind in sorted(rows, reverse=True):
                print(f'  {1e3 * t:7.2f}  {f / 1e9:6.2f}  {f / t / 1e9 if t else 0:6.0f}  {shape}  {kind}')


if __name__ == '__main__':
    main()
