#!/usr/bin/env python
"""Pretrain DFF's FlowNet-S on Flying Chairs-format pairs (the original started DFF training from a
FlowNet trained on Flying Chairs, docs/fidelity.md#1112-flownet-pretraining), with FlowNet's multi-scale loss:

    loss = sum_l w_l * sum_pixels || pred_l - downsample(flow_gt) / (2 * div_flow) ||_2   (batch mean)

over the five predictions flow2 (Convolution5 on the stride-4 decoder map) .. flow6 (Convolution1), each
in the network's own units (flow / 20 in pixels of its half-resolution input), weights 0.005 .. 0.32.
Evaluation: end-point error in input pixels of the finest prediction upsampled to full resolution, on the
validation pairs (list mark 2), next to the EPE of predicting zero flow.

    python dff_rfcn/train_flownet.py --cfg experiments/dff_rfcn/cfgs/synthetic_vid_cpu.yaml
Writes <network.pretrained_flow>-<network.pretrained_epoch:04d>.pth (FlowNetS state dict, atomically),
the file DFF training loads, and <that>.json with the EPE figures; every FLOW_PRETRAIN.CHECKPOINT_ITERS
iterations the resumable state <that minus .pth>-pretrain-last.pth (--resume continues from it; without
--resume, existing weights or state of an earlier run are refused, never overwritten).
"""
import argparse
import json
import os
import time

import torch
import torch.nn.functional as F
from tqdm import tqdm

from lib.config import load_config, update_from_list
from lib.dataset.flying_chairs import FlyingChairs, read_split
from lib.dataset.synthetic_vid import ensure_dataset
from lib.model.flownet import build_flownet
from lib.model.weights import apply_state_dict
from lib.utils.checkpoint import load_checkpoint, save_checkpoint, save_state_dict
from lib.utils.cli import run_cli
from lib.utils.device import process_device, resolve_device
from lib.utils.fileio import write_text


def multiscale_loss(preds, flow_gt, weights, div_flow):
    """preds: [flow6, flow5, flow4, flow3, flow2] (coarse to fine, network units); weights: flow2..flow6.
    Per scale the end-point error is SUMMED over the pixels (and averaged over the batch), as FlowNet's
    Caffe loss and its usual ports do: a scale's share grows with its pixel count, so the finest
    prediction, the one DFF uses, dominates despite its weight 0.005. (A per-pixel mean instead left the
    quarter-width FlowNet at the zero-flow EPE after 1000 iterations, against 6.5 px of 9.2 with the sum:
    measured.)"""
    target = flow_gt / (2.0 * div_flow)  # full-resolution pixels -> half-resolution pixels / div_flow
    total = 0.0
    for pred, w in zip(preds, reversed(list(weights))):
        t = F.adaptive_avg_pool2d(target, pred.shape[-2:])
        total = total + float(w) * torch.linalg.vector_norm(pred - t, dim=1).sum(dim=(1, 2)).mean()
    return total


def full_resolution_flow(pred2, size, div_flow):
    """The finest prediction (stride 8 of the input) in input pixels at the input's size."""
    return F.interpolate(pred2 * (2.0 * div_flow), size=size, mode='bilinear', align_corners=False)


@torch.no_grad()
def evaluate(net, loader, div_flow, device):
    net.eval()
    epe_sum, zero_sum, n = 0.0, 0.0, 0
    for cur, key, flow in loader:
        cur, key, flow = cur.to(device), key.to(device), flow.to(device)
        _, _, preds = net(cur, key, multiscale=True)
        full = full_resolution_flow(preds[-1], flow.shape[-2:], div_flow)
        epe_sum += float(torch.linalg.vector_norm(full - flow, dim=1).mean(dim=(1, 2)).sum())
        zero_sum += float(torch.linalg.vector_norm(flow, dim=1).mean(dim=(1, 2)).sum())
        n += flow.shape[0]
    net.train()
    return {'epe': epe_sum / max(n, 1), 'zero_flow_epe': zero_sum / max(n, 1), 'pairs': n}


def _config_of_the_net(cfg):
    """The settings that shape the FlowNet, stored with the resumable state (named on a mismatch)."""
    return {'network': {'DFF_FEAT_DIM': cfg.network.DFF_FEAT_DIM, 'FLOW_WIDTH_MULT': cfg.network.FLOW_WIDTH_MULT}}


def output_path(cfg):
    prefix = cfg.network.pretrained_flow
    if not prefix:
        raise ValueError("network.pretrained_flow is empty: it names where the pretrained FlowNet goes")
    return f'{prefix}-{int(cfg.network.pretrained_epoch):04d}.pth'


def state_path(cfg):
    """Where pretraining keeps its resumable state (every FLOW_PRETRAIN.CHECKPOINT_ITERS iterations)."""
    return output_path(cfg)[:-4] + '-pretrain-last.pth'


