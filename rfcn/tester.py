"""Test the frame baseline: per-frame detection on cfg.dataset.test_image_set (VID_val_frames),
the original's det_<image_set>_all.txt, ImageNet VID evaluation into eval.json."""
import torch

from lib.core.tester import run_model_test
from lib.model.detection import im_detect_boxes

from .model import RFCN


def test_rfcn(cfg, checkpoint, output_dir, thresh=None, model=None):
    def make_detector(net):
        @torch.no_grad()
        def detect(frame, data, im_info):
            scores, boxes = im_detect_boxes(net.detect(data, im_info), im_info)
            return scores[0], boxes[0]
        return detect

    return run_model_test(cfg, RFCN, checkpoint, output_dir, make_detector, thresh=thresh, model=model, by_video=False,
                      desc='rfcn test')
