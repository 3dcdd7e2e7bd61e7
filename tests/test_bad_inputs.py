"""Bad input as a user meets it: every case runs a real entry point (train/test scripts, demos, FlowNet
pretraining, tools) in a subprocess, on a copy of one tiny synthetic dataset generated once for the module,
and must end with

  - exit status 2,
  - exactly one line starting with 'error:', which names the culprit (file, key, folder),
  - no traceback (and no libjpeg message without a file name),
  - nothing that existed before deleted or changed (every file of the case's folder hashed before/after),
  - no partial file left: no *.tmp* / *.part file anywhere, nothing new under the output folder.

Covered: corrupt, truncated and wrongly sized images in training (main process and DataLoader workers:
the same line) and in testing; a text file and an image given as a video; a second training run (and
FlowNet pretraining) in a folder that already holds one; the custom ops not built; and the inputs that
were already reported in one line (typo keys, missing lists, malformed XML and list lines, truncated
.params, missing videos and checkpoints, log and detection files), so that they stay so.
"""
import hashlib
import os
import re
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from lib.config import load_config, update_from_list
from lib.dataset.synthetic_vid import ensure_dataset
from lib.utils.checkpoint import save_checkpoint
from tests.small_run import ROOT, tiny_overrides

RFCN_SCRIPT = 'experiments/rfcn/rfcn_end2end_train_test.py'
RFCN_CFG = 'experiments/rfcn/cfgs/synthetic_vid_cpu.yaml'
DFF_SCRIPT = 'experiments/dff_rfcn/dff_rfcn_end2end_train_test.py'
DFF_CFG = 'experiments/dff_rfcn/cfgs/synthetic_vid_cpu.yaml'
TRAIN_DIR = os.path.join('output', 'synthetic_vid_cpu', 'DET_train_30classes_VID_train_15frames')
TINY_PARAMS = os.path.join(ROOT, 'tests', 'fixtures', 'mxnet_models', 'rfcn_tiny-0000.params')


@pytest.fixture(scope='module')
def tiny_root(tmp_path_factory):
    """The tiny synthetic dataset (generated as the entry scripts would: same parameters) and a
    random-weight R-FCN checkpoint of the tiny config."""
    root = tmp_path_factory.mktemp('bad_inputs')
    cfg = update_from_list(load_config(os.path.join(ROOT, RFCN_CFG)), tiny_overrides(root))
    ensure_dataset(cfg.dataset.dataset_path, **dict(cfg.dataset.SYNTHETIC))
    from rfcn.model import RFCN
    torch.manual_seed(0)
    save_checkpoint(str(root / 'ckpt' / 'rfcn_random.pth'), {'model': RFCN(cfg).state_dict()})
    from dff_rfcn.model import DFF
    dcfg = update_from_list(load_config(os.path.join(ROOT, DFF_CFG)), tiny_overrides(root))
    save_checkpoint(str(root / 'ckpt' / 'dff_random.pth'), {'model': DFF(dcfg).state_dict()})
    return root


def _snapshot(root):
    out = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, 'rb') as f:
                out[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return out


class Case:
    """A copy of the tiny dataset (+ checkpoint) in its own folder and a way to run an entry point on it."""

    def __init__(self, root):
        self.root = str(root)
        self.data = os.path.join(self.root, 'synthetic_vid')
        self.ckpt = os.path.join(self.root, 'ckpt', 'rfcn_random.pth')
        self.dff_ckpt = os.path.join(self.root, 'ckpt', 'dff_random.pth')

    def sets(self, *extra):
        return ['--set', *tiny_overrides(self.root), *extra]

    def images(self, kind):
        """The JPEGs of the training images ('train': DET + VID train) or of the validation frames ('val')."""
        found = []
        for folder, _, names in os.walk(os.path.join(self.data, 'Data')):
            rel = os.path.relpath(folder, self.data)
            if (kind == 'val') == ('/val' in rel.replace(os.sep, '/')):
                found += sorted(os.path.join(folder, n) for n in names if n.endswith('.JPEG'))
        assert found, kind
        return found

    def run(self, argv, culprit, timeout=600):
        """Run `argv` (a script path relative to the repository and its options); check everything the
        module docstring lists; returns the error line."""
        before = _snapshot(self.root)
        env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT)
        env.pop('DFF_DEBUG', None)
        proc = subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout)
        shown = f'exit {proc.returncode}\nstdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-4000:]}'
        assert proc.returncode == 2, shown
        errors = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
        assert len(errors) == 1, shown
        assert re.search(culprit, errors[0]), (culprit, shown)
        assert 'Traceback' not in proc.stderr + proc.stdout, shown
        assert 'Premature end of JPEG' not in proc.stderr and 'Corrupt JPEG' not in proc.stderr, shown
        after = _snapshot(self.root)
        changed = [p for p in before if after.get(p) != before[p]]
        assert not changed, f'deleted or changed: {changed}'
        new = [p for p in after if p not in before]
        partial = [p for p in new if '.tmp' in p or p.endswith('.part') or p.startswith('output' + os.sep)]
        assert not partial, f'left behind: {partial}'
        return errors[0]


