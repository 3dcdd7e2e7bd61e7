"""The parts of R-FCN that the frame baseline and DFF share (spec 2.1-2.7):

FeatureNet:      ResNet-v1 (res5 dilated, stride 16) + feat_conv_3x3 (dilation 6) + ReLU = conv_feat
DetectionHeads:  conv_feat split in two halves -> RPN (no 3x3 conv) + proposal op on the first,
                 R-FCN position-sensitive score maps + psroi_pool + average voting on the second;
                 in training also the proposal targets, OHEM and the four losses.

Module attribute names are the official layer names, so state_dict keys map one-to-one to the
MXNet checkpoint names (lib/model/mxnet_names.py).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

import lib.ops as ops
from lib.rcnn.losses import rcnn_bbox_loss, rcnn_cls_loss, rpn_bbox_loss, rpn_cls_loss
from lib.rcnn.ohem import ohem_select
from lib.rcnn.proposal_target import sample_rois

from .resnet_v1 import ResNetV1, resnet_v1


def _normal_init(module, std=0.01):
    nn.init.normal_(module.weight, 0.0, std)
    nn.init.zeros_(module.bias)


def build_backbone(cfg):
    net = cfg.network
    if net.RESNET_UNITS:
        return ResNetV1(units=tuple(net.RESNET_UNITS), width=int(net.RESNET_WIDTH), train_bn=bool(net.TRAIN_BN))
    if int(net.RESNET_WIDTH) != 64:
        return ResNetV1(units={50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}[int(net.RESNET_DEPTH)],
                        width=int(net.RESNET_WIDTH), train_bn=bool(net.TRAIN_BN))
    return resnet_v1(int(net.RESNET_DEPTH), train_bn=bool(net.TRAIN_BN))


class FeatureNet(nn.Module):
    """image (N, 3, H, W), RGB minus means -> conv_feat (N, DFF_FEAT_DIM, H/16, W/16)."""

    def __init__(self, cfg):
        super().__init__()
        self.backbone = build_backbone(cfg)
        self.feat_conv_3x3 = nn.Conv2d(self.backbone.out_channels, int(cfg.network.DFF_FEAT_DIM), 3, padding=6,
                                       dilation=6)
        _normal_init(self.feat_conv_3x3)

    def forward(self, data):
        return F.relu(self.feat_conv_3x3(self.backbone(data)))


class DetectionHeads(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        feat_dim = int(cfg.network.DFF_FEAT_DIM)
        if feat_dim % 2:
            raise ValueError(f"network.DFF_FEAT_DIM = {feat_dim} must be even (it is split in two halves)")
        half = feat_dim // 2
        self.num_anchors = len(cfg.network.ANCHOR_SCALES) * len(cfg.network.ANCHOR_RATIOS)
        if self.num_anchors != int(cfg.network.NUM_ANCHORS):
            raise ValueError(f"network.NUM_ANCHORS = {cfg.network.NUM_ANCHORS} but ANCHOR_SCALES x ANCHOR_RATIOS "
                             f"give {self.num_anchors}")
        self.num_classes = int(cfg.dataset.NUM_CLASSES)
        self.num_reg_classes = 2 if cfg.CLASS_AGNOSTIC else self.num_classes
        self.group = 7
        A, G = self.num_anchors, self.group
        self.rpn_cls_score = nn.Conv2d(half, 2 * A, 1)
        self.rpn_bbox_pred = nn.Conv2d(half, 4 * A, 1)
        self.rfcn_cls = nn.Conv2d(half, G * G * self.num_classes, 1)
        self.rfcn_bbox = nn.Conv2d(half, G * G * 4 * self.num_reg_classes, 1)
        for m in (self.rpn_cls_score, self.rpn_bbox_pred, self.rfcn_cls, self.rfcn_bbox):
            _normal_init(m)
        self.register_buffer('anchor_stds', torch.tensor(cfg.network.ANCHOR_STDS, dtype=torch.float32), persistent=False)
        self.register_buffer('anchor_means', torch.tensor(cfg.network.ANCHOR_MEANS, dtype=torch.float32),
                             persistent=False)
        self.register_buffer('bbox_stds', torch.tensor(cfg.TRAIN.BBOX_STDS, dtype=torch.float32), persistent=False)
        self.register_buffer('bbox_means', torch.tensor(cfg.TRAIN.BBOX_MEANS, dtype=torch.float32), persistent=False)

    # ------------------------------------------------------------------ RPN
    def rpn(self, feat):
        A = self.num_anchors
        score = self.rpn_cls_score(feat)
        bbox = self.rpn_bbox_pred(feat)
        n, _, h, w = score.shape
        prob = F.softmax(score.view(n, 2, A * h, w), dim=1).view(n, 2 * A, h, w)
        return score, bbox, prob

    def proposals(self, rpn_prob, rpn_bbox, im_info, train):
        c = self.cfg.TRAIN if train else self.cfg.TEST
        if self.cfg.network.NORMALIZE_RPN:  # rpn_inv_normalize: channel a*4+k -> * std[k] + mean[k]
            n, _, h, w = rpn_bbox.shape
            rpn_bbox = (rpn_bbox.detach().view(n, -1, 4, h, w) * self.anchor_stds.view(1, 1, 4, 1, 1)
                        + self.anchor_means.view(1, 1, 4, 1, 1)).view(n, -1, h, w)
        rois, _ = ops.proposal(rpn_prob, rpn_bbox, im_info, feature_stride=int(self.cfg.network.RPN_FEAT_STRIDE),
                               scales=tuple(self.cfg.network.ANCHOR_SCALES),
                               ratios=tuple(self.cfg.network.ANCHOR_RATIOS),
                               pre_nms_top_n=int(c.RPN_PRE_NMS_TOP_N), post_nms_top_n=int(c.RPN_POST_NMS_TOP_N),
                               nms_threshold=float(c.RPN_NMS_THRESH), min_size=float(c.RPN_MIN_SIZE))
        return rois

    # ------------------------------------------------------------------ R-FCN
    def rfcn(self, feat, rois):
        scale = 1.0 / float(self.cfg.network.RCNN_FEAT_STRIDE)
        G = self.group
        cls = ops.psroi_pool(self.rfcn_cls(feat), rois, scale, self.num_classes, G, G)
        bbox = ops.psroi_pool(self.rfcn_bbox(feat), rois, scale, 4 * self.num_reg_classes, G, G)
        return cls.mean(dim=(2, 3)), bbox.mean(dim=(2, 3))  # position-sensitive voting = global average

    def forward(self, conv_feat, im_info, gt_boxes=None, rpn_label=None, rpn_bbox_target=None, rpn_bbox_weight=None,
                generators=None):
        """Test: -> {'rois', 'cls_prob', 'bbox_pred' (de-normalised)}. Training: -> the four losses;
        `generators` (one torch.Generator per image, or None for the global RNG) drive the roi sampling."""
        half = conv_feat.shape[1] // 2
        rpn_feat, rfcn_feat = conv_feat[:, :half], conv_feat[:, half:]
        rpn_score, rpn_bbox, rpn_prob = self.rpn(rpn_feat)
        rois = self.proposals(rpn_prob, rpn_bbox, im_info, self.training)
        if not self.training:
            cls_score, bbox_pred = self.rfcn(rfcn_feat, rois)
            # the trained rfcn_bbox predicts normalised deltas; the original de-normalises the weights
            # into rfcn_bbox_*_test at checkpoint time, this port de-normalises the output (same numbers).
            k = bbox_pred.shape[1] // 4
            bbox_pred = bbox_pred * self.bbox_stds.repeat(k) + self.bbox_means.repeat(k)
            return {'rois': rois, 'cls_prob': F.softmax(cls_score, dim=1), 'bbox_pred': bbox_pred}
        return self.losses(rfcn_feat, rois, gt_boxes, rpn_score, rpn_bbox, rpn_label, rpn_bbox_target,
                           rpn_bbox_weight, generators)

    def losses(self, rfcn_feat, rois, gt_boxes, rpn_score, rpn_bbox, rpn_label, rpn_bbox_target, rpn_bbox_weight,
               generators=None):
        cfg = self.cfg
        n = rfcn_feat.shape[0]
        samples = [sample_rois(rois[rois[:, 0] == b], gt_boxes[b].to(rois), self.num_classes, cfg,
                               generator=generators[b] if generators else None,
                               class_agnostic=bool(cfg.CLASS_AGNOSTIC), batch_index=b) for b in range(n)]
        all_rois = torch.cat([s[0] for s in samples])
        cls_score, bbox_pred = self.rfcn(rfcn_feat, all_rois)
        out = {'rpn_cls_loss': rpn_cls_loss(rpn_score, rpn_label),
               'rpn_bbox_loss': rpn_bbox_loss(rpn_bbox, rpn_bbox_target, rpn_bbox_weight,
                                              int(cfg.TRAIN.RPN_BATCH_SIZE))}
        rcnn_cls, rcnn_bbox, start = 0.0, 0.0, 0
        for _, labels, targets, weights in samples:
            sl = slice(start, start + len(labels))
            start += len(labels)
            if cfg.TRAIN.ENABLE_OHEM:
                labels, weights = ohem_select(cls_score[sl].detach(), bbox_pred[sl].detach(), labels, targets,
                                              weights, int(cfg.TRAIN.BATCH_ROIS_OHEM))
                norm = int(cfg.TRAIN.BATCH_ROIS_OHEM)
            else:
                norm = len(labels)
            rcnn_cls = rcnn_cls + rcnn_cls_loss(cls_score[sl], labels)
            rcnn_bbox = rcnn_bbox + rcnn_bbox_loss(bbox_pred[sl], targets, weights, norm)
        out['rcnn_cls_loss'] = rcnn_cls
        out['rcnn_bbox_loss'] = rcnn_bbox
        return out


def im_detect_boxes(out, im_info):
    """Decode the heads' test outputs into image-space boxes per class (spec 6.1): rois (R, 5) ->
    boxes + bbox_pred deltas -> clipped to the resized image -> divided by im_scale.
    Returns scores (R, C) and boxes (R, 4*num_reg_classes) for each image of the batch as lists."""
    from lib.bbox.bbox_transform import bbox_pred as decode, clip_boxes
    rois, prob, deltas = out['rois'], out['cls_prob'], out['bbox_pred']
    scores, boxes = [], []
    for b in range(im_info.shape[0]):
        m = rois[:, 0] == b
        h, w, s = [float(v) for v in im_info[b]]
        pred = clip_boxes(decode(rois[m, 1:5], deltas[m]), h, w)
        scores.append(prob[m])
        boxes.append(pred / s)
    return scores, boxes


__all__ = ['FeatureNet', 'DetectionHeads', 'build_backbone', 'im_detect_boxes']
