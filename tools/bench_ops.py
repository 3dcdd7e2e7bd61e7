"""Times the custom ops at R-FCN sizes against the nearest library path, in one run.

    python tools/bench_ops.py [--repeat 20] [--device cpu|cuda|all] [--threads N]

psroi_pool   data 1x(31*49)x38x63 and 1x(8*49)x38x63, 300 rois  vs torchvision.ops.ps_roi_pool
flow_warp    data 1x1024x38x63                                   vs flow->grid + F.grid_sample(align_corners=True)
proposal     1x18x38x63 / 1x36x38x63, pre 6000 / post 300       vs plain PyTorch + torchvision.ops.nms
Forward and forward+backward (where there is a gradient); medians over --repeat runs after warm-up, ours
and the library path timed in alternation (a shared machine's load changes reach both); CUDA timings
synchronise. Prints a markdown table: median ms of ours, of the library path, and the
ratio library/ours (> 1 means ours is faster).
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F
import torchvision

from lib.utils.cli import run_cli

ops = None  # lib.ops, imported by main() once the options are parsed (--help works before the ops are built)

H, W, STRIDE = 38, 63, 16


def _once(fn, device):
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def timeit(ours, lib, repeat, device):
    """Median ms of `ours` and of `lib`, timed in alternation (ours, lib, lib, ours, ...) after 3 warm-up
    calls each, so that a change of the machine's load during the run reaches both alike."""
    for _ in range(3):
        ours()
        lib()
    times = {ours: [], lib: []}
    for k in range(repeat):
        for fn in ((ours, lib) if k % 2 == 0 else (lib, ours)):
            times[fn].append(_once(fn, device))
    return statistics.median(times[ours]) * 1e3, statistics.median(times[lib]) * 1e3


def make_rois(n, device, gen):
    xy = torch.rand(n, 2, generator=gen) * torch.tensor([W * STRIDE * 0.8, H * STRIDE * 0.8])
    wh = torch.rand(n, 2, generator=gen) * 300 + 16
    return torch.cat([torch.zeros(n, 1), xy, xy + wh], 1).to(device)


def bench_psroi(output_dim, device, repeat, gen):
    data = torch.randn(1, output_dim * 49, H, W, generator=gen).to(device).requires_grad_(True)
    rois = make_rois(300, device, gen)
    grad = torch.randn(300, output_dim, 7, 7, generator=gen).to(device)

    def ours_fwd():
        with torch.no_grad():
            ops.psroi_pool(data, rois, 1 / 16, output_dim, 7, 7)

    def lib_fwd():
        with torch.no_grad():
            torchvision.ops.ps_roi_pool(data, rois, 7, 1 / 16)

    def ours_fb():
        data.grad = None
        ops.psroi_pool(data, rois, 1 / 16, output_dim, 7, 7).backward(grad)

    def lib_fb():
        data.grad = None
        torchvision.ops.ps_roi_pool(data, rois, 7, 1 / 16).backward(grad)

    name = f"psroi_pool 1x{output_dim}*49x{H}x{W}, 300 rois"
    return [(name, "forward", *timeit(ours_fwd, lib_fwd, repeat, device), "torchvision ps_roi_pool"),
            (name, "fwd+bwd", *timeit(ours_fb, lib_fb, repeat, device), "torchvision ps_roi_pool")]


