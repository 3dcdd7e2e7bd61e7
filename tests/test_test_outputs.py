"""What a test run writes: detections streamed to per-rank files and merged (memory flat in the number of
frames, the same file as sorting every row), a test folder per checkpoint and settings, and eval.json
recording what the result was computed from; and what training keeps: a checkpoint every few thousand
updates on the real configs, logs without the updates a resumed run redoes."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from lib.config import load_config, update_from_list
from lib.core import tester
from lib.evaluation.imagenet_vid_eval import write_detections
from tests.small_run import ROOT, run_script, tiny_overrides

RFCN_CFG = os.path.join(ROOT, 'experiments', 'rfcn', 'cfgs', 'synthetic_vid_cpu.yaml')
DFF_CFG = os.path.join(ROOT, 'experiments', 'dff_rfcn', 'cfgs', 'synthetic_vid_cpu.yaml')
REAL_CFGS = [os.path.join(ROOT, 'experiments', 'rfcn', 'cfgs', 'resnet_v1_101_imagenet_vid_rfcn_end2end_ohem.yaml'),
             os.path.join(ROOT, 'experiments', 'dff_rfcn', 'cfgs',
                          'resnet_v1_101_flownet_imagenet_vid_rfcn_end2end_ohem.yaml')]

DETS_PER_FRAME = 100

# Runs in a fresh interpreter: detect_to_file on N generated frames with a fake detector (no image is
# decoded: prepare_image is replaced) giving DETS_PER_FRAME boxes per frame; prints the peak RSS.
MEASURE = r'''
import resource, sys
import numpy as np, torch
sys.path.insert(0, {root!r})
from lib.config import load_config
from lib.core import tester
n, out = int(sys.argv[1]), sys.argv[2]
cfg = load_config({cfg!r})
tester.prepare_image = lambda path, cfg, **kw: (torch.zeros(3, 8, 8), np.array([8, 8, 1], np.float32))
k = {dets}
x = torch.arange(k, dtype=torch.float32) * 20  # disjoint boxes: NMS keeps all
boxes = torch.stack([x, x, x + 10, x + 10] * 2, 1)
scores = torch.stack([torch.zeros(k), torch.linspace(0.9, 0.1, k)], 1)
frames = [{{'image': 'f', 'frame_id': i + 1, 'video': 'v%d' % (i // 100), 'index': 'v/%d' % i}} for i in range(n)]
tester.detect_to_file(cfg, frames, lambda f, d, i: (scores, boxes), out, 0.001, desc='mem')
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
'''


def _peak_rss_kb(n, tmp_path):
    code = MEASURE.format(root=ROOT, cfg=RFCN_CFG, dets=DETS_PER_FRAME)
    out = str(tmp_path / f'det_{n}.txt')
    proc = subprocess.run([sys.executable, '-c', code, str(n), out], capture_output=True, text=True, timeout=1200,
                          env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out) as f:
        lines = sum(1 for _ in f)
    assert lines == n * DETS_PER_FRAME
    assert not [p for p in os.listdir(tmp_path) if p.endswith('.part') or '.tmp' in p]
    return int(proc.stdout.split()[-1])


@pytest.mark.slow
def test_streaming_test_memory_is_flat_in_the_number_of_frames(tmp_path):
    """20,000 frames x 100 detections (2 million rows) against 2,000 frames: the peak RSS stays within 10%
    (measured: 538 and 545 MiB; a run_test that keeps every row in lists peaks at 620 and 1325 MiB on
    the same frames)."""
    small = _peak_rss_kb(2000, tmp_path)
    large = _peak_rss_kb(20000, tmp_path)
    print(f'peak RSS: 2,000 frames {small / 1024:.0f} MiB, 20,000 frames {large / 1024:.0f} MiB')
    assert large <= 1.10 * small, (small, large)


def test_per_rank_files_merge_into_the_sorted_rows(tmp_path, monkeypatch):
    """Two ranks (simulated one after the other), whole videos each, frame ids not in list order: the
    merged file is the one a single process writes (all rows sorted by frame id, class, descending score),
    and no part file is left."""
    cfg = load_config(RFCN_CFG)
    monkeypatch.setattr(tester, 'prepare_image',
                        lambda path, cfg, **kw: (torch.zeros(3, 8, 8), np.array([8, 8, 1], np.float32)))
    rng = np.random.default_rng(0)
    frames, rows = [], []
    ids = rng.permutation(40) + 1
    for i in range(40):
        frames.append({'image': 'f', 'frame_id': int(ids[i]), 'video': f'v{i // 7}', 'index': f'v/{i}'})
    outputs = {}
    for f in frames:  # 0-5 boxes over 3 classes per frame, some scores tied
        k = int(rng.integers(0, 6))
        x = torch.arange(k, dtype=torch.float32) * 30
        boxes = torch.stack([x, x, x + 10, x + 10] * 3, 1)
        scores = torch.from_numpy(rng.choice([0.2, 0.5, 0.7], size=(k, 3)).astype(np.float32))
        outputs[f['index']] = (scores, boxes)
        dets = tester.postprocess(scores, boxes, 0.1, 0.3, 300, class_agnostic=False)
        rows += [[f['frame_id'], int(d[0]), float(d[1])] + [float(v) for v in d[2:6]] for d in dets]
    expected = str(tmp_path / 'expected.txt')
    write_detections(expected, sorted(rows, key=lambda r: (r[0], r[1], -r[2])))
    cfg.CLASS_AGNOSTIC = False
    det_file = str(tmp_path / 'det.txt')
    gathered = []

    def gather(obj):
        gathered.append(obj)
        return [gathered[-1], gathered[0]] if len(gathered) == 2 else [obj]

    monkeypatch.setattr(tester.dist, 'world_size', lambda: 2)
    monkeypatch.setattr(tester.dist, 'all_gather_object', gather)
    for rank in (1, 0):
        monkeypatch.setattr(tester.dist, 'rank', lambda rank=rank: rank)
        out = tester.detect_to_file(cfg, frames, lambda f, d, i: outputs[f['index']], det_file, 0.1, by_video=True)
        assert (out is None) == (rank == 1)
    assert open(det_file).read() == open(expected).read() and os.path.getsize(expected) > 0
    assert sorted(os.listdir(tmp_path)) == ['det.txt', 'expected.txt']


def test_test_folder_per_checkpoint_and_settings(tmp_path):
    from lib.core.experiment import test_folder
    from lib.utils.provenance import file_info
    yaml_cfg = load_config(DFF_CFG)
    cfg = update_from_list(load_config(DFF_CFG), ['SCALES=[96,160]'])  # other overrides: the same folder
    base = str(tmp_path / 'VID_val_videos')
    dff = ('TEST.thresh', 'TEST.KEY_FRAME_INTERVAL')
    trained = tmp_path / 'dff-0002.pth'
    trained.write_bytes(b'trained')
    other = tmp_path / 'other-0001.pth'
    other.write_bytes(b'another checkpoint')
    assert test_folder(base, cfg, yaml_cfg, settings=dff) == base
    assert test_folder(base, cfg, yaml_cfg, thresh=float(yaml_cfg.TEST.thresh), settings=dff) == base
    assert test_folder(base, cfg, yaml_cfg, None, str(trained), str(trained), dff) == base
    assert test_folder(base, cfg, yaml_cfg, thresh=0.05, settings=dff) == base + '_thresh0.05'
    five = update_from_list(load_config(DFF_CFG), ['TEST.KEY_FRAME_INTERVAL=5'])
    assert test_folder(base, five, yaml_cfg, settings=dff) == base + '_interval5'
    assert test_folder(base, five, yaml_cfg) == base  # the baseline has no key frames
    sha = file_info(str(other))['sha256']
    assert test_folder(base, five, yaml_cfg, 0.05, str(other), str(trained), dff) == \
        f'{base}_thresh0.05_interval5_other-0001-{sha[:8]}'


@pytest.mark.slow
def test_second_checkpoint_and_threshold_do_not_overwrite_and_eval_json_says_what_was_tested(tmp_path):
    from rfcn.model import RFCN
    from lib.utils.checkpoint import save_checkpoint
    from lib.utils.provenance import file_info, plain
    sets = tiny_overrides(tmp_path)
    cfg = update_from_list(load_config(RFCN_CFG), sets)
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        paths.append(str(tmp_path / f'random{seed}.pth'))
        save_checkpoint(paths[-1], {'model': RFCN(cfg).state_dict()})
    script = 'experiments/rfcn/rfcn_end2end_train_test.py'
    test_root = os.path.join(tmp_path, 'output', 'synthetic_vid_cpu')
    found = []
    for ck, extra in ((paths[0], []), (paths[1], []), (paths[0], ['--thresh', '0.05'])):
        out = run_script(script, 'experiments/rfcn/cfgs/synthetic_vid_cpu.yaml', sets, '--checkpoint', ck, *extra)
        eval_json = out.stdout.strip().splitlines()[-1].split('eval.json: ')[1]
        found.append((eval_json, open(eval_json).read()))
    assert len({os.path.dirname(p) for p, _ in found}) == 3  # three folders
    for (path, text) in found:  # none overwritten by a later run
        assert open(path).read() == text
    sha0 = file_info(paths[0])['sha256']
    assert os.path.dirname(found[0][0]) == os.path.join(test_root, f'VID_val_frames_random0-{sha0[:8]}')
    assert os.path.dirname(found[2][0]) == os.path.join(test_root, f'VID_val_frames_thresh0.05_random0-{sha0[:8]}')
    run = json.loads(found[2][1])['run']
    assert run['checkpoint'] == {'path': os.path.abspath(paths[0]), 'size': os.path.getsize(paths[0]), 'sha256': sha0}
    assert run['settings'] == {'thresh': 0.05}
    assert run['config'] == json.loads(json.dumps(plain(cfg)))
    head = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert run['git']['commit'] == head and isinstance(run['git']['dirty'], bool)
    assert run['torch'] == torch.__version__ and run['cuda'] == torch.version.cuda
    assert run['device'] == 'cpu' and run['tf32'] is False


def test_real_configs_checkpoint_every_2000_updates():
    from lib.config.config import _defaults
    assert _defaults().TRAIN.CHECKPOINT_ITERS == 2000
    for path in REAL_CFGS:
        assert int(load_config(path).TRAIN.CHECKPOINT_ITERS) == 2000


def test_resume_drops_the_log_lines_of_redone_updates(tmp_path):
    from lib.core.engine import check_new_run, existing_run, trim_logs
    run = str(tmp_path)
    assert existing_run(run, 'rfcn') == [] and existing_run(str(tmp_path / 'none'), 'rfcn') == []
    text = ['training rfcn: 1 image\n'] + [f'Epoch[{e}] Batch [{u}]\tSpeed: 1.00 samples/sec\tlr=0.01\tl=0.5\n'
                                          for e in (0, 1) for u in (10, 20, 30)]
    records = [json.dumps({'epoch': e, 'update': u, 'global_update': 30 * e + u}) + '\n'
               for e in (0, 1) for u in (10, 20, 30)]
    open(os.path.join(run, 'train.log'), 'w').writelines(text)
    open(os.path.join(run, 'train_log.jsonl'), 'w').writelines(records)
    assert existing_run(run, 'rfcn') == ['train.log', 'train_log.jsonl']
    with pytest.raises(ValueError, match='already holds a training run .*--resume'):
        check_new_run(run, 'rfcn')
    trim_logs(run, 1, 25, 55)  # the checkpoint was at epoch 1, update 25: the line of update 30 is redone
    assert open(os.path.join(run, 'train.log')).readlines() == text[:6]
    assert open(os.path.join(run, 'train_log.jsonl')).readlines() == records[:5]
    trim_logs(run, 0, -1, 0)  # no checkpoint at all: from scratch
    assert open(os.path.join(run, 'train.log')).readlines() == text[:1]
    assert open(os.path.join(run, 'train_log.jsonl')).readlines() == []
    assert sorted(os.listdir(run)) == ['train.log', 'train_log.jsonl']


FAILING_RANK = r'''
import sys
import numpy as np
import torch
from lib.config import load_config
from lib.core import tester
from lib.utils import dist

dist.init_from_env('cpu')
cfg = load_config(sys.argv[1])
tester.prepare_image = lambda path, cfg, **kw: (torch.zeros(3, 8, 8), np.array([8, 8, 1], np.float32))
frames = [{'image': 'f', 'frame_id': i + 1, 'video': f'v{i // 5}', 'index': f'v/{i}'} for i in range(20)]


calls = []


def detect(frame, data, im_info):
    calls.append(frame['index'])
    if dist.rank() == 1 and len(calls) == 3:
        raise ValueError('frame 3 of rank 1: a corrupt image (simulated)')
    return torch.full((1, 2), 0.9), torch.tensor([[0.0, 0.0, 4.0, 4.0] * 2])


try:
    tester.detect_to_file(cfg, frames, detect, sys.argv[2], 0.1, by_video=True)
except ValueError as e:
    print(f'rank {dist.rank()}: {type(e).__name__}: {e}', flush=True)
    sys.exit(3)
print(f'rank {dist.rank()}: finished', flush=True)
'''


def test_a_failing_rank_stops_every_rank(tmp_path):
    """torchrun, 2 processes (gloo): rank 1 fails on its 3rd frame. Both ranks stop, rank 1 with its own error,
    rank 0 naming rank 1 and that error (before: rank 0 died in the gather with gloo's "Connection closed by
    peer" traceback, or waited there while the failing process lived on), and no file is left."""
    script = tmp_path / 'failing_rank.py'
    script.write_text(FAILING_RANK)
    out = tmp_path / 'out'
    out.mkdir()
    proc = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
                           str(script), RFCN_CFG, str(out / 'det.txt')], cwd=ROOT, capture_output=True, text=True,
                          timeout=240, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text
    assert 'rank 1: ValueError: frame 3 of rank 1: a corrupt image (simulated)' in proc.stdout, text
    assert 'rank 0: RankFailedError: rank 1 stopped the test: ValueError: frame 3 of rank 1' in proc.stdout, text
    assert os.listdir(out) == [], os.listdir(out)
