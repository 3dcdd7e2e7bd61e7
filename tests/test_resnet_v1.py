"""ResNet-v1 backbone, frozen BN, MXNet names and optimiser rules (docs/fidelity.md §3.1, §3.2, §6.2, §10.2)."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from lib.model.frozen_bn import FrozenBatchNorm2d, make_bn
from lib.model.mxnet_names import (bn_module_names, mxnet_name, mxnet_to_torch, torch_key,
                                   torch_to_mxnet)
from lib.model.params import is_fixed, lr_mult_for, param_groups, weight_decay_for
from lib.model.resnet_v1 import ResNetV1, resnet_v1, stage_block_names

META = torch.device('meta')
FIXED = ['conv1', 'bn_conv1', 'res2', 'bn2', 'gamma', 'beta']


def meta_model(depth):
    with META:
        return resnet_v1(depth)


def mx_shapes(model):
    """{MXNet name: shape} of the model's whole state dict."""
    sd = model.state_dict()
    return {n: tuple(sd[k].shape) for k, n in torch_to_mxnet(model).items()}


def expected_resnet101():
    """The official names and shapes (docs/fidelity.md §10.2), built from their rules."""
    exp = {'arg:conv1_weight': (64, 3, 7, 7)}

    def bn(name, c):
        exp.update({f'arg:{name}_gamma': (c,), f'arg:{name}_beta': (c,),
                    f'aux:{name}_moving_mean': (c,), f'aux:{name}_moving_var': (c,)})

    bn('bn_conv1', 64)
    stages = [(2, ['a', 'b', 'c'], 64, 64),
              (3, ['a'] + [f'b{i}' for i in range(1, 4)], 128, 256),
              (4, ['a'] + [f'b{i}' for i in range(1, 23)], 256, 512),
              (5, ['a', 'b', 'c'], 512, 1024)]
    for s, blocks, mid, in_a in stages:
        out = 4 * mid
        for b in blocks:
            p = f'{s}{b}'
            shapes = {'2a': (mid, in_a if b == 'a' else out, 1, 1), '2b': (mid, mid, 3, 3),
                      '2c': (out, mid, 1, 1)}
            if b == 'a':
                shapes['1'] = (out, in_a, 1, 1)
            for br, shp in shapes.items():
                exp[f'arg:res{p}_branch{br}_weight'] = shp
                bn(f'bn{p}_branch{br}', shp[0])
    return exp


# ----------------------------------------------------------------------------- names and shapes
def test_resnet101_names_and_shapes_match_spec_table():
    model = meta_model(101)
    got = mx_shapes(model)
    exp = expected_resnet101()
    assert set(got) == set(exp), (sorted(set(got) - set(exp))[:5], sorted(set(exp) - set(got))[:5])
    assert got == exp
    # 104 convs (1 + 33 blocks x 3 + 4 projections), each with one BN
    n_arg = sum(n.startswith('arg:') for n in got)
    n_aux = sum(n.startswith('aux:') for n in got)
    assert (n_arg, n_aux) == (104 + 2 * 104, 2 * 104)
    assert len(list(model.parameters())) == n_arg
    assert model.out_channels == 2048
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert all(m.bias is None for m in model.modules() if isinstance(m, nn.Conv2d))


def test_block_names_50_101_152():
    assert stage_block_names((3, 4, 6, 3)) == [list('abc'), list('abcd'), list('abcdef'), list('abc')]
    n101 = stage_block_names((3, 4, 23, 3))
    assert n101[1] == ['a', 'b1', 'b2', 'b3'] and n101[2][-1] == 'b22' and n101[3] == list('abc')
    n152 = stage_block_names((3, 8, 36, 3))
    assert n152[0] == list('abc') and n152[1][-1] == 'b7' and n152[2][-1] == 'b35' and n152[3] == list('abc')
    assert stage_block_names((1, 1, 1, 1)) == [['a']] * 4
    assert stage_block_names((2, 5, 3, 1)) == [['a', 'b'], ['a', 'b1', 'b2', 'b3', 'b4'], list('abc'), ['a']]
    assert stage_block_names((3, 4, 6, 3), 'numbered')[2][-1] == 'b5'
    assert stage_block_names((3, 4, 23, 3), 'letters')[2][-1] == 'w'
    keys50 = torch_to_mxnet(meta_model(50)).values()
    assert 'arg:res4f_branch2c_weight' in keys50 and 'aux:bn3d_branch2a_moving_var' in keys50
    assert not any('b1_' in n for n in keys50)
    sd152 = mx_shapes(meta_model(152))
    assert sd152['arg:res4b35_branch2c_weight'] == (1024, 256, 1, 1)
    assert sd152['arg:res3b7_branch2a_weight'] == (128, 512, 1, 1)
    assert sum(n.endswith('_weight') for n in sd152) == 1 + 3 * 50 + 4