def pretrain_flownet(cfg, log=print, resume=False):
    """Train FlowNetS per cfg.FLOW_PRETRAIN; returns (path of the weights, EPE figures). Every
    FLOW_PRETRAIN.CHECKPOINT_ITERS iterations the whole state (weights, Adam, lr schedule, data order) is
    written atomically to state_path(cfg); resume=True continues from it to the same weights an
    uninterrupted run gives (the interrupted epoch's order is replayed: its finished batches are read and
    skipped)."""
    p = cfg.FLOW_PRETRAIN
    if not resume:
        found = [f for f in (output_path(cfg), state_path(cfg)) if os.path.isfile(f)]
        if found:
            raise ValueError(f"FlowNet pretraining already ran here ({', '.join(found)}); continue it with --resume, "
                             f"or write to new weights (--set network.pretrained_flow=<new prefix>)")
    device = process_device(resolve_device(cfg), 0, 1)
    torch.manual_seed(int(cfg.seed))
    train_ids, val_ids = read_split(p.dataset_path)
    if not train_ids or not val_ids:
        raise ValueError(f"{p.dataset_path}: need train (1) and validation (2) pairs, found {len(train_ids)} "
                         f"and {len(val_ids)}")
    means = cfg.network.PIXEL_MEANS
    train_set = FlyingChairs(p.dataset_path, train_ids, means, flip=bool(p.flip), seed=int(cfg.seed))
    val_set = FlyingChairs(p.dataset_path, val_ids, means)
    workers = int(p.num_workers)
    g = torch.Generator().manual_seed(int(cfg.seed))
    train_loader = torch.utils.data.DataLoader(train_set, batch_size=int(p.batch_size), shuffle=True, drop_last=True,
                                               num_workers=workers, generator=g)  # not persistent: workers see the new epoch
    val_loader = torch.utils.data.DataLoader(val_set, batch_size=int(p.batch_size), num_workers=0)
    net = build_flownet(cfg).to(device)
    # the scale branch is DFF's, not FlowNet's: it stays at its initialisation (weight 0, bias 1)
    params = [v for k, v in net.named_parameters() if not k.startswith('Convolution5_scale')]
    opt = torch.optim.Adam(params, lr=float(p.lr), betas=(0.9, 0.999), weight_decay=float(p.wd))
    steps = [int(s) for s in str(p.lr_step).split(',') if s.strip()]
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, steps, gamma=0.5)
    max_iters, div, every = int(p.max_iters), float(p.div_flow), int(p.CHECKPOINT_ITERS)
    it, skip, spent = 0, 0, 0.0
    last = state_path(cfg)
    if resume and os.path.isfile(last):
        ck = load_checkpoint(last)
        apply_state_dict(net, ck['model'], last, cfg=cfg, stored_cfg=ck.get('cfg'))
        opt.load_state_dict(ck['optimizer'])
        sched.load_state_dict(ck['scheduler'])
        g.set_state(ck['generator'])
        train_set.epoch, it, skip = ck['epoch'] - 1, ck['iteration'], ck['batch_in_epoch']
        before, spent = ck['before'], ck['seconds']
        log(f"resumed FlowNet pretraining from {last}: iteration {it} of {max_iters}")
    else:
        if resume:
            log(f"--resume: no {last} yet, starting from scratch")
        before = evaluate(net, val_loader, div, device)
    log(f"FlowNet pretraining on {p.dataset_path}: {len(train_set)} train / {len(val_set)} val pairs, "
        f"{max_iters} iterations of {p.batch_size}; zero-flow EPE {before['zero_flow_epe']:.3f} px")
    tic = time.time()
    bar = tqdm(total=max_iters, initial=it, desc='flownet', unit='it', mininterval=2)
    while it < max_iters:
        train_set.epoch += 1
        epoch_start = g.get_state()  # the loader draws this epoch's order from g when it starts
        pos = 0
        for cur, key, flow in train_loader:
            pos += 1
            if pos <= skip:
                continue
            cur, key, flow = cur.to(device), key.to(device), flow.to(device)
            _, _, preds = net(cur, key, multiscale=True)
            loss = multiscale_loss(preds, flow, p.loss_weights, div)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            it += 1
            bar.update(1)
            if it % int(p.frequent) == 0:
                bar.set_postfix(loss=f'{float(loss.detach()):.4f}', refresh=False)
            if every and it % every == 0 and it < max_iters:
                save_checkpoint(last, {'model': net.state_dict(), 'optimizer': opt.state_dict(),
                                       'scheduler': sched.state_dict(), 'generator': epoch_start,
                                       'epoch': train_set.epoch, 'batch_in_epoch': pos, 'iteration': it,
                                       'before': before, 'seconds': spent + time.time() - tic,
                                       'module': 'flownet', 'cfg': _config_of_the_net(cfg)})
            if it >= max_iters:
                break
        skip = 0
    bar.close()
    result = evaluate(net, val_loader, div, device)
    result.update(initial_epe=before['epe'], iterations=max_iters, seconds=round(spent + time.time() - tic, 1))
    path = output_path(cfg)
    save_state_dict(path, {k: v.cpu() for k, v in net.state_dict().items()})
    write_text(path[:-4] + '.json', json.dumps(result, indent=1))
    log(f"FlowNet validation EPE {result['epe']:.3f} px (zero flow: {result['zero_flow_epe']:.3f} px) "
        f"after {max_iters} iterations, {result['seconds']} s; saved {path}")
    return path, result


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--cfg', required=True)
    ap.add_argument('--set', nargs='*', action='extend', default=[], metavar='KEY=VALUE',
                    help='config overrides (yaml values); may be repeated')
    ap.add_argument('--resume', action='store_true', help='continue from the last FLOW_PRETRAIN.CHECKPOINT_ITERS state')
    args = ap.parse_args(argv)
    cfg = update_from_list(load_config(args.cfg), args.set)
    if cfg.dataset.dataset == 'SyntheticVID' and os.path.abspath(cfg.FLOW_PRETRAIN.dataset_path).startswith(
            os.path.abspath(cfg.dataset.dataset_path)):
        # the embedded default: generate on first use
        ensure_dataset(cfg.dataset.dataset_path, **dict(cfg.dataset.SYNTHETIC))
    pretrain_flownet(cfg, resume=args.resume)


if __name__ == '__main__':
    run_cli(main)
