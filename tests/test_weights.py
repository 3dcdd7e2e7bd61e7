"""The one door for weights (lib/model/weights.py): explicit key mapping, every mismatch in one line that names
the file, the keys and the settings that differ, and files that would run code refused by every entry point."""
import os
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

import dff_rfcn.model  # noqa: F401 (registers the DFF model with the converter)
import rfcn.model  # noqa: F401 (registers the RFCN model with the converter)
from lib.config import load_config, update_from_list
from lib.core.engine import rng_state as _rng_state, set_rng_state as _set_rng_state
from lib.utils.provenance import plain as _plain
from lib.model.convert_mxnet import MXNetConversionError, build_target
from lib.model.weights import load_model_weights, load_pretrained, load_weights
from lib.utils.checkpoint import load_checkpoint, save_checkpoint, save_state_dict
from tests.small_run import ROOT, code_running_pickles
from tools.convert_mxnet import DEFAULT_CFGS

# the reduced network of the MXNet fixtures (tests/test_convert_mxnet.py)
TINY_SET = ['network.RESNET_UNITS=[1, 2, 4, 1]', 'network.RESNET_WIDTH=4', 'network.DFF_FEAT_DIM=16',
            'network.FLOW_WIDTH_MULT=0.03125', 'dataset.NUM_CLASSES=4']
SYNTH = {'rfcn': 'experiments/rfcn/cfgs/synthetic_vid_cpu.yaml',
         'dff': 'experiments/dff_rfcn/cfgs/synthetic_vid_cpu.yaml'}
SCRIPT = {'rfcn': 'experiments/rfcn/rfcn_end2end_train_test.py',
          'dff': 'experiments/dff_rfcn/dff_rfcn_end2end_train_test.py'}


def quiet(*a, **k):
    pass


def tiny_cfg(kind='dff', extra=()):
    return update_from_list(load_config(os.path.join(ROOT, DEFAULT_CFGS[kind])), TINY_SET + list(extra))


def tiny(kind, extra=(), seed=0):
    torch.manual_seed(seed)
    cfg = tiny_cfg(kind, extra)
    return build_target(kind, cfg), cfg


