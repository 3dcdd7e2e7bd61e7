"""R-CNN training targets: the original's `proposal_target` op (operator_py/proposal_target.py) and
`sample_rois` / `expand_bbox_regression_targets` (core/rcnn.py), docs/fidelity.md §4.2, in torch, one image per call
(the caller loops over the images of a batch and concatenates).

Device-agnostic: runs where `rois` lives. IoUs are computed in float64 as the original
(`astype(np.float)`); targets are in the dtype of `rois`.
"""
from dataclasses import dataclass

import torch

from lib.bbox.bbox_transform import bbox_overlaps, bbox_transform

__all__ = ["RoiSampling", "sample_rois", "expand_bbox_regression_targets"]


@dataclass(frozen=True)
class RoiSampling:
    """The roi sampling parameters (cfg.TRAIN.* of the same upper-case names, CLASS_AGNOSTIC)."""
    batch_rois: int = 128
    batch_images: int = 1
    fg_fraction: float = 0.25
    fg_thresh: float = 0.5
    bg_thresh_hi: float = 0.5
    bg_thresh_lo: float = 0.0
    normalize_targets: bool = True      # BBOX_NORMALIZATION_PRECOMPUTED
    bbox_means: tuple = (0.0, 0.0, 0.0, 0.0)
    bbox_stds: tuple = (0.1, 0.1, 0.2, 0.2)
    bbox_weights: tuple = (1.0, 1.0, 1.0, 1.0)
    class_agnostic: bool = True

    @classmethod
    def from_config(cls, cfg):
        T = cfg.TRAIN
        return cls(batch_rois=int(T.BATCH_ROIS), batch_images=int(getattr(T, 'BATCH_IMAGES', 1)),
                   fg_fraction=float(T.FG_FRACTION), fg_thresh=float(T.FG_THRESH),
                   bg_thresh_hi=float(T.BG_THRESH_HI), bg_thresh_lo=float(T.BG_THRESH_LO),
                   normalize_targets=bool(getattr(T, 'BBOX_NORMALIZATION_PRECOMPUTED', True)),
                   bbox_means=tuple(float(v) for v in T.BBOX_MEANS), bbox_stds=tuple(float(v) for v in T.BBOX_STDS),
                   bbox_weights=tuple(float(v) for v in T.BBOX_WEIGHTS),
                   class_agnostic=bool(getattr(cfg, 'CLASS_AGNOSTIC', True)))


def _randperm(n, generator, device):
    gen_device = generator.device if generator is not None else torch.device('cpu')
    return torch.randperm(n, generator=generator, device=gen_device).to(device)


def _choice(inds, k, generator):
    """k of `inds` drawn without replacement, in random order (numpy's `npr.choice(inds, k, replace=False)`)."""
    return inds[_randperm(inds.numel(), generator, inds.device)[:k]]


def expand_bbox_regression_targets(labels, targets, num_classes, bbox_weights=(1.0, 1.0, 1.0, 1.0),
                                   class_agnostic=True):
    """Scatter per-roi targets (M, 4) into the regression layout of the head.

    class_agnostic: (M, 8), a foreground roi (label > 0) gets its targets and `bbox_weights` in columns
    4..7, columns 0..3 (the background slot) stay 0. Otherwise (M, 4 * num_classes) with the roi's class
    in columns 4*cls .. 4*cls+3. Background rois are all zero.
    """
    M = labels.shape[0]
    ncols = 8 if class_agnostic else 4 * int(num_classes)
    out_t = targets.new_zeros((M, ncols))
    out_w = targets.new_zeros((M, ncols))
    fg = torch.nonzero(labels > 0).flatten()
    if fg.numel():
        start = torch.full_like(fg, 4) if class_agnostic else 4 * labels[fg]
        cols = start[:, None] + torch.arange(4, device=fg.device)[None, :]
        rows = fg[:, None].expand(-1, 4)
        out_t[rows, cols] = targets[fg]
        out_w[rows, cols] = torch.as_tensor(tuple(float(v) for v in bbox_weights), dtype=targets.dtype,
                                            device=targets.device)[None, :].expand(fg.numel(), 4)
    return out_t, out_w


