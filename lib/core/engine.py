"""The one training engine: the detectors' training (lib/core/trainer.py) and FlowNet pretraining
(dff_rfcn/train_flownet.py) both run on it.

A Trainer holds the state of a run, the model, the optimizer, the position (epoch, update in the epoch,
updates since the start) and the RNG states; its state_dict is the one resumable checkpoint schema:

    model, optimizer, epoch, update_in_epoch, global_update, rng   (+ the data's state, e.g. a generator,
                                                                    and the caller's extra entries: cfg, ...)

Everything else is a hook, called around each update in the order given: the lr schedule (LRSchedule),
the logs (TrainLog: train.log, train_log.jsonl, TensorBoard scalars when tensorboard is installed), the
progress bar (ProgressBar) and the periodic checkpoints (PeriodicCheckpoint). The shape, a loop that
calls hooks before and after each step, is that of detectron2's engine/train_loop.py and hooks.py.

One update: the caller's step(item) runs the forward and backward passes of one optimiser update (a
detector update may hold several accumulated micro-batches) and returns its loss terms; then the
LRSchedule sets the lr, the optimizer steps, the gradients are cleared and the position advances.
"""
import json
import os
import random
import re
import time

import numpy as np
import torch
from tqdm import tqdm

from lib.model.weights import apply_state_dict
from lib.utils import dist
from lib.utils.checkpoint import save_checkpoint
from lib.utils.fileio import atomic_write


