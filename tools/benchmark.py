#!/usr/bin/env python
"""Speed of the frame baseline vs DFF at the real size: 600x1000 input, ResNet-v1-101 + R-FCN (31
classes) and FlowNet-S at full width, batch 1, key frame every --interval frames. Random weights (speed
does not depend on them; post-processing sees every roi above the threshold, its worst case).

    python tools/benchmark.py [--device cpu|cuda] [--frames 20] [--interval 10] [--repeat 3] [--threads N] [--quick]
                              [--fast [DTYPE]] [--pieces] [--compile] [--pairs N]

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
                GFLOP/s as a fraction of the machine's peak: a 2048^3 matmul (--peak-size) in float32 and bfloat16
                (float16 on CUDA too) on the same threads: in each worker before its timing, and in every
                round of the interleaved comparison

--fast [DTYPE] also times the inference fast path (lib/model/fast_path.py) side by side with the eager float32 path:
"fast" (BN folded, channels_last, the CPU's GEMM rewrites, float32) and "fast-DTYPE" (the same under autocast; DTYPE default bfloat16 on a
CPU, float16 on CUDA; --fast float32 times the float32 fast path alone); --pieces adds each piece alone
(fold_bn, channels_last, gemm, DTYPE). The paths are compared in one more
process that holds every path's baseline and DFF (same weights) and times them interleaved: --pairs rounds,
each one a baseline frame, a DFF key frame and a non-key frame (and, without --quick, their components) of
every path, the paths' order rotating, plus the matmul peaks; each figure is the median over the rounds, so
a change of the machine's load reaches every path alike. The DFF per-frame time of a path is then
(key + (l-1) non-key) / l. --compile adds torch.compile to the fast paths (the first call of each graph,
compilation included, is reported apart).

--quick (what the main job, tools/synthetic_table.py, runs after its accuracy table): the per-frame rows only,
no components and no batched mode, the baseline on --warmup + 4 frames (about a minute on 2 cores per path).
CUDA timings synchronise around every timed region. Prints the tables in the shape of the README's.
"""
import argparse
import contextlib
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


def matmul_peak(dtype, device, n=PEAK_N, repeat=5):
    """GFLOP/s of an n^3 matmul in `dtype` on this process's threads (median of `repeat` after warm-up)."""
    import torch
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=g).to(device=device, dtype=dtype) for _ in range(2))
    timer = Timer(device.type)
    for _ in range(2):
        timer(torch.mm, a, b)
    t = statistics.median(timer(torch.mm, a, b)[1] for _ in range(repeat))
    return 2 * n ** 3 / t / 1e9


def peak_dtypes(device):
    """The dtypes whose matmul peak is measured on this device."""
    import torch
    from lib.model.fast_path import cpu_bfloat16_native
    if device.type == 'cuda':
        return ['float32'] + (['bfloat16'] if torch.cuda.is_bf16_supported() else []) + ['float16']
    return ['float32'] + (['bfloat16'] if cpu_bfloat16_native() else [])


def build(method, args, dev):
    """(cfg, model) of the benchmark at the frames' size: random weights (seed 0), eval mode, on `dev`."""
    import torch

    from lib.config import load_config
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
    return cfg, model.to(dev).eval()


def frame_loader(cfg, dev):
    import torch

    from lib.apps.demo import prepare_frame
    from lib.utils.image import read_image

    def load(path):
        data, info = prepare_frame(read_image(path), cfg)
        return data[None].to(dev), torch.from_numpy(info[None]).to(dev)
    return load


def post_processing(cfg):
    from lib.core.tester import postprocess
    from lib.model.detection import im_detect_boxes
    thresh, nms, max_per = float(cfg.TEST.thresh), float(cfg.TEST.NMS), int(cfg.TEST.max_per_image)

    def post(out, info):
        scores, boxes = im_detect_boxes(out, info)
        return postprocess(scores[0], boxes[0], thresh, nms, max_per, bool(cfg.CLASS_AGNOSTIC))
    return post


