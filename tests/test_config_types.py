"""Typed configs: every yaml / --set value checked against its default's type, `_BASE_` inheritance, the
original's keys the port does not read (a warning saying what to use instead), `gpus` as the original's
images per update, `device` checked, `--set` repeatable."""
import ast
import glob
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
import yaml

from lib.config import load_config, update_from_list
from lib.config.config import _KIND_OF, _UNUSED, ConfigError, _defaults, unused_key_warnings
from lib.core import trainer
from lib.core.experiment import parse_args
from lib.dataset.loader import accumulation_steps
from lib.utils.device import process_device, resolve_device
from tests.small_run import ROOT

RFCN_SYN = os.path.join(ROOT, 'experiments/rfcn/cfgs/synthetic_vid_cpu.yaml')
DFF_SYN = os.path.join(ROOT, 'experiments/dff_rfcn/cfgs/synthetic_vid_cpu.yaml')
REAL = sorted(glob.glob(os.path.join(ROOT, 'experiments/*/cfgs/resnet_v1_101_*.yaml')))


def _walk(d, path=()):
    for k, v in d.items():
        if isinstance(v, dict) and path + (k,) != ('dataset', 'SYNTHETIC'):
            yield from _walk(v, path + (k,))
        else:
            yield path + (k,), v


def _plain(cfg):
    """Comparable form: numpy arrays as (dtype, values), everything else as it is (types included)."""
    out = {}
    for path, v in _walk(cfg):
        out['.'.join(path)] = ('ndarray', str(v.dtype), v.tolist()) if isinstance(v, np.ndarray) else (type(v), v)
    return out


def _yaml(tmp_path, name, text):
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return str(p)


# ------------------------------------------------------------------------------------------- types
def test_every_default_has_a_type_and_every_yaml_loads_without_warnings(capsys):
    keys = [path for path, default in _walk(_defaults()) if not isinstance(default, dict)]  # not SYNTHETIC
    assert sorted(_KIND_OF) == sorted(keys) and len(keys) > 100
    for f in REAL + [RFCN_SYN, DFF_SYN]:
        c = load_config(f)
        assert isinstance(c.TRAIN.lr, float) and isinstance(c.TRAIN.end_epoch, int)
        assert c.network.PIXEL_MEANS.dtype == np.float64 and c.SCALES == [(c.SCALES[0][0], c.SCALES[0][1])]
    assert capsys.readouterr().err == ''


def test_wrong_type_in_a_yaml_names_the_key_and_the_file(tmp_path):
    bad = _yaml(tmp_path, 'bad.yaml', 'TRAIN:\n  lr: fast\n')
    with pytest.raises(ConfigError, match=r"bad\.yaml: TRAIN\.lr: expected a number, got 'fast'$"):
        load_config(bad)
    bad = _yaml(tmp_path, 'scales.yaml', 'SCALES: 600\n')
    with pytest.raises(ConfigError, match=r"scales\.yaml: SCALES: expected \[short side, max long side\] .*, got 600$"):
        load_config(bad)


