"""The training engine (lib/core/engine.py) on a toy problem: a run stopped at max_updates or killed mid-epoch
and resumed from its checkpoint ends with the weights, checkpoints and logs of an uninterrupted run; the
checkpoint periods; the lr schedule; TensorBoard scalars (with a stand-in writer where tensorboard is not
installed); and tools/analyze_train_log.py --plot (with a stand-in matplotlib where it is not installed)."""
import json
import os
import sys
import types

import pytest
import torch

import lib.core.engine as engine
from lib.core.engine import LRSchedule, PeriodicCheckpoint, ProgressBar, Trainer, TrainLog, multistep_lr
from lib.utils.checkpoint import load_checkpoint
from tools import analyze_train_log as atl

UPDATES_PER_EPOCH = 5


class ToyData:
    updates_per_epoch = UPDATES_PER_EPOCH

    def updates(self, epoch, start):
        for u in range(start, self.updates_per_epoch):
            yield epoch, u


class Killed(Exception):
    pass


class FakeWriter:
    """Stands in for torch.utils.tensorboard.SummaryWriter."""
    instances = []

    def __init__(self, log_dir, purge_step=None):
        self.log_dir, self.purge_step, self.scalars, self.closed = log_dir, purge_step, [], False
        FakeWriter.instances.append(self)

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, value, step))

    def flush(self):
        pass

    def close(self):
        self.closed = True


def toy_trainer(out, *, max_updates=0, every=2, kill_at=None, resume=False, log=None):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    calls = []

    def step(item):
        calls.append(item)
        if kill_at is not None and len(calls) == kill_at:
            raise Killed()
        epoch, u = item
        g = torch.Generator().manual_seed(100 * epoch + u)
        x = torch.randn(4, 3, generator=g)
        x = x + 0.01 * torch.randn(4, 3)  # a draw from the global RNG: restored on resume
        loss = ((model(x) - x.sum(1, keepdim=True)) ** 2).mean()
        loss.backward()
        return {'toy_loss': float(loss.detach())}

    last = os.path.join(out, 'toy-last.pth')
    hooks = [LRSchedule(multistep_lr(0.1, 0.1, [6])),
             TrainLog(out, 1, 4, resume=resume),
             ProgressBar('epoch', enabled=False),
             PeriodicCheckpoint(last, every, in_epoch=True, at_stop=True,
                                epoch_path=lambda e: os.path.join(out, f'toy-{e + 1:04d}.pth'),
                                extra=lambda: {'cfg': {'toy': 1}}, log=log or (lambda *a: None))]
    trainer = Trainer(model, opt, ToyData(), step, hooks, end_epoch=3, max_updates=max_updates)
    if resume and os.path.isfile(last):
        trainer.load_state_dict(load_checkpoint(last), last)
    return trainer


def records(out):
    recs = [json.loads(line) for line in open(os.path.join(out, 'train_log.jsonl'))]
    for r in recs:
        r.pop('samples_per_sec')
    return recs