# ----------------------------------------------------------------------------- geometry
@pytest.mark.parametrize('hw,out', [((600, 1000), (38, 63)), ((562, 1000), (36, 63))])
def test_output_size_small_model_real_tensor(hw, out):
    torch.manual_seed(0)
    model = ResNetV1(units=(1, 1, 1, 1), width=8).eval()
    with torch.no_grad():
        y = model(torch.randn(1, 3, *hw))
    assert y.shape == (1, 32 * 8, *out)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize('hw,out', [((600, 1000), (38, 63)), ((562, 1000), (36, 63))])
def test_output_size_resnet101_meta(hw, out):
    model = meta_model(101)
    y = model(torch.empty(1, 3, *hw, device=META))
    assert y.shape == (1, 2048, *out)


def test_strides_dilation_and_pool1_floor():
    model = meta_model(101)
    for b in ('5a', '5b', '5c'):
        conv = getattr(model, f'res{b}_branch2b')
        assert conv.dilation == (2, 2) and conv.padding == (2, 2) and conv.stride == (1, 1)
    assert model.res5a_branch1.stride == (1, 1) and model.res5a_branch2a.stride == (1, 1)
    for s in (3, 4):
        assert getattr(model, f'res{s}a_branch2a').stride == (2, 2)
        assert getattr(model, f'res{s}a_branch1').stride == (2, 2)
        assert getattr(model, f'res{s}a_branch2b').stride == (1, 1)
        assert getattr(model, f'res{s}a_branch2b').dilation == (1, 1)
    assert model.res2a_branch2a.stride == (1, 1) and model.res2a_branch1.stride == (1, 1)
    assert model.res4b22_branch2b.dilation == (1, 1) and model.res4b22_branch2b.padding == (1, 1)
    assert model.pool1.ceil_mode is False
    assert (model.pool1.kernel_size, model.pool1.stride, model.pool1.padding) == (3, 2, 1)
    # a 300-pixel conv1 map (600-pixel image): floor gives 150, ceil would give 151
    x = torch.randn(1, 1, 300, 302)
    assert model.pool1(x).shape[-2:] == (150, 151)
    assert F.max_pool2d(x, 3, 2, 1, ceil_mode=True).shape[-2:] == (151, 152)


