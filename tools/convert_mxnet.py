#!/usr/bin/env python
"""Convert an official MXNet checkpoint of Deep Feature Flow into this port's .pth (docs/official_models.md).

    python tools/convert_mxnet.py model/pretrained_model/resnet_v1_101-0000.params
    python tools/convert_mxnet.py model/pretrained_model/flownet-0000.params
    python tools/convert_mxnet.py model/rfcn_vid-0000.params
    python tools/convert_mxnet.py model/rfcn_dff_flownet_vid-0000.params [DST.pth] [--cfg CFG] [--set KEY=VALUE ...]

The kind of file (pretrained ResNet / pretrained FlowNet / trained R-FCN / trained DFF) is told from its
names. DST defaults to SRC with .pth instead of .params. The target network is built from --cfg (default:
the real config of the kind, experiments/{rfcn,dff_rfcn}/cfgs/resnet_v1_101_*.yaml) plus --set overrides;
every name of the file must fit it (else: one error listing every missing, unexpected or mis-shaped name).
The .pth is a checkpoint of this project: {'model': state dict, 'kind', 'module', 'converted_from', ...},
written to a temporary file and renamed. Pretrained files give the state dict of the backbone
(model.feature.backbone) or of the FlowNet (model.flownet), which network.pretrained / pretrained_flow
load; trained files give the whole RFCN / DFF model's state dict, which the test scripts load.

Converting is optional: network.pretrained(_flow) prefixes and test checkpoints may name the .params
directly; it is converted on the fly and cached as .pth next to it.
"""
import argparse
import os
import sys

from lib.config import load_config, update_from_list
from lib.model.convert_mxnet import (KINDS, build_target, cache_path_for, convert_params, detect_kind, with_prefixes,
                                     write_conversion)
from lib.utils.cli import run_cli
from lib.utils.mxnet_params import load_params

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
# the real configs of the official experiments (the default when converting without --cfg)
DEFAULT_CFGS = {
    'resnet': 'experiments/rfcn/cfgs/resnet_v1_101_imagenet_vid_rfcn_end2end_ohem.yaml',
    'flownet': 'experiments/dff_rfcn/cfgs/resnet_v1_101_flownet_imagenet_vid_rfcn_end2end_ohem.yaml',
    'rfcn': 'experiments/rfcn/cfgs/resnet_v1_101_imagenet_vid_rfcn_end2end_ohem.yaml',
    'dff': 'experiments/dff_rfcn/cfgs/resnet_v1_101_flownet_imagenet_vid_rfcn_end2end_ohem.yaml',
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('src', help='official MXNet checkpoint, <prefix>-<epoch:04d>.params')
    p.add_argument('dst', nargs='?', default=None, help='output .pth (default: SRC with .pth)')
    p.add_argument('--cfg', default=None, help='experiment yaml the network is built from (default by kind: '
                   + '; '.join(f'{k}: {v}' for k, v in DEFAULT_CFGS.items()) + ')')
    p.add_argument('--set', nargs='*', action='extend', default=[], metavar='KEY=VALUE',
                   help='config overrides (yaml values); may be repeated')
    p.add_argument('--kind', choices=list(KINDS), default=None, help='override the detected kind')
    p.add_argument('--bbox', choices=['denormalized', 'normalized'], default='denormalized',
                   help='trained files without rfcn_bbox_*_test: whether rfcn_bbox is already de-normalised (as the '
                        'original tester assumes; default) or holds raw normalised training weights')
    p.add_argument('--ignore', nargs='*', default=[], metavar='PATTERN',
                   help="extra names to ignore (fnmatch patterns, e.g. 'arg:fc*')")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    dst = args.dst or cache_path_for(args.src)
    params, _ = with_prefixes(load_params(args.src))
    kind = args.kind or detect_kind(params, args.src)
    cfg_path = args.cfg or os.path.join(ROOT, DEFAULT_CFGS[kind])
    cfg = update_from_list(load_config(cfg_path), args.set)
    if kind in ('rfcn', 'dff'):  # the whole models register themselves with the converter when imported
        import dff_rfcn.model  # noqa: F401  # lazy: loads the custom ops, which the pretrained kinds do without
        import rfcn.model  # noqa: F401  # lazy: loads the custom ops, which the pretrained kinds do without
    target = build_target(kind, cfg, device='meta')  # names and shapes only
    conv = convert_params(params, target, kind=kind, source=args.src, plain_bbox=args.bbox, ignore=args.ignore)
    print(f'config: {cfg_path}' + (f' with {" ".join(args.set)}' if args.set else ''))
    for line in conv.summary():
        print(line)
    write_conversion(conv, args.src, dst)
    print(f'wrote {dst}')
    return 0


if __name__ == '__main__':
    sys.exit(run_cli(main))  # bad input (a file that is not an MXNet .params, a config that does not fit,
    # a full disk): one 'error:' line, exit status 2