def grid_sample_warp(data, flow):
    n, _, h, w = data.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=data.device, dtype=data.dtype),
                            torch.arange(w, device=data.device, dtype=data.dtype), indexing="ij")
    grid = torch.stack([(xs + flow[:, 0]) / ((w - 1) / 2) - 1, (ys + flow[:, 1]) / ((h - 1) / 2) - 1], -1)
    return F.grid_sample(data, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def bench_warp(device, repeat, gen):
    data = torch.randn(1, 1024, H, W, generator=gen).to(device).requires_grad_(True)
    flow = (torch.randn(1, 2, H, W, generator=gen) * 3).to(device).requires_grad_(True)
    grad = torch.randn(1, 1024, H, W, generator=gen).to(device)

    def ours_fwd():
        with torch.no_grad():
            ops.flow_warp(data, flow)

    def lib_fwd():
        with torch.no_grad():
            grid_sample_warp(data, flow)

    def ours_fb():
        data.grad = flow.grad = None
        ops.flow_warp(data, flow).backward(grad)

    def lib_fb():
        data.grad = flow.grad = None
        grid_sample_warp(data, flow).backward(grad)

    name = f"flow_warp 1x1024x{H}x{W}"
    return [(name, "forward", *timeit(ours_fwd, lib_fwd, repeat, device), "flow->grid + grid_sample"),
            (name, "fwd+bwd", *timeit(ours_fb, lib_fb, repeat, device), "flow->grid + grid_sample")]


def plain_torch_proposal(cls_prob, bbox_pred, im_info, stride=16, pre=6000, post=300, thresh=0.7):
    """The nearest library path: vectorised PyTorch decode + torchvision.ops.nms (no +1 convention)."""
    n, a2, h, w = cls_prob.shape
    A = a2 // 2
    dev, dt = cls_prob.device, cls_prob.dtype
    base = []
    for r in (0.5, 1, 2):
        ws = float(int((256 / r) ** 0.5 + 0.5))
        hs = float(int(ws * r + 0.5))
        for s in (8, 16, 32):
            base.append([7.5 - 0.5 * (ws * s - 1), 7.5 - 0.5 * (hs * s - 1), 7.5 + 0.5 * (ws * s - 1), 7.5 + 0.5 * (hs * s - 1)])
    base = torch.tensor(base, device=dev, dtype=dt)
    sy, sx = torch.meshgrid(torch.arange(h, device=dev, dtype=dt) * stride, torch.arange(w, device=dev, dtype=dt) * stride,
                            indexing="ij")
    shifts = torch.stack([sx, sy, sx, sy], -1).reshape(-1, 1, 4)
    anchors = (shifts + base).reshape(-1, 4)
    out_rois, out_scores = [], []
    for b in range(n):
        scores = cls_prob[b, A:].permute(1, 2, 0).reshape(-1).clone()
        d = bbox_pred[b].reshape(A, 4, h, w).permute(2, 3, 0, 1).reshape(-1, 4)
        aw = anchors[:, 2] - anchors[:, 0] + 1
        ah = anchors[:, 3] - anchors[:, 1] + 1
        cx = anchors[:, 0] + 0.5 * (aw - 1)
        cy = anchors[:, 1] + 0.5 * (ah - 1)
        pcx, pcy = d[:, 0] * aw + cx, d[:, 1] * ah + cy
        pw, ph = torch.exp(d[:, 2]) * aw, torch.exp(d[:, 3]) * ah
        im_h, im_w = float(im_info[b, 0]), float(im_info[b, 1])
        boxes = torch.stack([(pcx - 0.5 * (pw - 1)).clamp(0, im_w - 1), (pcy - 0.5 * (ph - 1)).clamp(0, im_h - 1),
                             (pcx + 0.5 * (pw - 1)).clamp(0, im_w - 1), (pcy + 0.5 * (ph - 1)).clamp(0, im_h - 1)], 1)
        cell_h = torch.arange(h, device=dev).view(h, 1, 1).expand(h, w, A).reshape(-1)
        cell_w = torch.arange(w, device=dev).view(1, w, 1).expand(h, w, A).reshape(-1)
        scores[(cell_h >= int(im_h / stride)) | (cell_w >= int(im_w / stride))] = -1
        order = torch.sort(scores, descending=True, stable=True)[1][:pre]
        boxes, scores = boxes[order], scores[order]
        keep = torchvision.ops.nms(boxes, scores, thresh)[:post]
        idx = keep[torch.arange(post, device=dev) % keep.numel()]
        out_rois.append(torch.cat([torch.full((post, 1), float(b), device=dev, dtype=dt), boxes[idx]], 1))
        out_scores.append(scores[idx, None])
    return torch.cat(out_rois), torch.cat(out_scores)


def bench_proposal(device, repeat, gen):
    logits = torch.randn(1, 2, 9 * H, W, generator=gen)
    cls = torch.softmax(logits, 1).reshape(1, 18, H, W).to(device)
    deltas = (torch.randn(1, 36, H, W, generator=gen) * 0.2).to(device)
    im_info = torch.tensor([[600., 1000., 1.6]], device=device)

    def ours():
        ops.proposal(cls, deltas, im_info, pre_nms_top_n=6000, post_nms_top_n=300)

    def lib():
        plain_torch_proposal(cls, deltas, im_info)

    return [(f"proposal 1x18x{H}x{W}, pre 6000 / post 300", "forward", *timeit(ours, lib, repeat, device),
             "PyTorch + torchvision.ops.nms")]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--device", default="all", choices=["cpu", "cuda", "all"])
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu"] if args.device == "cpu" else ["cuda"] if args.device == "cuda" else (
        ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    if "cuda" in devices and not torch.cuda.is_available():
        raise ValueError("--device cuda but no CUDA device is available")
    global ops
    import lib.ops as ops  # lazy: loads the custom ops; --help works before they are built
    print(f"# bench_ops: torch {torch.__version__}, torchvision {torchvision.__version__}, ops built for "
          f"{ops.build_info()}, {torch.get_num_threads()} CPU threads, median of {args.repeat}")
    print("| op | device | pass | ours ms | library ms | library path | library/ours |")
    print("|---|---|---|---:|---:|---|---:|")
    for device in devices:
        gen = torch.Generator().manual_seed(0)
        rows = bench_psroi(31, device, args.repeat, gen) + bench_psroi(8, device, args.repeat, gen)
        rows += bench_warp(device, args.repeat, gen) + bench_proposal(device, args.repeat, gen)
        for name, what, ours_ms, lib_ms, lib_name in rows:
            print(f"| {name} | {device} | {what} | {ours_ms:.2f} | {lib_ms:.2f} | {lib_name} | {lib_ms / ours_ms:.2f}x |",
                  flush=True)


if __name__ == "__main__":
    run_cli(main)
