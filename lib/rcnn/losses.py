"""The four training losses of the R-FCN / DFF graphs (docs/fidelity.md §4.4), each of weight 1.

Normalisation rule for N images per process
-------------------------------------------
The original runs one image per GPU and normalises every loss per image (SoftmaxOutput
normalization='valid' counts the valid labels of that one image; MakeLoss grad_scale = 1/256 or 1/128);
with kvstore 'device' the per-GPU gradients are then SUMMED (docs/fidelity.md §6.3). This port therefore defines each
loss on N images as the SUM over the images of the per-image loss, every image normalised on its own:

    rpn_cls_loss   = sum_i  CE_i / max(#non-ignored anchors of image i, 1)
    rpn_bbox_loss  = sum_i  sum(weight * smooth_l1) over image i / RPN_BATCH_SIZE
                   = sum over the whole batch / RPN_BATCH_SIZE
    rcnn_cls_loss  = sum_i  CE_i / max(#valid rois of image i, 1)      (per-image via `image_index`)
    rcnn_bbox_loss = sum_i  sum(weight * smooth_l1) over image i / BATCH_ROIS_OHEM
                   = sum over the whole batch / BATCH_ROIS_OHEM

so that N images in one process give exactly the gradient of N GPUs with one image each (at the
original learning rate). With N = 1 every term equals the original's. An all-ignored image contributes 0.
"""
import torch
import torch.nn.functional as F

__all__ = ["smooth_l1", "rpn_cls_loss", "rpn_bbox_loss", "rcnn_cls_loss", "rcnn_bbox_loss"]


def smooth_l1(x, sigma=1.0):
    """MXNet smooth_l1(scalar=sigma): 0.5 * (sigma * x)^2 if |x| < 1 / sigma^2 else |x| - 0.5 / sigma^2."""
    s2 = float(sigma) * float(sigma)
    ax = x.abs()
    return torch.where(ax < 1.0 / s2, 0.5 * s2 * x * x, ax - 0.5 / s2)


def rpn_cls_loss(rpn_cls_score, label):
    """Softmax cross-entropy of the RPN, ignore label -1.

    rpn_cls_score (N, 2A, H, W) logits, reshaped to (N, 2, A*H, W) (channels [0, A) background of anchors
    0..A-1, [A, 2A) foreground); label (N, A, H, W) (or anything reshapeable to (N, A*H, W)) in
    {-1, 0, 1}, index a*H*W + h*W + w. Per image divided by its number of non-ignored labels (>= 1),
    summed over images.
    """
    N, C2, H, W = rpn_cls_score.shape
    A = C2 // 2
    logits = rpn_cls_score.reshape(N, 2, A * H, W)
    lab = label.reshape(N, A * H, W).to(device=rpn_cls_score.device, dtype=torch.int64)
    ce = F.cross_entropy(logits, lab, ignore_index=-1, reduction='none')     # (N, A*H, W), 0 where ignored
    valid = (lab != -1).sum(dim=(1, 2)).clamp(min=1).to(ce.dtype)
    return (ce.sum(dim=(1, 2)) / valid).sum()


def rpn_bbox_loss(rpn_bbox_pred, bbox_target, bbox_weight, rpn_batch_size=256, sigma=1.0):
    """sum(bbox_weight * smooth_l1(pred - target)) / rpn_batch_size (NOT / #positives).

    rpn_bbox_pred, bbox_target, bbox_weight (N, 4A, H, W), targets normalised (sigma 1; the original would
    use sigma 3 with NORMALIZE_RPN false). Per image / RPN_BATCH_SIZE, summed over images.
    """
    d = rpn_bbox_pred - bbox_target.to(rpn_bbox_pred)
    return (bbox_weight.to(rpn_bbox_pred) * smooth_l1(d, sigma)).sum() / float(rpn_batch_size)


def rcnn_cls_loss(cls_score, labels, image_index=None):
    """Softmax cross-entropy of the R-FCN classifier, ignore label -1 (e.g. rois dropped by OHEM),
    normalised by the number of valid labels ('valid' normalisation, >= 1).

    cls_score (M, C) logits, labels (M,). image_index (M,) optional: the image of each roi; then every
    image is normalised by its own valid count and the per-image losses are summed. Without it the M rois
    are one image.
    """
    labels = labels.to(device=cls_score.device, dtype=torch.int64)
    ce = F.cross_entropy(cls_score, labels, ignore_index=-1, reduction='none')
    valid = (labels != -1).to(ce.dtype)
    if image_index is None:
        return ce.sum() / valid.sum().clamp(min=1)
    idx = image_index.to(device=cls_score.device, dtype=torch.int64)
    n = int(idx.max().item()) + 1 if idx.numel() else 0
    sums = ce.new_zeros(n).index_add(0, idx, ce)
    counts = ce.new_zeros(n).index_add(0, idx, valid).clamp(min=1)
    return (sums / counts).sum()


def rcnn_bbox_loss(bbox_pred, bbox_targets, bbox_weights, batch_rois_ohem=128, sigma=1.0):
    """sum(bbox_weights * smooth_l1(pred - target)) / batch_rois_ohem; bbox_pred (M, 8) (or (M, 4C)).
    Per image / BATCH_ROIS_OHEM, summed over images (so rois of several images may be passed together)."""
    d = bbox_pred - bbox_targets.to(bbox_pred)
    return (bbox_weights.to(bbox_pred) * smooth_l1(d, sigma)).sum() / float(batch_rois_ohem)
