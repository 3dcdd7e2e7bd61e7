"""tools/flop_ratio_bound.py at a tiny size (the real ResNet-101 + FlowNet-S networks): every path's row, the
convolution-only speed-up computed from the layers it lists, the fast path's layer forms counted once (not their
inner convolutions), and bad arguments ending in one line."""
import os
import re
import subprocess
import sys

import pytest
import torch

from tests.small_run import ROOT


def test_the_bound_tool_prints_every_path_and_its_layers():
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, 'tools/flop_ratio_bound.py', '--height', '96', '--width', '160',
                           '--repeat', '1', '--threads', '1', '--interval', '4', '--layers'],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {}
    for line in proc.stdout.splitlines():
        m = re.match(r'\| (eager|fast|bfloat16) \| ([\d.]+)x \| ([\d.]+) / ([\d.]+) / ([\d.]+) \| ([\d.]+)x \| (\d+)% \| '
                     r'([\d.]+) / ([\d.]+) / ([\d.]+) \| ([\d.]+)x \| (\d+)% \|', line)
        if m:
            rows[m.group(1)] = [float(g) for g in m.groups()[1:]]
    assert set(rows) == {'eager', 'fast', 'bfloat16'}
    assert len({r[0] for r in rows.values()}) == 1  # the model's FLOP ratio on every path
    for ratio, b, k, nk, measured, pct, cb, ck, cnk, bound, bound_pct in rows.values():
        assert ratio > 1 and min(b, k, nk, cb, ck, cnk) > 0
        assert measured == pytest.approx(b / ((k + 3 * nk) / 4), rel=0.02)
        assert bound == pytest.approx(cb / ((ck + 3 * cnk) / 4), rel=0.02)
        assert bound_pct == pytest.approx(100 * bound / ratio, abs=1)
        assert cnk < nk and cb < b  # the layers alone are a part of the frame
    listing = proc.stdout.split('fast: non-key frame layers')[1].split('bfloat16: non-key')[0]
    assert 'FastTransposedConv' in listing and 'PointwiseConvToNCHW' in listing
    assert 'FastTransposedConv' not in proc.stdout.split('eager: non-key frame layers')[1].split('fast: non-key')[0]
    bad = subprocess.run([sys.executable, 'tools/flop_ratio_bound.py', '--paths', 'eager,turbo'], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--paths: unknown path 'turbo'" in bad.stderr and 'Traceback' not in bad.stderr


def test_layers_are_the_fast_paths_forms_not_their_inner_convolutions():
    sys.path.insert(0, os.path.join(ROOT, 'tools'))
    import flop_ratio_bound as fb
    from lib.config import load_config, update_from_list
    from lib.model import fast_path as fp
    from dff_rfcn.model import DFF
    cfg = update_from_list(load_config(os.path.join(ROOT, 'experiments/dff_rfcn/cfgs/synthetic_vid_cpu.yaml')),
                           ['device=cpu'])
    torch.manual_seed(0)
    eager = DFF(cfg).eval()
    n_convs = sum(isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) for m in eager.modules())
    assert len(fb.conv_layers(eager)) == n_convs
    fast = fp.FastPath().prepare(DFF(cfg).eval(), 'cpu')
    layers = fb.conv_layers(fast)
    assert len(layers) == n_convs  # each convolution once, in its fast form where it has one
    assert sum(isinstance(m, fp.FastTransposedConv) for m in layers) == 8
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in layers)
    image = torch.randn(1, 3, 64, 96) * 50
    info = torch.tensor([[64., 96., 1.]])
    with torch.no_grad():
        _, feat = fast.detect_key(image, info)
        calls = fb.record_layer_inputs(fast, lambda: fast.detect_cur(image, info, image, feat))
    assert {type(m) for m, _ in calls} >= {fp.FastTransposedConv, fp.PointwiseConvToNCHW}
    assert not any(hook for m, _ in calls for hook in m._forward_hooks.values())  # hooks removed
    assert fb.speed_up(10.0, 10.0, 1.0, 10) == pytest.approx(100 / 19)
