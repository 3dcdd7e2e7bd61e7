"""RPN training targets: the original's lib/rpn/rpn.py `assign_anchor` (docs/fidelity.md §4.1), in torch.

Runs on CPU tensors inside DataLoader workers (any device works). IoUs and targets are computed in
float64 like the original (numpy `astype(np.float)`), outputs are float32 / int64.
"""
import torch

from lib.bbox.bbox_transform import bbox_overlaps, bbox_transform
from .anchors import generate_anchors, shifted_anchors

__all__ = ["assign_anchor"]


def _randperm(n, generator, device):
    """A random permutation of range(n) drawn from `generator` (on the generator's own device)."""
    gen_device = generator.device if generator is not None else torch.device('cpu')
    return torch.randperm(n, generator=generator, device=gen_device).to(device)


def _disable_random(labels, value, keep, generator):
    """Where labels == value, set all but `keep` randomly chosen entries to -1 (in place) -- the
    original's `npr.choice(inds, size=len(inds) - keep, replace=False)` followed by labels[...] = -1."""
    inds = torch.nonzero(labels == value).flatten()
    excess = inds.numel() - int(keep)
    if excess > 0:
        labels[inds[_randperm(inds.numel(), generator, inds.device)[:excess]]] = -1


def assign_anchor(feat_h, feat_w, gt_boxes, im_h, im_w, cfg, generator=None, base_anchors=None):
    """Anchor labels and regression targets of one image.

    feat_h, feat_w: size of the RPN score map; gt_boxes (n, >=4) [x1, y1, x2, y2(, cls)] in network-input
    pixels (n may be 0); im_h, im_w: the (unpadded) image size (im_info[0], im_info[1]); cfg: config with
    cfg.TRAIN.RPN_{BATCH_SIZE, FG_FRACTION, POSITIVE_OVERLAP, NEGATIVE_OVERLAP, CLOBBER_POSITIVES,
    BBOX_WEIGHTS} and cfg.network.{RPN_FEAT_STRIDE, ANCHOR_SCALES, ANCHOR_RATIOS, NORMALIZE_RPN,
    ANCHOR_MEANS, ANCHOR_STDS}; generator: torch.Generator for the subsampling (None: global RNG);
    base_anchors: precomputed `generate_anchors(...)` (A, 4) to skip recomputing them.

    Returns a dict of CPU-or-input-device tensors:
      label (A, H, W) int64, -1 ignore / 0 bg / 1 fg; flattened index a*H*W + h*W + w, i.e. the layout of
            the RPN score reshaped to (N, 2, A*H, W);
      bbox_target (4A, H, W) float32, channel a*4 + k (k = dx, dy, dw, dh), normalised by ANCHOR_MEANS/STDS
            when NORMALIZE_RPN; filled for every inside anchor (towards its max-IoU gt), 0 outside;
      bbox_weight (4A, H, W) float32, RPN_BBOX_WEIGHTS on positive anchors, 0 elsewhere.

    Rules (as the original): only anchors with x1 >= 0, y1 >= 0, x2 < im_w, y2 < im_h are labelled
    (allowed_border 0). With RPN_CLOBBER_POSITIVES false: label 0 where max IoU < NEGATIVE_OVERLAP, then 1
    for every anchor that attains some gt's maximum IoU (ties included: `overlaps == gt_max_overlaps`
    anywhere in the anchor's row; note that a gt with max IoU 0 therefore makes every inside anchor with
    IoU 0 to it positive, as in the original), then 1 where max IoU >= POSITIVE_OVERLAP. Positives beyond
    int(FG_FRACTION * BATCH_SIZE) and negatives beyond BATCH_SIZE - #positives are randomly set to -1.
    Without gt every inside anchor is a negative before subsampling.
    """
    T, net = cfg.TRAIN, cfg.network
    stride = int(net.RPN_FEAT_STRIDE)
    gt = torch.as_tensor(gt_boxes)
    device = gt.device
    if base_anchors is None:
        base_anchors = generate_anchors(stride, tuple(net.ANCHOR_RATIOS), tuple(net.ANCHOR_SCALES))
    base = torch.as_tensor(base_anchors).to(device=device, dtype=torch.float64)
    A = base.shape[0]
    H, W = int(feat_h), int(feat_w)
    all_anchors = shifted_anchors(H, W, stride, base)               # (H*W*A, 4), row (h*W + w)*A + a
    total = all_anchors.shape[0]

    inside = ((all_anchors[:, 0] >= 0) & (all_anchors[:, 1] >= 0) &
              (all_anchors[:, 2] < float(im_w)) & (all_anchors[:, 3] < float(im_h)))
    inds_inside = torch.nonzero(inside).flatten()
    anchors = all_anchors[inds_inside]
    n_in = anchors.shape[0]

    labels = torch.full((n_in,), -1, dtype=torch.int64, device=device)
    if gt.dim() == 1:                                               # a flat (5n,) / empty array
        gt = gt.reshape(-1, 5)
    gt = gt.to(torch.float64)
    has_gt = gt.shape[0] > 0
    if has_gt and n_in > 0:
        overlaps = bbox_overlaps(anchors, gt[:, :4])                # (n_in, n)
        argmax_overlaps = overlaps.argmax(dim=1)                    # first max on ties, as numpy
        max_overlaps = overlaps.gather(1, argmax_overlaps[:, None]).squeeze(1)
        gt_max_overlaps = overlaps.max(dim=0).values                # (n,)
        gt_argmax = (overlaps == gt_max_overlaps[None, :]).any(dim=1)
        if not T.RPN_CLOBBER_POSITIVES:
            labels[max_overlaps < T.RPN_NEGATIVE_OVERLAP] = 0
        labels[gt_argmax] = 1
        labels[max_overlaps >= T.RPN_POSITIVE_OVERLAP] = 1
        if T.RPN_CLOBBER_POSITIVES:
            labels[max_overlaps < T.RPN_NEGATIVE_OVERLAP] = 0
    else:
        labels[:] = 0

    num_fg = int(T.RPN_FG_FRACTION * T.RPN_BATCH_SIZE)
    _disable_random(labels, 1, num_fg, generator)
    num_bg = int(T.RPN_BATCH_SIZE) - int((labels == 1).sum())
    _disable_random(labels, 0, num_bg, generator)

    targets = torch.zeros((n_in, 4), dtype=torch.float64, device=device)
    if has_gt and n_in > 0:
        targets = bbox_transform(anchors, gt[argmax_overlaps, :4])
    if getattr(net, 'NORMALIZE_RPN', True):
        means = torch.tensor(tuple(net.ANCHOR_MEANS), dtype=torch.float64, device=device)
        stds = torch.tensor(tuple(net.ANCHOR_STDS), dtype=torch.float64, device=device)
        targets = (targets - means) / stds
    weights = torch.zeros((n_in, 4), dtype=torch.float32, device=device)
    weights[labels == 1] = torch.tensor(tuple(T.RPN_BBOX_WEIGHTS), dtype=torch.float32, device=device)

    # map back to all anchors (outside: label -1, target/weight 0) and to the network's layouts
    full_labels = torch.full((total,), -1, dtype=torch.int64, device=device)
    full_labels[inds_inside] = labels
    full_targets = torch.zeros((total, 4), dtype=torch.float32, device=device)
    full_targets[inds_inside] = targets.to(torch.float32)
    full_weights = torch.zeros((total, 4), dtype=torch.float32, device=device)
    full_weights[inds_inside] = weights
    return {
        'label': full_labels.reshape(H, W, A).permute(2, 0, 1).contiguous(),
        'bbox_target': full_targets.reshape(H, W, A * 4).permute(2, 0, 1).contiguous(),
        'bbox_weight': full_weights.reshape(H, W, A * 4).permute(2, 0, 1).contiguous(),
    }