def _reference_forward(model, x):
    """Independent functional ResNet-v1 forward from the MXNet-named weights (docs/fidelity.md §3.1)."""
    sd = model.state_dict()
    w = {n: sd[k] for k, n in torch_to_mxnet(model).items()}

    def bn(y, name):
        return F.batch_norm(y, w[f'aux:{name}_moving_mean'], w[f'aux:{name}_moving_var'],
                            w[f'arg:{name}_gamma'], w[f'arg:{name}_beta'], training=False, eps=1e-5)

    def conv_bn(y, p, br, stride=1, dil=1):
        wt = w[f'arg:res{p}_branch{br}_weight']
        pad = dil * (wt.shape[-1] // 2)
        return bn(F.conv2d(y, wt, stride=stride, padding=pad, dilation=dil), f'bn{p}_branch{br}')

    y = F.relu(bn(F.conv2d(x, w['arg:conv1_weight'], stride=2, padding=3), 'bn_conv1'))
    y = F.max_pool2d(y, 3, 2, 1)
    for s, names in enumerate(model.stage_blocks):
        stride, dil = (1, 2, 2, 1)[s], (1, 1, 1, 2)[s]
        for b in names:
            p = f'{s + 2}{b}'
            st = stride if b == 'a' else 1
            short = conv_bn(y, p, '1', st) if b == 'a' else y
            z = F.relu(conv_bn(y, p, '2a', st))
            z = F.relu(conv_bn(z, p, '2b', 1, dil))
            y = F.relu(short + conv_bn(z, p, '2c'))
    return y


def test_forward_matches_functional_reference():
    torch.manual_seed(1)
    model = ResNetV1(units=(2, 2, 4, 2), width=4).double()
    with torch.no_grad():  # non-trivial BN statistics and affine
        for m in model.modules():
            if isinstance(m, FrozenBatchNorm2d):
                m.running_mean.normal_(0, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
    assert model.stage_blocks[2] == ['a', 'b1', 'b2', 'b3']
    x = torch.randn(2, 3, 70, 53, dtype=torch.float64)
    with torch.no_grad():
        y = model(x)
        ref = _reference_forward(model, x)
    assert y.shape == ref.shape == (2, 128, 5, 4)
    torch.testing.assert_close(y, ref, rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------- frozen BN
def test_frozen_bn_uses_stored_statistics():
    torch.manual_seed(2)
    bn = FrozenBatchNorm2d(5)
    with torch.no_grad():
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2)
        bn.weight.normal_()
        bn.bias.normal_()
    stats = (bn.running_mean.clone(), bn.running_var.clone())
    x = torch.randn(3, 5, 4, 6) * 3 + 1
    bn.train()
    y_train = bn(x)
    assert torch.equal(bn.running_mean, stats[0]) and torch.equal(bn.running_var, stats[1])
    bn.eval()
    y_eval = bn(x)
    torch.testing.assert_close(y_train, y_eval, rtol=0, atol=0)
    ref = (x - stats[0].view(1, -1, 1, 1)) / torch.sqrt(stats[1].view(1, -1, 1, 1) + 1e-5) \
        * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(y_train, ref, rtol=1e-5, atol=1e-5)
    # gradients reach gamma and beta, not the statistics (buffers)
    bn.train()
    bn(x).square().sum().backward()
    assert bn.weight.grad is not None and bn.weight.grad.abs().sum() > 0
    assert bn.bias.grad is not None and bn.bias.grad.abs().sum() > 0
    assert [n for n, _ in bn.named_parameters()] == ['weight', 'bias']
    assert sorted(n for n, _ in bn.named_buffers()) == ['running_mean', 'running_var']


def test_frozen_bn_in_model_train_mode_and_state_dict_interchange():
    torch.manual_seed(3)
    model = ResNetV1(units=(1, 1, 1, 1), width=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 3, 64, 64)
    model.train()
    y_train = model(x)
    model.eval()
    with torch.no_grad():
        y_eval = model(x)
    torch.testing.assert_close(y_train.detach(), y_eval, rtol=0, atol=0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # train-BN variant: regular BatchNorm2d, same names plus num_batches_tracked (no MXNet counterpart)
    tb = ResNetV1(units=(1, 1, 1, 1), width=4, train_bn=True)
    assert isinstance(tb.bn_conv1, nn.BatchNorm2d) and tb.bn_conv1.eps == 1e-5
    assert isinstance(make_bn(3, True), nn.BatchNorm2d) and isinstance(make_bn(3, False), FrozenBatchNorm2d)
    extra = set(tb.state_dict()) - set(model.state_dict())
    assert extra and all(k.endswith('.num_batches_tracked') for k in extra)
    assert mxnet_name('bn_conv1.num_batches_tracked', bn_module_names(tb)) is None
    assert torch_to_mxnet(tb) == torch_to_mxnet(model)
    # state dicts load across the two variants
    model.load_state_dict(tb.state_dict())
    tb.load_state_dict(model.state_dict())


# ----------------------------------------------------------------------------- name mapping
def test_mxnet_name_examples_and_round_trip_every_key():
    model = meta_model(101)
    bn = bn_module_names(model)
    assert mxnet_name('res4b17_branch2b.weight', bn) == 'arg:res4b17_branch2b_weight'
    assert mxnet_name('bn4b17_branch2b.weight', bn) == 'arg:bn4b17_branch2b_gamma'
    assert mxnet_name('bn4b17_branch2b.bias', bn) == 'arg:bn4b17_branch2b_beta'
    assert mxnet_name('bn4b17_branch2b.running_mean', bn) == 'aux:bn4b17_branch2b_moving_mean'
    assert mxnet_name('bn4b17_branch2b.running_var', model) == 'aux:bn4b17_branch2b_moving_var'
    assert mxnet_name('bn_conv1.running_mean', bn) == 'aux:bn_conv1_moving_mean'
    assert torch_key('arg:bn4b17_branch2b_gamma') == 'bn4b17_branch2b.weight'
    keys = list(model.state_dict())
    names = [mxnet_name(k, bn) for k in keys]
    assert len(set(names)) == len(keys)
    for k, n in zip(keys, names):
        assert torch_key(n) == k
    # nested under a parent module: the key's last module name is the layer name
    wrapper = nn.Module()
    wrapper.backbone = model
    m2t = mxnet_to_torch(wrapper)
    assert m2t['arg:res4b17_branch2b_weight'] == 'backbone.res4b17_branch2b.weight'
    assert all(torch_key(n, 'backbone.') == k for n, k in m2t.items())


def test_mxnet_names_for_head_and_flow_layers():
    net = nn.Module()
    net.deconv5 = nn.ConvTranspose2d(1024, 512, 4, stride=2, padding=1)
    net.Convolution5_scale = nn.Conv2d(194, 1024, 1)
    net.feat_conv_3x3 = nn.Conv2d(8, 4, 3, padding=6, dilation=6)
    net.rpn_cls_score = nn.Conv2d(4, 18, 1)
    net.flow_conv1 = nn.Conv2d(6, 64, 7, 2, 3)
    net.bn_x = FrozenBatchNorm2d(3)
    t2m = torch_to_mxnet(net)
    assert t2m['deconv5.weight'] == 'arg:deconv5_weight' and t2m['deconv5.bias'] == 'arg:deconv5_bias'
    assert net.deconv5.weight.shape == (1024, 512, 4, 4)  # MXNet Deconvolution layout (in, out, k, k)
    assert t2m['Convolution5_scale.weight'] == 'arg:Convolution5_scale_weight'
    assert t2m['Convolution5_scale.bias'] == 'arg:Convolution5_scale_bias'
    assert t2m['flow_conv1.weight'] == 'arg:flow_conv1_weight'
    assert t2m['rpn_cls_score.bias'] == 'arg:rpn_cls_score_bias'
    assert t2m['bn_x.weight'] == 'arg:bn_x_gamma'
    for k, n in t2m.items():
        assert torch_key(n) == k
    with pytest.raises(ValueError):
        torch_key('arg:rfcn_bbox_weight_test')
    with pytest.raises(ValueError):
        torch_key('res2a_branch1_weight')  # no arg:/aux:
    with pytest.raises(ValueError):
        mxnet_name('layers.0.weight', set())  # index, not a layer name
    with pytest.raises(ValueError):
        mxnet_name('bn_x.running_mean', set())  # BN state of a module not declared as BN


# ----------------------------------------------------------------------------- optimiser rules
def test_fixed_params_wd_and_lr_mult_rules():
    for n in ('arg:conv1_weight', 'arg:bn_conv1_gamma', 'arg:bn_conv1_beta', 'arg:res2a_branch1_weight',
              'arg:res2c_branch2b_weight', 'arg:bn2b_branch2a_gamma', 'arg:bn2a_branch1_beta'):
        assert is_fixed(n, FIXED), n
    for n in ('arg:bn3a_branch2a_gamma', 'arg:bn5c_branch2c_beta', 'arg:res3a_branch1_weight',
              'arg:feat_conv_3x3_weight', 'arg:flow_conv1_weight', 'arg:conv2_weight',
              'arg:Convolution5_scale_bias'):
        assert not is_fixed(n, FIXED), n
    assert is_fixed('bn2a_branch1_gamma', FIXED)  # bare argument names work too
    wd = 0.0005
    assert weight_decay_for('arg:res3a_branch1_weight', wd) == wd
    assert weight_decay_for('arg:bn3a_branch1_gamma', wd) == wd
    assert weight_decay_for('arg:bn3a_branch1_beta', wd) == 0
    assert weight_decay_for('arg:rpn_cls_score_bias', wd) == 0
    assert weight_decay_for('arg:deconv5_weight', wd) == wd
    assert lr_mult_for('arg:Convolution5_scale_bias') == 0
    assert lr_mult_for('arg:Convolution5_scale_weight') == 1
    assert lr_mult_for('arg:rfcn_cls_bias') == 1


def test_param_groups_on_resnet101_plus_scale_conv():
    net = nn.Module()
    with META:
        net.backbone = resnet_v1(101)
        net.Convolution5_scale = nn.Conv2d(194, 1024, 1)
    groups, summary = param_groups(net, FIXED, 0.0005)
    bn = bn_module_names(net)
    fixed = {mxnet_name(k, bn) for k, p in net.named_parameters() if not p.requires_grad}
    # conv1 + bn_conv1 (3) + res2: 3 blocks x 3 convs + branch1 = 10 convs with BN (30)
    assert len(fixed) == 3 + 30
    assert all(n.startswith(('arg:conv1_', 'arg:bn_conv1_', 'arg:res2', 'arg:bn2')) for n in fixed)
    assert summary['fixed'] == 33 and summary['trainable'] == 312 - 33 + 2
    in_groups = {id(p) for g in groups for p in g['params']}
    assert all(p.requires_grad == (id(p) in in_groups) for p in net.parameters())
    by = {(g['weight_decay'], g['lr_mult']): set(g['mx_names']) for g in groups}
    assert set(by) == {(0.0005, 1.0), (0.0, 1.0), (0.0, 0.0)}
    assert by[(0.0, 0.0)] == {'arg:Convolution5_scale_bias'}
    assert all(n.endswith(('_weight', '_gamma')) for n in by[(0.0005, 1.0)])
    assert all(n.endswith('_beta') for n in by[(0.0, 1.0)])
    assert 'arg:bn3a_branch2a_gamma' in by[(0.0005, 1.0)] and 'arg:bn3a_branch2a_beta' in by[(0.0, 1.0)]
    opt = torch.optim.SGD([{k: v for k, v in g.items()} for g in groups], lr=0.1)  # valid param groups
    assert len(opt.param_groups) == 3