@pytest.mark.parametrize('item, message', [
    ('TRAIN.lr=fast', "TRAIN.lr: expected a number, got 'fast'"),
    ('TRAIN.lr=true', "TRAIN.lr: expected a number, got True"),
    ('TRAIN.BATCH_IMAGES=1.5', "TRAIN.BATCH_IMAGES: expected an integer, got 1.5"),
    ("dataset.NUM_CLASSES='31'", "dataset.NUM_CLASSES: expected an integer, got '31'"),
    ('TRAIN.FLIP=1', "TRAIN.FLIP: expected true or false, got 1"),
    ('TRAIN.FLIP=yes please', "TRAIN.FLIP: expected true or false, got 'yes please'"),
    ('output_path=3', "output_path: expected a string, got 3"),
    ('network.pretrained=', "network.pretrained: expected a string, got an empty value"),
    ('network.PIXEL_MEANS=[1,2]', "network.PIXEL_MEANS: expected a list of 3 numbers, got [1, 2]"),
    ('network.ANCHOR_SCALES=[8,x]', "network.ANCHOR_SCALES: expected a list of numbers, got [8, 'x']"),
    ('network.ANCHOR_SCALES=[]', "network.ANCHOR_SCALES: expected a list of numbers, got []"),
    ('TRAIN.BBOX_STDS=0.1', "TRAIN.BBOX_STDS: expected a list of 4 numbers, got 0.1"),
    ('network.FIXED_PARAMS=[conv1, 2]', "network.FIXED_PARAMS: expected a list of strings, got ['conv1', 2]"),
    ('network.RESNET_UNITS=[1,2.5,1,1]', "network.RESNET_UNITS: expected a list of integers, got [1, 2.5, 1, 1]"),
    ('dataset.CLASSES=dog', "dataset.CLASSES: expected a list, got 'dog'"),
    ('SCALES=600', "SCALES: expected [short side, max long side] (one scale, e.g. [600, 1000]) or a list of "
                   "such pairs (e.g. [[600, 1000], [480, 800]]), got 600"),
    ('SCALES=[600]', "SCALES: expected [short side, max long side]"),
    ('SCALES=[[600,1000],[480]]', "SCALES: expected [short side, max long side]"),
    ('SCALES=[600.5,1000]', "SCALES: expected [short side, max long side]"),
    ('device=gpu', "device: expected one of auto, cpu, cuda, cuda:N, got 'gpu'"),
    ('device=cuda:x', "device: expected one of auto, cpu, cuda, cuda:N, got 'cuda:x'"),
    ('gpus=a,b', "gpus: expected GPU ids separated by commas (e.g. '0,1,2,3') or '', got 'a,b'"),
    ('FLOW_PRETRAIN.loss_weights=[1,2]', "FLOW_PRETRAIN.loss_weights: expected a list of 5 numbers, got [1, 2]"),
    ('TEST.thresh=[0.1]', "TEST.thresh: expected a number, got [0.1]"),
    ('TRAIN.lr={a: 1}', "TRAIN.lr: expected a number, got {'a': 1}"),
])
def test_wrong_type_in_set_names_the_key(item, message):
    cfg = load_config(RFCN_SYN)
    with pytest.raises(ConfigError) as e:
        update_from_list(cfg, [item])
    assert str(e.value).startswith('--set: ' + message), str(e.value)
    assert '\n' not in str(e.value)


def test_accepted_forms_are_stored_as_the_default_type():
    c = update_from_list(load_config(RFCN_SYN), [
        'SCALES=[600,1000]', 'TRAIN.lr=1', 'TRAIN.end_epoch=2.0', 'TRAIN.lr_step=1.5', 'gpus=0', 'device=cuda:1',
        'network.PIXEL_MEANS=[1,2,3]', 'TEST.thresh=0', 'network.RESNET_UNITS=[1,2,3,1]', 'TRAIN.BBOX_WEIGHTS=[1,1,2,2]'])
    assert c.SCALES == [(600, 1000)]
    assert c.TRAIN.lr == 1.0 and isinstance(c.TRAIN.lr, float)
    assert c.TRAIN.end_epoch == 2 and isinstance(c.TRAIN.end_epoch, int)
    assert c.TRAIN.lr_step == '1.5' and c.gpus == '0' and c.device == 'cuda:1'
    assert c.network.PIXEL_MEANS.dtype == np.float64 and c.network.PIXEL_MEANS.tolist() == [1.0, 2.0, 3.0]
    assert c.TRAIN.BBOX_WEIGHTS.dtype == np.float64
    assert isinstance(c.TEST.thresh, float) and c.network.RESNET_UNITS == [1, 2, 3, 1]
    c = update_from_list(c, ['SCALES=[[600, 1000], [480, 800]]', 'gpus=0,1,2,3', "gpus=''", 'device=auto'])
    assert c.SCALES == [(600, 1000), (480, 800)] and c.gpus == '' and c.device == 'auto'


