"""Test the frame baseline: per-frame detection on cfg.dataset.test_image_set (VID_val_frames),
the original's det_<image_set>_all.txt, ImageNet VID evaluation into eval.json."""
import os

import torch

from lib.core.tester import run_test
from lib.core.trainer import resolve_device
from lib.dataset.loader import make_imdb
from lib.model.detection import im_detect_boxes
from lib.utils import dist
from lib.utils.checkpoint import load_model_weights

from .model import RFCN


def test_rfcn(cfg, checkpoint, output_dir, thresh=None, model=None):
    device = resolve_device(cfg)
    _, _, local_rank = dist.init_from_env(device)
    dev = torch.device('cuda', local_rank) if device == 'cuda' else torch.device('cpu')
    if model is None:
        model = RFCN(cfg)
        load_model_weights(model, checkpoint)
    model.to(dev).eval()
    imdb = make_imdb(cfg, cfg.dataset.test_image_set)
    frames = imdb.test_frames()

    @torch.no_grad()
    def detect(frame, data, im_info):
        scores, boxes = im_detect_boxes(model.detect(data, im_info), im_info)
        return scores[0], boxes[0]

    annotation_root = os.path.join(imdb.data_path, 'Annotations', imdb.det_vid)
    return run_test(cfg, frames, detect, output_dir, cfg.dataset.test_image_set, annotation_root,
                    (imdb.classes, imdb.wnids), thresh=thresh, by_video=False, desc='rfcn test', device=device)
