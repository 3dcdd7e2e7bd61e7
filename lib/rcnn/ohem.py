"""Online hard example mining: the original's `BoxAnnotatorOHEM` op (operator_py/box_annotator_ohem.py),
docs/fidelity.md §4.3. One image per call (the original: one image per GPU)."""
import torch

from .losses import smooth_l1

__all__ = ["ohem_select"]


@torch.no_grad()
def ohem_select(cls_score, bbox_pred, labels, bbox_targets, bbox_weights, batch_rois_ohem=128):
    """Keep the `batch_rois_ohem` rois of highest loss, ignore the others.

    cls_score (M, C) logits, bbox_pred (M, 8), labels (M,), bbox_targets, bbox_weights (M, 8).
    Per roi: loss_cls = -log(softmax(cls_score)[label] + 1e-14), loss_box = sum(bbox_weight *
    smooth_l1_{sigma=1}(pred - target)); the rois are sorted by loss_cls + loss_box descending (stable:
    equal losses keep index order -- the original's np.argsort is unstable, so its tie order is
    unspecified) and all but the first `batch_rois_ohem` get label -1 and bbox weight 0.
    Rois whose input label is already -1 rank last and stay -1 (not a case of the original).
    No gradient (computed under no_grad; the inputs may be detached or not).
    Returns (labels_ohem (M,) int64, bbox_weights_ohem (M, 8)) -- new tensors.
    """
    labels = labels.to(device=cls_score.device, dtype=torch.int64)
    prob = torch.softmax(cls_score, dim=1)
    valid = labels >= 0
    p = prob.gather(1, labels.clamp(min=0)[:, None]).squeeze(1)
    loss_cls = -torch.log(p + 1e-14)
    loss_box = (bbox_weights.to(bbox_pred) * smooth_l1(bbox_pred - bbox_targets.to(bbox_pred), 1.0)).sum(dim=1)
    loss = torch.where(valid, loss_cls + loss_box, torch.full_like(loss_cls, float('-inf')))
    order = torch.sort(loss, descending=True, stable=True).indices
    drop = order[int(batch_rois_ohem):]
    labels_ohem = labels.clone()
    labels_ohem[drop] = -1
    bbox_weights_ohem = bbox_weights.clone()
    bbox_weights_ohem[drop] = 0
    return labels_ohem, bbox_weights_ohem
