"""Which parameters train and how (train_end2end.py + MXNet optimizer defaults, docs/fidelity.md §6.2), decided
on the MXNet names of the parameters (lib/model/mxnet_names.py):

- fixed:        the argument name starts with one of network.FIXED_PARAMS (conv1, bn_conv1, res2, bn2,
                gamma, beta). Quirk kept: 'gamma' / 'beta' match nothing, since BN names start with
                'bn', so the BN gamma/beta of res3-res5 are trained.
- weight decay: wd for names ending in _weight or _gamma, 0 otherwise (biases, BN betas).
- lr_mult:      0 for Convolution5_scale_bias (initialised to 1 and kept there), 1 otherwise.
"""
from collections import OrderedDict

from .mxnet_names import bn_module_names, mxnet_name

LR_MULT = {'Convolution5_scale_bias': 0.0}


def _arg_name(mx_name):
    """'arg:res3a_branch1_weight' -> 'res3a_branch1_weight' (also strips aux:; bare names pass)."""
    kind, sep, rest = mx_name.partition(':')
    return rest if sep and kind in ('arg', 'aux') else mx_name


def is_fixed(mx_name, fixed_prefixes):
    name = _arg_name(mx_name)
    return any(name.startswith(p) for p in fixed_prefixes)


def weight_decay_for(mx_name, wd):
    name = _arg_name(mx_name)
    return float(wd) if name.endswith('_weight') or name.endswith('_gamma') else 0.0


def lr_mult_for(mx_name):
    return LR_MULT.get(_arg_name(mx_name), 1.0)


def param_groups(model, fixed_prefixes, wd):
    """torch.optim parameter groups for `model` under the rules above.

    Fixed parameters get requires_grad_(False) and are left out; every other parameter gets
    requires_grad_(True) (the rules alone decide what trains) and goes into the group of its
    (weight_decay, lr_mult). Each group: {'params', 'weight_decay', 'lr_mult', 'mx_names'}.
    Returns (groups, summary), summary = counts of tensors / elements trained and fixed, and
    tensors per group.
    """
    fixed_prefixes = tuple(fixed_prefixes)
    bn = bn_module_names(model)
    by_key = OrderedDict()
    summary = {'trainable': 0, 'trainable_numel': 0, 'fixed': 0, 'fixed_numel': 0}
    for key, p in model.named_parameters():
        name = mxnet_name(key, bn)
        if is_fixed(name, fixed_prefixes):
            p.requires_grad_(False)
            summary['fixed'] += 1
            summary['fixed_numel'] += p.numel()
            continue
        p.requires_grad_(True)
        summary['trainable'] += 1
        summary['trainable_numel'] += p.numel()
        g = by_key.setdefault((weight_decay_for(name, wd), lr_mult_for(name)),
                              {'params': [], 'mx_names': []})
        g['params'].append(p)
        g['mx_names'].append(name)
    groups = []
    for (w, m), g in by_key.items():
        groups.append({'params': g['params'], 'weight_decay': w, 'lr_mult': m, 'mx_names': g['mx_names']})
        summary[f'wd={w:g},lr_mult={m:g}'] = len(g['params'])
    return groups, summary