# ------------------------------------------------------------------------------------------ _BASE_
def _differing(flat, base, defaults):
    """The part of the raw yaml mapping `flat` that a file with `_BASE_: base` must state: the keys whose
    value differs from the base's, and a key that only the base sets back at its default."""
    out = {}
    for k in set(flat) | set(base):
        if k not in flat:
            if isinstance(base[k], dict):
                sub = _differing({}, base[k], defaults[k])
                if sub:
                    out[k] = sub
            else:
                d = defaults[k]
                out[k] = d.tolist() if isinstance(d, np.ndarray) else list(d) if isinstance(d, tuple) else d
        elif isinstance(flat[k], dict) and isinstance(base.get(k), dict):
            sub = _differing(flat[k], base[k], defaults[k])
            if sub:
                out[k] = sub
        elif k not in base or flat[k] != base[k]:
            out[k] = flat[k]
    return out


def test_base_inheritance_gives_exactly_the_flat_config(tmp_path):
    """The DFF synthetic config written as `_BASE_: <the baseline's>` plus only what differs (computed from
    the two files as they are) loads to exactly the config of the flat file."""
    base_raw, flat_raw = yaml.safe_load(open(RFCN_SYN)), yaml.safe_load(open(DFF_SYN))
    base = tmp_path / 'experiments' / 'rfcn' / 'cfgs' / 'synthetic_vid_cpu.yaml'
    base.parent.mkdir(parents=True)
    base.write_text(open(RFCN_SYN).read())
    own = _differing(flat_raw, base_raw, _defaults())
    assert 0 < len(list(_walk(own))) < len(list(_walk(flat_raw))) // 3  # a derived file, not a copy
    derived = _yaml(tmp_path / 'experiments' / 'dff_rfcn' / 'cfgs', 'synthetic_vid_cpu.yaml',
                    '_BASE_: ../../rfcn/cfgs/synthetic_vid_cpu.yaml\n' + yaml.safe_dump(own))
    flat = load_config(DFF_SYN)
    assert _plain(load_config(derived)) == _plain(flat)
    # and it really inherits: without its _BASE_ line the same file is another config
    lonely = _yaml(tmp_path, 'lonely.yaml', open(derived).read().replace('_BASE_:', '# _BASE_:'))
    assert _plain(load_config(lonely)) != _plain(flat)


def test_base_chains_merge_sections_and_replace_lists(tmp_path):
    _yaml(tmp_path, 'a.yaml', 'TRAIN:\n  lr: 0.5\n  end_epoch: 3\nnetwork:\n  ANCHOR_SCALES: [1, 2, 3]\n')
    _yaml(tmp_path, 'sub/b.yaml', '_BASE_: ../a.yaml\nTRAIN:\n  lr: 0.25\n')
    c = load_config(_yaml(tmp_path, 'sub/deeper/c.yaml', '_BASE_: ../b.yaml\nnetwork:\n  ANCHOR_SCALES: [4]\n'))
    assert (c.TRAIN.lr, c.TRAIN.end_epoch, c.network.ANCHOR_SCALES) == (0.25, 3, [4])
    assert c.TRAIN.momentum == 0.9  # defaults below everything