@pytest.fixture
def case(tiny_root, tmp_path):
    shutil.copytree(tiny_root, tmp_path / 'case')  # copy2: modification times kept, the caches stay valid
    return Case(tmp_path / 'case')


def _garbage(path):
    with open(path, 'wb') as f:
        f.write(b'\x00\x01 this is not an image ' * 20)


def _truncate(path):
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) * 2 // 3])


def _resize(path):
    im = cv2.imread(path)
    cv2.imwrite(path, cv2.resize(im, (im.shape[1], im.shape[0] - 16)), [cv2.IMWRITE_JPEG_QUALITY, 95])


IMAGE = r'synthetic_vid/Data/(DET|VID)/\S+\.JPEG'


# ------------------------------------------------------------------------------------------ images
def test_corrupt_image_in_training_same_line_from_workers_and_main_process(case):
    for path in case.images('train'):
        _garbage(path)
    main = case.run([RFCN_SCRIPT, '--cfg', RFCN_CFG, '--skip-test', *case.sets('TRAIN.NUM_WORKERS=0')],
                    rf'image could not be decoded \(corrupt or not an image\): \S*{IMAGE}$')
    workers = case.run([RFCN_SCRIPT, '--cfg', RFCN_CFG, '--skip-test', *case.sets('TRAIN.NUM_WORKERS=2')],
                       r'image could not be decoded')
    assert workers == main and 'DataLoader worker' not in workers


def test_truncated_image_in_dff_training_with_workers(case):
    for path in case.images('train'):
        _truncate(path)
    case.run([DFF_SCRIPT, '--cfg', DFF_CFG, '--skip-test',
              *case.sets('TRAIN.NUM_WORKERS=2', "network.pretrained=''", "network.pretrained_flow=''")],
             rf'image is truncated .*: \S*{IMAGE}$')


def test_image_of_another_size_than_its_annotation_in_training(case):
    for path in case.images('train'):
        _resize(path)
    case.run([RFCN_SCRIPT, '--cfg', RFCN_CFG, '--skip-test', *case.sets('TRAIN.NUM_WORKERS=2')],
             rf'image \S*{IMAGE} is 160x80 \(width x height\) but its annotation\'s <size> says 160x96')


def test_truncated_frame_in_testing(case):
    val = case.images('val')
    _truncate(val[3])
    case.run([RFCN_SCRIPT, '--cfg', RFCN_CFG, '--checkpoint', case.ckpt, *case.sets()],
             'image is truncated .*: ' + re.escape(val[3]) + '$')


def test_frame_of_another_size_in_dff_testing(case):
    val = case.images('val')
    _resize(val[4])
    case.run([DFF_SCRIPT, '--cfg', DFF_CFG, '--checkpoint', case.dff_ckpt, *case.sets()],
             'image ' + re.escape(val[4]) + r' is 160x80 .* says 160x96')


def test_corrupt_frame_in_demo_folder(case):
    val = case.images('val')
    _garbage(val[2])
    case.run(['rfcn/demo.py', '--cfg', RFCN_CFG, '--checkpoint', case.ckpt, '--input', os.path.dirname(val[2]),
              '--output', os.path.join(case.root, 'output', 'demo'), *case.sets()],
             'image could not be decoded .*: ' + re.escape(val[2]) + '$')


# ------------------------------------------------------------------------------------------ video input
def test_text_file_as_video(case):
    notes = os.path.join(case.root, 'notes.txt')
    with open(notes, 'w') as f:
        f.write('not a video\n' * 40)
    case.run(['rfcn/demo.py', '--cfg', RFCN_CFG, '--checkpoint', case.ckpt, '--input', notes,
              '--output', os.path.join(case.root, 'output', 'demo'), *case.sets()],
             re.escape(notes) + ' is not a video container')


def test_image_as_video(case):
    image = case.images('val')[0]
    case.run(['dff_rfcn/demo.py', '--cfg', DFF_CFG, '--checkpoint', case.dff_ckpt, '--input', image,
              '--output', os.path.join(case.root, 'output', 'demo'), *case.sets()],
             re.escape(image) + ' is a JPEG image, not a video')


