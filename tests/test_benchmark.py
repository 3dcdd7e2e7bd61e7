"""tools/benchmark.py end to end at a tiny input size (the real ResNet-101 + FlowNet-S networks): both methods
run, the DFF key/non-key schedule and the batched mode are timed, the JSON holds the figures the README
table prints; with --fast the eager, float32 fast and bfloat16 fast paths are compared in one process,
interleaved, with their FLOPs and the matmul peaks."""
import json
import os
import subprocess
import sys

import pytest

from tests.small_run import ROOT


def test_benchmark_runs_and_reports_every_figure(tmp_path):
    out = tmp_path / 'bench.json'
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, 'tools/benchmark.py', '--frames', '4', '--interval', '2', '--repeat', '1',
                           '--height', '96', '--width', '160', '--threads', '1', '--json', str(out), '--fast',
                           '--pairs', '1', '--peak-size', '256'],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.load(open(out))
    kinds = [rec['kind'] for rec in r['raw']['dff']['records']]
    assert kinds == ['key', 'non-key', 'key', 'non-key']
    assert [c['frames'] for c in r['raw']['dff']['batch_records']] == [2, 2]
    for k in ('network', 'end_to_end', 'network_key', 'network_nonkey', 'network_batched'):
        assert r['dff'][k] > 0, k
    assert r['baseline']['network'] > 0 and r['raw']['rfcn']['input'] == [96, 160]
    assert set(r['raw']['dff']['components']['non-key']) == {'flownet', 'warp', 'rpn+proposal', 'rfcn+psroi',
                                                             'post-processing'}
    assert '| DFF batched mode (1 key + 1 frames in one forward' in proc.stdout and 'bound from the components' in proc.stdout
    # --fast: every path side by side, the same FLOPs on each, the peaks of the same rounds
    assert list(r['paths']) == ['eager', 'fast', 'fast-bfloat16']
    rounds = r['interleaved']['rounds']
    assert len(rounds) == 1 and set(rounds[0]) == {'eager', 'fast', 'fast-bfloat16', 'peaks_gflops'}
    ratios = set()
    for name, p in r['paths'].items():
        f = p['flops']
        assert f['baseline'] == pytest.approx(f['key'], rel=1e-2) and f['key'] > f['non-key'] > 0
        assert f['average'] == pytest.approx((f['key'] + f['non-key']) / 2)
        assert p['average'] > 0 and p['peaks_gflops']['float32'] > 0
        assert p['speedup_of_flop_ratio'] == pytest.approx(p['speedup'] / p['flop_ratio'])
        assert set(p['components']['dff_non_key']) == set(p['flops_components']['dff_non_key']) == {
            'flownet', 'warp', 'rpn+proposal', 'rfcn+psroi'}
        ratios.add(round(p['flop_ratio'], 6))
    assert len(ratios) == 1 and r['paths']['eager']['gain_dff'] == 1.0
    for text in ('fast-bfloat16: fold_bn+channels_last+gemm+bfloat16',
                 '| fast-bfloat16 | DFF per-frame average |', '| fast | flownet (DFF non-key) |', 'speed-up / FLOP ratio'):
        assert text in proc.stdout
    bad = subprocess.run([sys.executable, 'tools/benchmark.py', '--frames', '3', '--interval', '2'], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith('error: --frames must be at least 2 x --interval')
    assert 'Traceback' not in bad.stderr
    bad = subprocess.run([sys.executable, 'tools/benchmark.py', '--compile'], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith('error: --compile applies to the fast paths: add --fast')