def test_base_errors_name_the_file(tmp_path):
    _yaml(tmp_path, 'x.yaml', '_BASE_: y.yaml\n')
    _yaml(tmp_path, 'y.yaml', '_BASE_: x.yaml\n')
    with pytest.raises(ConfigError, match=r"_BASE_ cycle: .*x\.yaml -> .*y\.yaml -> .*x\.yaml"):
        load_config(str(tmp_path / 'x.yaml'))
    with pytest.raises(ConfigError, match=r"self\.yaml: _BASE_ cycle"):
        load_config(_yaml(tmp_path, 'self.yaml', '_BASE_: ./self.yaml\n'))
    with pytest.raises(FileNotFoundError, match=r"config file not found: .*gone\.yaml \(the _BASE_ of .*m\.yaml\)"):
        load_config(_yaml(tmp_path, 'm.yaml', '_BASE_: gone.yaml\n'))
    with pytest.raises(ConfigError, match=r"e\.yaml: _BASE_: expected the path of a yaml file, got an empty value"):
        load_config(_yaml(tmp_path, 'e.yaml', '_BASE_:\nTRAIN:\n  lr: 0.1\n'))
    # a wrong value in the base is reported with the base's name
    _yaml(tmp_path, 'wrong.yaml', 'TRAIN:\n  lr: fast\n')
    with pytest.raises(ConfigError, match=r"wrong\.yaml: TRAIN\.lr: expected a number"):
        load_config(_yaml(tmp_path, 'child.yaml', '_BASE_: wrong.yaml\n'))


# ---------------------------------------------------------------------------------------- unused keys
def test_unused_keys_warn_with_what_to_use_instead(tmp_path, capsys):
    f = _yaml(tmp_path, 'old.yaml', 'TRAIN:\n  RESUME: true\n  end_epoch: 2\nTEST:\n  test_epoch: 1\n'
                                    'default:\n  kvstore: dist_sync\n')
    load_config(f)
    err = capsys.readouterr().err.splitlines()
    assert err == [f"warning: {f}: TRAIN.RESUME = True is not used by this port: use --resume",
                   f"warning: {f}: TEST.test_epoch = 1 is not used by this port: the test takes "
                   "<model_prefix>-<TRAIN.end_epoch>.pth; test another checkpoint with --checkpoint",
                   f"warning: {f}: default.kvstore = 'dist_sync' is not used by this port: gradients are summed "
                   "across processes by DistributedDataParallel (run torchrun)"]
    update_from_list(load_config(RFCN_SYN), ['TEST.HAS_RPN=false', 'TEST.PROPOSAL_NMS_THRESH=0.5', 'TRAIN.lr=0.1'])
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[0].startswith('warning: --set: TEST.HAS_RPN = False is not used by this port')
    assert 'use TEST.RPN_NMS_THRESH' in err[1]
    # the values the port does anyway (the original's yamls) are silent
    cfg = load_config(REAL[0])
    assert unused_key_warnings(cfg, [(k, 'x') for k in _UNUSED]) == []


def _code_names():
    """What the code that reads the config (not the config, not tests) names: every attribute and string
    constant, and the (parent, attribute) pairs such as ('TEST', 'test_epoch')."""
    names, pairs = set(), set()
    for pattern in ('lib/**/*.py', 'rfcn/*.py', 'dff_rfcn/*.py', 'tools/*.py', 'experiments/**/*.py', 'model/*.py'):
        for f in glob.glob(os.path.join(ROOT, pattern), recursive=True):
            if f.endswith(os.path.join('lib', 'config', 'config.py')):
                continue
            for node in ast.walk(ast.parse(open(f).read())):
                if isinstance(node, ast.Attribute):
                    names.add(node.attr)
                    parent = getattr(node.value, 'attr', getattr(node.value, 'id', None))
                    pairs.add((parent, node.attr))
                elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                    names.add(node.value)
    return names, pairs


# names of unused keys that the code also uses for something else (ops.proposal, the TRAIN key of the same name)
_SHARED_NAMES = {('dataset', 'proposal'), ('TEST', 'BATCH_IMAGES')}


def test_every_key_is_read_or_in_the_unused_table():
    names, pairs = _code_names()
    for path, _ in _walk(_defaults()):
        if path not in _UNUSED:
            assert path[-1] in names, f"{'.'.join(path)} is read nowhere: implement it or add it to _UNUSED"
        else:
            section = path[-2] if len(path) > 1 else 'cfg'
            assert (section, path[-1]) not in pairs, f"{'.'.join(path)} is read: take it out of _UNUSED"
            if path not in _SHARED_NAMES:
                assert path[-1] not in names, f"{'.'.join(path)} is named in the code: read? take it out of _UNUSED"


