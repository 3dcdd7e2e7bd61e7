"""Deep Feature Flow (docs/fidelity.md §5): the baseline's feature network runs on key frames only; other frames get
the key frame's conv_feat warped along FlowNet's flow and multiplied by its scale map, then the
baseline's detection heads. Shared parts: lib/model/detection.py."""
import torch
import torch.nn as nn

import lib.ops as ops
from lib.config import configurable
from lib.model.convert_mxnet import register_model
from lib.model.detection import DetectionHeads, FeatureNet
from lib.model.flownet import build_flownet


class DFF(nn.Module):
    may_skip_parameters = True  # FlowNet is left out of the graph for eq_flag = 1 batches (DDP must know)

    @configurable
    def __init__(self, feature, flownet, heads):
        """DFF(cfg), or DFF(feature=FeatureNet(...), flownet=FlowNetS(...), heads=DetectionHeads(...))."""
        super().__init__()
        self.feature = feature
        self.flownet = flownet
        self.heads = heads
        self.zero_flow = False  # ablation: copy the key features instead of warping them (flow forced to 0)

    @classmethod
    def from_config(cls, cfg):
        return {'feature': FeatureNet(cfg), 'flownet': build_flownet(cfg), 'heads': DetectionHeads(cfg)}

    def flow_to_key(self, cur, key):
        """FlowNet's (flow, scale map) from the current frame to the key frame (zero flow in the ablation)."""
        flow, scale = self.flownet(cur, key)
        if self.zero_flow:
            flow = torch.zeros_like(flow)
        return flow, scale

    @staticmethod
    def warp(key_feat, flow, scale):
        """flow_warp(key_feat, flow) * scale (docs/fidelity.md §5.2)."""
        return ops.flow_warp(key_feat, flow) * scale

    def propagate(self, key_feat, cur, key):
        """Warp key-frame features to the current frame: flow_warp(key_feat, flow) * scale (docs/fidelity.md §5.2)."""
        return self.warp(key_feat, *self.flow_to_key(cur, key))

    def forward(self, batch):
        """Training (docs/fidelity.md §5.3): backbone on the key frame `data_ref`, loss on the current frame `data`;
        eq_flag = 1 (key == current, DET images) uses the unwarped features and skips FlowNet."""
        conv_feat = self.feature(batch['data_ref'])
        eq = batch['eq_flag'].to(torch.bool)
        if bool(eq.all()):
            feat = conv_feat
        else:
            warped = self.propagate(conv_feat, batch['data'], batch['data_ref'])
            feat = torch.where(eq.view(-1, 1, 1, 1), conv_feat, warped)
        return self.heads.training_losses(feat, batch)

    # ------------------------------------------------------------------ inference (docs/fidelity.md §5.5)
    def detect_key(self, data, im_info):
        """Key frame: full network. Returns (head outputs, conv_feat to cache)."""
        conv_feat = self.feature(data)
        return self.heads(conv_feat, im_info), conv_feat

    def detect_cur(self, data, im_info, key_data, key_feat):
        """Non-key frame: FlowNet + warp + heads only."""
        return self.heads(self.propagate(key_feat, data, key_data), im_info)

    def detect_flowed(self, im_info, key_feat, flow, scale):
        """Non-key frame whose FlowNet output (flow_to_key) is already there: warp + heads (= detect_cur)."""
        return self.heads(self.warp(key_feat, flow, scale), im_info)

    def detect_batch(self, data_key, data_other, im_info):
        """Batched mode (get_batch_test_symbol): one key image + K-1 other frames in one forward; the key
        image and features are tiled over the others. im_info (K, 3), key first."""
        key_feat = self.feature(data_key)
        k1 = data_other.shape[0]
        feats = key_feat
        if k1:
            warped = self.propagate(key_feat.expand(k1, -1, -1, -1), data_other, data_key.expand(k1, -1, -1, -1))
            feats = torch.cat([key_feat, warped], 0)
        return self.heads(feats, im_info)


register_model('dff', DFF)  # the official rfcn_dff_flownet_vid-0000.params converts into a DFF
