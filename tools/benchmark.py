#!/usr/bin/env python
"""Speed of the frame baseline vs DFF at the real size: 600x1000 input, ResNet-v1-101 + R-FCN (31
classes) and FlowNet-S at full width, batch 1, key frame every --interval frames. Random weights (speed
does not depend on them; post-processing sees every roi above the threshold, its worst case).

    python tools/benchmark.py [--device cpu|cuda] [--frames 20] [--interval 10] [--repeat 3] [--threads N] [--quick]
                              [--fast [DTYPE]] [--compile] [--rounds N]

Each method runs in its own process (peak memory is that process's), on the same frames: --frames frames
of the bikes.mp4 fixture resized to 1000x600 and written as JPEG, so "end to end" reads them from disk.

  network only  the forward pass per frame as the original timed it: key frame = backbone + feat_conv +
                RPN + proposal + R-FCN heads; non-key frame = FlowNet + warp x scale + the same heads
  end to end    + cv2.imread, resize and normalisation, box decoding and post-processing (per-class NMS)
  components    medians over --repeat runs of each stage alone, on a key and a non-key frame
  bound         what the components imply: the interval average (key + (l-1) non-key) / l, and the
                speed-up limit for l -> infinity (key / non-key)
  batched       DFF's batched mode (the original's demo_batch.py): whole intervals, 1 key + l-1 frames in
                one forward, network-only time / frames (the first interval warms up)
  FLOPs         per component and per path (baseline frame, DFF key, non-key, per-frame average), counted with
                torch.utils.flop_counter plus the custom ops' own counts (lib/ops/flops.py), and the achieved
                GFLOP/s as a fraction of the machine's peak: a 2048x2048 matmul in float32 and in bfloat16
                (float16 on CUDA too), measured in each worker process, on its threads, just before its timing

--fast [DTYPE] also times the inference fast path (lib/model/fast_path.py) side by side with the eager float32 path:
"fast" (BN folded, channels_last, float32) and "fast-DTYPE" (the same under autocast; DTYPE default bfloat16 on a
CPU, float16 on CUDA; --fast float32 times the float32 fast path alone); --compile adds torch.compile to the
fast paths (the first call of each graph, compilation included, is reported apart). --rounds N runs the whole
sequence of processes (every path, baseline then DFF) N times, interleaved, and reports the median of each
figure over the rounds: on a shared machine a change of load then reaches every path alike.

--quick (what the main job, tools/synthetic_table.py, runs after its accuracy table): the per-frame rows only,
no components and no batched mode, the baseline on --warmup + 4 frames (about a minute on 2 cores per path).
CUDA timings synchronise around every timed region. Prints the tables in the shape of the README's.
"""
import argparse
import json
import multiprocessing as mp
import os
import queue as queue_module
import resource
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

RFCN_CFG = 'experiments/rfcn/cfgs/resnet_v1_101_imagenet_vid_rfcn_end2end_ohem.yaml'
DFF_CFG = 'experiments/dff_rfcn/cfgs/resnet_v1_101_flownet_imagenet_vid_rfcn_end2end_ohem.yaml'
VIDEO = os.path.join(ROOT, 'tests', 'fixtures', 'video', 'bikes.mp4')
COMPONENTS = ['backbone', 'feat_conv', 'flownet', 'warp', 'rpn+proposal', 'rfcn+psroi', 'post-processing']
PEAK_N = 2048  # the peak matmul: PEAK_N x PEAK_N x PEAK_N
FAST_DESCRIPTIONS = {'eager': 'eager float32 (the default, as the original)',
                     'fast': 'fast path: BN folded, channels_last, float32',
                     'fast-bfloat16': 'fast path: BN folded, channels_last, bfloat16 autocast',
                     'fast-float16': 'fast path: BN folded, channels_last, float16 autocast'}