# ----------------------------------------------------------------------------------------------- gpus
def test_gpus_sets_the_images_per_update_whatever_the_processes():
    real = load_config(REAL[0])
    assert real.gpus == '0,1,2,3'
    assert [accumulation_steps(real, w) for w in (1, 2, 4)] == [4, 2, 1]
    with pytest.raises(ValueError, match=r"gpus = '0,1,2,3': .* 3 processes cannot share evenly: run 1 or 2 or 4 "
                                         r"process\(es\) \(torchrun --nproc_per_node\), or set gpus=''"):
        accumulation_steps(real, 3)
    assert accumulation_steps(update_from_list(real, ['TRAIN.ACCUMULATE_GRAD=4']), 1) == 4
    with pytest.raises(ValueError, match=r"means 4 micro-step\(s\) per update, but TRAIN.ACCUMULATE_GRAD = 2"):
        accumulation_steps(update_from_list(real, ['TRAIN.ACCUMULATE_GRAD=2']), 1)
    assert accumulation_steps(update_from_list(real, ["gpus=''", 'TRAIN.ACCUMULATE_GRAD=3']), 1) == 3


class _Points(torch.utils.data.Dataset):
    """8 landscape 'images', each a point x with a target y."""

    def __init__(self):
        g = torch.Generator().manual_seed(1)
        self.x, self.y = torch.randn(8, 3, generator=g), torch.randn(8, generator=g)
        self.roidb = [{'width': 20, 'height': 10} for _ in range(8)]

    def __len__(self):
        return 8

    def __getitem__(self, item):
        epoch, i = item
        return {'x': self.x[i], 'y': self.y[i], 'epoch': epoch, 'index': i}


def _collate(items):
    return {'x': torch.stack([it['x'] for it in items]), 'y': torch.stack([it['y'] for it in items]),
            'epoch': [it['epoch'] for it in items], 'index': [it['index'] for it in items]}


class _Line(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 1)
        torch.nn.init.constant_(self.fc.weight, 0.5)
        torch.nn.init.zeros_(self.fc.bias)
        self.images = 0

    def forward(self, batch):
        self.images += len(batch['index'])
        return {'l2_loss': ((self.fc(batch['x'])[:, 0] - batch['y']) ** 2).sum()}


def _train(tmp_path, name, sets):
    cfg = update_from_list(load_config(RFCN_SYN), [
        'device=cpu', 'TRAIN.end_epoch=1', 'TRAIN.NUM_WORKERS=0', 'default.frequent=1', 'TRAIN.warmup=false',
        'TRAIN.lr=0.05', 'TRAIN.wd=0', 'network.FIXED_PARAMS=[]', 'TRAIN.BATCH_IMAGES=1', *sets])
    model = _Line()
    trainer.train(cfg, model, _Points(), _collate, str(tmp_path / name), 'toy', log=lambda *a: None)
    records = [json.loads(line) for line in open(tmp_path / name / 'train_log.jsonl')]
    return model, records


def test_gpus_two_accumulates_two_images_per_optimizer_step(tmp_path):
    by_gpus, rec_gpus = _train(tmp_path, 'gpus', ['gpus=0,1'])
    by_accumulation, rec_acc = _train(tmp_path, 'acc', ['TRAIN.ACCUMULATE_GRAD=2'])
    plain, rec_plain = _train(tmp_path, 'plain', [])
    assert by_gpus.images == by_accumulation.images == plain.images == 8
    assert [r['global_update'] for r in rec_gpus] == [r['global_update'] for r in rec_acc] == [1, 2, 3, 4]
    assert [r['global_update'] for r in rec_plain] == list(range(1, 9))
    for a, b in zip(by_gpus.parameters(), by_accumulation.parameters()):
        assert torch.equal(a, b)
    assert not torch.equal(by_gpus.fc.weight, plain.fc.weight)
    with pytest.raises(ValueError, match='TRAIN.ACCUMULATE_GRAD = 4'):
        _train(tmp_path, 'both', ['gpus=0,1', 'TRAIN.ACCUMULATE_GRAD=4'])


