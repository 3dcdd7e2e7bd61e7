#!/usr/bin/env python
"""Test a trained DFF (the original's dff_rfcn/test.py): per video, a key frame every
TEST.KEY_FRAME_INTERVAL frames (full network), the others by FlowNet + warp + heads from the last key frame;
the original's det_<test_image_set>_all.txt, ImageNet VID evaluation into eval.json.

    python dff_rfcn/test.py --cfg experiments/dff_rfcn/cfgs/resnet_v1_101_flownet_imagenet_vid_rfcn_end2end_ohem.yaml
    python dff_rfcn/test.py --cfg experiments/dff_rfcn/cfgs/resnet_v1_101_flownet_imagenet_vid_rfcn_end2end_ohem.yaml \\
        --checkpoint model/rfcn_dff_flownet_vid-0000.params [--set TEST.KEY_FRAME_INTERVAL=5]
    torchrun --nproc_per_node 4 dff_rfcn/test.py --cfg ...
Without --checkpoint it tests what experiments/dff_rfcn/dff_rfcn_end2end_train_test.py trained with the same
yaml (<output_path>/<cfg name>/<image_set>/<model_prefix>-<end_epoch>.pth). --thresh, --set KEY=VALUE and the
output folders are those of that script (lib/core/experiment.py: a TEST.KEY_FRAME_INTERVAL other than the
yaml's tests into <test_image_set>_interval<k>, TEST.KEY_FRAME_SCHEDULE=adaptive into <test_image_set>_adaptive
(docs/key_frames.md), TEST.ZERO_FLOW=true into <test_image_set>_zero_flow).
"""
import functools

from lib.core.experiment import test_checkpoint
from lib.utils.cli import run_cli

# the settings whose values, when other than the yaml's, get a test folder of their own
TEST_SETTINGS = ('TEST.thresh', 'TEST.KEY_FRAME_INTERVAL', 'TEST.KEY_FRAME_SCHEDULE', 'TEST.KEY_FRAME_MAX_INTERVAL',
                 'TEST.KEY_FRAME_CUT_THRESH', 'TEST.KEY_FRAME_WARP_ERROR', 'TEST.KEY_FRAME_BAD_FRACTION',
                 'TEST.KEY_FRAME_TRIGGER', 'TEST.KEY_FRAME_RENEWAL_COST', 'TEST.KEY_FRAME_SCORE_DROP')


def build_model(cfg):
    from dff_rfcn.model import DFF  # lazy: the model loads the custom ops; --help works before they are built
    return DFF(cfg)


def test(cfg, checkpoint, output_dir, **kwargs):
    from dff_rfcn.tester import test_dff  # lazy: the tester loads the custom ops; --help works before they are built
    return test_dff(cfg, checkpoint, output_dir, **kwargs)


if __name__ == '__main__':
    run_cli(functools.partial(test_checkpoint, test_settings=TEST_SETTINGS), __doc__, build_model, test)
