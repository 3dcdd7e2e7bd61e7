#!/usr/bin/env python
"""How good is DFF's flow where it matters? On the synthetic validation videos the generator knows the exact
flow, so this measures FlowNet's feature-stride flow (the one DFF warps with) against it, for every non-key
frame and its key frame, exactly as the DFF test pairs them:

  - end-point error in feature-map cells (network.RCNN_FEAT_STRIDE input pixels) over all cells and over the
    cells that are mostly object (where the detections come from), next to the same figures for zero flow;
  - with --oracle, the DFF test once more with the ground-truth flow in place of FlowNet's (same model,
    same scale map): the mAP a perfect flow would give (results in <test dir>_gt_flow).

    python tools/synthetic_flow_eval.py --cfg experiments/dff_rfcn/cfgs/synthetic_vid_cpu.yaml \
        [--weights DFF checkpoint or FlowNet weights] [--oracle] [--set KEY=VALUE ...]

--weights defaults to the config's trained DFF checkpoint (<prefix>-<end_epoch>.pth; an official DFF .params
also loads); a bare FlowNet state dict (dff_rfcn/train_flownet.py's output) is measured alone (no --oracle). What it measured:
docs/synthetic.md#how-good-the-flow-is-and-what-a-perfect-one-would-give.
"""
import argparse
import os

import numpy as np
import torch
import torch.nn.functional as F

from dff_rfcn.model import DFF
from dff_rfcn.tester import VideoDetector, frame_position, is_key_frame, test_dff
from lib.config import load_config, update_from_list
from lib.core.experiment import output_dirs
from lib.core.tester import test_scale_index
from lib.dataset.loader import make_imdb
from lib.dataset.synthetic_vid import resolve_params, video_scene
from lib.model.resnet_v1 import feature_stride
from lib.model.weights import load_weights
from lib.utils.cli import run_cli
from lib.utils.image import prepare_image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cell_means(x, im_scale, feat_hw, mode, stride):
    """(1, C, H, W) map of the original frame -> (C, h, w): resized with the image (`mode`), averaged over
    each stride x stride cell (ceil), cropped to the feature map."""
    if im_scale != 1.0:
        size = (int(round(x.shape[2] * im_scale)), int(round(x.shape[3] * im_scale)))
        x = F.interpolate(x, size=size, mode=mode, **({'align_corners': False} if mode == 'bilinear' else {}))
    return F.avg_pool2d(x, stride, stride, ceil_mode=True)[0, :, :feat_hw[0], :feat_hw[1]]


def feature_flow(flow, im_scale, feat_hw, stride):
    """Pixel flow (H, W, 2) of the original frame -> (2, h, w) in feature cells of the resized image."""
    g = torch.from_numpy(np.ascontiguousarray(flow.transpose(2, 0, 1)))[None].float() * im_scale
    return _cell_means(g, im_scale, feat_hw, 'bilinear', stride) / stride


def object_cells(label, im_scale, feat_hw, stride):
    """Cells of the feature map more than half covered by objects (label > 0)."""
    m = torch.from_numpy((label > 0).astype(np.float32))[None, None]
    return _cell_means(m, im_scale, feat_hw, 'nearest', stride)[0] > 0.5


class GroundTruthFlow:
    """The exact key <- current flow of a synthetic validation frame, per frame dict (cached scenes)."""

    def __init__(self, cfg):
        syn = dict(cfg.dataset.SYNTHETIC)
        self.seed = int(syn.pop('seed', 0))
        self.params = resolve_params(**syn)
        self.interval = int(cfg.TEST.KEY_FRAME_INTERVAL)
        self.stride = feature_stride(cfg)
        self.scenes = {}

    def scene(self, video):
        name = os.path.basename(video)
        if not name.startswith('ILSVRC2015_val_'):
            raise ValueError(f"{video}: not a synthetic validation video (ILSVRC2015_val_<index>)")
        idx = int(name.rsplit('_', 1)[1])
        if idx not in self.scenes:
            self.scenes[idx] = video_scene(self.seed, 'val', idx, self.params)[0]
        return self.scenes[idx]

    def __call__(self, frame, im_scale, feat_hw):
        """(gt flow (2, h, w) in cells, object-cell mask (h, w)) from this frame to its key frame."""
        t = frame_position(frame)
        key = t - t % self.interval
        scene = self.scene(frame['video'])
        _, label, _ = scene.render(t)
        return (feature_flow(scene.flow(t, key, label), im_scale, feat_hw, self.stride),
                object_cells(label, im_scale, feat_hw, self.stride))


