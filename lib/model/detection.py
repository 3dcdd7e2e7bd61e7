"""The parts of R-FCN that the frame baseline and DFF share (docs/fidelity.md §3, §4):

FeatureNet:      ResNet-v1 (res5 dilated, stride 16) + feat_conv_3x3 (dilation 6) + ReLU = conv_feat
DetectionHeads:  conv_feat split in two halves -> RPN (no 3x3 conv) + proposal op on the first,
                 R-FCN position-sensitive score maps + psroi_pool + average voting on the second;
                 in training also the proposal targets, OHEM and the four losses.

Module attribute names are the official layer names, so state_dict keys map one-to-one to the
MXNet checkpoint names (lib/model/mxnet_names.py).
"""
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

import lib.ops as ops
from lib.bbox.bbox_transform import bbox_pred as decode, clip_boxes
from lib.config import configurable
from lib.rcnn.losses import rcnn_bbox_loss, rcnn_cls_loss, rpn_bbox_loss, rpn_cls_loss
from lib.rcnn.ohem import ohem_select
from lib.rcnn.proposal_target import RoiSampling, sample_rois

from .resnet_v1 import build_backbone


def _normal_init(module, std=0.01):
    nn.init.normal_(module.weight, 0.0, std)
    nn.init.zeros_(module.bias)


class FeatureNet(nn.Module):
    """image (N, 3, H, W), RGB minus means -> conv_feat (N, feat_dim, H/16, W/16)."""

    @configurable
    def __init__(self, backbone, feat_dim):
        super().__init__()
        self.backbone = backbone
        self.feat_conv_3x3 = nn.Conv2d(self.backbone.out_channels, int(feat_dim), 3, padding=6, dilation=6)
        _normal_init(self.feat_conv_3x3)

    @classmethod
    def from_config(cls, cfg):
        return {'backbone': build_backbone(cfg), 'feat_dim': int(cfg.network.DFF_FEAT_DIM)}

    def forward(self, data):
        return F.relu(self.feat_conv_3x3(self.backbone(data)))


@dataclass(frozen=True)
class ProposalParams:
    """The proposal op's settings in one mode (cfg.TRAIN or cfg.TEST RPN_PRE_NMS_TOP_N, RPN_POST_NMS_TOP_N,
    RPN_NMS_THRESH, RPN_MIN_SIZE)."""
    pre_nms_top_n: int
    post_nms_top_n: int
    nms_threshold: float
    min_size: float

    @classmethod
    def from_config(cls, c):
        return cls(int(c.RPN_PRE_NMS_TOP_N), int(c.RPN_POST_NMS_TOP_N), float(c.RPN_NMS_THRESH), float(c.RPN_MIN_SIZE))


