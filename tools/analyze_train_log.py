#!/usr/bin/env python
"""Summarise and compare training runs from their logs: per epoch, the mean of every loss term (weighted by
the updates each log line covers), the last lr and the mean speed.

    python tools/analyze_train_log.py RUN [RUN ...] [--plot curves.png]

RUN: a training output folder (holding train_log.jsonl or train.log) or one of those files. With several
runs, each epoch has a row per run (e.g. 4 GPUs against 1 GPU with ACCUMULATE_GRAD 4), named by the folder
(the path as given where two folders share a name). --plot also writes a PNG of the loss curves: a panel
per loss term, a line per run, the logged means against the update number (needs matplotlib).
"""
import argparse
import json
import os
import re
from collections import OrderedDict

from lib.utils.cli import run_cli
from lib.utils.fileio import atomic_write

_LINE = re.compile(r'^Epoch\[(\d+)\] Batch \[(\d+)\]\tSpeed: ([\d.]+) samples/sec\tlr=([^\t]+)\t?(.*)$')


def read_log(path):
    """Records {epoch, update, lr, samples_per_sec, updates, losses} of a run (folder or file)."""
    if os.path.isdir(path):
        for name in ('train_log.jsonl', 'train.log'):
            if os.path.isfile(os.path.join(path, name)):
                path = os.path.join(path, name)
                break
        else:
            raise FileNotFoundError(f"{path}: no train_log.jsonl or train.log in this folder")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"training log not found: {path}")
    records = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip('\n')
            if not line.strip():
                continue
            if path.endswith('.jsonl'):
                try:
                    records.append(json.loads(line))
                except ValueError as e:
                    raise ValueError(f"{path}:{lineno}: not a JSON record ({e})") from None
                continue
            m = _LINE.match(line)
            if not m:
                continue  # other lines (messages) are allowed in train.log
            losses = OrderedDict()
            for item in filter(None, m.group(5).split('\t')):
                k, _, v = item.partition('=')
                try:
                    losses[k] = float(v)
                except ValueError:
                    raise ValueError(f"{path}:{lineno}: loss term {item!r} is not name=number") from None
            # train.log does not say how many updates a line covers: the distance to the previous line
            prev = records[-1]['update'] if records and records[-1]['epoch'] == int(m.group(1)) else 0
            records.append({'epoch': int(m.group(1)), 'update': int(m.group(2)), 'lr': float(m.group(4)),
                            'samples_per_sec': float(m.group(3)), 'updates': int(m.group(2)) - prev,
                            'losses': losses})
    if not records:
        raise ValueError(f"{path}: no log lines (Epoch[..] Batch [..] ...) found")
    return records


def per_epoch(records):
    """{epoch: {'losses': {term: weighted mean}, 'lr': last lr, 'speed': mean samples/sec, 'updates': n}}."""
    out = OrderedDict()
    for r in records:
        e = out.setdefault(r['epoch'], {'sums': OrderedDict(), 'updates': 0, 'speed': [], 'lr': None})
        n = max(int(r.get('updates', 1)), 1)
        for k, v in r['losses'].items():
            e['sums'][k] = e['sums'].get(k, 0.0) + v * n
        e['updates'] += n
        e['speed'].append(float(r['samples_per_sec']))
        e['lr'] = r['lr']
    return OrderedDict((ep, {'losses': OrderedDict((k, v / e['updates']) for k, v in e['sums'].items()),
                             'lr': e['lr'], 'speed': sum(e['speed']) / len(e['speed']), 'updates': e['updates']})
                       for ep, e in out.items())


def table(runs):
    """Markdown table: a row per epoch and run (runs side by side within an epoch): loss means, lr, speed."""
    terms = []
    for summary in runs.values():
        for e in summary.values():
            terms += [k for k in e['losses'] if k not in terms]
    head = ['epoch'] + (['run'] if len(runs) > 1 else []) + terms + ['lr', 'samples/s']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for ep in sorted({ep for s in runs.values() for ep in s}):
        for name, summary in runs.items():
            e = summary.get(ep)
            if e is None:
                continue
            row = [str(ep)] + ([name] if len(runs) > 1 else [])
            row += [f"{e['losses'][t]:.4f}" if t in e['losses'] else '' for t in terms]
            row += [f"{e['lr']:.3g}", f"{e['speed']:.1f}"]
            lines.append('| ' + ' | '.join(row) + ' |')
    return '\n'.join(lines)


def global_updates(records):
    """The update number (counted from the start of training) of each record: train_log.jsonl stores it;
    for train.log it is the sum of the updates the lines cover."""
    out, total = [], 0
    for r in records:
        total += max(int(r.get('updates', 1)), 1)
        out.append(int(r['global_update']) if 'global_update' in r else total)
    return out


def plot(runs, path):
    """runs: {name: records}. Writes a PNG with a panel per loss term and a line per run."""
    try:
        import matplotlib
    except ImportError:
        raise ValueError('--plot needs matplotlib, which is not installed (pip install matplotlib)') from None
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    terms = []
    for records in runs.values():
        for r in records:
            terms += [k for k in r['losses'] if k not in terms]
    cols = min(len(terms), 2)
    rows = (len(terms) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 3.5 * rows), squeeze=False)
    for ax, term in zip(axes.flat, terms):
        for name, records in runs.items():
            points = [(u, r['losses'][term]) for u, r in zip(global_updates(records), records) if term in r['losses']]
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], label=name)
        ax.set_title(term)
        ax.set_xlabel('update')
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize='small')
    for ax in list(axes.flat)[len(terms):]:
        ax.set_visible(False)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format='png', dpi=100), 'wb')
    plt.close(fig)
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('runs', nargs='+', help='training output folders or log files')
    ap.add_argument('--plot', metavar='PNG', help='also write the loss curves of the runs to this PNG (matplotlib)')
    args = ap.parse_args(argv)
    runs, logs = OrderedDict(), OrderedDict()
    for path in args.runs:
        records = read_log(path)
        name = os.path.basename(os.path.normpath(path if os.path.isdir(path) else os.path.dirname(path))) or path
        name = name if name not in runs else path
        runs[name], logs[name] = per_epoch(records), records
    print(table(runs))
    if args.plot:
        print(f'loss curves: {plot(logs, args.plot)}')
    return 0


if __name__ == '__main__':
    run_cli(main)