def test_stopped_and_killed_runs_resume_to_the_uninterrupted_run(tmp_path, monkeypatch):
    monkeypatch.setattr(engine, 'tensorboard_writer', FakeWriter)
    FakeWriter.instances = []
    ref, stopped, killed = (str(tmp_path / n) for n in ('ref', 'stopped', 'killed'))
    messages = []
    model = toy_trainer(ref, log=messages.append).train()
    assert messages == [f'epoch {e} done: saved toy-{e + 1:04d}.pth' for e in range(3)]
    assert sorted(os.listdir(ref)) == ['toy-0001.pth', 'toy-0002.pth', 'toy-0003.pth', 'toy-last.pth', 'train.log',
                                       'train_log.jsonl']
    ck = load_checkpoint(os.path.join(ref, 'toy-0002.pth'))
    assert (ck['epoch'], ck['update_in_epoch'], ck['global_update']) == (1, 5, 10)
    assert set(ck) == {'format', 'model', 'optimizer', 'epoch', 'update_in_epoch', 'global_update', 'rng', 'cfg'}
    recs = records(ref)
    assert [(r['epoch'], r['update'], r['global_update']) for r in recs] == \
        [(e, u, 5 * e + u) for e in range(3) for u in range(1, 6)]
    assert [r['lr'] for r in recs] == [0.1] * 6 + [0.1 * 0.1] * 9  # lr of update index 6 on: stepped once
    writer = FakeWriter.instances[0]
    assert writer.closed and writer.log_dir == os.path.join(ref, 'tensorboard') and writer.purge_step is None
    assert [s for t, _, s in writer.scalars if t == 'loss/toy_loss'] == list(range(1, 16))
    assert [v for t, v, _ in writer.scalars if t == 'loss/toy_loss'] == [r['losses']['toy_loss'] for r in recs]

    # stopped at max_updates mid-epoch (the last checkpoint is written then), then resumed
    toy_trainer(stopped, max_updates=7).train()
    ck = load_checkpoint(os.path.join(stopped, 'toy-last.pth'))
    assert (ck['epoch'], ck['update_in_epoch'], ck['global_update']) == (1, 2, 7)
    assert not os.path.exists(os.path.join(stopped, 'toy-0002.pth'))
    resumed = toy_trainer(stopped, resume=True)
    assert (resumed.epoch, resumed.update_in_epoch, resumed.global_update) == (1, 2, 7)
    model_b = resumed.train()

    # killed in the 9th update (the 4th of epoch 1): the checkpoint after the 2nd of epoch 1 (the 7th) survives;
    # the log record of the 8th, written before the kill, is dropped on resume (that update is redone)
    with pytest.raises(Killed):
        toy_trainer(killed, every=2, kill_at=9).train()
    assert [r['global_update'] for r in records(killed)] == list(range(1, 9))
    ck = load_checkpoint(os.path.join(killed, 'toy-last.pth'))
    assert ck['global_update'] == 7
    resumed = toy_trainer(killed, resume=True)
    model_c = resumed.train()
    assert FakeWriter.instances[-1].purge_step == 8  # TensorBoard drops the redone updates' events too

    for other in (model_b, model_c):
        for a, b in zip(model.state_dict().values(), other.state_dict().values()):
            assert torch.equal(a, b)
    for run in (stopped, killed):
        assert records(run) == recs
        for name in ('toy-0002.pth', 'toy-0003.pth'):
            a, b = load_checkpoint(os.path.join(ref, name)), load_checkpoint(os.path.join(run, name))
            assert all(torch.equal(a['model'][k], b['model'][k]) for k in a['model'])
            assert (a['epoch'], a['update_in_epoch'], a['global_update']) == (b['epoch'], b['update_in_epoch'],
                                                                             b['global_update'])


def test_checkpoint_periods_in_the_epoch_and_since_the_start(tmp_path):
    saved = []

    class Recording(PeriodicCheckpoint):
        def save(self, path):
            saved.append((os.path.basename(path), self.trainer.epoch, self.trainer.update_in_epoch,
                          self.trainer.global_update))

    def run(hook, **kw):
        saved.clear()
        torch.manual_seed(0)
        model = torch.nn.Linear(1, 1)

        def step(item):
            model(torch.ones(1, 1)).sum().backward()
            return {}
        Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), ToyData(), step, [hook], **kw).train()
        return list(saved)

    # the detectors' way: every 2 updates of an epoch, never at its end (the epoch files are), and at a stop
    assert run(Recording('last', 2, in_epoch=True, at_stop=True, epoch_path=lambda e: f'e{e}', log=lambda *a: None),
               end_epoch=2, max_updates=9) == [
        ('last', 0, 2, 2), ('last', 0, 4, 4), ('e0', 0, 5, 5), ('last', 0, 5, 5),
        ('last', 1, 2, 7), ('last', 1, 4, 9)]
    # FlowNet pretraining's: every 3 updates since the start, not at the stop (the final weights are written)
    assert run(Recording('state', 3, in_epoch=False, at_stop=False), max_updates=9) == [
        ('state', 0, 3, 3), ('state', 1, 1, 6)]