def make_stages(model, data, cur, info, post, key_feat):
    """stages(key_frame, measure) -> ({component: measure's value}, head outputs): the model's detect_key (the
    baseline's detect) or detect_cur taken apart, each stage through measure(fn, *args) -> (out, value)
    (a Timer, or count_flops). Call it under the path's autocast, with inputs in its memory format."""
    import torch.nn.functional as F

    import lib.ops as ops
    feature, heads = model.feature, model.heads

    def stages(key_frame, measure):
        t = {}
        if key_frame:
            x, t['backbone'] = measure(feature.backbone, data)
            feat, t['feat_conv'] = measure(lambda y: F.relu(feature.feat_conv_3x3(y)), x)
        else:
            (flow, scale), t['flownet'] = measure(model.flownet, cur, data)
            feat, t['warp'] = measure(lambda a, b, c: ops.flow_warp(a, b) * c, key_feat, flow, scale)
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
        if post is not None and isinstance(measure, Timer):
            _, t['post-processing'] = measure(post, out, info)
        return t, out
    return stages


def count_stage_flops(stages, method):
    """{'key': {component: FLOPs}} (+ 'non-key' for DFF). The FLOPs do not depend on the path: folded BN and
    the elementwise ops count nothing."""
    from lib.ops.flops import count_flops
    kinds = [True] if method == 'rfcn' else [True, False]
    return {'key' if k else 'non-key': stages(k, count_flops)[0] for k in kinds}


