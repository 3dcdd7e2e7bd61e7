"""DFF training end to end on a tiny synthetic dataset: torchrun (gloo, FlowNet left out of the graph on
some ranks' eq_flag batches) equals gradient accumulation; and the README's main job
(tools/synthetic_table.py): FlowNet pretraining, baseline train + test, DFF train (from that baseline) +
test, the zero-flow ablation, the table."""
import json
import os
import re
import subprocess
import sys

import pytest

from tests.small_run import ROOT, assert_same_state, load_state, run_script, tiny_overrides

SCRIPT = 'experiments/dff_rfcn/dff_rfcn_end2end_train_test.py'
CFG = 'experiments/dff_rfcn/cfgs/synthetic_vid_cpu.yaml'

DFF_TRAIN_DIR = 'synthetic_vid_cpu/DET_train_30classes_VID_train_15frames'


@pytest.mark.slow
def test_dff_torchrun_two_processes_equal_accumulation_two(tmp_path):
    a, b = tmp_path / 'ddp', tmp_path / 'acc'
    common = ['TRAIN.MAX_ITERS=4', 'TRAIN.end_epoch=1', "network.pretrained=''", "network.pretrained_flow=''",
              'TRAIN.lr=0.01']
    run_script(SCRIPT, CFG, tiny_overrides(a) + common, '--skip-test', torchrun=2)
    run_script(SCRIPT, CFG, tiny_overrides(b) + common + ['TRAIN.ACCUMULATE_GRAD=2'], '--skip-test')
    path = os.path.join('output', DFF_TRAIN_DIR, 'dff_rfcn_synthetic-last.pth')
    ck_a, ck_b = load_state(os.path.join(a, path)), load_state(os.path.join(b, path))
    assert ck_a['global_update'] == ck_b['global_update'] == 4
    assert_same_state(ck_a['model'], ck_b['model'], rtol=1e-4, atol=1e-6)
    # FlowNet trained (some pairs had key != current) and its frozen scale bias did not move
    import torch
    torch.manual_seed(0)
    sys.path.insert(0, ROOT)
    from dff_rfcn.model import DFF
    from lib.config import load_config
    fresh = DFF(load_config(os.path.join(ROOT, CFG))).state_dict()
    moved = float((ck_a['model']['flownet.conv3.weight'] - fresh['flownet.conv3.weight']).abs().max())
    assert moved > 1e-6
    assert torch.equal(ck_a['model']['flownet.Convolution5_scale.bias'], fresh['flownet.Convolution5_scale.bias'])


@pytest.mark.slow
def test_main_job_on_a_tiny_dataset(tmp_path):
    sets = [s for s in tiny_overrides(tmp_path, flow_pairs=20) if not s.startswith('output_path=')] + [
        f'FLOW_PRETRAIN.dataset_path={tmp_path}/synthetic_vid/FlowPairs',
        'FLOW_PRETRAIN.max_iters=6', 'FLOW_PRETRAIN.batch_size=2', "FLOW_PRETRAIN.lr_step=''"]
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT)
    cmd = [sys.executable, os.path.join(ROOT, 'tools', 'synthetic_table.py'), '--fresh', '--seed', '5',
           '--output', str(tmp_path / 'output'), '--speed-size', '64x96', '--set', *sets]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    out = proc.stdout
    # --seed is the generator's seed (the --set dataset path wins over the seed's own folder)
    assert json.load(open(tmp_path / 'synthetic_vid' / 'synthetic_meta.json'))['seed'] == 5
    # DFF started from the baseline checkpoint this run trained, and from the pretrained FlowNet
    assert re.search(r'network\.pretrained: loaded \d+ tensors from .*rfcn_synthetic-0002\.pth', out), out[-3000:]
    assert re.search(r'network\.pretrained_flow: loaded 48 tensors from .*flownet/flownet_synthetic-0000\.pth', out)
    accuracy, speed = out.split('\nresults (')[1].split('Speed on this machine at ')
    rows = [l for l in accuracy.splitlines() if l.startswith('| ') and 'mAP' not in l]
    assert [r.split('|')[1].strip() for r in rows] == ['Frame baseline (R-FCN)', 'DFF (key frame every 10)',
                                                      'DFF, flow forced to zero']
    for r in rows:
        m = float(r.split('|')[2])
        assert 0.0 <= m <= 100.0
    assert re.search(r'ground-truth instances per motion bucket \(slow / medium / fast\): \d+ / \d+ / \d+', accuracy)
    # the speed table of the same run: baseline, DFF key / non-key / average, each with a time and a speed-up
    assert speed.startswith('64x96 (not the real size')
    speed, fast = speed.split('The inference fast path (--fast')
    srows = [l for l in speed.splitlines() if l.startswith('| ') and 'time/frame' not in l]
    assert [r.split('|')[1].strip() for r in srows] == ['Frame baseline (R-FCN)', 'DFF key frame', 'DFF non-key frame',
                                                       'DFF average (key frame every 10)']
    for r in srows:
        assert float(r.split('|')[2]) > 0 and r.split('|')[3].strip().endswith('x')
    # the fast-path rows (tools/benchmark.py --fast): eager, the float32 fast path, bfloat16 where the CPU has it
    from lib.model.fast_path import cpu_bfloat16_native
    frows = [l for l in fast.split('\n\n')[1].splitlines() if l.startswith('| ') and 's/frame' not in l]
    assert [r.split('|')[1].strip() for r in frows] == ['eager', 'fast'] + ['fast-bfloat16'] * cpu_bfloat16_native()
    for r in frows:  # baseline, key, non-key, average (s); speed-up (% of the FLOP ratio); the two gains
        cells = [c.strip() for c in r.split('|')[2:10]]
        assert all(float(c) > 0 for c in cells[:4])
        assert re.fullmatch(r'\d+\.\d\dx \(\d+% of \d+\.\d\dx\)', cells[4]), cells[4]
        assert cells[5].endswith('x') and cells[6].endswith('x')
    srows += frows
    assert 'FlowNet-S pretraining: validation EPE' in out
    table = open(os.path.join(tmp_path, 'output', 'synthetic_table.md')).read()
    assert all(r in table for r in rows + srows)
    test_dir = os.path.join(tmp_path, 'output', 'dff_rfcn', 'synthetic_vid_cpu')
    for sub in ('VID_val_videos', 'VID_val_videos_zero_flow'):
        ev = json.load(open(os.path.join(test_dir, sub, 'eval.json')))
        assert ev['num_frames'] == 8 and set(ev) >= {'mAP', 'AP', 'motion', 'time_per_image_s'}
        assert os.path.getsize(os.path.join(test_dir, sub, 'det_VID_val_videos_all.txt')) > 0
    assert os.path.isfile(os.path.join(test_dir, 'DET_train_30classes_VID_train_15frames', 'dff_rfcn_synthetic-0001.pth'))