class DetectionHeads(nn.Module):
    """RPN + proposals + R-FCN on conv_feat; in training the roi sampling, OHEM (ohem_rois > 0: the rois
    kept per image) and the four losses."""
    PSROI_INPUTS = ('rfcn_cls', 'rfcn_bbox')  # the convolutions whose maps psroi_pool reads (lib/model/fast_path.py)

    @configurable
    def __init__(self, *, feat_dim, num_classes, class_agnostic, anchor_scales, anchor_ratios, normalize_rpn,
                 anchor_means, anchor_stds, rpn_feat_stride, rcnn_feat_stride, train_proposals, test_proposals,
                 roi_sampling, rpn_batch_size, ohem_rois):
        super().__init__()
        feat_dim = int(feat_dim)
        if feat_dim % 2:
            raise ValueError(f"network.DFF_FEAT_DIM = {feat_dim} must be even (it is split in two halves)")
        half = feat_dim // 2
        self.anchor_scales, self.anchor_ratios = tuple(anchor_scales), tuple(anchor_ratios)
        self.num_anchors = len(self.anchor_scales) * len(self.anchor_ratios)
        self.num_classes = int(num_classes)
        self.class_agnostic = bool(class_agnostic)
        self.num_reg_classes = 2 if self.class_agnostic else self.num_classes
        self.normalize_rpn = bool(normalize_rpn)
        self.rpn_feat_stride, self.rcnn_feat_stride = int(rpn_feat_stride), float(rcnn_feat_stride)
        self.train_proposals, self.test_proposals = train_proposals, test_proposals
        self.roi_sampling = roi_sampling
        self.rpn_batch_size, self.ohem_rois = int(rpn_batch_size), int(ohem_rois)
        self.group = 7
        A, G = self.num_anchors, self.group
        self.rpn_cls_score = nn.Conv2d(half, 2 * A, 1)
        self.rpn_bbox_pred = nn.Conv2d(half, 4 * A, 1)
        self.rfcn_cls = nn.Conv2d(half, G * G * self.num_classes, 1)
        self.rfcn_bbox = nn.Conv2d(half, G * G * 4 * self.num_reg_classes, 1)
        for m in (self.rpn_cls_score, self.rpn_bbox_pred, self.rfcn_cls, self.rfcn_bbox):
            _normal_init(m)
        self.register_buffer('anchor_stds', torch.tensor(anchor_stds, dtype=torch.float32), persistent=False)
        self.register_buffer('anchor_means', torch.tensor(anchor_means, dtype=torch.float32), persistent=False)
        # the regression targets' normalisation (roi_sampling's), undone on the test output
        self.register_buffer('bbox_stds', torch.tensor(roi_sampling.bbox_stds, dtype=torch.float32), persistent=False)
        self.register_buffer('bbox_means', torch.tensor(roi_sampling.bbox_means, dtype=torch.float32),
                             persistent=False)

    @classmethod
    def from_config(cls, cfg):
        net = cfg.network
        num_anchors = len(net.ANCHOR_SCALES) * len(net.ANCHOR_RATIOS)
        if num_anchors != int(net.NUM_ANCHORS):
            raise ValueError(f"network.NUM_ANCHORS = {net.NUM_ANCHORS} but ANCHOR_SCALES x ANCHOR_RATIOS "
                             f"give {num_anchors}")
        if cfg.TRAIN.ENABLE_OHEM and int(cfg.TRAIN.BATCH_ROIS_OHEM) < 1:
            raise ValueError(f"TRAIN.ENABLE_OHEM with TRAIN.BATCH_ROIS_OHEM = {cfg.TRAIN.BATCH_ROIS_OHEM}: "
                             f"OHEM keeps 1 or more rois per image")
        return {'feat_dim': int(net.DFF_FEAT_DIM), 'num_classes': int(cfg.dataset.NUM_CLASSES),
                'class_agnostic': bool(cfg.CLASS_AGNOSTIC), 'anchor_scales': tuple(net.ANCHOR_SCALES),
                'anchor_ratios': tuple(net.ANCHOR_RATIOS), 'normalize_rpn': bool(net.NORMALIZE_RPN),
                'anchor_means': tuple(float(v) for v in net.ANCHOR_MEANS),
                'anchor_stds': tuple(float(v) for v in net.ANCHOR_STDS),
                'rpn_feat_stride': int(net.RPN_FEAT_STRIDE), 'rcnn_feat_stride': float(net.RCNN_FEAT_STRIDE),
                'train_proposals': ProposalParams.from_config(cfg.TRAIN),
                'test_proposals': ProposalParams.from_config(cfg.TEST),
                'roi_sampling': RoiSampling.from_config(cfg), 'rpn_batch_size': int(cfg.TRAIN.RPN_BATCH_SIZE),
                'ohem_rois': int(cfg.TRAIN.BATCH_ROIS_OHEM) if cfg.TRAIN.ENABLE_OHEM else 0}

    # ------------------------------------------------------------------ RPN
    def rpn(self, feat):
        A = self.num_anchors
        score = self.rpn_cls_score(feat)
        bbox = self.rpn_bbox_pred(feat)
        # softmax over (background channel a, foreground channel A + a) of each anchor; unflatten / flatten are
        # views in any memory format (channels_last too); in float32 also under autocast (the proposal's scores)
        prob = F.softmax(score.float().unflatten(1, (2, A)), dim=1).flatten(1, 2)
        return score, bbox, prob

    def proposals(self, rpn_prob, rpn_bbox, im_info, train):
        c = self.train_proposals if train else self.test_proposals
        rpn_bbox = rpn_bbox.detach().float()  # the box decoding in float32, also under autocast
        if self.normalize_rpn:  # rpn_inv_normalize: channel a*4+k -> * std[k] + mean[k]
            rpn_bbox = (rpn_bbox.unflatten(1, (-1, 4)) * self.anchor_stds.view(1, 1, 4, 1, 1)
                        + self.anchor_means.view(1, 1, 4, 1, 1)).flatten(1, 2)
        rois, _ = ops.proposal(rpn_prob, rpn_bbox, im_info, feature_stride=self.rpn_feat_stride,
                               scales=self.anchor_scales, ratios=self.anchor_ratios,
                               pre_nms_top_n=c.pre_nms_top_n, post_nms_top_n=c.post_nms_top_n,
                               nms_threshold=c.nms_threshold, min_size=c.min_size)
        return rois

    # ------------------------------------------------------------------ R-FCN
    def rfcn(self, feat, rois):
        scale = 1.0 / self.rcnn_feat_stride
        G = self.group
        # pooled in float32 (under autocast the reduced-precision score maps are widened, the pooled means are
        # not rounded back); a channels_last map is read in place
        cls = ops.psroi_pool(self.rfcn_cls(feat).float(), rois, scale, self.num_classes, G, G)
        bbox = ops.psroi_pool(self.rfcn_bbox(feat).float(), rois, scale, 4 * self.num_reg_classes, G, G)
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

    def training_losses(self, conv_feat, batch):
        """The detectors' one loss entry (RFCN and DFF call it): the four losses of a collated training batch
        (lib.dataset.loader.BatchCollator) on conv_feat. The roi sampling of image b draws from
        batch['generators'][b] (the trainer's, lib.dataset.loader.SALT_ROI_SAMPLING), from the global RNG
        when the batch has none."""
        return self(conv_feat, batch['im_info'], batch['gt_boxes'], batch['rpn_label'], batch['rpn_bbox_target'],
                    batch['rpn_bbox_weight'], batch.get('generators'))

    def losses(self, rfcn_feat, rois, gt_boxes, rpn_score, rpn_bbox, rpn_label, rpn_bbox_target, rpn_bbox_weight,
               generators=None):
        n = rfcn_feat.shape[0]
        samples = [sample_rois(rois[rois[:, 0] == b], gt_boxes[b].to(rois), self.num_classes, self.roi_sampling,
                               generator=generators[b] if generators else None,
                               class_agnostic=self.class_agnostic, batch_index=b) for b in range(n)]
        all_rois = torch.cat([s[0] for s in samples])
        cls_score, bbox_pred = self.rfcn(rfcn_feat, all_rois)
        out = {'rpn_cls_loss': rpn_cls_loss(rpn_score, rpn_label),
               'rpn_bbox_loss': rpn_bbox_loss(rpn_bbox, rpn_bbox_target, rpn_bbox_weight,
                                              self.rpn_batch_size)}
        rcnn_cls, rcnn_bbox, start = 0.0, 0.0, 0
        for _, labels, targets, weights in samples:
            sl = slice(start, start + len(labels))
            start += len(labels)
            if self.ohem_rois:
                labels, weights = ohem_select(cls_score[sl].detach(), bbox_pred[sl].detach(), labels, targets,
                                              weights, self.ohem_rois)
                norm = self.ohem_rois
            else:
                norm = len(labels)
            rcnn_cls = rcnn_cls + rcnn_cls_loss(cls_score[sl], labels)
            rcnn_bbox = rcnn_bbox + rcnn_bbox_loss(bbox_pred[sl], targets, weights, norm)
        out['rcnn_cls_loss'] = rcnn_cls
        out['rcnn_bbox_loss'] = rcnn_bbox
        return out


def im_detect_boxes(out, im_info):
    """Decode the heads' test outputs into image-space boxes per class (docs/fidelity.md §8.1): rois (R, 5) ->
    boxes + bbox_pred deltas -> clipped to the resized image -> divided by im_scale.
    Returns scores (R, C) and boxes (R, 4*num_reg_classes) for each image of the batch as lists."""
    rois, prob, deltas = out['rois'], out['cls_prob'], out['bbox_pred']
    scores, boxes = [], []
    for b in range(im_info.shape[0]):
        m = rois[:, 0] == b
        h, w, s = [float(v) for v in im_info[b]]
        pred = clip_boxes(decode(rois[m, 1:5], deltas[m]), h, w)
        scores.append(prob[m])
        boxes.append(pred / s)
    return scores, boxes


__all__ = ['FeatureNet', 'DetectionHeads', 'ProposalParams', 'im_detect_boxes']