def same(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def copy_of(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def unchanged(module, before):
    return all(torch.equal(v, before[k]) for k, v in module.state_dict().items())


# ------------------------------------------------------------------------------------------- mismatches
def test_an_unrelated_one_tensor_file_is_refused_not_loaded_onto_a_layer(tmp_path):
    """The old prefix guessing put {'weight': t} onto bn5a_branch2c and trained from random weights."""
    backbone, _ = tiny('resnet')
    before = copy_of(backbone)
    save_state_dict(tmp_path / 'other.pth', {'weight': torch.ones_like(backbone.bn5a_branch2c.weight)})
    with pytest.raises(ValueError) as e:
        load_pretrained(backbone, str(tmp_path / 'other'), 0, log=quiet)
    msg = str(e.value)
    assert msg.startswith(f'{tmp_path}/other.pth does not fit the ResNetV1') and '\n' not in msg
    n = len(backbone.state_dict())
    assert f'{n} key(s) missing in the file: all {n} keys' in msg
    assert '1 key(s) of the file not in the model: weight' in msg
    assert unchanged(backbone, before)


def test_another_num_classes_names_the_keys_and_the_stored_settings(tmp_path):
    trained, cfg4 = tiny('rfcn')
    path = str(tmp_path / 'rfcn-0002.pth')
    save_checkpoint(path, {'model': trained.state_dict(), 'epoch': 2, 'cfg': _plain(cfg4)})
    model, cfg5 = tiny('rfcn', ['dataset.NUM_CLASSES=5'], seed=1)
    before = copy_of(model)
    with pytest.raises(ValueError) as e:
        load_model_weights(model, path, cfg=cfg5, log=quiet)
    msg = str(e.value)
    assert '\n' not in msg
    assert msg.startswith(f'{path} does not fit the RFCN built from the config: 2 key(s) of another shape')
    differing = [k for k, v in model.state_dict().items() if v.shape != trained.state_dict()[k].shape]
    assert differing == ['heads.rfcn_cls.weight', 'heads.rfcn_cls.bias']
    for k in differing:
        assert f'{k}: file {tuple(trained.state_dict()[k].shape)} vs model {tuple(model.state_dict()[k].shape)}' in msg
    assert 'The checkpoint was trained with dataset.NUM_CLASSES=4 (this config: 5)' in msg
    assert 'RESNET_UNITS' not in msg  # only the settings that differ
    assert unchanged(model, before)  # nothing is loaded unless everything fits
    # the same file into a model of the config it was made with loads
    model4, _ = tiny('rfcn', seed=1)
    ck = load_model_weights(model4, path, cfg=cfg4, log=quiet)
    assert ck['epoch'] == 2 and same(model4, trained)


def test_missing_and_unexpected_keys_are_all_named_subtrees_once(tmp_path):
    dff, cfg = tiny('dff')
    rfcn, _ = tiny('rfcn')
    path = str(tmp_path / 'rfcn.pth')
    save_checkpoint(path, {'model': rfcn.state_dict()})
    with pytest.raises(ValueError) as e:
        load_model_weights(dff, path, cfg=cfg, log=quiet)
    n_flow = len(dff.flownet.state_dict())
    assert f'{n_flow} key(s) missing in the file: flownet.* ({n_flow} keys)' in str(e.value)
    assert 'the file stores no config' in str(e.value)
    state = rfcn.state_dict()
    state['heads.extra.weight'] = torch.zeros(2)
    del state['feature.backbone.conv1.weight']
    save_checkpoint(path, {'model': state})
    with pytest.raises(ValueError) as e:
        load_model_weights(rfcn, path, log=quiet)
    assert ('1 key(s) missing in the file: feature.backbone.conv1.weight; '
            '1 key(s) of the file not in the model: heads.extra.weight') in str(e.value)


def test_an_official_params_that_does_not_fit_is_one_line(tmp_path):
    model, cfg = tiny('rfcn', ['dataset.NUM_CLASSES=5'])
    with pytest.raises(MXNetConversionError) as e:
        load_model_weights(model, os.path.join(ROOT, 'tests/fixtures/mxnet_models/rfcn_tiny-0000.params'), cfg=cfg,
                           log=quiet)
    assert '\n' not in str(e.value) and 'arg:rfcn_cls_weight' in str(e.value)


# ------------------------------------------------------------------------------------------- mapping
def test_the_rfcn_training_script_fine_tunes_a_whole_checkpoint(tmp_path):
    """experiments/rfcn/rfcn_end2end_train_test.py's network.pretrained: a bare backbone state dict (or the
    official resnet_v1_101 file) fills the backbone only, as in the original; an R-FCN checkpoint of this project
    fills the whole detector (fine-tuning a trained model), as DFF's script does."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'rfcn_train_script', os.path.join(ROOT, 'experiments', 'rfcn', 'rfcn_end2end_train_test.py'))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    trained, _ = tiny('rfcn', seed=3)
    save_checkpoint(tmp_path / 'rfcn-0000.pth', {'model': trained.state_dict()})
    save_state_dict(tmp_path / 'bare-0000.pth', trained.feature.backbone.state_dict())
    model, cfg = tiny('rfcn', seed=1)
    heads = copy_of(model.heads)
    cfg.network.pretrained, cfg.network.pretrained_epoch = str(tmp_path / 'bare'), 0
    script.init_weights(model, cfg)
    assert same(model.feature.backbone, trained.feature.backbone) and unchanged(model.heads, heads)
    assert not same(model.heads, trained.heads)
    cfg.network.pretrained = str(tmp_path / 'rfcn')
    script.init_weights(model, cfg)
    assert same(model, trained)


def test_explicit_mapping_between_parts(tmp_path):
    dff, cfg = tiny('dff', seed=1)
    backbone, _ = tiny('resnet', seed=2)
    rfcn, _ = tiny('rfcn', seed=3)
    flownet, _ = tiny('flownet', seed=4)
    # a checkpoint that says it holds the backbone (as the conversions of the official file do)
    save_checkpoint(tmp_path / 'bb-0000.pth', {'model': backbone.state_dict(), 'module': 'feature.backbone'})
    heads = copy_of(dff.heads)
    loaded, unused = load_pretrained(dff, str(tmp_path / 'bb'), 0, log=quiet, skip=('flownet',))
    assert len(loaded) == len(backbone.state_dict()) and not unused
    assert same(dff.feature.backbone, backbone) and unchanged(dff.heads, heads)
    # a bare state dict is where the caller says (DFF's network.pretrained: the backbone)
    dff, _ = tiny('dff', seed=1)
    save_state_dict(tmp_path / 'bare-0000.pth', backbone.state_dict())
    load_pretrained(dff, str(tmp_path / 'bare'), 0, log=quiet, bare='feature.backbone', skip=('flownet',))
    assert same(dff.feature.backbone, backbone)
    with pytest.raises(ValueError, match='missing in the file: all'):  # without: the whole model's names
        load_pretrained(dff, str(tmp_path / 'bare'), 0, log=quiet)
    # a whole R-FCN checkpoint into DFF (the synthetic DFF config starts from the baseline): all but the FlowNet
    dff, _ = tiny('dff', seed=1)
    flow = copy_of(dff.flownet)
    save_checkpoint(tmp_path / 'rfcn-0000.pth', {'model': rfcn.state_dict()})
    loaded, _ = load_pretrained(dff, str(tmp_path / 'rfcn'), 0, log=quiet, skip=('flownet',))
    assert len(loaded) == len(rfcn.state_dict()) and same(dff.heads, rfcn.heads) and unchanged(dff.flownet, flow)
    with pytest.raises(ValueError, match=r'flownet\.\* \('):
        load_pretrained(dff, str(tmp_path / 'rfcn'), 0, log=quiet)
    # a whole DFF checkpoint into model.flownet: its flownet part, the rest unused
    other, _ = tiny('dff', seed=5)
    save_checkpoint(tmp_path / 'dff-0000.pth', {'model': other.state_dict()})
    loaded, unused = load_pretrained(dff.flownet, str(tmp_path / 'dff'), 0, log=quiet)
    assert same(dff.flownet, other.flownet) and len(unused) == len(other.state_dict()) - len(loaded)
    # parts that do not nest
    save_checkpoint(tmp_path / 'flow-0000.pth', {'model': flownet.state_dict(), 'module': 'flownet'})
    with pytest.raises(ValueError, match='holds the weights of model.flownet, which is not part of the ResNetV1'):
        load_pretrained(backbone, str(tmp_path / 'flow'), 0, log=quiet)
    # a file of a part is not a whole trained model
    with pytest.raises(ValueError, match='missing in the file'):
        load_model_weights(dff, str(tmp_path / 'flow-0000.pth'), log=quiet)
    info = load_weights(dff, str(tmp_path / 'flow-0000.pth'), partial=True, log=quiet)
    assert info['place'] == 'flownet' and same(dff.flownet, flownet)


def test_neither_checkpoint_nor_state_dict(tmp_path):
    backbone, _ = tiny('resnet')
    save_state_dict(tmp_path / 'x-0000.pth', {'conv1.weight': backbone.conv1.weight.detach(), 'epoch': 3})
    with pytest.raises(ValueError, match=r"neither a checkpoint of this project nor a state dict .* \['epoch'\]"):
        load_pretrained(backbone, str(tmp_path / 'x'), 0, log=quiet)


# ------------------------------------------------------------------------------------------- training state
def test_rng_states_are_stored_as_plain_values_and_restore_the_same_draws(tmp_path):
    torch.manual_seed(3)
    np.random.seed(4)
    random.seed(5)
    np.random.standard_normal()  # a cached gaussian in the numpy state
    save_checkpoint(tmp_path / 'last.pth', {'model': {}, 'rng': _rng_state()})
    draws = (torch.rand(3), np.random.rand(3), np.random.standard_normal(), random.random())
    assert torch.serialization.get_unsafe_globals_in_checkpoint(str(tmp_path / 'last.pth')) == []
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    _set_rng_state(load_checkpoint(tmp_path / 'last.pth')['rng'])
    again = (torch.rand(3), np.random.rand(3), np.random.standard_normal(), random.random())
    assert torch.equal(draws[0], again[0]) and np.array_equal(draws[1], again[1]) and draws[2:] == again[2:]
    # a checkpoint written before (numpy's tuple with an array) still restores
    np.random.seed(7)
    old = {'torch': torch.get_rng_state(), 'numpy': np.random.get_state(), 'python': random.getstate(), 'cuda': None}
    x = np.random.rand()
    _set_rng_state(old)
    assert np.random.rand() == x


# ------------------------------------------------------------------------------------------- entry points
def _run(args):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT)
    env.pop('DFF_DEBUG', None)
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def _one_error_line(proc, *names):
    err_lines = [line for line in proc.stderr.splitlines() if line.startswith('error: ')]
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert len(err_lines) == 1 and 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    for name in names:
        assert name in err_lines[0], (name, err_lines[0][:3000])
    return err_lines[0]


def test_entry_scripts_refuse_files_that_would_run_code(tmp_path):
    marker = tmp_path / 'code_ran'
    as_torch, as_pickle = code_running_pickles(tmp_path, marker)
    out = f'output_path={tmp_path}/out'
    cases = [
        [SCRIPT['rfcn'], '--cfg', SYNTH['rfcn'], '--checkpoint', as_torch, '--set', out],
        [SCRIPT['rfcn'], '--cfg', SYNTH['rfcn'], '--set', out, f'network.pretrained={as_pickle}'],
        [SCRIPT['dff'], '--cfg', SYNTH['dff'], '--set', out, f'network.pretrained={as_torch}'],
        ['tools/convert_mxnet.py', as_pickle, str(tmp_path / 'converted.pth')],
    ]
    for args in cases:
        proc = _run(args)
        culprit = as_pickle if as_pickle in args[-1] or args[1] == as_pickle else as_torch
        _one_error_line(proc, culprit)
        assert not marker.exists(), args
    assert not os.path.exists(tmp_path / 'out') and not os.path.exists(tmp_path / 'converted.pth')


def test_entry_script_checkpoint_of_another_config_is_one_line(tmp_path):
    """Another NUM_CLASSES (the 112-line RuntimeError before), and the synthetic checkpoint with the real config."""
    cfg = update_from_list(load_config(os.path.join(ROOT, SYNTH['rfcn'])), ['dataset.NUM_CLASSES=4'])
    from rfcn.model import RFCN
    torch.manual_seed(0)
    path = str(tmp_path / 'rfcn_synthetic-0002.pth')
    save_checkpoint(path, {'model': RFCN(cfg).state_dict(), 'cfg': _plain(cfg)})
    proc = _run([SCRIPT['rfcn'], '--cfg', SYNTH['rfcn'], '--checkpoint', path, '--set', f'output_path={tmp_path}/out'])
    _one_error_line(proc, path, 'heads.rfcn_cls.weight: file (196, ', 'vs model (294, ',
                    'heads.rfcn_cls.bias: file (196,) vs model (294,)',
                    'dataset.NUM_CLASSES=4 (this config: 6)')
    real = 'experiments/rfcn/cfgs/resnet_v1_101_imagenet_vid_rfcn_end2end_ohem.yaml'
    proc = _run([SCRIPT['rfcn'], '--cfg', real, '--checkpoint', path, '--set', f'output_path={tmp_path}/out',
                 'device=cpu'])
    line = _one_error_line(proc, path, "dataset.dataset='SyntheticVID' (this config: 'ImageNetVID')",
                           'dataset.NUM_CLASSES=4 (this config: 31)',
                           'network.RESNET_UNITS=[1, 1, 1, 1] (this config: [])',
                           'missing in the file: feature.backbone.res2b_branch2a.weight ... '
                           'feature.backbone.bn2c_branch2c.running_var (30 keys)',
                           'feature.backbone.res4b1_branch2a.weight ... '
                           'feature.backbone.bn4b22_branch2c.running_var (330 keys)')
    assert len(line) < 2000  # 435 missing keys and 92 of another shape, named as runs of the model's keys
    assert not os.path.exists(tmp_path / 'out')


def test_filling_a_module_from_official_params_imports_no_model_variant(tmp_path):
    """The converter finds the part to fill by its class (lib/model/convert_mxnet.py: PART_TYPES), so loading the
    official ResNet into a backbone imports neither rfcn nor dff_rfcn; the whole models are built from what
    rfcn/model.py and dff_rfcn/model.py register, and without them the converter says what to import."""
    code = f"""
import shutil, sys
from lib.config import load_config, update_from_list
from lib.model.convert_mxnet import build_target
from lib.model.resnet_v1 import build_backbone
from lib.model.weights import load_pretrained
shutil.copy({os.path.join(ROOT, 'tests/fixtures/mxnet_models/resnet_tiny-0000.params')!r}, {str(tmp_path)!r} + '/r-0000.params')
cfg = update_from_list(load_config({os.path.join(ROOT, DEFAULT_CFGS['resnet'])!r}), {TINY_SET!r})
loaded, _ = load_pretrained(build_backbone(cfg), {str(tmp_path)!r} + '/r', 0, log=lambda *a: None)
try:
    build_target('dff', cfg, 'meta')
except ValueError as e:
    print(e, file=sys.stderr)
print(len(loaded), sorted(m for m in sys.modules if m.split('.')[0] in ('rfcn', 'dff_rfcn')))
"""
    proc = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stderr[-3000:]
    n, modules = proc.stdout.split(' ', 1)
    assert int(n) > 100 and modules.strip() == '[]'
    assert 'no model is registered for dff files' in proc.stderr and 'import dff_rfcn.model first' in proc.stderr