def test_multistep_lr_is_torch_multisteplr_with_gamma_one_half():
    """FlowNet pretraining moved from torch's MultiStepLR(gamma=0.5) to the engine's LRSchedule: the same lr
    at every update, bit for bit."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=3e-4)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [4, 7, 7, 12], gamma=0.5)
    lr_at = multistep_lr(3e-4, 0.5, [4, 7, 7, 12])
    for u in range(20):
        assert lr_at(u) == opt.param_groups[0]['lr'], u
        opt.step()
        sched.step()
    warm = multistep_lr(0.1, 0.1, [10], warmup_updates=3, warmup_lr=0.001)
    assert [warm(u) for u in (0, 2, 3, 9, 10)] == [0.001, 0.001, 0.1, 0.1, 0.1 * 0.1]


def test_tensorboard_is_optional(tmp_path, monkeypatch):
    """Without tensorboard (made unimportable here) the logs are written and no TensorBoard folder is made."""
    monkeypatch.setitem(sys.modules, 'torch.utils.tensorboard', None)
    assert engine.tensorboard_writer(str(tmp_path / 'tb')) is None
    log = TrainLog(str(tmp_path), 1, 1)
    log.trainer = types.SimpleNamespace(epoch=0, update_in_epoch=1, global_update=1, lr=0.1, losses={'l': 0.5},
                                        data=ToyData())
    log.after_update()
    log.after_train()
    assert sorted(os.listdir(tmp_path)) == ['train.log', 'train_log.jsonl']
    assert json.loads(open(tmp_path / 'train_log.jsonl').read())['losses'] == {'l': 0.5}


# ----------------------------------------------------------------------------------------- --plot
def _write_runs(tmp_path):
    a, b = tmp_path / 'run_a', tmp_path / 'run_b'
    a.mkdir()
    b.mkdir()
    with open(a / 'train_log.jsonl', 'w') as f:
        for g in (2, 4, 6):
            losses = {'rpn_cls_loss': 1.0 / g, 'rcnn_cls_loss': 2.0 / g, 'rpn_bbox_loss': 3.0 / g}
            f.write(json.dumps({'epoch': 0, 'update': g, 'global_update': g, 'lr': 0.1, 'samples_per_sec': 1.0,
                                'updates': 2, 'losses': losses}) + '\n')
    (b / 'train.log').write_text('training ...\n' + ''.join(
        f'Epoch[0] Batch [{u}]\tSpeed: 1.00 samples/sec\tlr=0.1\trpn_cls_loss={0.5 / u:.4f}\n' for u in (3, 6)))
    return str(a), str(b)


def test_plot_writes_the_loss_curves_of_several_runs(tmp_path, monkeypatch):
    drawn = {}

    class Axes:
        def __init__(self, i):
            self.i, self.lines, self.title, self.visible = i, [], None, True

        def plot(self, x, y, label):
            self.lines.append((label, list(x), list(y)))

        def set_title(self, t):
            self.title = t

        def set_visible(self, v):
            self.visible = v

        def __getattr__(self, name):  # labels, grid, legend
            return lambda *a, **k: None

    class Grid:
        def __init__(self, rows, cols):
            self.flat = [Axes(i) for i in range(rows * cols)]

    class Figure:
        def tight_layout(self):
            pass

        def savefig(self, f, format, dpi):
            f.write(b'\x89PNG fake')
            drawn['format'] = format

    pyplot = types.SimpleNamespace(
        subplots=lambda rows, cols, **k: (drawn.setdefault('fig', Figure()),
                                          drawn.setdefault('axes', Grid(rows, cols))),
        close=lambda fig: drawn.setdefault('closed', True))
    matplotlib = types.ModuleType('matplotlib')
    matplotlib.use = lambda backend: drawn.setdefault('backend', backend)
    matplotlib.pyplot = pyplot
    monkeypatch.setitem(sys.modules, 'matplotlib', matplotlib)
    monkeypatch.setitem(sys.modules, 'matplotlib.pyplot', pyplot)
    a, b = _write_runs(tmp_path)
    png = str(tmp_path / 'curves.png')
    assert atl.main([a, b, '--plot', png]) == 0
    assert open(png, 'rb').read() == b'\x89PNG fake' and drawn['format'] == 'png' and drawn['backend'] == 'Agg'
    rpn, rcnn, bbox, spare = drawn['axes'].flat  # a 2 x 2 grid for three terms
    assert (rpn.title, rcnn.title, bbox.title) == ('rpn_cls_loss', 'rcnn_cls_loss', 'rpn_bbox_loss')
    assert not spare.visible and drawn['closed']
    # the JSON log's own update numbers; the text log's from the updates its lines cover
    assert rpn.lines == [('run_a', [2, 4, 6], [0.5, 0.25, 1 / 6]), ('run_b', [3, 6], [0.1667, 0.0833])]
    assert rcnn.lines == [('run_a', [2, 4, 6], [1.0, 0.5, 1 / 3])]


def test_plot_without_matplotlib_is_one_error_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, 'matplotlib', None)  # not installed
    a, _ = _write_runs(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        atl.run_cli(atl.main, [a, '--plot', str(tmp_path / 'x.png')])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.startswith('error: --plot needs matplotlib, which is not installed')
    assert not (tmp_path / 'x.png').exists()
