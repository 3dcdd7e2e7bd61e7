"""End-to-end training loop shared by the frame baseline and DFF (docs/fidelity.md §6.3).

- SGD as MXNet applies it (mom = momentum*mom - lr*(grad + wd*w); w += mom), wd only on weights and
  BN gammas, FIXED_PARAMS frozen, no gradient clipping, rescale_grad 1.
- One optimiser update = the original's batch: world_size processes x TRAIN.BATCH_IMAGES images x
  accumulation micro-steps. Per-image losses are SUMMED over the update (the original summed the per-GPU
  gradients), so 1 process accumulating 4 micro-steps reproduces 4 GPUs. With `gpus` set (the original's
  '0,1,2,3'), an update holds len(gpus) x BATCH_IMAGES images whatever the number of processes
  (len(gpus) / world_size micro-steps, lib/dataset/loader.py accumulation_steps); with gpus '' it is
  TRAIN.ACCUMULATE_GRAD.
- lr_step in epochs -> update steps int(epoch * |roidb| / images_per_update); optional constant warmup.
- Checkpoints (atomic: temp file + rename): <prefix>-<epoch:04d>.pth after each epoch, and
  <prefix>-last.pth every TRAIN.CHECKPOINT_ITERS updates (default 2000, so a killed run on the real
  configs loses at most that many) and after each epoch, holding model, optimizer, schedule position and
  RNG states. resume=True continues from <prefix>-last.pth exactly where it stopped: the data order is a
  function of (seed, epoch) and every per-item random choice of (seed, epoch, index); log lines written
  after that checkpoint (the updates redone) are dropped from the logs first. Without resume, a folder
  that already holds a run (its logs or checkpoints) is refused: one run per folder.
- Logs every default.frequent updates: train.log (the original's Speedometer line) and train_log.jsonl (the
  same as JSON), the loss terms averaged over those updates and over all processes
  (tools/analyze_train_log.py summarises and compares runs), and TensorBoard scalars when tensorboard is
  installed.
The loop is lib/core/engine.py's Trainer; this module gives it the data, the step and the hooks.
"""
import contextlib
import itertools
import os

import torch

from lib.core.engine import LRSchedule, PeriodicCheckpoint, ProgressBar, Trainer, TrainLog, check_new_run, multistep_lr
from lib.dataset.loader import (SALT_ROI_SAMPLING, EpochOrder, accumulation_steps, images_per_update, item_generator,
                                make_train_loader)
from lib.model.params import param_groups
from lib.utils import dist
from lib.utils.checkpoint import load_checkpoint
from lib.utils.device import process_device, resolve_device
from lib.utils.provenance import plain


class MXNetSGD(torch.optim.Optimizer):
    """MXNet's SGD update with momentum: the lr sits inside the momentum buffer, so an lr step
    affects only new gradients (PyTorch's SGD rescales the whole buffer); parameters without a
    gradient are updated with a zero gradient, as MXNet's executor does."""

    def __init__(self, params, lr, momentum=0.9, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, lr_mult=1.0))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr = group['lr'] * group['lr_mult']
            for p in group['params']:
                # MXNet updates every trainable parameter each step: one that got no gradient this
                # step (FlowNet when eq_flag = 1) still sees weight decay and momentum.
                g = p.grad if p.grad is not None else torch.zeros_like(p)
                if group['weight_decay']:
                    g = g.add(p, alpha=group['weight_decay'])
                state = self.state[p]
                if 'mom' not in state:
                    state['mom'] = torch.zeros_like(p)
                mom = state['mom']
                mom.mul_(group['momentum']).add_(g, alpha=-lr)
                p.add_(mom)


def lr_schedule(cfg, num_images, ipu):
    """Returns f(update_index) -> lr; update_index counts updates from the start of epoch 0."""
    base, factor = float(cfg.TRAIN.lr), float(cfg.TRAIN.lr_factor)
    epochs = [float(e) for e in str(cfg.TRAIN.lr_step).split(',') if e.strip()]
    steps = [int(e * num_images / ipu) for e in epochs]
    warmup = int(cfg.TRAIN.warmup_step) if bool(cfg.TRAIN.warmup) else 0
    return multistep_lr(base, factor, steps, warmup, cfg.TRAIN.warmup_lr), steps


class DetectorData:
    """The detectors' training data for the engine: update u of an epoch is the micro-batches (one per
    accumulation step) that chunk u of lib.dataset.loader.EpochOrder gives this process."""

    def __init__(self, dataset, order, rank, world, cfg, collator):
        self.dataset, self.order, self.rank, self.world = dataset, order, rank, world
        self.cfg, self.collator = cfg, collator
        self.accumulate = accumulation_steps(cfg, world)
        self.updates_per_epoch = order.updates_per_epoch

    def updates(self, epoch, start):
        micro_batches = iter(make_train_loader(self.dataset, self.order, epoch, start, self.rank, self.world,
                                               self.cfg, self.collator))
        for _ in range(start, self.updates_per_epoch):
            yield itertools.islice(micro_batches, self.accumulate)


