#!/usr/bin/env python
"""Train DFF end to end (backbone on the key frame, FlowNet + warp, loss on the current frame), then test
it with key frames every TEST.KEY_FRAME_INTERVAL frames: the original's dff_rfcn_end2end_train_test.py.

    python experiments/dff_rfcn/dff_rfcn_end2end_train_test.py --cfg experiments/dff_rfcn/cfgs/synthetic_vid_cpu.yaml
    torchrun --nproc_per_node 4 experiments/dff_rfcn/dff_rfcn_end2end_train_test.py --cfg experiments/dff_rfcn/cfgs/resnet_v1_101_flownet_imagenet_vid_rfcn_end2end_ohem.yaml
    python experiments/dff_rfcn/dff_rfcn_end2end_train_test.py --cfg ... --checkpoint model/rfcn_dff_flownet_vid-0000.params
Same options and outputs as the baseline's script (experiments/rfcn/rfcn_end2end_train_test.py); a
TEST.KEY_FRAME_INTERVAL other than the yaml's tests into <test_image_set>_interval<k>, TEST.ZERO_FLOW=true
into <test_image_set>_zero_flow. The FlowNet starts from network.pretrained_flow (dff_rfcn/train_flownet.py writes it for the synthetic config).
"""
import functools

from dff_rfcn.dataset import PairCollator, PairDataset
from dff_rfcn.test import TEST_SETTINGS, build_model, test  # the model and its test, as dff_rfcn/test.py runs them
from lib.core.experiment import train_test
from lib.dataset.loader import load_train_roidb
from lib.model.weights import load_pretrained
from lib.utils.cli import run_cli


def init_weights(model, cfg):
    # the official resnet_v1_101 file (or a bare backbone state dict) fills the backbone; a detector
    # checkpoint (the synthetic config starts from the trained synthetic baseline) fills the backbone,
    # feat_conv and the heads; the FlowNet comes from network.pretrained_flow
    load_pretrained(model, cfg.network.pretrained, cfg.network.pretrained_epoch, bare='feature.backbone',
                    skip=('flownet',), cfg=cfg)
    load_pretrained(model.flownet, cfg.network.pretrained_flow, cfg.network.pretrained_epoch,
                    what='network.pretrained_flow', cfg=cfg)


def train_data(cfg):
    return PairDataset(load_train_roidb(cfg), cfg), PairCollator(cfg)


if __name__ == '__main__':
    # a key-frame interval other than the yaml's gets its own test folder (lib/core/experiment.py)
    run_cli(functools.partial(train_test, test_settings=TEST_SETTINGS), __doc__, build_model, init_weights,
            train_data, test)