def sample_rois(rois, gt_boxes, num_classes, cfg, generator=None, class_agnostic=None, batch_index=None):
    """Sample the rois of one image and build their classification / regression targets.

    rois (R, 5) [batch_idx, x1, y1, x2, y2] (the proposals of this image); gt_boxes (n, 5)
    [x1, y1, x2, y2, cls] in the same network-input pixels (n may be 0); num_classes incl. background;
    cfg: a RoiSampling, or a config: cfg.TRAIN.{BATCH_ROIS, BATCH_IMAGES, FG_FRACTION, FG_THRESH,
    BG_THRESH_HI, BG_THRESH_LO, BBOX_NORMALIZATION_PRECOMPUTED, BBOX_MEANS, BBOX_STDS, BBOX_WEIGHTS} and
    cfg.CLASS_AGNOSTIC (`class_agnostic`, when given, overrides it); generator: torch.Generator for the random sampling (None: global RNG);
    batch_index: column-0 value of the appended gt rois (default: that of rois[0], or 0 without rois).

    Returns rois (M, 5), labels (M,) int64, bbox_targets (M, 8) [or (M, 4*num_classes) class-specific],
    bbox_weights (same shape), foreground rois first, then background.

    Algorithm (the original's, step by step):
      1. candidates = rois + the gt boxes appended as rois;
      2. BATCH_ROIS == -1: rois_per_image = R + n and the fg quota is everything; otherwise
         rois_per_image = BATCH_ROIS // BATCH_IMAGES, fg quota = round(FG_FRACTION * rois_per_image);
      3. every candidate is assigned its max-IoU gt (first on ties); fg = IoU >= FG_THRESH, at most the
         quota, sampled without replacement; bg = IoU in [BG_THRESH_LO, BG_THRESH_HI), at most
         rois_per_image - #fg, sampled without replacement;
      4. if fewer than rois_per_image were selected, pad with candidates drawn at random from ALL
         candidates (without replacement within one round, rounds repeated until full) -- these count as
         background whatever their IoU;
      5. label = class of the assigned gt for the #fg first rois, 0 for the rest;
      6. targets = bbox_transform(roi, assigned gt), normalised by (t - BBOX_MEANS) / BBOX_STDS when
         BBOX_NORMALIZATION_PRECOMPUTED; expanded by `expand_bbox_regression_targets` (fg rows only).
    An image without gt: every candidate has IoU 0, label 0 and zero targets/weights.
    With BATCH_ROIS = -1 and BG_THRESH_LO = 0 (the released config) nothing is random: all candidates are
    kept, in index order, fg first.
    """
    P = cfg if isinstance(cfg, RoiSampling) else RoiSampling.from_config(cfg)
    if class_agnostic is None:
        class_agnostic = P.class_agnostic
    rois = torch.as_tensor(rois)
    device, dtype = rois.device, (rois.dtype if rois.is_floating_point() else torch.float32)
    rois = rois.to(dtype).reshape(-1, 5)
    gt = torch.as_tensor(gt_boxes).to(device=device, dtype=dtype).reshape(-1, 5)
    R, n = rois.shape[0], gt.shape[0]

    if P.batch_rois == -1:
        rois_per_image = R + n
        fg_rois_per_image = rois_per_image
    else:
        assert P.batch_rois % P.batch_images == 0, \
            f'BATCH_IMAGES {P.batch_images} must divide BATCH_ROIS {P.batch_rois}'
        rois_per_image = P.batch_rois // P.batch_images
        fg_rois_per_image = int(round(P.fg_fraction * rois_per_image))   # np.round: half to even

    if batch_index is None:
        batch_index = rois[0, 0].item() if R > 0 else 0.0
    gt_rois = torch.cat([torch.full((n, 1), float(batch_index), dtype=dtype, device=device), gt[:, :4]], dim=1)
    all_rois = torch.cat([rois, gt_rois], dim=0)
    num_cand = all_rois.shape[0]

    if n > 0:
        overlaps = bbox_overlaps(all_rois[:, 1:5].to(torch.float64), gt[:, :4].to(torch.float64))
        gt_assignment = overlaps.argmax(dim=1)                       # first max on ties, as numpy
        max_overlaps = overlaps.gather(1, gt_assignment[:, None]).squeeze(1)
        labels = gt[gt_assignment, 4].round().to(torch.int64)
    else:
        gt_assignment = torch.zeros(num_cand, dtype=torch.int64, device=device)
        max_overlaps = torch.zeros(num_cand, dtype=torch.float64, device=device)
        labels = torch.zeros(num_cand, dtype=torch.int64, device=device)

    fg_inds = torch.nonzero(max_overlaps >= P.fg_thresh).flatten()
    fg_this_image = min(fg_rois_per_image, fg_inds.numel())
    if fg_inds.numel() > fg_this_image:
        fg_inds = _choice(fg_inds, fg_this_image, generator)
    bg_inds = torch.nonzero((max_overlaps < P.bg_thresh_hi) & (max_overlaps >= P.bg_thresh_lo)).flatten()
    bg_this_image = min(rois_per_image - fg_this_image, bg_inds.numel())
    if bg_inds.numel() > bg_this_image:
        bg_inds = _choice(bg_inds, bg_this_image, generator)
    keep = torch.cat([fg_inds, bg_inds])
    parts = [keep]
    kept = keep.numel()
    while kept < rois_per_image and num_cand > 0:                 # pad to a fixed minibatch size
        gap = min(num_cand, rois_per_image - kept)
        parts.append(_randperm(num_cand, generator, device)[:gap])
        kept += gap
    keep = torch.cat(parts)

    labels = labels[keep].clone()
    labels[fg_this_image:] = 0
    out_rois = all_rois[keep]
    if n > 0:
        targets = bbox_transform(out_rois[:, 1:5], gt[gt_assignment[keep], :4])
    else:
        targets = out_rois.new_zeros((keep.numel(), 4))
    if P.normalize_targets:
        means = torch.as_tensor(P.bbox_means, dtype=dtype, device=device)
        stds = torch.as_tensor(P.bbox_stds, dtype=dtype, device=device)
        targets = (targets - means) / stds
    bbox_targets, bbox_weights = expand_bbox_regression_targets(labels, targets, num_classes, P.bbox_weights,
                                                                class_agnostic)
    return out_rois, labels, bbox_targets, bbox_weights