def write_frames(folder, n, height, width):
    import cv2
    cap = cv2.VideoCapture(VIDEO)
    paths = []
    try:
        while len(paths) < n:
            ok, im = cap.read()
            if not ok:
                if not paths:
                    raise RuntimeError(f'could not read frames from {VIDEO}')
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)  # loop the clip
                continue
            path = os.path.join(folder, f'{len(paths):06d}.jpg')
            cv2.imwrite(path, cv2.resize(im, (width, height), interpolation=cv2.INTER_LINEAR))
            paths.append(path)
    finally:
        cap.release()
    return paths


class Timer:
    def __init__(self, device):
        import torch
        self.sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)

    def __call__(self, fn, *args):
        self.sync()
        t0 = time.perf_counter()
        out = fn(*args)
        self.sync()
        return out, time.perf_counter() - t0


def matmul_peak(dtype, device, repeat=5):
    """GFLOP/s of a PEAK_N^3 matmul in `dtype` on this process's threads (median of `repeat` after warm-up)."""
    import torch
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(PEAK_N, PEAK_N, generator=g).to(device=device, dtype=dtype) for _ in range(2))
    timer = Timer(device.type)
    for _ in range(2):
        timer(torch.mm, a, b)
    t = statistics.median(timer(torch.mm, a, b)[1] for _ in range(repeat))
    return 2 * PEAK_N ** 3 / t / 1e9


def peak_dtypes(device):
    """The dtypes whose matmul peak is measured on this device."""
    import torch
    from lib.model.fast_path import cpu_bfloat16_native
    if device.type == 'cuda':
        return ['float32'] + (['bfloat16'] if torch.cuda.is_bf16_supported() else []) + ['float16']
    return ['float32'] + (['bfloat16'] if cpu_bfloat16_native() else [])


