#!/usr/bin/env python
"""Train the frame baseline (R-FCN) end to end, then test it: the original's rfcn_end2end_train_test.py.

    python experiments/rfcn/rfcn_end2end_train_test.py --cfg experiments/rfcn/cfgs/synthetic_vid_cpu.yaml
    torchrun --nproc_per_node 4 experiments/rfcn/rfcn_end2end_train_test.py --cfg experiments/rfcn/cfgs/resnet_v1_101_imagenet_vid_rfcn_end2end_ohem.yaml
    python experiments/rfcn/rfcn_end2end_train_test.py --cfg ... --checkpoint model/rfcn_vid-0000.params
Options: --resume (continue the last run in the output folder; without it a folder that already holds a run
is refused), --skip-train, --skip-test, --checkpoint (test that file), --set KEY=VALUE (config overrides, e.g.
--set TRAIN.ACCUMULATE_GRAD=4), --thresh (test score threshold). Outputs under <output_path>/<cfg name>/:
<image_set>/<model_prefix>-<epoch>.pth, train.log, and <test_image_set>/det_<test_image_set>_all.txt + eval.json
(the last line printed names eval.json); another checkpoint or threshold tests into
<test_image_set>_<checkpoint stem>-<sha256[:8]> / _thresh<t> instead (lib/core/experiment.py).
"""
from lib.core.experiment import train_test
from lib.dataset.loader import BatchCollator, TrainDataset, load_train_roidb
from lib.model.weights import load_pretrained
from lib.utils.cli import run_cli
from rfcn.test import build_model, test  # the model and its test, as rfcn/test.py builds and runs them


def init_weights(model, cfg):
    # the official resnet_v1_101 file (or a bare backbone state dict) fills the backbone, as in the original;
    # an R-FCN checkpoint of this project fills the whole detector (fine-tuning a trained model)
    load_pretrained(model, cfg.network.pretrained, cfg.network.pretrained_epoch, bare='feature.backbone', cfg=cfg)


def train_data(cfg):
    return TrainDataset(load_train_roidb(cfg), cfg), BatchCollator(cfg)


if __name__ == '__main__':
    run_cli(train_test, __doc__, build_model, init_weights, train_data, test)