def worker(method, args, frames, queue):
    """One method (eager float32) in its own process: the matmul peaks, per-frame times, component medians
    and FLOPs, peak memory."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    cfg, model = build(method, args, dev)
    with torch.no_grad():
        peaks = {name: matmul_peak(getattr(torch, name), dev, args.peak_size) for name in peak_dtypes(dev)}
    if args.device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    timer = Timer(args.device)
    interval = args.interval
    load, post = frame_loader(cfg, dev), post_processing(cfg)

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

    # ---------------------------------------------------------------- components, each stage alone; FLOPs
    comp = {}
    with torch.no_grad():
        data, info = load(frames[0])
        cur, _ = load(frames[min(1, len(frames) - 1)])
        stages = make_stages(model, data, cur, info, post, model.feature(data))
        flops = count_stage_flops(stages, method)
        if not args.quick:
            # the decomposition is the model's own computation (same rois and probabilities)
            ref = model.detect(data, info) if method == 'rfcn' else model.detect_key(data, info)[0]
            _, mine = stages(True, timer)
            if not torch.equal(ref['rois'], mine['rois']) or not torch.allclose(ref['cls_prob'], mine['cls_prob']):
                raise RuntimeError('benchmark: the per-component pipeline differs from the model '
                                   '(update tools/benchmark.py)')
            for key_frame in ([True] if method == 'rfcn' else [True, False]):
                runs = [stages(key_frame, timer)[0] for _ in range(args.repeat)]
                comp['key' if key_frame else 'non-key'] = {c: statistics.median(r[c] for r in runs) for c in runs[0]}

    queue.put({'method': method, 'records': records, 'batch_records': batch_records, 'components': comp,
               'flops': flops, 'peaks_gflops': peaks, 'peak_mb': peak,
               'peak_mb_batched': peak_mb() if batch_records else None,
               'threads': torch.get_num_threads(), 'input': list(data.shape[2:])})


def worker_interleaved(paths, args, frames, queue):
    """Every path's baseline and DFF in one process (the same weights), timed in rounds: per round and path a
    baseline frame, a DFF key frame and a non-key frame (+ their components unless --quick), the paths' order
    rotating from round to round, and the matmul peaks. Returns the per-round times, the FLOPs and the first
    calls (torch.compile)."""
    import torch

    from lib.model.fast_path import FastPath
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    timer = Timer(args.device)
    setups, flops = {}, None
    with torch.no_grad():
        for name, settings in paths:
            fast = FastPath(**settings) if settings else None
            entry = {'fast': fast}
            for method in ('rfcn', 'dff'):
                cfg, model = build(method, args, dev)
                entry[method] = fast.prepare(model, dev) if fast is not None else model
            load = frame_loader(cfg, dev)
            key, info = load(frames[0])
            cur, _ = load(frames[min(1, len(frames) - 1)])
            with (fast.autocast(dev.type) if fast is not None else contextlib.nullcontext()):
                lay = fast.layout if fast is not None else (lambda x: x)
                stage_fns = {m: make_stages(entry[m], lay(key), lay(cur), info, None, entry[m].feature(lay(key)))
                             for m in ('rfcn', 'dff')}
                if flops is None:  # the same for every path
                    flops = {m: count_stage_flops(stage_fns[m], m) for m in ('rfcn', 'dff')}
            entry.update(key=key, cur=cur, info=info, stages=stage_fns)
            setups[name] = entry

        def one_round(name):
            e = setups[name]
            fast, key, cur, info = e['fast'], e['key'], e['cur'], e['info']
            t = {}
            _, t['baseline'] = timer(e['rfcn'].detect, key, info)
            (_, key_feat), t['key'] = timer(e['dff'].detect_key, key, info)
            _, t['non-key'] = timer(e['dff'].detect_cur, cur, info, key, key_feat)
            if not args.quick:
                with (fast.autocast(dev.type) if fast is not None else contextlib.nullcontext()):
                    t['components'] = {'baseline': e['stages']['rfcn'](True, timer)[0],
                                       'dff_non_key': e['stages']['dff'](False, timer)[0]}
            return t

        names = [name for name, _ in paths]
        for name in names:  # warm-up (and compilation)
            one_round(name)
        rounds = []
        for r in range(args.pairs):
            order = names[r % len(names):] + names[:r % len(names)]
            per_round = {'peaks_gflops': {d: matmul_peak(getattr(torch, d), dev, args.peak_size) for d in peak_dtypes(dev)}}
            for name in order:
                per_round[name] = one_round(name)
            rounds.append(per_round)
    queue.put({'rounds': rounds, 'flops': flops, 'threads': torch.get_num_threads(),
               'first_call_s': {n: dict(e['fast'].first_call_s) for n, e in setups.items() if e['fast'] is not None}})


def run_process(target, args_tuple, what):
    ctx = mp.get_context('spawn')
    q = ctx.Queue()
    p = ctx.Process(target=target, args=args_tuple + (q,))
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
        sys.exit(f'benchmark: the {what} worker failed (exit code {p.exitcode})')
    return result


def run_method(method, args, frames):
    return run_process(worker, (method, args, frames), method)


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
    """[(name, FastPath settings or None)] of the paths to time: eager float32 first; with --pieces also each
    piece of the fast path alone."""
    paths = [('eager', None)]
    if args.fast is None:
        return paths
    reduced = args.fast or ('float16' if args.device == 'cuda' else 'bfloat16')
    compile_ = bool(args.compile)
    if args.pieces:
        for name in ('fold_bn', 'channels_last', 'gemm'):
            paths.append((name, {'fold_bn': name == 'fold_bn', 'channels_last': name == 'channels_last',
                                 'gemm': name == 'gemm', 'dtype': 'float32', 'compile': False}))
        if reduced != 'float32':
            paths.append((reduced, {'fold_bn': False, 'channels_last': False, 'gemm': False, 'dtype': reduced,
                                    'compile': False}))
    for dtype in dict.fromkeys(['float32', reduced]):
        name = 'fast' if dtype == 'float32' else f'fast-{dtype}'
        paths.append((name, {'fold_bn': True, 'channels_last': True, 'gemm': True, 'dtype': dtype,
                             'compile': compile_}))
    return paths


def describe_path(settings):
    from lib.model.fast_path import FastPath
    return 'eager float32 (the default, as the original)' if settings is None else FastPath(**settings).describe()


def median(xs):
    return statistics.median(xs) if xs else float('nan')


def flop_figures(flops, l):
    """Per-path FLOPs: the baseline's frame, DFF's key and non-key frames and their per-frame average."""
    f = {'baseline': sum(flops['rfcn']['key'].values()), 'key': sum(flops['dff']['key'].values()),
         'non-key': sum(flops['dff']['non-key'].values())}
    f['average'] = (f['key'] + (l - 1) * f['non-key']) / l
    return f


def figures(times, flops, peaks, components, l, eager=None, first_call_s=None):
    """The comparison figures of one path. times: per-round dicts {'baseline', 'key', 'non-key'} (seconds);
    eager: the eager path's per-round times, same rounds (for the gains); components: per-round
    {'baseline': {...}, 'dff_non_key': {...}} or None; peaks: per-round {dtype: GFLOP/s}."""
    avg = [(t['key'] + (l - 1) * t['non-key']) / l for t in times]
    fl = flop_figures(flops, l)
    fig = {'baseline': median([t['baseline'] for t in times]), 'key': median([t['key'] for t in times]),
           'non-key': median([t['non-key'] for t in times]), 'average': median(avg),
           'speedup': median([t['baseline'] / a for t, a in zip(times, avg)]),
           'flops': fl, 'flop_ratio': fl['baseline'] / fl['average'],
           'flops_components': {'baseline': flops['rfcn']['key'], 'dff_non_key': flops['dff']['non-key']},
           'peaks_gflops': {d: median([p[d] for p in peaks]) for d in peaks[0]},
           'first_call_s': first_call_s or {}}
    fig['speedup_of_flop_ratio'] = fig['speedup'] / fig['flop_ratio']
    if eager is not None:
        eager_avg = [(t['key'] + (l - 1) * t['non-key']) / l for t in eager]
        fig['gain_baseline'] = median([e['baseline'] / t['baseline'] for e, t in zip(eager, times)])
        fig['gain_dff'] = median([e / a for e, a in zip(eager_avg, avg)])
    if components:
        fig['components'] = {part: {c: median([r[part][c] for r in components]) for c in components[0][part]}
                             for part in components[0]}
    return fig


def figures_from_processes(results, base, dff, args):
    """The eager path's figures from its two worker processes (no --fast)."""
    times = [{'baseline': base['network'], 'key': dff['network_key'], 'non-key': dff['network_nonkey']}]
    peaks = [{d: max(results[m]['peaks_gflops'][d] for m in results) for d in results['rfcn']['peaks_gflops']}]
    flops = {m: results[m]['flops'] for m in results}
    comps = None
    if not args.quick:
        comps = [{'baseline': results['rfcn']['components']['key'],
                  'dff_non_key': results['dff']['components']['non-key']}]
    fig = figures(times, flops, peaks, comps, args.interval, eager=times)
    fig['speedup'] = base['network'] / dff['network']  # the measured video schedule, as the table above
    fig['speedup_of_flop_ratio'] = fig['speedup'] / fig['flop_ratio']
    return fig