# ----------------------------------------------------------------------------------------- RNG states
def rng_state():
    """The RNG states as tensors and plain values (checkpoints are read with weights_only=True)."""
    name, key, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {'torch': torch.get_rng_state(),
            'numpy': {'bit_generator': name, 'key': key.tolist(), 'pos': int(pos), 'has_gauss': int(has_gauss),
                      'cached_gaussian': float(gauss)},
            'python': [version, list(internal), gauss_next],
            'cuda': torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(s):
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


# ----------------------------------------------------------------------------------------- the trainer
class Trainer:
    """model, optimizer: what is trained; data: the training data, with
        updates(epoch, start) -> the items of `epoch` from update `start` on, one per update (each what
                                 `step` takes),
        updates_per_epoch      -> an int, or None when an epoch ends with its data,
        state_dict() / load_state_dict(state) (optional): the data's own state in the checkpoint;
    step(item) -> {loss term: value}: forward and backward of one update; hooks: Hook instances.
    end_epoch: train epochs [epoch, end_epoch) (None: until max_updates); max_updates: stop after that
    many updates since the start (0: no limit)."""

    def __init__(self, model, optimizer, data, step, hooks=(), *, end_epoch=None, max_updates=0):
        self.model, self.optimizer, self.data, self.step = model, optimizer, data, step
        self.end_epoch, self.max_updates = end_epoch, int(max_updates or 0)
        self.epoch = self.update_in_epoch = self.global_update = 0
        self.losses = {}             # the last update's loss terms
        self.lr = None               # the last update's lr (LRSchedule)
        self.stopping = False        # max_updates reached
        self.epoch_complete = False  # in after_epoch: the epoch ran to its end (not stopped at max_updates)
        self.hooks = []
        for h in hooks:
            h.trainer = self
            self.hooks.append(h)

    def _call(self, name):
        for h in self.hooks:
            getattr(h, name)()

    # ------------------------------------------------------------------ state
    def state_dict(self):
        state = {'model': self.model.state_dict(), 'optimizer': self.optimizer.state_dict(), 'epoch': self.epoch,
                 'update_in_epoch': self.update_in_epoch, 'global_update': self.global_update, 'rng': rng_state()}
        if hasattr(self.data, 'state_dict'):
            state.update(self.data.state_dict())
        return state

    def load_state_dict(self, state, source, cfg=None):
        """Continue from a state_dict (`source`: the file it came from, named in errors; cfg: the config
        whose architecture values a mismatch error names, against state['cfg'])."""
        apply_state_dict(self.model, state['model'], source, cfg=cfg, stored_cfg=state.get('cfg'))
        self.optimizer.load_state_dict(state['optimizer'])
        self.epoch, self.update_in_epoch = int(state['epoch']), int(state['update_in_epoch'])
        self.global_update = int(state['global_update'])
        if state.get('rng') is not None:
            set_rng_state(state['rng'])
        if hasattr(self.data, 'load_state_dict'):
            self.data.load_state_dict(state)
        per_epoch = self.data.updates_per_epoch
        if per_epoch is not None and self.update_in_epoch >= per_epoch:  # saved at the end of an epoch
            self.epoch, self.update_in_epoch = self.epoch + 1, 0

    # ------------------------------------------------------------------ the loop
    def train(self):
        self._call('before_train')
        try:
            while not self.stopping and (self.end_epoch is None or self.epoch < self.end_epoch):
                self._call('before_epoch')
                for item in self.data.updates(self.epoch, self.update_in_epoch):
                    self.losses = self.step(item)
                    self._call('before_update')
                    self.optimizer.step()
                    self.optimizer.zero_grad(set_to_none=True)
                    self.update_in_epoch += 1
                    self.global_update += 1
                    self.stopping = bool(self.max_updates and self.global_update >= self.max_updates)
                    self._call('after_update')
                    if self.stopping:
                        break
                per_epoch = self.data.updates_per_epoch
                self.epoch_complete = not self.stopping or self.update_in_epoch == per_epoch
                self._call('after_epoch')
                if self.epoch_complete:
                    self.epoch, self.update_in_epoch = self.epoch + 1, 0
                dist.barrier()
        finally:
            self._call('after_train')
        return self.model


class Hook:
    """Called by the Trainer (self.trainer) in the order the hooks were given."""
    trainer = None

    def before_train(self):
        pass

    def before_epoch(self):
        pass

    def before_update(self):
        """After the update's backward passes, before optimizer.step()."""

    def after_update(self):
        pass

    def after_epoch(self):
        """Also when the epoch stopped at max_updates (trainer.epoch_complete is then False)."""

    def after_train(self):
        """Also when training failed."""


# ----------------------------------------------------------------------------------------- hooks
def multistep_lr(base, factor, steps, warmup_updates=0, warmup_lr=None):
    """f(update index since the start) -> lr: base * factor ** (number of steps reached); a constant
    warmup_lr for the first warmup_updates updates."""
    steps = list(steps)

    def lr_at(u):
        if warmup_updates and u < warmup_updates:
            return float(warmup_lr)
        return base * factor ** sum(1 for s in steps if u >= s)

    return lr_at


class LRSchedule(Hook):
    """Sets the lr of every parameter group to lr_at(update index) before each optimizer step."""

    def __init__(self, lr_at):
        self.lr_at = lr_at

    def before_update(self):
        t = self.trainer
        t.lr = self.lr_at(t.global_update)
        for g in t.optimizer.param_groups:
            g['lr'] = t.lr


class ProgressBar(Hook):
    """A tqdm bar of the updates: one per epoch (per_epoch=True, 'epoch N') or one for the whole run;
    the loss terms as its postfix every postfix_every updates."""

    def __init__(self, desc, unit='upd', per_epoch=True, postfix_every=1, enabled=True):
        self.desc, self.unit, self.per_epoch = desc, unit, per_epoch
        self.postfix_every, self.enabled = max(int(postfix_every), 1), enabled
        self.bar = None

    def _open(self, total, initial, desc):
        self.bar = tqdm(total=total, initial=initial, desc=desc, unit=self.unit, disable=not self.enabled,
                        mininterval=2, leave=not self.per_epoch)

    def _close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def before_train(self):
        if not self.per_epoch:
            self._open(self.trainer.max_updates or None, self.trainer.global_update, self.desc)

    def before_epoch(self):
        if self.per_epoch:
            t = self.trainer
            self._open(t.data.updates_per_epoch, t.update_in_epoch, f'{self.desc} {t.epoch}')

    def after_update(self):
        t = self.trainer
        self.bar.update(1)
        if t.global_update % self.postfix_every == 0:
            self.bar.set_postfix({k.replace('_loss', ''): f'{float(v):.3f}' for k, v in t.losses.items()},
                                 refresh=False)

    def after_epoch(self):
        if self.per_epoch:
            self._close()

    def after_train(self):
        self._close()


class PeriodicCheckpoint(Hook):
    """Writes trainer.state_dict() + extra() to `path` (atomically) every `every` updates, counted in the
    epoch (in_epoch=True) or since the start; also when training stops at max_updates (at_stop=True),
    never at the end of an epoch (the epoch files are written then). epoch_path(epoch): the file each
    finished epoch is saved to (then also `path`), or None. Only where enabled (rank 0)."""

    def __init__(self, path, every, *, in_epoch=True, at_stop=False, epoch_path=None, extra=dict, enabled=True,
                 log=print):
        self.path, self.every, self.in_epoch, self.at_stop = path, int(every or 0), in_epoch, at_stop
        self.epoch_path, self.extra, self.enabled, self.log = epoch_path, extra, enabled, log

    def save(self, path):
        save_checkpoint(path, dict(self.trainer.state_dict(), **self.extra()))

    def after_update(self):
        t = self.trainer
        n = t.update_in_epoch if self.in_epoch else t.global_update
        due = bool(self.every) and n % self.every == 0
        due = (due or t.stopping) if self.at_stop else (due and not t.stopping)
        per_epoch = t.data.updates_per_epoch
        if self.enabled and due and (per_epoch is None or t.update_in_epoch < per_epoch):
            self.save(self.path)

    def after_epoch(self):
        t = self.trainer
        if self.enabled and t.epoch_complete and self.epoch_path is not None:
            name = self.epoch_path(t.epoch)
            self.save(name)
            self.save(self.path)
            self.log(f'epoch {t.epoch} done: saved {os.path.basename(name)}')


# ----------------------------------------------------------------------------------------- the logs
LOG_FILES = ('train.log', 'train_log.jsonl')
TENSORBOARD_DIR = 'tensorboard'
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


def tensorboard_writer(log_dir, purge_step=None):
    """A TensorBoard SummaryWriter into log_dir, or None when tensorboard is not installed (it is an
    optional dependency). purge_step: a resumed run drops the events of the updates it redoes."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir, purge_step=purge_step)


class TrainLog(Hook):
    """Every `frequent` updates and at the end of each epoch: the loss terms averaged over the updates
    since the last record and over all processes, written (rank 0) as the original's Speedometer line to
    train.log, as JSON to train_log.jsonl and, when tensorboard is installed, as scalars to
    <output_dir>/tensorboard (loss/<term>, lr, samples_per_sec against global_update). The files are
    opened at the first record (a run that fails first leaves none). resume=True: the records of updates
    after the trainer's position (written before a kill, redone now) are removed first."""

    def __init__(self, output_dir, frequent, images_per_update, rank=0, resume=False):
        self.output_dir, self.frequent = output_dir, max(int(frequent), 1)
        self.images_per_update, self.rank, self.resume = images_per_update, rank, resume
        self.files = self.writer = self.purge_step = None
        self.window, self.window_n, self.tic = {}, 0, time.time()

    def before_train(self):
        t = self.trainer
        if self.resume and self.rank == 0:
            trim_logs(self.output_dir, t.epoch, t.update_in_epoch, t.global_update)
            self.purge_step = t.global_update + 1

    def before_epoch(self):
        self.window, self.window_n, self.tic = {}, 0, time.time()

    def after_update(self):
        t = self.trainer
        for k, v in t.losses.items():
            self.window[k] = self.window.get(k, 0.0) + float(v)
        self.window_n += 1
        if t.update_in_epoch % self.frequent and t.update_in_epoch != t.data.updates_per_epoch:
            return
        # every rank takes part in the gather (the original's metrics covered every GPU)
        means = {k: v / self.window_n for k, v in self.window.items()}
        if dist.world_size() > 1:
            parts = dist.all_gather_object(means)
            means = {k: sum(p[k] for p in parts) / len(parts) for k in means}
        if self.rank == 0:
            speed = self.images_per_update * self.window_n / max(time.time() - self.tic, 1e-9)
            line = (f'Epoch[{t.epoch}] Batch [{t.update_in_epoch}]\tSpeed: {speed:.2f} samples/sec\tlr={t.lr:.3g}\t'
                    + '\t'.join(f'{k}={v:.4f}' for k, v in means.items()))
            self.write(line, {'epoch': t.epoch, 'update': t.update_in_epoch, 'global_update': t.global_update,
                              'lr': t.lr, 'samples_per_sec': round(speed, 3), 'updates': self.window_n,
                              'losses': means})
        self.window, self.window_n, self.tic = {}, 0, time.time()

    def write(self, line, record):
        if self.files is None:
            os.makedirs(self.output_dir, exist_ok=True)
            self.files = [open(os.path.join(self.output_dir, name), 'a') for name in LOG_FILES]
            self.writer = tensorboard_writer(os.path.join(self.output_dir, TENSORBOARD_DIR), self.purge_step)
        for f, text in zip(self.files, (line, json.dumps(record))):
            f.write(text + '\n')
            f.flush()
        if self.writer is not None:
            step = record['global_update']
            for k, v in record['losses'].items():
                self.writer.add_scalar(f'loss/{k}', v, step)
            self.writer.add_scalar('lr', record['lr'], step)
            self.writer.add_scalar('samples_per_sec', record['samples_per_sec'], step)
            self.writer.flush()

    def after_train(self):
        for f in self.files or ():
            f.close()
        if self.writer is not None:
            self.writer.close()
        self.files = self.writer = None