def test_main_job_fresh_removes_only_its_own_folders(tmp_path, monkeypatch):
    import tools.synthetic_table as st
    mine, foreign = tmp_path / 'mine', tmp_path / 'foreign'
    st.claim_output(str(mine))
    (mine / 'model-0001.pth').write_bytes(b'x')
    foreign.mkdir()
    (foreign / 'weights.params').write_bytes(b'precious')
    st.claim_output(str(foreign))  # an existing folder is used, never claimed
    assert not (foreign / st.MARKER).exists()
    st.remove_output(str(mine))
    assert not mine.exists()
    with pytest.raises(ValueError, match='did not create it'):
        st.remove_output(str(foreign))
    assert (foreign / 'weights.params').read_bytes() == b'precious'
    for protected in (ROOT, os.path.dirname(ROOT), os.path.join(ROOT, 'model', 'x')):
        with pytest.raises(ValueError, match='refusing to remove'):
            if not os.path.exists(protected):
                os.makedirs(protected)
                (open(os.path.join(protected, st.MARKER), 'w')).close()
            try:
                st.remove_output(protected)
            finally:
                if protected.endswith(os.path.join('model', 'x')):
                    import shutil
                    shutil.rmtree(protected)


def test_main_job_fresh_refuses_before_doing_anything(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT)
    out = tmp_path / 'out'
    (out / 'rfcn').mkdir(parents=True)
    (out / 'rfcn' / 'keep.txt').write_text('mine')
    base = [sys.executable, os.path.join(ROOT, 'tools', 'synthetic_table.py'), '--fresh', '--no-speed']
    proc = subprocess.run(base + ['--output', str(out), '--set', f'dataset.dataset_path={tmp_path}/never'], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith('error: --fresh: refusing to remove') and str(out / 'rfcn') in proc.stderr
    assert 'Traceback' not in proc.stderr and (out / 'rfcn' / 'keep.txt').read_text() == 'mine'
    assert not (tmp_path / 'never').exists()
    # the real ImageNet VID configs: never, whatever their folders hold
    real = ['--rfcn-cfg', 'experiments/rfcn/cfgs/resnet_v1_101_imagenet_vid_rfcn_end2end_ohem.yaml',
            '--dff-cfg', 'experiments/dff_rfcn/cfgs/resnet_v1_101_flownet_imagenet_vid_rfcn_end2end_ohem.yaml']
    proc = subprocess.run(base + real + ['--output', str(tmp_path / 'o2')], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and 'synthetic configs only' in proc.stderr, proc.stderr
