"""The real ResNet-101 R-FCN configuration: names and shapes of the whole model equal the official table
(docs/fidelity.md §10.2), and one training iteration on one 600x1000 image runs on the CPU: finite losses, gradients
only where the original trains (docs/fidelity.md §6.2), and an optimiser step that moves exactly those weights."""
import os

import cv2
import numpy as np
import pytest
import torch

from lib.config import load_config, update_from_list
from lib.core.trainer import MXNetSGD
from lib.dataset.loader import BatchCollator, TrainDataset
from lib.model.mxnet_names import torch_to_mxnet
from lib.model.params import param_groups
from rfcn.model import RFCN
from tests.test_resnet_v1 import expected_resnet101

REAL_CFG = 'experiments/rfcn/cfgs/resnet_v1_101_imagenet_vid_rfcn_end2end_ohem.yaml'


def real_cfg(*overrides):
    return update_from_list(load_config(REAL_CFG), ['network.pretrained=""', 'TRAIN.NUM_WORKERS=0', *overrides])


def expected_rfcn_resnet101():
    exp = expected_resnet101()
    exp.update({'arg:feat_conv_3x3_weight': (1024, 2048, 3, 3), 'arg:feat_conv_3x3_bias': (1024,),
                'arg:rpn_cls_score_weight': (18, 512, 1, 1), 'arg:rpn_cls_score_bias': (18,),
                'arg:rpn_bbox_pred_weight': (36, 512, 1, 1), 'arg:rpn_bbox_pred_bias': (36,),
                'arg:rfcn_cls_weight': (1519, 512, 1, 1), 'arg:rfcn_cls_bias': (1519,),
                'arg:rfcn_bbox_weight': (392, 512, 1, 1), 'arg:rfcn_bbox_bias': (392,)})
    return exp


def test_real_config_names_and_shapes_equal_spec_table():
    with torch.device('meta'):
        model = RFCN(real_cfg())
    sd = model.state_dict()
    got = {n: tuple(sd[k].shape) for k, n in torch_to_mxnet(model).items()}
    exp = expected_rfcn_resnet101()
    assert set(got) == set(exp), (sorted(set(got) - set(exp))[:5], sorted(set(exp) - set(got))[:5])
    assert got == exp


def _image_600x1000(tmp_path):
    rng = np.random.default_rng(0)
    im = cv2.resize(rng.integers(0, 256, (30, 50, 3), dtype=np.uint8), (1000, 600), interpolation=cv2.INTER_CUBIC)
    cv2.rectangle(im, (200, 150), (420, 380), (20, 200, 40), -1)
    cv2.circle(im, (760, 300), 90, (200, 30, 180), -1)
    path = str(tmp_path / 'frame.JPEG')
    cv2.imwrite(path, im)
    return {'image': path, 'height': 600, 'width': 1000, 'flipped': False, 'frame_id': 1,
            'boxes': np.array([[200, 150, 420, 380], [670, 210, 850, 390]], np.uint16),
            'gt_classes': np.array([3, 9], np.int32)}


@pytest.mark.slow
def test_one_training_iteration_resnet101_600x1000_cpu(tmp_path):
    cfg = real_cfg()
    torch.manual_seed(0)
    model = RFCN(cfg)
    groups, summary = param_groups(model, list(cfg.network.FIXED_PARAMS), float(cfg.TRAIN.wd))
    opt = MXNetSGD(groups, lr=float(cfg.TRAIN.lr), momentum=float(cfg.TRAIN.momentum))
    ds = TrainDataset([_image_600x1000(tmp_path)], cfg)
    batch = BatchCollator(cfg)([ds[(0, 0)]])
    assert tuple(batch['data'].shape) == (1, 3, 600, 1000)
    assert tuple(batch['rpn_label'].shape) == (1, 9, 38, 63)
    model.train()
    losses = model(batch)
    assert set(losses) == {'rpn_cls_loss', 'rpn_bbox_loss', 'rcnn_cls_loss', 'rcnn_bbox_loss'}
    for k, v in losses.items():
        assert torch.isfinite(v), k
    assert float(losses['rpn_cls_loss'].detach()) > 0 and float(losses['rcnn_cls_loss'].detach()) > 0
    sum(losses.values()).backward()
    named = dict(model.named_parameters())
    # conv1 / res2 and their BNs are frozen (FIXED_PARAMS); res3-res5, their BN gamma/beta and the heads train
    assert named['feature.backbone.conv1.weight'].grad is None
    assert named['feature.backbone.res2a_branch2a.weight'].grad is None
    for k in ('feature.backbone.res3a_branch2a.weight', 'feature.backbone.bn5c_branch2c.weight',
              'feature.feat_conv_3x3.weight', 'heads.rpn_cls_score.weight', 'heads.rfcn_cls.weight',
              'heads.rfcn_bbox.weight'):
        g = named[k].grad
        assert g is not None and torch.isfinite(g).all() and float(g.abs().sum()) > 0, k
    before = {k: v.detach().clone() for k, v in named.items()}
    opt.step()
    for k, v in named.items():
        moved = not torch.equal(before[k], v.detach())
        assert moved == v.requires_grad, k
    assert summary['fixed'] > 0 and summary['trainable'] > 0
