"""Float64 reference implementations of the custom ops in plain PyTorch/Python, written from the
original's formulas (docs/ops.md; MXNet's PSROIPooling, Proposal, GridGenerator + BilinearSampler), independent of csrc/. Slow on
purpose: loops mirror the formulas one element at a time."""
import math

import torch


def c_round(v):
    """C round(): half away from zero."""
    return math.floor(v + 0.5) if v >= 0 else -math.floor(-v + 0.5)


def psroi_pool_ref(data, rois, spatial_scale, output_dim, pooled_size, group_size):
    data = data.double()
    R = rois.shape[0]
    _, _, H, W = data.shape
    P, G = pooled_size, group_size
    out = torch.zeros(R, output_dim, P, P, dtype=torch.float64)
    for r in range(R):
        b, x1, y1, x2, y2 = [float(v) for v in rois[r]]
        b = int(b)
        sw, sh = c_round(x1) * spatial_scale, c_round(y1) * spatial_scale
        ew, eh = (c_round(x2) + 1) * spatial_scale, (c_round(y2) + 1) * spatial_scale
        rw, rh = max(ew - sw, 0.1), max(eh - sh, 0.1)
        bw, bh = rw / P, rh / P
        for ctop in range(output_dim):
            for ph in range(P):
                for pw in range(P):
                    hs = min(max(math.floor(ph * bh + sh), 0), H)
                    he = min(max(math.ceil((ph + 1) * bh + sh), 0), H)
                    ws = min(max(math.floor(pw * bw + sw), 0), W)
                    we = min(max(math.ceil((pw + 1) * bw + sw), 0), W)
                    gh = min(max(math.floor(ph * G / P), 0), G - 1)
                    gw = min(max(math.floor(pw * G / P), 0), G - 1)
                    c = (ctop * G + gh) * G + gw
                    if he <= hs or we <= ws:
                        continue
                    out[r, ctop, ph, pw] = data[b, c, hs:he, ws:we].mean()
    return out


def flow_warp_ref(data, flow):
    """Bilinear sample at (x + u, y + v); each neighbour outside the map contributes 0."""
    data, flow = data.double(), flow.double()
    N, C, H, W = data.shape
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    x = xs + flow[:, 0]
    y = ys + flow[:, 1]
    x0, y0 = torch.floor(x), torch.floor(y)
    fx, fy = x - x0, y - y0
    out = torch.zeros_like(data)
    for dy, dx, w in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        xi, yi = x0 + dx, y0 + dy
        valid = (xi >= 0) & (xi <= W - 1) & (yi >= 0) & (yi <= H - 1)
        idx = (yi.clamp(0, H - 1) * W + xi.clamp(0, W - 1)).long().view(N, 1, H * W).expand(N, C, H * W)
        vals = torch.gather(data.view(N, C, H * W), 2, idx).view(N, C, H, W)
        out += vals * (w * valid).unsqueeze(1)
    return out


def base_anchors_ref(stride=16, ratios=(0.5, 1, 2), scales=(8, 16, 32)):
    """py-faster-rcnn rule (docs/fidelity.md §3.6): ratio-major, scale-minor."""
    out = []
    w = h = float(stride)
    xc, yc = 0.5 * (w - 1), 0.5 * (h - 1)
    for r in ratios:
        ws = math.floor(math.sqrt(math.floor(w * h / r)) + 0.5)
        hs = math.floor(ws * r + 0.5)
        for s in scales:
            out.append([xc - 0.5 * (ws * s - 1), yc - 0.5 * (hs * s - 1), xc + 0.5 * (ws * s - 1), yc + 0.5 * (hs * s - 1)])
    return torch.tensor(out, dtype=torch.float64)


def iou_plus1(a, b):
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if not (iw > 0 and ih > 0):
        return 0.0
    inter = iw * ih
    area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
    area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return inter / (area_a + area_b - inter)


def greedy_nms_ref(boxes, threshold, max_keep=0):
    keep, suppressed = [], [False] * len(boxes)
    for i in range(len(boxes)):
        if max_keep and len(keep) >= max_keep:
            break
        if suppressed[i]:
            continue
        keep.append(i)
        for j in range(i + 1, len(boxes)):
            if not suppressed[j] and iou_plus1(boxes[i], boxes[j]) > threshold:
                suppressed[j] = True
    return keep


def nms_ref(boxes, scores, threshold):
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))  # Python sort is stable
    kept = greedy_nms_ref([[float(v) for v in boxes[i]] for i in order], threshold)
    return torch.tensor([order[k] for k in kept], dtype=torch.long)


def proposal_ref(cls_prob, bbox_pred, im_info, feature_stride=16, scales=(8, 16, 32), ratios=(0.5, 1, 2),
                 pre_nms_top_n=6000, post_nms_top_n=300, nms_threshold=0.7, min_size=0):
    """MultiProposal as the original computes it (docs/fidelity.md §2.2, §3.6, §3.7), in float64."""
    N, _, H, W = cls_prob.shape
    anchors = base_anchors_ref(feature_stride, ratios, scales)
    A = anchors.shape[0]
    cls_prob, bbox_pred, im_info = cls_prob.double(), bbox_pred.double(), im_info.double()
    all_rois, all_scores = [], []
    for b in range(N):
        im_h, im_w, im_scale = [float(v) for v in im_info[b]]
        real_h, real_w = int(im_h / feature_stride), int(im_w / feature_stride)
        boxes, scores = [], []
        for h in range(H):
            for w in range(W):
                for a in range(A):
                    ax1, ay1, ax2, ay2 = [float(v) for v in anchors[a]]
                    ax1, ax2 = ax1 + w * feature_stride, ax2 + w * feature_stride
                    ay1, ay2 = ay1 + h * feature_stride, ay2 + h * feature_stride
                    dx, dy, dw, dh = [float(bbox_pred[b, a * 4 + k, h, w]) for k in range(4)]
                    aw, ah = ax2 - ax1 + 1, ay2 - ay1 + 1
                    cx, cy = ax1 + 0.5 * (aw - 1), ay1 + 0.5 * (ah - 1)
                    pcx, pcy, pw, phh = dx * aw + cx, dy * ah + cy, math.exp(dw) * aw, math.exp(dh) * ah
                    box = [min(max(pcx - 0.5 * (pw - 1), 0), im_w - 1), min(max(pcy - 0.5 * (phh - 1), 0), im_h - 1),
                           min(max(pcx + 0.5 * (pw - 1), 0), im_w - 1), min(max(pcy + 0.5 * (phh - 1), 0), im_h - 1)]
                    score = float(cls_prob[b, A + a, h, w])
                    if h >= real_h or w >= real_w:
                        score = -1.0
                    ms = min_size * im_scale
                    if box[2] - box[0] + 1 < ms or box[3] - box[1] + 1 < ms:
                        box = [box[0] - ms / 2, box[1] - ms / 2, box[2] + ms / 2, box[3] + ms / 2]
                        score = -1.0
                    boxes.append(box)
                    scores.append(score)
        order = sorted(range(len(scores)), key=lambda i: -scores[i])
        pre = min(pre_nms_top_n, len(order)) if pre_nms_top_n > 0 else len(order)
        order = order[:pre]
        sorted_boxes = [boxes[i] for i in order]
        keep = greedy_nms_ref(sorted_boxes, nms_threshold, min(post_nms_top_n, pre))
        for i in range(post_nms_top_n):
            k = keep[i % len(keep)]
            all_rois.append([b] + sorted_boxes[k])
            all_scores.append([scores[order[k]]])
    return torch.tensor(all_rois, dtype=torch.float64), torch.tensor(all_scores, dtype=torch.float64)