# --------------------------------------------------------------------------------- device, --set, CLI
def test_device_that_is_not_there_is_a_config_error(monkeypatch):
    cfg = load_config(RFCN_SYN)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    for device in ('cuda', 'cuda:0'):
        cfg.device = device
        with pytest.raises(ConfigError, match=rf"device: '{device}' but torch sees no CUDA device"):
            resolve_device(cfg)
    cfg.device = 'auto'
    assert resolve_device(cfg) == 'cpu'
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)
    cfg.device = 'cuda:2'
    with pytest.raises(ConfigError, match=r"torch sees 2 CUDA device\(s\); use cuda:0 \.\. cuda:1"):
        resolve_device(cfg)
    cfg.device = 'cuda:1'
    assert resolve_device(cfg) == 'cuda:1'
    assert process_device('cuda:1', 0, 1) == torch.device('cuda', 1)
    assert process_device('cuda', 3, 4) == torch.device('cuda', 3)
    with pytest.raises(ConfigError, match=r"names one GPU, but torchrun started 2 processes: use device=cuda"):
        process_device('cuda:1', 0, 2)


def test_set_may_be_repeated():
    args = parse_args('x', ['--cfg', 'c.yaml', '--set', 'TRAIN.lr=0.5', 'TRAIN.end_epoch=3', '--set', 'seed=7'])
    assert args.set == ['TRAIN.lr=0.5', 'TRAIN.end_epoch=3', 'seed=7']
    cfg = update_from_list(load_config(RFCN_SYN), args.set)
    assert (cfg.TRAIN.lr, cfg.TRAIN.end_epoch, cfg.seed) == (0.5, 3, 7)
    from dff_rfcn import train_flownet
    from lib.apps.demo import demo_arg_parser
    demo = demo_arg_parser('x').parse_args(['--cfg', 'c', '--checkpoint', 'k', '--input', 'i', '--output', 'o',
                                            '--set', 'a=1', '--set', 'b=2'])
    assert demo.set == ['a=1', 'b=2']
    for source in (train_flownet.__file__, os.path.join(ROOT, 'tools', 'synthetic_flow_eval.py'),
                   os.path.join(ROOT, 'tools', 'convert_mxnet.py')):
        assert "'--set', nargs='*', action='extend'" in open(source).read(), source


def _cli(args, env_extra=None):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT, **(env_extra or {}))
    env.pop('DFF_DEBUG', None)
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize('sets, culprit', [
    (['SCALES=600'], '--set: SCALES: expected [short side, max long side]'),
    (['device=gpu'], "--set: device: expected one of auto, cpu, cuda, cuda:N, got 'gpu'"),
    (['device=cuda'], "device: 'cuda' but torch sees no CUDA device"),
    (['TRAIN.lr=fast'], "--set: TRAIN.lr: expected a number, got 'fast'"),
])
def test_train_test_script_bad_config_is_one_error_line(tmp_path, sets, culprit):
    proc = _cli(['experiments/rfcn/rfcn_end2end_train_test.py', '--cfg', RFCN_SYN, '--set', 'output_path=' +
                 str(tmp_path), '--set', *sets], {'CUDA_VISIBLE_DEVICES': ''})
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith('error: ' + culprit), proc.stderr
    assert 'Traceback' not in proc.stderr and os.listdir(tmp_path) == []


