"""Official MXNet checkpoints -> PyTorch (lib/model/convert_mxnet.py, tools/convert_mxnet.py, the .params
paths of lib/model/weights.py and lib/utils/checkpoint.py), docs/fidelity.md §10.

Fixtures (tests/fixtures/mxnet_models, made with MXNet 1.9.1 by make_mxnet_fixtures.py): the four kinds
of official file for a reduced network (TINY_SET) with random weights, and the outputs of MXNet symbols
of the baseline and DFF test networks with those weights (parity tests). The full-size test writes a
synthetic file with every official ResNet-101 / FlowNet / head name and shape (docs/fidelity.md §10.2) with this
project's writer and converts it into the real-config DFF model."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

import dff_rfcn.model  # noqa: F401 (registers the DFF model with the converter)
import rfcn.model  # noqa: F401 (registers the RFCN model with the converter)
from lib.config import load_config, update_from_list
from lib.model.convert_mxnet import (IGNORED_BY_NAME, MXNetConversionError, build_target, cache_path_for,
                                     convert_file, convert_params, detect_kind, select_module)
from lib.model.mxnet_names import torch_to_mxnet
from lib.model.weights import load_model_weights, load_pretrained
from lib.utils.fileio import load_torch
from lib.utils.mxnet_params import MXNetParamsError, load_params, save_params
from tools import convert_mxnet as convert_cli
from tools.convert_mxnet import DEFAULT_CFGS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, 'tests', 'fixtures', 'mxnet_models')
# the reduced network of the fixtures (make_mxnet_fixtures.py: BLOCKS, WIDTH, FEAT_DIM, FLOW_MULT, NUM_CLASSES)
TINY_SET = ['network.RESNET_UNITS=[1, 2, 4, 1]', 'network.RESNET_WIDTH=4', 'network.DFF_FEAT_DIM=16',
            'network.FLOW_WIDTH_MULT=0.03125', 'dataset.NUM_CLASSES=4']
FILES = {'resnet': 'resnet_tiny-0000.params', 'flownet': 'flownet_tiny-0000.params',
         'rfcn': 'rfcn_tiny-0000.params', 'dff': 'dff_tiny-0000.params'}
BBOX_STDS8 = np.array([0.1, 0.1, 0.2, 0.2] * 2)


def fix(kind):
    return os.path.join(FIX, FILES[kind])


def tiny_cfg(kind='dff', extra=()):
    return update_from_list(load_config(os.path.join(ROOT, DEFAULT_CFGS[kind])), TINY_SET + list(extra))


def tiny_model(kind):
    torch.manual_seed(0)
    return build_target(kind, tiny_cfg(kind)).eval()


@pytest.fixture(scope='module')
def params():
    return {k: load_params(fix(k)) for k in FILES}


def quiet(*a, **k):
    pass


# ------------------------------------------------------------------------------------------- kinds
def test_detect_kind(params):
    for kind, p in params.items():
        assert detect_kind(p) == kind
    with pytest.raises(MXNetConversionError, match='cannot tell'):
        detect_kind(['arg:foo_weight'], 'x.params')
    # bare names (an arg_params dict saved as is) are recognised too
    assert detect_kind({'arg:' + n[4:] for n in params['dff']}) == 'dff'


def test_select_module():
    dff = tiny_model('dff')
    assert select_module(dff, 'resnet') == (dff.feature.backbone, 'feature.backbone')
    assert select_module(dff, 'flownet') == (dff.flownet, 'flownet')
    assert select_module(dff.flownet, 'flownet') == (dff.flownet, '')
    assert select_module(dff, 'dff') == (dff, '')
    with pytest.raises(MXNetConversionError, match='build a DFF model'):
        select_module(tiny_model('rfcn'), 'dff')
    with pytest.raises(MXNetConversionError, match='build an RFCN model'):
        select_module(dff, 'rfcn')
    with pytest.raises(MXNetConversionError, match='not a FlowNetS'):
        select_module(dff.flownet, 'resnet')


# ------------------------------------------------------------------------------------------- values
def _check_values(conv, p, skip=()):
    for name, key in conv.used.items():
        if name in skip:
            continue
        assert torch.equal(conv.state_dict[key], torch.from_numpy(p[name])), name


def test_pretrained_resnet(params):
    p = params['resnet']
    backbone = tiny_model('resnet')
    conv = convert_params(p, backbone, source='resnet')
    assert conv.kind == 'resnet' and conv.module is backbone and conv.module_path == ''
    assert set(conv.state_dict) == set(backbone.state_dict())
    assert set(conv.used) == set(p) - set(IGNORED_BY_NAME)
    assert set(conv.ignored) == {'arg:fc1000_weight', 'arg:fc1000_bias'}
    assert not conv.kept and not conv.missing and not conv.unexpected
    _check_values(conv, p)
    sd = conv.state_dict
    assert torch.equal(sd['bn_conv1.weight'], torch.from_numpy(p['arg:bn_conv1_gamma']))
    assert torch.equal(sd['bn4b3_branch2b.running_var'], torch.from_numpy(p['aux:bn4b3_branch2b_moving_var']))
    assert torch.equal(sd['bn3b_branch2a.bias'], torch.from_numpy(p['arg:bn3b_branch2a_beta']))
    assert 'res4b1_branch2a.weight' in sd and 'res3b_branch2c.weight' in sd  # b1 and b naming both occur
    backbone.load_state_dict(sd)
    # into a whole model: the backbone part, keys relative to it
    dff = tiny_model('dff')
    conv2 = convert_params(p, dff)
    assert conv2.module is dff.feature.backbone and conv2.module_path == 'feature.backbone'
    text = '\n'.join(conv2.summary())
    assert "ignored arg:fc1000_weight: ImageNet classifier" in text and "feature.backbone" in text


def test_pretrained_flownet(params):
    p = params['flownet']
    flow = tiny_model('flownet')
    conv = convert_params(p, flow)
    assert conv.kind == 'flownet' and set(conv.used) == set(p) and not conv.ignored
    assert set(conv.kept) == {'Convolution5_scale.weight', 'Convolution5_scale.bias'}
    assert set(conv.state_dict) == set(flow.state_dict()) - set(conv.kept)
    _check_values(conv, p)
    # deconvolution weights (in, out, 4, 4) go straight into ConvTranspose2d
    assert tuple(conv.state_dict['deconv5.weight'].shape) == p['arg:deconv5_weight'].shape == (32, 16, 4, 4)
    flow.load_state_dict(conv.state_dict, strict=False)
    assert not flow.Convolution5_scale.weight.detach().any() and bool((flow.Convolution5_scale.bias == 1).all())


@pytest.mark.parametrize('kind', ['rfcn', 'dff'])
def test_trained_files_prefer_the_test_bbox_pair(params, kind):
    p = params[kind]
    model = tiny_model(kind)
    conv = convert_params(p, model)
    assert set(conv.state_dict) == set(model.state_dict())
    assert set(conv.used) == set(p) - {'arg:rfcn_bbox_weight', 'arg:rfcn_bbox_bias'}
    assert set(conv.ignored) == {'arg:rfcn_bbox_weight', 'arg:rfcn_bbox_bias'}
    assert conv.used['arg:rfcn_bbox_weight_test'] == 'heads.rfcn_bbox.weight'
    _check_values(conv, p, skip={'arg:rfcn_bbox_weight_test', 'arg:rfcn_bbox_bias_test'})
    if kind == 'dff':
        assert conv.used['arg:Convolution5_scale_weight'] == 'flownet.Convolution5_scale.weight'
        assert conv.used['arg:flow_conv1_weight'] == 'flownet.flow_conv1.weight'
        assert conv.used['arg:conv1_weight'] == 'feature.backbone.conv1.weight'
    # the _test pair is the plain pair de-normalised per output channel (std of delta c // 49): inverting it
    # gives the plain (normalised) weights back
    std = np.repeat(BBOX_STDS8, 49)
    w = conv.state_dict['heads.rfcn_bbox.weight'].numpy()
    b = conv.state_dict['heads.rfcn_bbox.bias'].numpy()
    np.testing.assert_array_equal(w, (p['arg:rfcn_bbox_weight_test'].astype(np.float64) / std[:, None, None, None])
                                  .astype(np.float32))
    np.testing.assert_allclose(w, p['arg:rfcn_bbox_weight'], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(b, p['arg:rfcn_bbox_bias'], rtol=1e-6, atol=1e-7)
    model.load_state_dict(conv.state_dict)


def test_trained_file_without_test_pair(params):
    p = dict(params['rfcn'])
    w_test, b_test = p.pop('arg:rfcn_bbox_weight_test'), p.pop('arg:rfcn_bbox_bias_test')
    plain_w = p['arg:rfcn_bbox_weight']
    model = tiny_model('rfcn')
    # raw training weights: as stored
    conv = convert_params(p, model, plain_bbox='normalized')
    assert torch.equal(conv.state_dict['heads.rfcn_bbox.weight'], torch.from_numpy(plain_w))
    assert any('normalised training weights' in n for n in conv.notes)
    # default: the original tester's reading, rfcn_bbox already de-normalised (a released file holding
    # the _test values under the plain names converts exactly like the _test pair)
    p['arg:rfcn_bbox_weight'], p['arg:rfcn_bbox_bias'] = w_test, b_test
    conv2 = convert_params(p, model)
    ref = convert_params(params['rfcn'], model)
    for k in ('heads.rfcn_bbox.weight', 'heads.rfcn_bbox.bias'):
        assert torch.equal(conv2.state_dict[k], ref.state_dict[k])
    assert any('taken as de-normalised' in n for n in conv2.notes)
    with pytest.raises(ValueError, match='plain_bbox'):
        convert_params(p, model, plain_bbox='raw')


def test_bare_names_and_ignore_patterns(params):
    p = {n[4:]: a for n, a in params['resnet'].items()}
    p['fc_extra_weight'] = np.zeros((2, 2), np.float32)
    backbone = tiny_model('resnet')
    with pytest.raises(MXNetConversionError, match='arg:fc_extra_weight'):
        convert_params(p, backbone)
    conv = convert_params(p, backbone, ignore=['arg:fc_extra*'])
    assert conv.ignored['arg:fc_extra_weight'] == 'matches an ignore pattern'
    assert any('no arg:/aux: prefix' in n for n in conv.notes)
    assert conv.used['aux:bn_conv1_moving_mean'] == 'bn_conv1.running_mean'


# ------------------------------------------------------------------------------------------- errors
def test_every_problem_is_listed_at_once(params):
    p = dict(params['rfcn'])
    del p['arg:res4b2_branch2b_weight'], p['aux:bn3b_branch2a_moving_var']
    p['arg:extra_layer_weight'] = np.zeros((3,), np.float32)
    p['arg:rfcn_cls_bias'] = np.zeros((5,), np.float32)
    with pytest.raises(MXNetConversionError) as e:
        convert_params(p, tiny_model('rfcn'), source='broken.params')
    msg = str(e.value)
    for s in ('broken.params', '1 shape/dtype mismatch',
              'arg:rfcn_cls_bias: file (5,) vs model heads.rfcn_cls.bias (196,)',
              '2 name(s) of the model missing', 'arg:res4b2_branch2b_weight -> feature.backbone.res4b2_branch2b.weight',
              'aux:bn3b_branch2a_moving_var', '1 unexpected name(s)', 'arg:extra_layer_weight (3,)'):
        assert s in msg, (s, msg)
    # strict=False: reported, not raised (shape mismatches still raise)
    del p['arg:rfcn_cls_bias']
    conv = convert_params(p, tiny_model('rfcn'), strict=False)
    assert len(conv.missing) == 3 and conv.unexpected == ['arg:extra_layer_weight (3,)']


def test_config_that_does_not_fit(params):
    with pytest.raises(MXNetConversionError) as e:
        convert_params(params['rfcn'], build_target('rfcn', tiny_cfg('rfcn', ['dataset.NUM_CLASSES=5'])))
    msg = str(e.value)
    assert '2 shape/dtype mismatch' in msg and 'arg:rfcn_cls_weight' in msg and 'NUM_CLASSES' in msg
    # another depth: res4b1..b3 (numbered, >3 blocks) vs res4b, res4c (letters)
    with pytest.raises(MXNetConversionError) as e:
        convert_params(params['resnet'], build_target('resnet', tiny_cfg('resnet', ['network.RESNET_UNITS=[1,2,3,1]'])))
    msg = str(e.value)
    assert 'arg:res4b_branch2a_weight' in msg and 'arg:res4b1_branch2a_weight' in msg
    # the real (ResNet-101) config: the same file is hopelessly small
    with pytest.raises(MXNetConversionError, match='missing in the file'):
        convert_file(fix('resnet'), load_config(os.path.join(ROOT, DEFAULT_CFGS['resnet'])))
    with pytest.raises(ValueError, match=r'needs the module to fill \(model=\) or the config'):
        convert_file(fix('resnet'))


def test_lone_test_array_is_unexpected(params):
    p = dict(params['rfcn'])
    del p['arg:rfcn_bbox_bias_test']
    with pytest.raises(MXNetConversionError, match='arg:rfcn_bbox_weight_test'):
        convert_params(p, tiny_model('rfcn'))


# ------------------------------------------------------------------------------------------- CLI
@pytest.mark.slow
def test_cli_subprocess(tmp_path):
    src = tmp_path / 'rfcn_vid-0000.params'
    shutil.copy(fix('rfcn'), src)
    cmd = [sys.executable, os.path.join(ROOT, 'tools', 'convert_mxnet.py'), str(src),
           '--cfg', os.path.join(ROOT, DEFAULT_CFGS['rfcn']), '--set'] + TINY_SET
    env = dict(os.environ, PYTHONPATH=ROOT)
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    dst = tmp_path / 'rfcn_vid-0000.pth'
    assert dst.is_file() and not [p for p in os.listdir(tmp_path) if '.tmp' in p]
    assert 'converted 155 arrays' in r.stdout and 'ignored arg:rfcn_bbox_weight: superseded' in r.stdout
    assert f'wrote {dst}' in r.stdout
    model = tiny_model('rfcn')
    ck = load_model_weights(model, str(dst))
    assert ck['kind'] == 'rfcn' and ck['module'] == ''
    ref = convert_params(load_params(fix('rfcn')), tiny_model('rfcn'))
    for k, v in model.state_dict().items():
        assert torch.equal(v, ref.state_dict[k]), k
    # a config that does not fit: exit status 2, one 'error:' line naming every problem
    r = subprocess.run(cmd[:3] + [str(tmp_path / 'other.pth')], capture_output=True, text=True, cwd=tmp_path,
                       timeout=300, env=env)
    assert r.returncode == 2 and 'missing in the file' in r.stderr and 'arg:res4b22_branch2c_weight' in r.stderr
    assert r.stderr.startswith('error: ') and 'Traceback' not in r.stderr and len(r.stderr.splitlines()) == 2
    assert not (tmp_path / 'other.pth').exists()


def test_cli_in_process_kinds_and_errors(tmp_path, capsys):
    cli = convert_cli
    for kind in ('resnet', 'flownet', 'dff'):
        dst = tmp_path / f'{kind}.pth'
        assert cli.main([fix(kind), str(dst), '--set'] + TINY_SET) == 0
        out = capsys.readouterr().out
        assert f'wrote {dst}' in out and DEFAULT_CFGS[kind] in out
        ck = load_torch(dst)
        assert ck['kind'] == kind and ck['converted_from']['size'] == os.path.getsize(fix(kind))
        if kind == 'resnet':
            assert ck['module'] == 'feature.backbone' and 'ignored arg:fc1000_bias' in out
        if kind == 'flownet':
            assert 'not in the file: Convolution5_scale.weight' in out
    bad = tmp_path / 'bad.params'
    bad.write_bytes(b'\0' * 40)
    with pytest.raises(MXNetParamsError, match='bad magic'):
        cli.main([str(bad)])
    with pytest.raises(FileNotFoundError):
        cli.main([str(tmp_path / 'none.params')])


# ------------------------------------------------------------------------------------------- on the fly
def test_load_pretrained_from_params(tmp_path):
    for kind, name in (('resnet', 'resnet_v1_101'), ('flownet', 'flownet')):
        shutil.copy(fix(kind), tmp_path / f'{name}-0000.params')
    logs = []
    dff = tiny_model('dff')
    loaded, skipped = load_pretrained(dff.feature.backbone, str(tmp_path / 'resnet_v1_101'), 0, log=logs.append)
    assert len(loaded) == len(dff.feature.backbone.state_dict()) and not skipped
    assert (tmp_path / 'resnet_v1_101-0000.pth').is_file()
    assert any('ignored arg:fc1000_weight' in s for s in logs) and any('cached as' in s for s in logs)
    p = load_params(fix('resnet'))
    assert torch.equal(dff.feature.backbone.res4b3_branch2c.weight, torch.from_numpy(p['arg:res4b3_branch2c_weight']))
    # second time: from the cache
    logs.clear()
    other = tiny_model('dff')
    load_pretrained(other.feature.backbone, str(tmp_path / 'resnet_v1_101'), 0, log=logs.append)
    assert any('using its converted copy' in s for s in logs), logs
    assert torch.equal(other.feature.backbone.conv1.weight, dff.feature.backbone.conv1.weight)
    # FlowNet: Convolution5_scale keeps its initial values; a whole model works too (fills model.flownet)
    loaded, _ = load_pretrained(dff, str(tmp_path / 'flownet'), 0, what='network.pretrained_flow', log=quiet)
    assert len(loaded) == len(dff.flownet.state_dict()) - 2
    assert torch.equal(dff.flownet.deconv2.weight, torch.from_numpy(load_params(fix('flownet'))['arg:deconv2_weight']))
    assert bool((dff.flownet.Convolution5_scale.bias == 1).all())
    # a changed .params invalidates its cache
    save_params(tmp_path / 'resnet_v1_101-0000.params', {n: a * 2 for n, a in p.items()}, fmt='legacy')
    os.utime(tmp_path / 'resnet_v1_101-0000.params', ns=(2 * 10 ** 18, 2 * 10 ** 18))
    load_pretrained(other.feature.backbone, str(tmp_path / 'resnet_v1_101'), 0, log=quiet)
    assert torch.equal(other.feature.backbone.conv1.weight, 2 * dff.feature.backbone.conv1.weight)
    # the wrong kind of file
    shutil.copy(fix('rfcn'), tmp_path / 'wrong-0000.params')
    with pytest.raises(MXNetConversionError, match='expected resnet'):
        load_pretrained(dff.feature.backbone, str(tmp_path / 'wrong'), 0, log=quiet)
    with pytest.raises(MXNetConversionError, match='not a ResNetV1'):
        load_pretrained(dff.feature.backbone, str(tmp_path / 'flownet'), 0, log=quiet)


def test_foreign_pth_next_to_params_is_used_and_never_overwritten(tmp_path):
    shutil.copy(fix('resnet'), tmp_path / 'r-0000.params')
    own = tiny_model('resnet').state_dict()
    torch.save({'model': own, 'note': 'mine'}, tmp_path / 'r-0000.pth')
    before = (tmp_path / 'r-0000.pth').read_bytes()
    backbone = tiny_model('resnet')
    load_pretrained(backbone, str(tmp_path / 'r'), 0, log=quiet)  # the user's .pth wins (first candidate)
    assert torch.equal(backbone.conv1.weight, own['conv1.weight'])
    logs = []
    load_pretrained(backbone, str(tmp_path / 'r-0000.params'), 0, log=logs.append)  # the .params named itself
    assert torch.equal(backbone.conv1.weight, torch.from_numpy(load_params(fix('resnet'))['arg:conv1_weight']))
    assert any('not cached' in s and 'left as it is' in s for s in logs), logs
    # the same for a trained file given to load_model_weights
    shutil.copy(fix('rfcn'), tmp_path / 'rfcn_vid-0000.params')
    (tmp_path / 'rfcn_vid-0000.pth').write_bytes(b'not a torch file')
    load_model_weights(tiny_model('rfcn'), str(tmp_path / 'rfcn_vid-0000.params'))
    assert (tmp_path / 'r-0000.pth').read_bytes() == before
    assert (tmp_path / 'rfcn_vid-0000.pth').read_bytes() == b'not a torch file'


def test_load_pretrained_unwritable_folder(tmp_path, monkeypatch):
    import lib.model.convert_mxnet as cm
    shutil.copy(fix('resnet'), tmp_path / 'r-0000.params')

    def refuse(*a, **k):
        raise PermissionError('read-only')
    monkeypatch.setattr(cm, 'write_conversion', refuse)
    logs = []
    backbone = tiny_model('resnet')
    loaded, _ = load_pretrained(backbone, str(tmp_path / 'r'), 0, log=logs.append)
    assert len(loaded) == len(backbone.state_dict()) and not (tmp_path / 'r-0000.pth').exists()
    assert any('not cached' in s for s in logs)


@pytest.mark.parametrize('kind', ['rfcn', 'dff'])
def test_load_model_weights_from_params(tmp_path, kind):
    src = tmp_path / FILES[kind]
    shutil.copy(fix(kind), src)
    model = tiny_model(kind)
    ck = load_model_weights(model, str(src))
    assert ck['kind'] == kind and os.path.isfile(cache_path_for(str(src)))
    ref = convert_params(load_params(fix(kind)), tiny_model(kind)).state_dict
    assert all(torch.equal(v, ref[k]) for k, v in model.state_dict().items())
    cached = load_torch(cache_path_for(str(src)))
    assert cached['converted_from']['path'] == str(src)
    model2 = tiny_model(kind)
    load_model_weights(model2, str(src))  # from the cache
    assert all(torch.equal(v, ref[k]) for k, v in model2.state_dict().items())
    # a model of the other kind / a pretrained file: clear errors
    with pytest.raises(MXNetConversionError):
        load_model_weights(tiny_model('dff' if kind == 'rfcn' else 'rfcn'), str(src))
    shutil.copy(fix('resnet'), tmp_path / 'res-0000.params')
    with pytest.raises(MXNetConversionError, match='expected rfcn'):
        load_model_weights(model, str(tmp_path / 'res-0000.params'))


# ------------------------------------------------------------------------------------------- parity
@pytest.fixture(scope='module')
def golden():
    z = np.load(os.path.join(FIX, 'parity_outputs.npz'))
    return {k: z[k] for k in z.files}


def _image(z, name):
    img = z[name].astype(np.float32) - z['pixel_means_rgb'].reshape(3, 1, 1)
    return torch.from_numpy(img)[None]


def _compare(out, z, prefix, report):
    rois, prob, bbox = (out[k].numpy() for k in ('rois', 'cls_prob', 'bbox_pred'))
    g_rois, g_prob, g_bbox = z[f'{prefix}_rois'], z[f'{prefix}_cls_prob'], z[f'{prefix}_bbox_pred']
    assert rois.shape == g_rois.shape == (300, 5)
    # the same boxes in the same order (float32 decoding differs by < 1e-3 px)
    assert np.array_equal(rois[:, 0], g_rois[:, 0])
    d_rois = np.abs(rois - g_rois).max()
    assert d_rois < 1e-3, d_rois
    # and the same set: sorted rows agree, as many distinct boxes
    key = lambda r: r[np.lexsort(r.T[::-1])]  # noqa: E731
    np.testing.assert_allclose(key(rois.round(2)), key(g_rois.round(2)), atol=0.011)
    assert len(np.unique(rois.round(2), axis=0)) == len(np.unique(g_rois.round(2), axis=0))
    d_prob = np.abs(prob - g_prob).max()
    d_bbox = np.abs(bbox - g_bbox).max()
    assert d_prob < 1e-4, d_prob
    assert d_bbox < 1e-4, d_bbox
    # non-degenerate: many distinct rois, probabilities that vary across rois and classes, real deltas
    top = g_prob.max(1)
    assert len(np.unique(g_rois.round(2), axis=0)) >= 100
    assert top.max() - top.min() > 0.4 and len(np.unique(g_prob.argmax(1))) >= 2
    assert g_bbox.std() > 0.05
    report[prefix] = (d_rois, d_prob, d_bbox)


def test_parity_frame_baseline(golden):
    z = golden
    model = tiny_model('rfcn')
    model.load_state_dict(convert_params(load_params(fix('rfcn')), model).state_dict)
    key, info = _image(z, 'key_image_u8'), torch.from_numpy(z['im_info'])
    with torch.no_grad():
        feat = model.feature(key)
        out = model.detect(key, info)
    g = z['rfcn_conv_feat']
    assert np.abs(feat.numpy() - g).max() < 1e-5 * np.abs(g).max()
    report = {}
    _compare(out, z, 'rfcn', report)
    print('parity (max abs diff rois px, cls_prob, bbox_pred):', report)


def test_parity_dff_key_and_current_frame(golden):
    z = golden
    model = tiny_model('dff')
    model.load_state_dict(convert_params(load_params(fix('dff')), model).state_dict)
    key, cur = _image(z, 'key_image_u8'), _image(z, 'cur_image_u8')
    info = torch.from_numpy(z['im_info'])
    report = {}
    with torch.no_grad():
        out, feat = model.detect_key(key, info)
        g = z['dff_key_conv_feat']
        assert np.abs(feat.numpy() - g).max() < 1e-5 * np.abs(g).max()
        _compare(out, z, 'dff_key', report)
        # current frame: FlowNet(cur, key) on the MXNet key features
        key_feat = torch.from_numpy(z['dff_key_conv_feat'])
        flow, scale = model.flownet(cur, key)
        g_flow, g_scale = z['dff_cur_flow'], z['dff_cur_scale']
        assert flow.shape == g_flow.shape and scale.shape == g_scale.shape == key_feat.shape
        d_flow, d_scale = np.abs(flow.numpy() - g_flow).max(), np.abs(scale.numpy() - g_scale).max()
        assert d_flow < 1e-5 and d_scale < 1e-5, (d_flow, d_scale)
        # a real flow: sub-pixel, both signs, both channels; a scale map that is not constant
        assert np.abs(g_flow).max() > 0.5 and g_flow.min() < 0 < g_flow.max() and g_scale.std() > 0.05
        warped = model.propagate(key_feat, cur, key)
        assert np.abs(warped.numpy() - z['dff_cur_warped']).max() < 1e-5 * np.abs(z['dff_cur_warped']).max()
        out = model.detect_cur(cur, info, key, key_feat)
    _compare(out, z, 'dff_cur', report)
    print('parity (max abs diff rois px, cls_prob, bbox_pred):', report, 'flow', d_flow, 'scale', d_scale)


# ------------------------------------------------------------------------------------------- full size
def official_dff_shapes():
    """Every name and shape of a trained official DFF file, (docs/fidelity.md §10.2), not taken from the model."""
    sh = {'arg:conv1_weight': (64, 3, 7, 7)}

    def bn(name, c):
        sh.update({f'arg:{name}_gamma': (c,), f'arg:{name}_beta': (c,), f'aux:{name}_moving_mean': (c,),
                   f'aux:{name}_moving_var': (c,)})

    bn('bn_conv1', 64)
    stages = [(2, ['a', 'b', 'c'], 64, 64), (3, ['a', 'b1', 'b2', 'b3'], 128, 256),
              (4, ['a'] + [f'b{i}' for i in range(1, 23)], 256, 512), (5, ['a', 'b', 'c'], 512, 1024)]
    for s, blocks, mid, in_a in stages:
        for b in blocks:
            convs = {'2a': (mid, in_a if b == 'a' else 4 * mid, 1, 1), '2b': (mid, mid, 3, 3),
                     '2c': (4 * mid, mid, 1, 1)}
            if b == 'a':
                convs['1'] = (4 * mid, in_a, 1, 1)
            for br, shp in convs.items():
                sh[f'arg:res{s}{b}_branch{br}_weight'] = shp
                bn(f'bn{s}{b}_branch{br}', shp[0])
    heads = {'feat_conv_3x3': (1024, 2048, 3, 3), 'rpn_cls_score': (18, 512, 1, 1), 'rpn_bbox_pred': (36, 512, 1, 1),
             'rfcn_cls': (1519, 512, 1, 1), 'rfcn_bbox': (392, 512, 1, 1), 'rfcn_bbox_{}_test': (392, 512, 1, 1)}
    flow = {'flow_conv1': (64, 6, 7, 7), 'conv2': (128, 64, 5, 5), 'conv3': (256, 128, 5, 5),
            'conv3_1': (256, 256, 3, 3), 'conv4': (512, 256, 3, 3), 'conv4_1': (512, 512, 3, 3),
            'conv5': (512, 512, 3, 3), 'conv5_1': (512, 512, 3, 3),
            'conv6': (1024, 512, 3, 3), 'conv6_1': (1024, 1024, 3, 3), 'Convolution1': (2, 1024, 3, 3),
            'deconv5': (1024, 512, 4, 4), 'upsample_flow6to5': (2, 2, 4, 4), 'Convolution2': (2, 1026, 3, 3),
            'deconv4': (1026, 256, 4, 4), 'upsample_flow5to4': (2, 2, 4, 4), 'Convolution3': (2, 770, 3, 3),
            'deconv3': (770, 128, 4, 4), 'upsample_flow4to3': (2, 2, 4, 4), 'Convolution4': (2, 386, 3, 3),
            'deconv2': (386, 64, 4, 4), 'upsample_flow3to2': (2, 2, 4, 4), 'Convolution5': (2, 194, 3, 3),
            'Convolution5_scale': (1024, 194, 1, 1)}
    for layers in (heads, flow):
        for name, w in layers.items():
            deconv = name.startswith(('deconv', 'upsample'))
            wn = f'arg:{name.format("weight")}' if '{}' in name else f'arg:{name}_weight'
            bn_ = f'arg:{name.format("bias")}' if '{}' in name else f'arg:{name}_bias'
            sh[wn] = w
            sh[bn_] = (w[1],) if deconv else (w[0],)
    return sh


@pytest.mark.slow
def test_full_size_official_names_into_the_real_dff_model(tmp_path):
    shapes = official_dff_shapes()
    n_resnet = sum(1 for n in shapes if n.startswith(('arg:conv1_', 'arg:res', 'arg:bn', 'aux:bn')))
    assert n_resnet == 104 * 5  # conv1 + 33 blocks x 3 + 4 branch1 = 104 convs, each with a 4-array BN
    rng = np.random.default_rng(0)
    marked = {'arg:conv1_weight', 'aux:bn4b22_branch2c_moving_var', 'arg:deconv5_weight', 'arg:Convolution5_scale_bias',
              'arg:rfcn_bbox_weight_test', 'arg:rfcn_bbox_bias_test', 'arg:feat_conv_3x3_bias'}
    arrays = {n: (rng.normal(size=s).astype(np.float32) if n in marked else np.zeros(s, np.float32))
              for n, s in shapes.items()}
    path = save_params(tmp_path / 'rfcn_dff_flownet_vid-0000.params', arrays)
    p = {n: arrays[n] for n in marked}
    del arrays
    conv = convert_file(path, load_config(os.path.join(ROOT, DEFAULT_CFGS['dff'])))  # the real config, meta device
    assert conv.kind == 'dff' and type(conv.module).__name__ == 'DFF'
    model_keys = conv.module.state_dict()
    assert set(conv.state_dict) == set(model_keys)
    assert len(conv.used) == len(shapes) - 2 and set(conv.ignored) == {'arg:rfcn_bbox_weight', 'arg:rfcn_bbox_bias'}
    assert all(tuple(v.shape) == tuple(model_keys[k].shape) for k, v in conv.state_dict.items())
    assert set(torch_to_mxnet(conv.module).values()) | {'arg:rfcn_bbox_weight_test', 'arg:rfcn_bbox_bias_test'} == \
        set(shapes)
    sd = conv.state_dict
    assert torch.equal(sd['feature.backbone.conv1.weight'], torch.from_numpy(p['arg:conv1_weight']))
    assert torch.equal(sd['feature.backbone.bn4b22_branch2c.running_var'],
                       torch.from_numpy(p['aux:bn4b22_branch2c_moving_var']))
    assert torch.equal(sd['flownet.deconv5.weight'], torch.from_numpy(p['arg:deconv5_weight']))
    assert torch.equal(sd['flownet.Convolution5_scale.bias'], torch.from_numpy(p['arg:Convolution5_scale_bias']))
    std = np.repeat(BBOX_STDS8, 49)
    np.testing.assert_allclose(sd['heads.rfcn_bbox.bias'].numpy(), p['arg:rfcn_bbox_bias_test'] / std, rtol=1e-6)
    # loads into the model (assign: the meta-device model takes the tensors)
    conv.module.load_state_dict(sd, strict=True, assign=True)
    assert conv.module.feature.backbone.conv1.weight.device.type == 'cpu'
    # the pretrained kinds of the same names: backbone only (plus the ImageNet classifier) / FlowNet only
    del sd, conv
    res = {n: np.zeros(s, np.float32) for n, s in shapes.items()
           if n.startswith(('arg:conv1_', 'arg:res', 'arg:bn', 'aux:bn'))}
    res['arg:fc1000_weight'] = np.zeros((1000, 2048), np.float32)
    res['arg:fc1000_bias'] = np.zeros((1000,), np.float32)
    c = convert_params(res, build_target('resnet', load_config(os.path.join(ROOT, DEFAULT_CFGS['resnet'])), 'meta'))
    assert c.kind == 'resnet' and len(c.used) == n_resnet and len(c.ignored) == 2
    flow = {n: np.zeros(s, np.float32) for n, s in shapes.items()
            if n.startswith('arg:') and not n[4:].startswith(('conv1_', 'res', 'bn', 'feat_conv', 'rpn_', 'rfcn_',
                                                              'Convolution5_scale'))}
    c = convert_params(flow, build_target('flownet', load_config(os.path.join(ROOT, DEFAULT_CFGS['flownet'])), 'meta'))
    assert c.kind == 'flownet' and len(c.used) == 46 and set(c.kept) == {'Convolution5_scale.weight',
                                                                          'Convolution5_scale.bias'}