def detector_step(net, dev, seed, accumulate, world):
    """step(micro_batches) for the engine: forward + backward of each micro-batch (per-image losses summed
    over the update, as the original summed its GPUs' gradients); returns the loss terms summed over the
    micro-batches / accumulate."""
    def to_device(v):
        if torch.is_tensor(v):
            return v.to(dev)
        return [x.to(dev) if torch.is_tensor(x) else x for x in v] if isinstance(v, list) else v

    def step(micro_batches):
        sums = {}
        for micro, batch in enumerate(micro_batches):
            batch = {k: to_device(v) for k, v in batch.items()}
            # roi sampling randomness per (seed, epoch, image): independent of process count and resume
            batch['generators'] = [item_generator(seed, e, i, SALT_ROI_SAMPLING)
                                   for e, i in zip(batch['epoch'], batch['index'])]
            last_micro = micro == accumulate - 1
            with net.no_sync() if (world > 1 and not last_micro) else contextlib.nullcontext():
                losses = net(batch)
                total = sum(losses.values())
                (total * world).backward()  # DDP averages over processes; the original sums
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
        return {k: v / accumulate for k, v in sums.items()}

    return step


def train(cfg, model, dataset, collator, output_dir, prefix, resume=False, log=print):
    """Train `model` (returns a dict of loss terms from model(batch)) on `dataset`; returns the model."""
    device = resolve_device(cfg)
    if not resume:
        check_new_run(output_dir, prefix)
    rank, world, local_rank = dist.init_from_env(device)
    torch.manual_seed(int(cfg.seed))
    dev = process_device(device, local_rank, world)
    model.to(dev)
    groups, summary = param_groups(model, list(cfg.network.FIXED_PARAMS), float(cfg.TRAIN.wd))
    opt = MXNetSGD(groups, lr=float(cfg.TRAIN.lr), momentum=float(cfg.TRAIN.momentum))
    accumulate = accumulation_steps(cfg, world)
    ipu = images_per_update(cfg, world)
    order = EpochOrder(dataset.roidb, ipu, int(cfg.seed), bool(cfg.TRAIN.SHUFFLE), bool(cfg.TRAIN.ASPECT_GROUPING),
                       bool(cfg.TRAIN.ORIGINAL_CHUNK_ORDER))
    lr_at, steps = lr_schedule(cfg, len(dataset.roidb), ipu)
    last_path = os.path.join(output_dir, f'{prefix}-last.pth')
    hooks = [LRSchedule(lr_at),
             TrainLog(output_dir, int(cfg.default.frequent), ipu, rank=rank, resume=resume),
             ProgressBar('epoch', enabled=rank == 0),
             PeriodicCheckpoint(last_path, int(cfg.TRAIN.CHECKPOINT_ITERS), in_epoch=True, at_stop=True,
                                epoch_path=lambda e: os.path.join(output_dir, f'{prefix}-{e + 1:04d}.pth'),
                                extra=lambda: {'cfg': plain(cfg)}, enabled=rank == 0, log=log)]
    trainer = Trainer(model, opt, DetectorData(dataset, order, rank, world, cfg, collator), None, hooks,
                      end_epoch=int(cfg.TRAIN.end_epoch), max_updates=int(cfg.TRAIN.MAX_ITERS))
    trainer.epoch = int(cfg.TRAIN.begin_epoch)
    trainer.global_update = trainer.epoch * order.updates_per_epoch
    if resume and os.path.isfile(last_path):
        trainer.load_state_dict(load_checkpoint(last_path, map_location='cpu'), last_path, cfg=cfg)
        log(f'resumed from {last_path}: epoch {trainer.epoch}, update {trainer.update_in_epoch} of '
            f'{order.updates_per_epoch}')
    elif resume:
        log(f'--resume: no {last_path} yet, starting from scratch')
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[local_rank] if device == 'cuda' else None,
            find_unused_parameters=bool(getattr(model, 'may_skip_parameters', False)))
    trainer.step = detector_step(net, dev, int(cfg.seed), accumulate, world)
    if rank == 0:
        log(f'training {prefix}: {len(dataset.roidb)} images, {world} process(es) x {cfg.TRAIN.BATCH_IMAGES} image(s) '
            f'x {accumulate} accumulation = {ipu} images per update, {order.updates_per_epoch} '
            f'updates per epoch, lr steps at updates {steps}; params: {summary}')
    model.train()
    return trainer.train()