def test_demo_device_errors_are_one_line(tmp_path):
    frames = tmp_path / 'frames'
    frames.mkdir()
    cv2.imwrite(str(frames / '0.png'), np.zeros((32, 48, 3), np.uint8))
    base = ['rfcn/demo.py', '--cfg', RFCN_SYN, '--checkpoint', str(tmp_path / 'none.pth'), '--input', str(frames),
            '--output', str(tmp_path / 'out')]
    proc = _cli(base + ['--device', 'cuda'], {'CUDA_VISIBLE_DEVICES': ''})
    assert proc.returncode == 2 and "error: device: 'cuda' but torch sees no CUDA device" in proc.stderr, proc.stderr
    assert 'Traceback' not in proc.stderr
    proc = _cli(base + ['--device', 'gpu'])
    assert proc.returncode == 2 and "error: --device: device: expected one of auto, cpu, cuda, cuda:N, got 'gpu'" \
        in proc.stderr, proc.stderr


def test_flownet_pretraining_device_is_checked(tmp_path):
    # its own weights path: the checkout's ./output may hold an earlier pretraining (refused before the device)
    proc = _cli(['dff_rfcn/train_flownet.py', '--cfg', DFF_SYN, '--set', f'FLOW_PRETRAIN.dataset_path={tmp_path}',
                 f'network.pretrained_flow={tmp_path}/flownet', '--set', 'device=cuda'], {'CUDA_VISIBLE_DEVICES': ''})
    assert proc.returncode == 2 and "error: device: 'cuda' but torch sees no CUDA device" in proc.stderr, proc.stderr


def test_yaml_values_stay_what_the_original_yamls_say():
    """The real yamls are read unchanged: every key they set holds the yaml's value (typed)."""
    for f in REAL:
        raw = yaml.safe_load(open(f))
        cfg = load_config(f)
        for path, v in _walk(raw):
            got = cfg
            for k in path:
                got = got[k]
            if path == ('SCALES',):
                assert got == [tuple(v)]
            elif isinstance(got, np.ndarray):
                assert got.tolist() == v
            else:
                assert got == v and (type(got) is type(v) or isinstance(got, float)), path


# ------------------------------------------------------------------------------- modules: from_config
def test_modules_take_explicit_arguments_and_never_store_the_config():
    from lib.model.flownet import FlowNetS
    from dff_rfcn.model import DFF
    from lib.config import is_config
    from lib.model.detection import DetectionHeads, FeatureNet
    from rfcn.model import RFCN
    cfg = update_from_list(load_config(DFF_SYN), ['network.DFF_FEAT_DIM=16', 'network.FLOW_WIDTH_MULT=0.03125'])
    for cls in (RFCN, DFF):
        torch.manual_seed(0)
        model = cls(cfg)
        for name, module in model.named_modules():
            stored = [k for k, v in vars(module).items() if is_config(v)]
            assert not stored, f'{cls.__name__}.{name} stores the config as {stored}'
        # the same model from explicit arguments, built in the same order
        torch.manual_seed(0)
        explicit = cls(**cls.from_config(cfg))
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), explicit.state_dict().values()))
    heads = DetectionHeads(**DetectionHeads.from_config(cfg))
    assert (heads.num_classes, heads.ohem_rois, heads.test_proposals.post_nms_top_n) == (6, 128, 300)
    assert heads.roi_sampling.bbox_stds == (0.1, 0.1, 0.2, 0.2) and heads.roi_sampling.normalize_targets
    assert FeatureNet(cfg).feat_conv_3x3.out_channels == 16
    flow = FlowNetS(cfg)
    assert flow.Convolution5_scale.out_channels == 16 and flow.conv2.out_channels == 4
    with pytest.raises(TypeError, match=r'FlowNetS\(cfg\) takes the config alone'):
        FlowNetS(cfg, width_mult=1.0)
    with pytest.raises(ValueError, match='network.NUM_ANCHORS = 4 but ANCHOR_SCALES x ANCHOR_RATIOS give 9'):
        DetectionHeads(update_from_list(load_config(DFF_SYN), ['network.NUM_ANCHORS=4']))


def test_docs_list_every_unused_key():
    text = open(os.path.join(ROOT, 'docs', 'configuration.md')).read()
    for path in _UNUSED:
        assert f"`{'.'.join(path)}`" in text, '.'.join(path)