@torch.no_grad()
def measure(cfg, flow_of, frames, gt):
    """EPE (cells) of flow_of(frame, cur (1, 3, H, W), key) -> flow (1, 2, h, w) and of zero flow, over all
    cells and over object cells of the non-key frames."""
    sums = {'net_all': 0.0, 'zero_all': 0.0, 'net_obj': 0.0, 'zero_obj': 0.0}
    n_all = n_obj = pairs = 0
    key_data = None
    for frame in frames:
        data, info = prepare_image(frame['image'], cfg, scale_index=test_scale_index(cfg, frame, by_video=True))
        pos = frame_position(frame)
        if is_key_frame(pos, gt.interval):
            key_data = data
            continue
        if key_data is None:
            raise ValueError(f"{frame['index']}: video does not start at a key frame")
        flow = flow_of(frame, data[None], key_data[None])
        g, obj = gt(frame, float(info[2]), flow.shape[-2:])
        err = torch.linalg.vector_norm(flow[0] - g, dim=0)
        mag = torch.linalg.vector_norm(g, dim=0)
        sums['net_all'] += float(err.sum())
        sums['zero_all'] += float(mag.sum())
        sums['net_obj'] += float(err[obj].sum())
        sums['zero_obj'] += float(mag[obj].sum())
        n_all += err.numel()
        n_obj += int(obj.sum())
        pairs += 1
    out = {k: v / max(n_all if k.endswith('all') else n_obj, 1) for k, v in sums.items()}
    out.update(pairs=pairs, object_cells=n_obj)
    return out


class _GroundTruthFlowNet(torch.nn.Module):
    """Stands in for model.flownet in the oracle test: FlowNet's scale map, the exact flow."""

    def __init__(self, flownet, gt):
        super().__init__()
        self.flownet, self.gt, self.frame, self.im_scale = flownet, gt, None, 1.0

    def forward(self, cur, key):
        flow, scale = self.flownet(cur, key)
        g, _ = self.gt(self.frame, self.im_scale, flow.shape[-2:])
        return g[None].to(flow), scale


def oracle_test(cfg, model, gt, test_dir, weights=None):
    real = model.flownet
    stand_in = _GroundTruthFlowNet(real, gt)

    class Detector(VideoDetector):
        def __call__(self, frame, data, im_info):
            stand_in.frame, stand_in.im_scale = frame, float(im_info[0, 2])
            return super().__call__(frame, data, im_info)

    model.flownet = stand_in
    try:
        return test_dff(cfg, weights, test_dir + '_gt_flow', model=model, zero_flow=False, detector_cls=Detector)
    finally:
        model.flownet = real


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--cfg', default='experiments/dff_rfcn/cfgs/synthetic_vid_cpu.yaml')
    ap.add_argument('--weights', default=None, help='DFF checkpoint or FlowNet state dict')
    ap.add_argument('--oracle', action='store_true', help='also test DFF with the ground-truth flow')
    ap.add_argument('--set', nargs='*', action='extend', default=[], metavar='KEY=VALUE',
                    help='config overrides (yaml values); may be repeated')
    args = ap.parse_args(argv)
    os.chdir(ROOT)
    cfg = update_from_list(load_config(args.cfg), args.set)
    if cfg.dataset.dataset != 'SyntheticVID':
        raise ValueError(f"{args.cfg} uses dataset {cfg.dataset.dataset}; only the synthetic dataset has "
                         f"ground-truth flow")
    train_dir, test_dir = output_dirs(cfg, args.cfg)
    weights = args.weights or os.path.join(train_dir, f'{cfg.TRAIN.model_prefix}-{int(cfg.TRAIN.end_epoch):04d}.pth')
    if not os.path.isfile(weights):
        raise FileNotFoundError(f"{weights} not found (train DFF first, or give --weights)")
    model = DFF(cfg)
    # a DFF checkpoint (or the official DFF .params) fills the whole model; a bare state dict (what
    # dff_rfcn/train_flownet.py writes) or the official flownet .params fills model.flownet only
    info = load_weights(model, weights, bare='flownet', partial=True, kinds=('flownet', 'dff'), cfg=cfg)
    if info['place'] == 'flownet' and args.oracle:
        raise ValueError(f"{weights} holds FlowNet weights only: --oracle needs a DFF checkpoint (detection heads)")
    model.eval()
    frames = make_imdb(cfg, cfg.dataset.test_image_set).test_frames()
    gt = GroundTruthFlow(cfg)
    r = measure(cfg, lambda frame, cur, key: model.flownet(cur, key)[0], frames, gt)
    print(f"{weights}\nflow end-point error in feature cells ({gt.stride} px) over {r['pairs']} non-key frames:\n"
          f"  all cells:    FlowNet {r['net_all']:.3f}, zero flow {r['zero_all']:.3f}\n"
          f"  object cells: FlowNet {r['net_obj']:.3f}, zero flow {r['zero_obj']:.3f} ({r['object_cells']} cells)")
    if args.oracle:
        res = oracle_test(cfg, model, gt, test_dir, weights)
        print(f"DFF with the ground-truth flow: mAP@0.5 {100 * res['mAP']:.1f} (results in {test_dir}_gt_flow)")
    return r


if __name__ == '__main__':
    run_cli(main)