def figures_from_interleaved(res, paths, args):
    names = [name for name, _ in paths]
    eager = [r['eager'] for r in res['rounds']]
    peaks = [r['peaks_gflops'] for r in res['rounds']]
    out = {}
    for name in names:
        times = [r[name] for r in res['rounds']]
        comps = None if args.quick else [t['components'] for t in times]
        out[name] = figures(times, res['flops'], peaks, comps, args.interval, eager=eager,
                            first_call_s=res['first_call_s'].get(name))
    return out


def print_per_frame(results, base, dff, l):
    """The per-frame table of the eager worker processes (the README's shape)."""
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


def print_side_by_side(figs, l, source):
    """The paths next to each other: network time per frame, DFF's speed-up against its FLOP ratio, the gains
    over the eager path."""
    print(f'\n{source}\n')
    print('| path | baseline (s/frame) | DFF key (s) | DFF non-key (s) | DFF per frame (s) | DFF speed-up | '
          'FLOP ratio | speed-up / FLOP ratio | baseline gain | DFF gain | first calls (s) |')
    print('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|')
    for name, f in figs.items():
        first = ', '.join(f'{k} {v:.1f}' for k, v in f['first_call_s'].items())
        print(f"| {name} | {f['baseline']:.3f} | {f['key']:.3f} | {f['non-key']:.3f} | {f['average']:.3f} | "
              f"{f['speedup']:.2f}x | {f['flop_ratio']:.2f}x | {100 * f['speedup_of_flop_ratio']:.0f}% | "
              f"{f['gain_baseline']:.2f}x | {f['gain_dff']:.2f}x | {first or '-'} |")
    print(f"\n(network only; DFF per frame: (key + {l - 1} non-key) / {l}; speed-up / FLOP ratio: how much of the "
          "FLOP saving the clock sees; gains: the eager float32 path's time / this path's, per round; first calls: "
          "each graph's first call, torch.compile's compilation included)")


