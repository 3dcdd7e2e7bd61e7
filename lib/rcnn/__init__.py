"""R-CNN (R-FCN head) training targets, OHEM and the four detection losses.

    sample_rois(rois (R, 5), gt_boxes (n, 5), num_classes, cfg, generator=None, class_agnostic=None)
        -> rois (M, 5), labels (M,) int64, bbox_targets (M, 8 | 4C), bbox_weights (M, 8 | 4C)
    ohem_select(cls_score (M, C), bbox_pred (M, 8), labels, bbox_targets, bbox_weights, batch_rois_ohem=128)
        -> labels_ohem (M,), bbox_weights_ohem (M, 8)
    losses: smooth_l1, rpn_cls_loss, rpn_bbox_loss, rcnn_cls_loss, rcnn_bbox_loss
"""
from .losses import rcnn_bbox_loss, rcnn_cls_loss, rpn_bbox_loss, rpn_cls_loss, smooth_l1
from .ohem import ohem_select
from .proposal_target import expand_bbox_regression_targets, sample_rois

__all__ = ["sample_rois", "expand_bbox_regression_targets", "ohem_select", "smooth_l1", "rpn_cls_loss",
           "rpn_bbox_loss", "rcnn_cls_loss", "rcnn_bbox_loss"]
