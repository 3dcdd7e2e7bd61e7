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

from lib.config import load_config, update_from_list
from lib.core.engine import LRSchedule, PeriodicCheckpoint, ProgressBar, Trainer, multistep_lr
from lib.dataset.flying_chairs import FlyingChairs, read_split
from lib.dataset.synthetic_vid import ensure_dataset
from lib.model.flownet import build_flownet
from lib.utils.checkpoint import load_checkpoint, save_state_dict
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


class PairData:
    """The pretraining data for the engine (lib/core/engine.py): each update is one batch of the shuffled
    loader; an epoch ends with the loader. Its state is the loader's generator at the start of the epoch, so
    that a resumed epoch draws the same order (its finished batches are read and skipped)."""
    updates_per_epoch = None

    def __init__(self, train_set, loader, generator):
        self.train_set, self.loader, self.generator = train_set, loader, generator
        self.epoch_start = generator.get_state()

    def updates(self, epoch, start):
        self.train_set.epoch = epoch + 1  # the flips' draw (1-based, as before the engine)
        self.epoch_start = self.generator.get_state()  # the loader draws this epoch's order from it when it starts
        for pos, batch in enumerate(self.loader, 1):
            if pos > start:
                yield batch

    def state_dict(self):
        return {'generator': self.epoch_start}

    def load_state_dict(self, state):
        self.generator.set_state(state['generator'])


def _engine_state(ck):
    """A resumable state written before the engine ('iteration', 1-based 'epoch', 'batch_in_epoch', the lr
    scheduler's state) in the engine's schema (the lr follows from the position)."""
    if 'iteration' not in ck:
        return ck
    return dict(ck, epoch=ck['epoch'] - 1, update_in_epoch=ck['batch_in_epoch'], global_update=ck['iteration'])


def pretrain_flownet(cfg, log=print, resume=False):
    """Train FlowNetS per cfg.FLOW_PRETRAIN; returns (path of the weights, EPE figures). Every
    FLOW_PRETRAIN.CHECKPOINT_ITERS iterations the whole state (weights, Adam, position, data order, RNG) is
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
    max_iters, div, every = int(p.max_iters), float(p.div_flow), int(p.CHECKPOINT_ITERS)

    def step(batch):
        cur, key, flow = (t.to(device) for t in batch)
        _, _, preds = net(cur, key, multiscale=True)
        loss = multiscale_loss(preds, flow, p.loss_weights, div)
        loss.backward()
        return {'loss': loss.detach()}

    last, spent, tic = state_path(cfg), 0.0, time.time()
    hooks = [LRSchedule(multistep_lr(float(p.lr), 0.5, steps)),  # halved at each lr_step iteration
             ProgressBar('flownet', unit='it', per_epoch=False, postfix_every=int(p.frequent)),
             PeriodicCheckpoint(last, every, in_epoch=False, at_stop=False,
                                extra=lambda: {'before': before, 'seconds': spent + time.time() - tic,
                                               'module': 'flownet', 'cfg': _config_of_the_net(cfg)})]
    trainer = Trainer(net, opt, PairData(train_set, train_loader, g), step, hooks, max_updates=max_iters)
    if resume and os.path.isfile(last):
        ck = _engine_state(load_checkpoint(last))
        trainer.load_state_dict(ck, last, cfg=cfg)
        before, spent = ck['before'], ck['seconds']
        log(f"resumed FlowNet pretraining from {last}: iteration {trainer.global_update} of {max_iters}")
    else:
        if resume:
            log(f"--resume: no {last} yet, starting from scratch")
        before = evaluate(net, val_loader, div, device)
    log(f"FlowNet pretraining on {p.dataset_path}: {len(train_set)} train / {len(val_set)} val pairs, "
        f"{max_iters} iterations of {p.batch_size}; zero-flow EPE {before['zero_flow_epe']:.3f} px")
    tic = time.time()
    if trainer.global_update < max_iters:
        trainer.train()
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
