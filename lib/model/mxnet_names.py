"""One-to-one mapping between PyTorch state-dict keys and MXNet checkpoint names (docs/fidelity.md §10.2).

Every layer of the port is a module whose attribute name is the official MXNet layer name, so the
MXNet name of a state-dict key depends only on the key's last module name, its attribute, and
whether that module is a batch norm:

    torch key (any module path)          MXNet name
    <path.>X.weight   (conv / deconv)    arg:X_weight
    <path.>X.bias     (conv / deconv)    arg:X_bias
    <path.>X.weight   (batch norm)       arg:X_gamma
    <path.>X.bias     (batch norm)       arg:X_beta
    <path.>X.running_mean                aux:X_moving_mean
    <path.>X.running_var                 aux:X_moving_var
    <path.>X.num_batches_tracked         none (nn.BatchNorm2d step counter, train-BN variant only)

The only information a key lacks is whether X is a batch norm (weight -> _weight or _gamma); it
comes from the set of batch-norm module paths, `bn_module_names(model)`, recognised by their
`running_mean` buffer. The inverse needs no such set: _gamma/_beta/_moving_* are batch-norm names.
Conv and ConvTranspose2d weights have the MXNet layouts (out, in, kh, kw) and (in, out, kh, kw)
respectively, so values copy across unchanged.

Names that are not parameters of the port have no torch key: the checkpoint-time
`arg:rfcn_bbox_{weight,bias}_test` copies (a loader picks those itself, docs/fidelity.md §10.3) and unused extras.
"""
import torch.nn as nn

_CONV = {'weight': 'weight', 'bias': 'bias'}
_BN_ARG = {'weight': 'gamma', 'bias': 'beta'}
_BN_AUX = {'running_mean': 'moving_mean', 'running_var': 'moving_var'}
NO_MXNET_COUNTERPART = frozenset({'num_batches_tracked'})

# MXNet suffix -> (kind, torch attribute); the suffixes are distinct, so parsing is unambiguous
_MX_SUFFIX = {
    ('arg', 'weight'): 'weight', ('arg', 'bias'): 'bias',
    ('arg', 'gamma'): 'weight', ('arg', 'beta'): 'bias',
    ('aux', 'moving_mean'): 'running_mean', ('aux', 'moving_var'): 'running_var',
}


def bn_module_names(model_or_keys):
    """Paths (as in state-dict keys, '' for the root) of the batch-norm modules: those with a
    `running_mean` entry. Accepts a module or an iterable of state-dict keys."""
    keys = model_or_keys.state_dict().keys() if isinstance(model_or_keys, nn.Module) else model_or_keys
    out = set()
    for k in keys:
        if k == 'running_mean':
            out.add('')
        elif k.endswith('.running_mean'):
            out.add(k[:-len('.running_mean')])
    return frozenset(out)


def _split_key(key):
    module, _, attr = key.rpartition('.')
    if not module:
        raise ValueError(f'state-dict key {key!r} has no module name (parameters must live in a named layer)')
    layer = module.rpartition('.')[2]
    if not layer or layer.isdigit():
        raise ValueError(f'state-dict key {key!r}: layer name {layer!r} is not an MXNet layer name '
                         f'(register layers under their official names, not in Sequential/ModuleList indices)')
    return module, layer, attr


def mxnet_name(key, bn_modules):
    """'backbone.res4b17_branch2b.weight' -> 'arg:res4b17_branch2b_weight';
    'bn_conv1.running_mean' (bn_conv1 in bn_modules) -> 'aux:bn_conv1_moving_mean'.

    bn_modules: the batch-norm module paths (`bn_module_names(model)`; pass the set when mapping many
    keys) or the model itself. Returns None for `num_batches_tracked` (no MXNet counterpart); raises
    ValueError for anything else it cannot map."""
    if isinstance(bn_modules, nn.Module):
        bn_modules = bn_module_names(bn_modules)
    module, layer, attr = _split_key(key)
    if module in bn_modules:
        if attr in NO_MXNET_COUNTERPART:
            return None
        if attr in _BN_ARG:
            return f'arg:{layer}_{_BN_ARG[attr]}'
        if attr in _BN_AUX:
            return f'aux:{layer}_{_BN_AUX[attr]}'
        raise ValueError(f'batch-norm key {key!r}: unknown attribute {attr!r}')
    if attr in _CONV:
        return f'arg:{layer}_{_CONV[attr]}'
    if attr in _BN_AUX or attr in NO_MXNET_COUNTERPART:
        raise ValueError(f'key {key!r} looks like batch-norm state but {module!r} is not in bn_modules')
    raise ValueError(f'key {key!r}: unknown attribute {attr!r} (expected weight or bias)')


def torch_key(name, prefix=''):
    """Inverse of mxnet_name: 'arg:bn4b17_branch2b_gamma' -> prefix + 'bn4b17_branch2b.weight'.
    prefix is the module path holding the layer, with its trailing dot (e.g. 'backbone.')."""
    kind, sep, arg = name.partition(':')
    if not sep or kind not in ('arg', 'aux'):
        raise ValueError(f'MXNet name {name!r} does not start with arg: or aux:')
    for (k, suffix), attr in _MX_SUFFIX.items():
        if k == kind and arg.endswith('_' + suffix) and len(arg) > len(suffix) + 1:
            return f'{prefix}{arg[:-len(suffix) - 1]}.{attr}'
    raise ValueError(f'MXNet name {name!r} has no torch counterpart (expected an {kind}: name ending in '
                     + ', '.join('_' + s for (k, s) in _MX_SUFFIX if k == kind) + ')')


def torch_to_mxnet(model_or_keys):
    """{state-dict key: MXNet name} for every key that has one (num_batches_tracked left out).
    Raises ValueError if two keys would get the same MXNet name."""
    keys = list(model_or_keys.state_dict().keys() if isinstance(model_or_keys, nn.Module) else model_or_keys)
    bn = bn_module_names(keys)
    out, seen = {}, {}
    for k in keys:
        n = mxnet_name(k, bn)
        if n is None:
            continue
        if n in seen:
            raise ValueError(f'{k!r} and {seen[n]!r} both map to {n!r}')
        seen[n] = k
        out[k] = n
    return out


def mxnet_to_torch(model_or_keys):
    """{MXNet name: state-dict key}, the inverse dict of torch_to_mxnet (for loading converted
    checkpoints into a model whose layers sit at any module path)."""
    return {n: k for k, n in torch_to_mxnet(model_or_keys).items()}
