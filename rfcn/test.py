#!/usr/bin/env python
"""Test a trained frame baseline (the original's rfcn/test.py): R-FCN on every frame of
dataset.test_image_set, the original's det_<test_image_set>_all.txt, ImageNet VID evaluation into eval.json.

    python rfcn/test.py --cfg experiments/rfcn/cfgs/resnet_v1_101_imagenet_vid_rfcn_end2end_ohem.yaml
    python rfcn/test.py --cfg experiments/rfcn/cfgs/resnet_v1_101_imagenet_vid_rfcn_end2end_ohem.yaml \\
        --checkpoint model/rfcn_vid-0000.params
    torchrun --nproc_per_node 4 rfcn/test.py --cfg ...
Without --checkpoint it tests what experiments/rfcn/rfcn_end2end_train_test.py trained with the same yaml
(<output_path>/<cfg name>/<image_set>/<model_prefix>-<end_epoch>.pth). --thresh, --set KEY=VALUE and the
output folders are those of that script (lib/core/experiment.py); the last line printed names eval.json.
"""
from lib.core.experiment import test_checkpoint
from lib.utils.cli import run_cli


def build_model(cfg):
    from rfcn.model import RFCN  # lazy: the model loads the custom ops; --help works before they are built
    return RFCN(cfg)


def test(cfg, checkpoint, output_dir, **kwargs):
    from rfcn.tester import test_rfcn  # lazy: the tester loads the custom ops; --help works before they are built
    return test_rfcn(cfg, checkpoint, output_dir, **kwargs)


if __name__ == '__main__':
    run_cli(test_checkpoint, __doc__, build_model, test)