def print_flops(figs, quick, n):
    """GFLOP, time, GFLOP/s and the fraction of the measured matmul peaks (n^3), per path and per component."""
    dtypes = list(next(iter(figs.values()))['peaks_gflops'])
    peaks = ', '.join(f"{d} {next(iter(figs.values()))['peaks_gflops'][d]:.0f}" for d in dtypes)
    print(f'\nFLOPs and achieved speed (torch.utils.flop_counter + the custom ops\' counts, lib/ops/flops.py); '
          f'peak = a {n}^3 matmul on the same threads, same run: {peaks} GFLOP/s\n')
    print('| path | what | GFLOP | time (s) | GFLOP/s | ' + ' | '.join(f'% of {d} peak' for d in dtypes) + ' |')
    print('|---|---|---:|---:|---:|' + '---:|' * len(dtypes))

    def row(name, what, flop, seconds, pk):
        rate = flop / seconds / 1e9
        cells = ' | '.join(f'{100 * rate / pk[d]:.0f}%' for d in dtypes)
        print(f'| {name} | {what} | {flop / 1e9:.1f} | {seconds:.4f} | {rate:.0f} | {cells} |')

    for name, f in figs.items():
        fl, pk = f['flops'], f['peaks_gflops']
        row(name, 'frame baseline, per frame', fl['baseline'], f['baseline'], pk)
        row(name, 'DFF key frame', fl['key'], f['key'], pk)
        row(name, 'DFF non-key frame', fl['non-key'], f['non-key'], pk)
        row(name, 'DFF per-frame average', fl['average'], f['average'], pk)
        if quick or 'components' not in f:
            continue
        for part, label in (('baseline', 'baseline'), ('dff_non_key', 'DFF non-key')):
            for c, flop in f['flops_components'][part].items():
                seconds = f['components'][part].get(c)
                if flop and seconds:
                    row(name, f'{c} ({label})', flop, seconds, pk)


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
    ap.add_argument('--pieces', action='store_true', help='with --fast: also each piece of the fast path alone')
    ap.add_argument('--pairs', type=int, default=5, help='rounds of the interleaved comparison of the paths (--fast)')
    ap.add_argument('--peak-size', type=int, default=PEAK_N, help='n of the n^3 matmul that measures the peaks')
    args = ap.parse_args(argv)
    if args.device == 'cuda':
        import torch
        if not torch.cuda.is_available():
            raise ValueError('--device cuda but no GPU is visible (torch.cuda.is_available() is False)')
    if args.frames < 2 * args.interval:
        raise ValueError(f'--frames must be at least 2 x --interval ({2 * args.interval}): the first interval warms up')
    if args.pairs < 1:
        raise ValueError(f'--pairs must be at least 1, got {args.pairs}')
    if args.compile and args.fast is None:
        raise ValueError('--compile applies to the fast paths: add --fast')
    paths = path_settings(args)
    if args.device == 'cpu' and any(p and p['dtype'] == 'float16' for _, p in paths):
        raise ValueError('--fast float16 needs --device cuda; on a CPU use bfloat16')
    with tempfile.TemporaryDirectory() as tmp:
        frames = write_frames(tmp, args.frames, args.height, args.width)
        base_frames = frames[:args.warmup + 4] if args.quick else frames
        results = {'rfcn': run_method('rfcn', args, base_frames), 'dff': run_method('dff', args, frames)}
        interleaved = run_process(worker_interleaved, (paths, args, frames), 'interleaved') if len(paths) > 1 else None
    base, dff = summarise(results['rfcn'], args.warmup, args.interval), summarise(results['dff'], args.warmup,
                                                                               args.interval)
    l = args.interval
    import torch
    print(f"\nbenchmark: {args.device}, {results['rfcn']['threads']} threads, input {results['rfcn']['input']}, "
          f"ResNet-v1-101 + R-FCN (31 classes) / + FlowNet-S, key frame every {l}, torch {torch.__version__}, "
          f"random weights\n")
    print_per_frame(results, base, dff, l)
    if not args.quick:
        print_components(results, base, dff, args)
    if interleaved is None:
        figs = {'eager': figures_from_processes(results, base, dff, args)}
        source = 'the eager float32 path (the two processes above):'
    else:
        figs = figures_from_interleaved(interleaved, paths, args)
        source = (f"the paths side by side (one process, the same weights, {args.pairs} interleaved rounds, "
                  "medians; " + '; '.join(f"{n}: {describe_path(p)}" for n, p in paths) + '):')
    print_side_by_side(figs, l, source)
    print_flops(figs, args.quick, args.peak_size)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'args': vars(args), 'baseline': base, 'dff': dff, 'raw': results, 'paths': figs,
                       'interleaved': interleaved}, f, indent=1)


if __name__ == '__main__':
    from lib.utils.cli import run_cli
    run_cli(main)