def worker(method, path, args, frames, queue):
    """One method on one path (None: eager float32; else FastPath settings) in its own process: the matmul
    peaks, per-frame times, component medians and FLOPs, peak memory."""
    import contextlib

    import torch
    import torch.nn.functional as F

    import lib.ops as ops
    from lib.config import load_config
    from lib.core.tester import postprocess
    from lib.model.detection import im_detect_boxes
    from lib.model.fast_path import FastPath
    from lib.ops.flops import count_flops
    from lib.apps.demo import prepare_frame
    from lib.utils.image import read_image

    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    cfg = load_config(os.path.join(ROOT, RFCN_CFG if method == 'rfcn' else DFF_CFG))
    cfg.SCALES = [[min(args.height, args.width), max(args.height, args.width)]]  # frames are used at their size
    torch.manual_seed(0)
    if method == 'rfcn':
        from rfcn.model import RFCN
        model = RFCN(cfg)
    else:
        from dff_rfcn.model import DFF
        model = DFF(cfg)
        with torch.no_grad():  # a non-trivial flow and scale (the init gives flow ~ 0, scale == 1)
            torch.nn.init.normal_(model.flownet.Convolution5.weight, 0, 0.01)
            torch.nn.init.normal_(model.flownet.Convolution5_scale.weight, 0, 0.001)
    model.to(dev).eval()
    fast = FastPath(**path) if path else None
    if fast is not None:
        fast.prepare(model, dev)
    context = (lambda: fast.autocast(dev.type)) if fast is not None else contextlib.nullcontext
    layout = fast.layout if fast is not None else (lambda x: x)
    with torch.no_grad():
        peaks = {name: matmul_peak(getattr(torch, name), dev) for name in peak_dtypes(dev)}
    if args.device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    timer = Timer(args.device)
    thresh, nms, max_per = float(cfg.TEST.thresh), float(cfg.TEST.NMS), int(cfg.TEST.max_per_image)
    interval = args.interval

    def load(path):
        data, info = prepare_frame(read_image(path), cfg)
        return data[None].to(dev), torch.from_numpy(info[None]).to(dev)

    def post(out, info):
        scores, boxes = im_detect_boxes(out, info)
        return postprocess(scores[0], boxes[0], thresh, nms, max_per, bool(cfg.CLASS_AGNOSTIC))

    # ---------------------------------------------------------------- per-frame, as a video is processed
    records = []
    key_data = key_feat = None
    with torch.no_grad():
        for k, path in enumerate(frames):
            t0 = time.perf_counter()
            data, info = load(path)
            if method == 'rfcn':
                out, t_net = timer(model.detect, data, info)
                kind = 'frame'
            elif k % interval == 0:
                (out, key_feat), t_net = timer(model.detect_key, data, info)
                key_data, kind = data, 'key'
            else:
                out, t_net = timer(model.detect_cur, data, info, key_data, key_feat)
                kind = 'non-key'
            dets = post(out, info)
            if args.device == 'cuda':
                torch.cuda.synchronize()
            records.append({'kind': kind, 'network': t_net, 'end_to_end': time.perf_counter() - t0,
                            'detections': len(dets)})

    def peak_mb():
        return (torch.cuda.max_memory_allocated() / 2**20 if args.device == 'cuda'
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)

    peak = peak_mb()  # frame by frame (before the batched mode's larger tensors)

    # ---------------------------------------------------------------- DFF's batched mode (demo_batch.py)
    batch_records = []
    if method == 'dff' and not args.quick:
        with torch.no_grad():
            for start in range(0, len(frames) - interval + 1, interval):  # whole intervals: 1 key + the others
                loaded = [load(p) for p in frames[start:start + interval]]
                data = torch.cat([d for d, _ in loaded])
                info = torch.cat([i for _, i in loaded])
                _, t_net = timer(model.detect_batch, data[:1], data[1:], info)
                batch_records.append({'network': t_net, 'frames': len(loaded)})

    # ---------------------------------------------------------------- components, each stage alone
    # (under the path's autocast, on inputs in its memory format: the stages of its detect methods)
    comp, flops = {}, {}
    with torch.no_grad(), context():
        data, info = load(frames[0])
        cur, _ = load(frames[min(1, len(frames) - 1)])
        data, cur = layout(data), layout(cur)
        feature, heads = model.feature, model.heads

        def count(fn, *a):
            return count_flops(fn, *a)

        def stages(key_frame, measure=timer):
            t = {}
            if key_frame:
                x, t['backbone'] = measure(feature.backbone, data)
                feat, t['feat_conv'] = measure(lambda y: F.relu(feature.feat_conv_3x3(y)), x)
            else:
                (flow, scale), t['flownet'] = measure(model.flownet, cur, data)
                feat, t['warp'] = measure(lambda a, b, c: ops.flow_warp(a, b) * c, key_feat0, flow, scale)
            half = feat.shape[1] // 2

            def rpn_proposal(f):
                _, rpn_bbox, rpn_prob = heads.rpn(f[:, :half])
                return heads.proposals(rpn_prob, rpn_bbox, info, False)
            rois, t['rpn+proposal'] = measure(rpn_proposal, feat)

            def rfcn(f, r):
                cls_score, bbox_pred = heads.rfcn(f[:, half:], r)
                k4 = bbox_pred.shape[1] // 4
                bbox_pred = bbox_pred * heads.bbox_stds.repeat(k4) + heads.bbox_means.repeat(k4)
                return {'rois': r, 'cls_prob': F.softmax(cls_score, dim=1), 'bbox_pred': bbox_pred}
            out, t['rfcn+psroi'] = measure(rfcn, feat, rois)
            if measure is timer:
                _, t['post-processing'] = measure(post, out, info)
            return t, out

        key_feat0 = feature(data)
        kinds = [True] if method == 'rfcn' else [True, False]
        for key_frame in kinds:  # FLOPs do not depend on the path (BN and elementwise ops count nothing)
            flops['key' if key_frame else 'non-key'] = stages(key_frame, count)[0]
        if not args.quick:
            # the decomposition is the model's own computation (same rois and probabilities; a compiled graph
            # may round differently)
            ref = model.detect(data, info) if method == 'rfcn' else model.detect_key(data, info)[0]
            _, mine = stages(True)
            exact = fast is None or not fast.compile
            if (exact and not torch.equal(ref['rois'], mine['rois'])) or not torch.allclose(
                    ref['cls_prob'], mine['cls_prob'], atol=1e-6 if exact else 1e-3):
                raise RuntimeError('benchmark: the per-component pipeline differs from the model '
                                   '(update tools/benchmark.py)')
            for key_frame in kinds:
                runs = [stages(key_frame)[0] for _ in range(args.repeat)]
                comp['key' if key_frame else 'non-key'] = {c: statistics.median(r[c] for r in runs) for c in runs[0]}

    queue.put({'method': method, 'path': path, 'records': records, 'batch_records': batch_records, 'components': comp,
               'flops': flops, 'peaks_gflops': peaks, 'peak_mb': peak,
               'peak_mb_batched': peak_mb() if batch_records else None,
               'first_call_s': dict(fast.first_call_s) if fast is not None else {},
               'threads': torch.get_num_threads(), 'input': list(data.shape[2:])})