# ------------------------------------------------------------------------------------------ outputs
def test_second_training_run_in_the_same_folder(case):
    train_dir = os.path.join(case.root, TRAIN_DIR)
    os.makedirs(train_dir)
    with open(os.path.join(train_dir, 'train.log'), 'w') as f:
        f.write('Epoch[0] Batch [1]\tSpeed: 1.00 samples/sec\tlr=0.01\trpn_cls_loss=0.5\n')
    case.run([RFCN_SCRIPT, '--cfg', RFCN_CFG, '--skip-test', *case.sets()],
             re.escape(train_dir) + r' already holds a training run \(train.log\); continue it with --resume, or '
             r'train into a new folder')


def test_second_flownet_pretraining_on_the_same_weights(case):
    prefix = os.path.join(case.root, 'flownet', 'flownet_synthetic')
    os.makedirs(os.path.dirname(prefix))
    torch.save({'conv1.weight': torch.zeros(1)}, prefix + '-0000.pth')
    case.run(['dff_rfcn/train_flownet.py', '--cfg', DFF_CFG,
              *case.sets(f'network.pretrained_flow={prefix}', f'FLOW_PRETRAIN.dataset_path={case.root}/chairs')],
             'FlowNet pretraining already ran here .*flownet_synthetic-0000.pth.*--resume')


# ------------------------------------------------------------------------------------------ already one line
def test_typo_key(case):
    case.run([DFF_SCRIPT, '--cfg', DFF_CFG, *case.sets('TRAIN.lrr=0.1')], r"unknown config key 'TRAIN.lrr'; did you mean")


def test_missing_image_set_list(case):
    missing = os.path.join(case.root, 'no_such_dataset')
    case.run([RFCN_SCRIPT, '--cfg', RFCN_CFG, *case.sets('dataset.dataset=ImageNetVID', 'dataset.NUM_CLASSES=31',
                                                          f'dataset.dataset_path={missing}')],
             'image-set file not found: ' + re.escape(missing))


def test_malformed_annotation_xml(case):
    xml = sorted(os.path.join(d, n) for d, _, ns in os.walk(os.path.join(case.data, 'Annotations', 'DET'))
                 for n in ns if n.endswith('.xml'))[0]
    with open(xml, 'w') as f:
        f.write('<annotation><size>')
    case.run([RFCN_SCRIPT, '--cfg', RFCN_CFG, '--skip-test', *case.sets()], re.escape(xml) + ': malformed annotation XML')


def test_malformed_list_line(case):
    lst = os.path.join(case.data, 'ImageSets', 'VID_train_15frames.txt')
    n = sum(1 for _ in open(lst))
    with open(lst, 'a') as f:
        f.write('train/broken 1 2\n')
    case.run([RFCN_SCRIPT, '--cfg', RFCN_CFG, '--skip-test', *case.sets()],
             re.escape(lst) + f':{n + 1}: malformed line')


