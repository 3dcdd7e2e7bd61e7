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
  (tools/analyze_train_log.py summarises and compares runs).
"""
import json
import os
import random
import re
import time

import numpy as np
import torch
from tqdm import tqdm

from lib.dataset.loader import EpochOrder, accumulation_steps, images_per_update, item_generator, make_train_loader
from lib.model.params import param_groups
from lib.model.weights import apply_state_dict
from lib.utils import dist
from lib.utils.checkpoint import load_checkpoint, save_checkpoint
from lib.utils.device import process_device, resolve_device
from lib.utils.fileio import atomic_write
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
    warmup = bool(cfg.TRAIN.warmup)

    def lr_at(u):
        if warmup and u < int(cfg.TRAIN.warmup_step):
            return float(cfg.TRAIN.warmup_lr)
        return base * factor ** sum(1 for s in steps if u >= s)

    return lr_at, steps


def _rng_state():
    """The RNG states as tensors and plain values (checkpoints are read with weights_only=True)."""
    name, key, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {'torch': torch.get_rng_state(),
            'numpy': {'bit_generator': name, 'key': key.tolist(), 'pos': int(pos), 'has_gauss': int(has_gauss),
                      'cached_gaussian': float(gauss)},
            'python': [version, list(internal), gauss_next],
            'cuda': torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_state(s):
    torch.set_rng_state(s['torch'])
    n = s['numpy']
    if isinstance(n, dict):
        np.random.set_state((n['bit_generator'], np.asarray(n['key'], dtype=np.uint32), n['pos'], n['has_gauss'],
                             n['cached_gaussian']))
    else:  # a checkpoint written before the states were stored as plain values
        np.random.set_state(tuple(n))
    version, internal, gauss_next = s['python']
    random.setstate((version, tuple(internal), gauss_next))
    if s.get('cuda') is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s['cuda'])


LOG_FILES = ('train.log', 'train_log.jsonl')
_SPEEDOMETER = re.compile(r'^Epoch\[(\d+)\] Batch \[(\d+)\]')


def existing_run(output_dir, prefix):
    """The files that show `output_dir` already holds a training run of `prefix` (logs, checkpoints)."""
    if not os.path.isdir(output_dir):
        return []
    return sorted(n for n in os.listdir(output_dir)
                  if n in LOG_FILES or (n.startswith(f'{prefix}-') and n.endswith('.pth')))


def check_new_run(output_dir, prefix):
    found = existing_run(output_dir, prefix)
    if found:
        shown = ', '.join(found[:4]) + (' ...' if len(found) > 4 else '')
        raise ValueError(f"{output_dir} already holds a training run ({shown}); continue it with --resume, or "
                         f"train into a new folder (--set output_path=<new folder>)")


def trim_logs(output_dir, epoch, update, global_update):
    """Resuming at (epoch, update): drop the log records of later updates (written before the kill, redone
    now), so that the logs hold each update once. Other lines stay; files are rewritten atomically."""
    def keep_text(line):
        m = _SPEEDOMETER.match(line)
        return not m or (int(m.group(1)), int(m.group(2))) <= (epoch, update)

    def keep_json(line):
        try:
            return int(json.loads(line).get('global_update', 0)) <= global_update
        except (ValueError, AttributeError):
            return True

    for name, keep in (('train.log', keep_text), ('train_log.jsonl', keep_json)):
        path = os.path.join(output_dir, name)
        if not os.path.isfile(path):
            continue
        with open(path) as f:
            lines = f.readlines()
        kept = [line for line in lines if keep(line)]
        if len(kept) != len(lines):
            atomic_write(path, lambda f: f.writelines(kept), 'w')


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
    epoch, start_update, global_update = int(cfg.TRAIN.begin_epoch), 0, 0
    global_update = epoch * order.updates_per_epoch
    last_path = os.path.join(output_dir, f'{prefix}-last.pth')
    if resume and os.path.isfile(last_path):
        ck = load_checkpoint(last_path, map_location='cpu')
        apply_state_dict(model, ck['model'], last_path, cfg=cfg, stored_cfg=ck.get('cfg'))
        opt.load_state_dict(ck['optimizer'])
        epoch, start_update, global_update = ck['epoch'], ck['update_in_epoch'], ck['global_update']
        _set_rng_state(ck['rng'])
        if rank == 0:
            trim_logs(output_dir, epoch, start_update, global_update)
        if start_update >= order.updates_per_epoch:
            epoch, start_update = epoch + 1, 0
        log(f'resumed from {last_path}: epoch {epoch}, update {start_update} of {order.updates_per_epoch}')
    elif resume:
        log(f'--resume: no {last_path} yet, starting from scratch')
        if rank == 0:
            trim_logs(output_dir, epoch, -1, global_update)
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[local_rank] if device == 'cuda' else None,
            find_unused_parameters=bool(getattr(model, 'may_skip_parameters', False)))
    if rank == 0:
        log(f'training {prefix}: {len(dataset.roidb)} images, {world} process(es) x {cfg.TRAIN.BATCH_IMAGES} image(s) '
            f'x {accumulate} accumulation = {ipu} images per update, {order.updates_per_epoch} '
            f'updates per epoch, lr steps at updates {steps}; params: {summary}')
    max_iters = int(cfg.TRAIN.MAX_ITERS)
    logs = _Logs(output_dir) if rank == 0 else None  # opened at the first line: a run that fails first leaves none
    model.train()
    done = False
    while epoch < int(cfg.TRAIN.end_epoch) and not done:
        loader = make_train_loader(dataset, order, epoch, start_update, rank, world, cfg, collator)
        bar = tqdm(total=order.updates_per_epoch, initial=start_update, desc=f'epoch {epoch}', unit='upd',
                   disable=rank != 0, mininterval=2, leave=False)
        update, micro, sums, tic = start_update, 0, {}, time.time()
        window, window_n = {}, 0  # loss sums since the last log line
        for batch in loader:
            batch = {k: (v.to(dev) if torch.is_tensor(v) else [x.to(dev) if torch.is_tensor(x) else x for x in v]
                         if isinstance(v, list) else v) for k, v in batch.items()}
            # roi sampling randomness per (seed, epoch, image): independent of process count and resume
            batch['generators'] = [item_generator(int(cfg.seed), e, i, salt=2)
                                   for e, i in zip(batch['epoch'], batch['index'])]
            last_micro = micro == accumulate - 1
            ctx = net.no_sync() if (world > 1 and not last_micro) else _null()
            with ctx:
                losses = net(batch)
                total = sum(losses.values())
                (total * world).backward()  # DDP averages over processes; the original sums
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            micro += 1
            if not last_micro:
                continue
            micro = 0
            lr = lr_at(global_update)
            for g in opt.param_groups:
                g['lr'] = lr
            opt.step()
            opt.zero_grad(set_to_none=True)
            update += 1
            global_update += 1
            for k, v in sums.items():
                window[k] = window.get(k, 0.0) + v / accumulate
            window_n += 1
            if rank == 0:
                bar.update(1)
                bar.set_postfix({k.replace('_loss', ''): f'{v / accumulate:.3f}' for k, v in sums.items()}, refresh=False)
            if update % int(cfg.default.frequent) == 0 or update == order.updates_per_epoch:
                # the mean over the updates since the last line and over all processes (the original's metrics
                # covered every GPU and reset at each Speedometer line); every rank takes part in the gather
                means = {k: v / window_n for k, v in window.items()}
                if world > 1:
                    parts = dist.all_gather_object(means)
                    means = {k: sum(p[k] for p in parts) / len(parts) for k in means}
                if rank == 0:
                    speed = ipu * window_n / max(time.time() - tic, 1e-9)
                    line = (f'Epoch[{epoch}] Batch [{update}]\tSpeed: {speed:.2f} samples/sec\tlr={lr:.3g}\t'
                            + '\t'.join(f'{k}={v:.4f}' for k, v in means.items()))
                    logs.write(line, {'epoch': epoch, 'update': update, 'global_update': global_update, 'lr': lr,
                                      'samples_per_sec': round(speed, 3), 'updates': window_n, 'losses': means})
                window, window_n, tic = {}, 0, time.time()
            sums = {}
            stop = max_iters and global_update >= max_iters
            every = int(cfg.TRAIN.CHECKPOINT_ITERS)
            if rank == 0 and ((every and update % every == 0) or stop) and update < order.updates_per_epoch:
                _save(last_path, model, opt, epoch, update, global_update, cfg)
            if stop:
                done = True
                break
        bar.close()
        if not done or update == order.updates_per_epoch:
            if rank == 0:
                _save(os.path.join(output_dir, f'{prefix}-{epoch + 1:04d}.pth'), model, opt, epoch, update,
                      global_update, cfg)
                _save(last_path, model, opt, epoch, update, global_update, cfg)
                log(f'epoch {epoch} done: saved {prefix}-{epoch + 1:04d}.pth')
            epoch, start_update = epoch + 1, 0
        dist.barrier()
    if logs:
        logs.close()
    return model


class _Logs:
    """train.log (the Speedometer line) and train_log.jsonl (the same as JSON), appended to, opened at the
    first record."""

    def __init__(self, output_dir):
        self.output_dir, self.files = output_dir, None

    def write(self, line, record):
        if self.files is None:
            os.makedirs(self.output_dir, exist_ok=True)
            self.files = [open(os.path.join(self.output_dir, name), 'a') for name in LOG_FILES]
        for f, text in zip(self.files, (line, json.dumps(record))):
            f.write(text + '\n')
            f.flush()

    def close(self):
        for f in self.files or ():
            f.close()
        self.files = None


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def _save(path, model, opt, epoch, update, global_update, cfg):
    save_checkpoint(path, {'model': model.state_dict(), 'optimizer': opt.state_dict(), 'epoch': epoch,
                           'update_in_epoch': update, 'global_update': global_update, 'rng': _rng_state(),
                           'cfg': plain(cfg)})