def run_method(method, path, args, frames):
    ctx = mp.get_context('spawn')
    q = ctx.Queue()
    p = ctx.Process(target=worker, args=(method, path, args, frames, q))
    p.start()
    result = None
    while result is None:
        try:
            result = q.get(timeout=5)
        except queue_module.Empty:
            if not p.is_alive():
                break
    p.join()
    if p.exitcode or result is None:
        sys.exit(f'benchmark: the {method} worker failed (exit code {p.exitcode})')
    return result


def mean(xs):
    return sum(xs) / len(xs) if xs else float('nan')


def summarise(res, warmup, interval):
    recs = res['records']
    out = {}
    for what in ('network', 'end_to_end'):
        if res['method'] == 'rfcn':
            out[what] = mean([r[what] for r in recs[warmup:]])
        else:
            # whole intervals after the warm-up interval: the average a video sees
            full = [r for k, r in enumerate(recs) if k >= interval and k < interval * (len(recs) // interval)]
            full = full or recs
            out[what] = mean([r[what] for r in full])
            out[what + '_key'] = mean([r[what] for r in full if r['kind'] == 'key'])
            out[what + '_nonkey'] = mean([r[what] for r in full if r['kind'] == 'non-key'])
    chunks = res.get('batch_records') or []
    if chunks:  # the first chunk warms up, as the first interval does frame by frame
        timed = chunks[1:] or chunks
        out['network_batched'] = sum(c['network'] for c in timed) / sum(c['frames'] for c in timed)
    return out


def print_components(results, base, dff, args):
    """The batched-mode row, the per-component table and the bound the components imply."""
    l = args.interval
    print(f"| DFF batched mode (1 key + {l - 1} frames in one forward, DFF.detect_batch) | {dff['network_batched']:.3f} | "
          f"| {base['network'] / dff['network_batched']:.2f}x | | {results['dff']['peak_mb_batched']:.0f} |")
    ck, cn = results['dff']['components']['key'], results['dff']['components']['non-key']
    cb = results['rfcn']['components']['key']
    key_sum = sum(ck.values())
    nonkey_sum = sum(cn.values())
    bound_avg = (key_sum + (l - 1) * nonkey_sum) / l
    base_sum = sum(cb.values())
    net = lambda c: sum(v for k, v in c.items() if k != 'post-processing')  # noqa: E731
    print('\nper component (s, median of %d):\n' % args.repeat)
    print('| component | frame baseline | DFF key frame | DFF non-key frame |')
    print('|---|---:|---:|---:|')
    for c in COMPONENTS:
        cell = lambda d: f'{d[c]:.4f}' if c in d else '-'  # noqa: E731
        print(f'| {c} | {cell(cb)} | {cell(ck)} | {cell(cn)} |')
    print(f'| sum (network only) | {net(cb):.4f} | {net(ck):.4f} | {net(cn):.4f} |')
    print(f'| sum (with post-processing) | {base_sum:.4f} | {key_sum:.4f} | {nonkey_sum:.4f} |')
    print(f"\nbound from the components: interval average ({net(ck):.4f} + {l - 1} x {net(cn):.4f}) / {l} = "
          f"{(net(ck) + (l - 1) * net(cn)) / l:.4f} s network only -> speed-up "
          f"{net(cb) / ((net(ck) + (l - 1) * net(cn)) / l):.2f}x (measured {base['network'] / dff['network']:.2f}x); "
          f"l -> infinity: {net(cb) / net(cn):.2f}x. With post-processing: {base_sum / bound_avg:.2f}x.")


def path_settings(args):
    """[(name, FastPath settings or None)] of the paths to time: eager float32 first."""
    paths = [('eager', None)]
    if args.fast is None:
        return paths
    reduced = args.fast or ('float16' if args.device == 'cuda' else 'bfloat16')
    for dtype in dict.fromkeys(['float32', reduced]):
        name = 'fast' if dtype == 'float32' else f'fast-{dtype}'
        paths.append((name, {'fold_bn': True, 'channels_last': True, 'dtype': dtype, 'compile': bool(args.compile)}))
    return paths


def median_dict(ds):
    """Figure by figure median of dicts with the same keys (nested dicts recursively)."""
    out = {}
    for k, v in ds[0].items():
        if isinstance(v, dict):
            out[k] = median_dict([d[k] for d in ds])
        elif isinstance(v, (int, float)):
            out[k] = statistics.median(d[k] for d in ds)
    return out


def path_figures(rounds_rfcn, rounds_dff, args):
    """A path's figures, medians over the rounds: per-frame summaries, components, FLOPs, peaks."""
    base = median_dict([summarise(r, args.warmup, args.interval) for r in rounds_rfcn])
    dff = median_dict([summarise(r, args.warmup, args.interval) for r in rounds_dff])
    l = args.interval
    fb, fd = rounds_rfcn[0]['flops'], rounds_dff[0]['flops']
    flops = {'baseline': sum(fb['key'].values()), 'key': sum(fd['key'].values()),
             'non-key': sum(fd['non-key'].values())}
    flops['average'] = (flops['key'] + (l - 1) * flops['non-key']) / l
    fig = {'baseline': base, 'dff': dff, 'flops': flops,
           'flops_components': {'baseline': fb['key'], 'dff_key': fd['key'], 'dff_non_key': fd['non-key']},
           'peaks_gflops': {'baseline': median_dict([r['peaks_gflops'] for r in rounds_rfcn]),
                            'dff': median_dict([r['peaks_gflops'] for r in rounds_dff])},
           'first_call_s': {'baseline': rounds_rfcn[0]['first_call_s'], 'dff': rounds_dff[0]['first_call_s']}}
    if not args.quick:
        fig['components'] = {'baseline': median_dict([r['components']['key'] for r in rounds_rfcn]),
                             'dff_key': median_dict([r['components']['key'] for r in rounds_dff]),
                             'dff_non_key': median_dict([r['components']['non-key'] for r in rounds_dff])}
    fig['speedup'] = base['network'] / dff['network']
    fig['flop_ratio'] = flops['baseline'] / flops['average']
    fig['speedup_of_flop_ratio'] = fig['speedup'] / fig['flop_ratio']
    return fig


def print_per_frame(results, base, dff, l):
    """The per-frame table of one path (the README's shape)."""
    print('| method | time/frame network only (s) | time/frame end to end (s) | speed-up (network) | '
          'speed-up (end to end) | peak memory (MB) |')
    print('|---|---:|---:|---:|---:|---:|')
    print(f"| frame baseline (R-FCN, ResNet-v1-101) | {base['network']:.3f} | {base['end_to_end']:.3f} | 1.00x | "
          f"1.00x | {results['rfcn']['peak_mb']:.0f} |")
    print(f"| DFF (R-FCN, ResNet-v1-101, FlowNet-S), key every {l} | {dff['network']:.3f} | {dff['end_to_end']:.3f} | "
          f"{base['network'] / dff['network']:.2f}x | {base['end_to_end'] / dff['end_to_end']:.2f}x | "
          f"{results['dff']['peak_mb']:.0f} |")
    print(f"| DFF key frame | {dff['network_key']:.3f} | {dff['end_to_end_key']:.3f} | | | |")
    print(f"| DFF non-key frame | {dff['network_nonkey']:.3f} | {dff['end_to_end_nonkey']:.3f} | "
          f"{base['network'] / dff['network_nonkey']:.2f}x | | |")


def print_side_by_side(figs, l):
    """The paths next to each other: per-frame network times, DFF's speed-up against its FLOP ratio, the gains
    over the eager path."""
    eager = figs['eager']
    print('\n| path | baseline (s/frame) | DFF key (s) | DFF non-key (s) | DFF per frame (s) | DFF speed-up | '
          'FLOP ratio | speed-up / FLOP ratio | baseline gain | DFF gain | first calls (s) |')
    print('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|')
    for name, f in figs.items():
        b, d = f['baseline'], f['dff']
        first = ', '.join(f'{k} {v:.1f}' for part in ('baseline', 'dff') for k, v in f['first_call_s'][part].items()
                          if f['first_call_s'][part] and name != 'eager')
        print(f"| {name} | {b['network']:.3f} | {d['network_key']:.3f} | {d['network_nonkey']:.3f} | "
              f"{d['network']:.3f} | {f['speedup']:.2f}x | {f['flop_ratio']:.2f}x | {100 * f['speedup_of_flop_ratio']:.0f}% | "
              f"{eager['baseline']['network'] / b['network']:.2f}x | {eager['dff']['network'] / d['network']:.2f}x | "
              f"{first or '-'} |")
    print(f"\n(DFF per frame: a key frame every {l}; speed-up / FLOP ratio: how much of the FLOP saving the clock "
          f"sees; gains: eager float32 time / this path's time; first calls: each graph's first call, "
          f"torch.compile's compilation included)")


def print_flops(figs, quick):
    """GFLOP, time, GFLOP/s and the fraction of the measured matmul peaks, per path and per component."""
    dtypes = list(figs['eager']['peaks_gflops']['baseline'])
    print('\nFLOPs and achieved speed (torch.utils.flop_counter + the custom ops\' counts, lib/ops/flops.py; '
          f'peak: a {PEAK_N}^3 matmul in each worker process):\n')
    print('| path | what | GFLOP | time (s) | GFLOP/s | ' + ' | '.join(f'% of {d} peak' for d in dtypes) + ' |')
    print('|---|---|---:|---:|---:|' + '---:|' * len(dtypes))

    def row(name, what, flop, seconds, peaks):
        rate = flop / seconds / 1e9
        cells = ' | '.join(f'{100 * rate / peaks[d]:.0f}%' if d in peaks else '-' for d in dtypes)
        print(f'| {name} | {what} | {flop / 1e9:.1f} | {seconds:.4f} | {rate:.0f} | {cells} |')

    for name, f in figs.items():
        fl, b, d, pk = f['flops'], f['baseline'], f['dff'], f['peaks_gflops']
        row(name, 'frame baseline, per frame', fl['baseline'], b['network'], pk['baseline'])
        row(name, 'DFF key frame', fl['key'], d['network_key'], pk['dff'])
        row(name, 'DFF non-key frame', fl['non-key'], d['network_nonkey'], pk['dff'])
        row(name, 'DFF per-frame average', fl['average'], d['network'], pk['dff'])
        if quick:
            continue
        for part, label, peaks in (('baseline', 'baseline', pk['baseline']), ('dff_non_key', 'DFF non-key', pk['dff'])):
            for c, flop in f['flops_components'][part].items():
                seconds = f['components'][part].get(c)
                if flop and seconds:
                    row(name, f'{c} ({label})', flop, seconds, peaks)
    for name, f in figs.items():
        peaks = ', '.join(f'{d} {v:.0f}' for d, v in f['peaks_gflops']['baseline'].items())
        print(f'\npeaks of the {name} workers (GFLOP/s, baseline process): {peaks}', end='')
    print()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    ap.add_argument('--frames', type=int, default=20, help='frames per method (DFF: at least 2 intervals)')
    ap.add_argument('--interval', type=int, default=10, help='key frame interval (TEST.KEY_FRAME_INTERVAL)')
    ap.add_argument('--warmup', type=int, default=2, help='baseline frames left out of the average')
    ap.add_argument('--repeat', type=int, default=3, help='runs per component (median)')
    ap.add_argument('--threads', type=int, default=0, help='torch threads (0: torch default)')
    ap.add_argument('--height', type=int, default=600, help='frame height (the network input: SCALES follows)')
    ap.add_argument('--width', type=int, default=1000)
    ap.add_argument('--json', default=None, help='also write the figures here')
    ap.add_argument('--quick', action='store_true',
                    help='per-frame rows only (no components, no batched mode), baseline on --warmup + 4 frames')
    from lib.model.fast_path import add_fast_argument
    add_fast_argument(ap)
    ap.add_argument('--compile', action='store_true', help='the fast paths with torch.compile (TEST.FAST_COMPILE)')
    ap.add_argument('--rounds', type=int, default=1, help='run every path this many times, interleaved (medians)')
    args = ap.parse_args(argv)
    if args.device == 'cuda':
        import torch
        if not torch.cuda.is_available():
            raise ValueError('--device cuda but no GPU is visible (torch.cuda.is_available() is False)')
    if args.frames < 2 * args.interval:
        raise ValueError(f'--frames must be at least 2 x --interval ({2 * args.interval}): the first interval warms up')
    if args.rounds < 1:
        raise ValueError(f'--rounds must be at least 1, got {args.rounds}')
    if args.compile and args.fast is None:
        raise ValueError('--compile applies to the fast paths: add --fast')
    paths = path_settings(args)
    if args.device == 'cpu' and any(p and p['dtype'] == 'float16' for _, p in paths):
        raise ValueError('--fast float16 needs --device cuda; on a CPU use bfloat16')
    runs = {name: {'rfcn': [], 'dff': []} for name, _ in paths}
    with tempfile.TemporaryDirectory() as tmp:
        frames = write_frames(tmp, args.frames, args.height, args.width)
        base_frames = frames[:args.warmup + 4] if args.quick else frames
        for _ in range(args.rounds):
            for name, path in paths:
                runs[name]['rfcn'].append(run_method('rfcn', path, args, base_frames))
                runs[name]['dff'].append(run_method('dff', path, args, frames))
    l = args.interval
    figs = {name: path_figures(r['rfcn'], r['dff'], args) for name, r in runs.items()}
    results = {m: runs['eager'][m][0] for m in ('rfcn', 'dff')}
    import torch
    rounds = f', {args.rounds} rounds (medians)' if args.rounds > 1 else ''
    print(f"\nbenchmark: {args.device}, {results['rfcn']['threads']} threads, input {results['rfcn']['input']}, "
          f"ResNet-v1-101 + R-FCN (31 classes) / + FlowNet-S, key frame every {l}, torch {torch.__version__}, "
          f"random weights{rounds}\n")
    for name, path in paths:
        if len(paths) > 1:
            print(f"\npath {name}: {FAST_DESCRIPTIONS.get(name) or path}\n")
        f = figs[name]
        print_per_frame({m: runs[name][m][0] for m in runs[name]}, f['baseline'], f['dff'], l)
        if not args.quick:
            print_components({m: runs[name][m][0] for m in runs[name]}, f['baseline'], f['dff'], args)
    print_side_by_side(figs, l)
    print_flops(figs, args.quick)
    if args.json:
        base, dff = figs['eager']['baseline'], figs['eager']['dff']
        with open(args.json, 'w') as f:
            json.dump({'args': vars(args), 'baseline': base, 'dff': dff, 'raw': results,
                       'paths': {name: dict(figs[name], raw=runs[name]) for name in figs}}, f, indent=1)


if __name__ == '__main__':
    from lib.utils.cli import run_cli
    run_cli(main)