def test_truncated_params_checkpoint(case):
    params = os.path.join(case.root, 'rfcn_cut-0000.params')
    with open(TINY_PARAMS, 'rb') as f:
        data = f.read()
    with open(params, 'wb') as f:
        f.write(data[:len(data) // 2])
    case.run([RFCN_SCRIPT, '--cfg', RFCN_CFG, '--checkpoint', params, *case.sets()], re.escape(params))


def test_missing_checkpoint_and_missing_video(case):
    missing = os.path.join(case.root, 'none.pth')
    case.run([DFF_SCRIPT, '--cfg', DFF_CFG, '--checkpoint', missing, *case.sets()],
             '(checkpoint|weights) not found: ' + re.escape(missing))
    video = os.path.join(case.root, 'nothere.mp4')
    case.run(['rfcn/demo.py', '--cfg', RFCN_CFG, '--checkpoint', case.ckpt, '--input', video,
              '--output', os.path.join(case.root, 'output', 'demo'), *case.sets()],
             'input not found: ' + re.escape(video))


def test_demo_key_interval_zero(case):
    case.run(['dff_rfcn/demo.py', '--cfg', DFF_CFG, '--checkpoint', case.dff_ckpt, '--input',
              os.path.dirname(case.images('val')[0]), '--output', os.path.join(case.root, 'output', 'demo'),
              '--key-interval', '0', *case.sets()], 'key frame interval must be at least 1, got 0')


def test_tools_log_and_detections(case):
    empty = os.path.join(case.root, 'empty')
    os.makedirs(empty)
    case.run(['tools/analyze_train_log.py', empty], re.escape(empty) + ': no train_log.jsonl or train.log')
    dets = os.path.join(case.root, 'dets.txt')
    with open(dets, 'w') as f:
        f.write('1 1 0.5 1 2 3\n')
    case.run(['-m', 'lib.evaluation.imagenet_vid_eval', '--dets', dets,
              '--eval-list', os.path.join(case.data, 'ImageSets', 'VID_val_frames.txt'),
              '--annotations', os.path.join(case.data, 'Annotations', 'VID'), '--classes', 'synthetic_vid',
              '--out', os.path.join(case.root, 'output', 'eval.json')],
             re.escape(dets) + r':1: malformed detection line')


# ------------------------------------------------------------------------------------------ ops not built
@pytest.fixture(scope='module')
def unbuilt(tmp_path_factory):
    """A copy of the code without the compiled ops (lib/ops/_C*.so): the state before `bash init.sh`."""
    dst = tmp_path_factory.mktemp('unbuilt')
    for d in ('lib', 'rfcn', 'dff_rfcn', 'experiments', 'tools', 'tests'):
        shutil.copytree(os.path.join(ROOT, d), dst / d, ignore=shutil.ignore_patterns('_C*.so', '_C*.pyd', '__pycache__'))
    assert not list((dst / 'lib' / 'ops').glob('_C*'))
    return dst


def test_help_works_before_the_ops_are_built_and_a_run_says_what_to_do(unbuilt, case):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(unbuilt))
    env.pop('DFF_DEBUG', None)
    for script in (RFCN_SCRIPT, DFF_SCRIPT, 'rfcn/demo.py', 'dff_rfcn/demo.py', 'rfcn/test.py', 'dff_rfcn/test.py',
                   'dff_rfcn/train_flownet.py', 'tools/bench_ops.py', 'tools/convert_mxnet.py'):
        proc = subprocess.run([sys.executable, script, '--help'], cwd=unbuilt, env=env, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0 and proc.stdout.startswith('usage:'), (script, proc.stderr[-2000:])
    proc = subprocess.run([sys.executable, RFCN_SCRIPT, '--cfg', RFCN_CFG, '--checkpoint', case.ckpt,
                           *case.sets()], cwd=unbuilt, env=env, capture_output=True, text=True, timeout=300)
    errors = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
    assert proc.returncode == 2 and len(errors) == 1 and 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    assert 'custom ops are not built (no lib/ops/_C*.so)' in errors[0] and 'init.sh' in errors[0]


# ------------------------------------------------------------------------------------------ config values, devices, weights
def test_values_of_the_wrong_type_and_devices(case):
    case.run([RFCN_SCRIPT, '--cfg', RFCN_CFG, *case.sets('SCALES=600')], r'SCALES: expected \[short side, max long side\]')
    case.run([DFF_SCRIPT, '--cfg', DFF_CFG, *case.sets('TRAIN.lr=fast')], r"TRAIN\.lr: expected a number, got 'fast'")
    case.run([RFCN_SCRIPT, '--cfg', RFCN_CFG, *case.sets('device=gpu')], r'device: expected .*cuda:N')
    if not torch.cuda.is_available():  # a GPU machine would run these
        case.run([RFCN_SCRIPT, '--cfg', RFCN_CFG, *case.sets('device=cuda')], r"device: 'cuda' but torch sees no CUDA")
        case.run(['rfcn/demo.py', '--cfg', RFCN_CFG, '--checkpoint', case.ckpt, '--input',
                  os.path.dirname(case.images('val')[0]), '--output', os.path.join(case.root, 'output', 'demo'),
                  '--device', 'cuda', *case.sets()], r"cuda")


def test_checkpoint_of_another_config(case):
    # the DFF checkpoint given to the frame baseline: every unexpected key named in the one line
    case.run([RFCN_SCRIPT, '--cfg', RFCN_CFG, '--checkpoint', case.dff_ckpt, *case.sets()],
             re.escape(case.dff_ckpt) + r'.*flownet\.')
    # the tiny R-FCN checkpoint with the real ImageNet VID config (31 classes, ResNet-101)
    real = 'experiments/rfcn/cfgs/resnet_v1_101_imagenet_vid_rfcn_end2end_ohem.yaml'
    case.run([RFCN_SCRIPT, '--cfg', real, '--checkpoint', case.ckpt, '--set',
              f'output_path={case.root}/output'], re.escape(case.ckpt))


def test_a_pickle_that_runs_code_is_refused_not_run(case):
    from tests.small_run import code_running_pickles
    marker = os.path.join(case.root, 'code_ran')
    as_torch, as_pickle = code_running_pickles(case.root, marker)
    case.run([RFCN_SCRIPT, '--cfg', RFCN_CFG, '--checkpoint', as_torch, *case.sets()], re.escape(as_torch))
    case.run([RFCN_SCRIPT, '--cfg', RFCN_CFG, '--skip-test', *case.sets(f'network.pretrained={as_pickle}')],
             re.escape(as_pickle))
    case.run(['tools/convert_mxnet.py', as_pickle, os.path.join(case.root, 'converted.pth')], re.escape(as_pickle))
    assert not os.path.exists(marker) and not os.path.exists(os.path.join(case.root, 'converted.pth'))
