"""The frame baseline: R-FCN on every frame (docs/fidelity.md §3). Everything it is made of lives in lib/model."""
import torch.nn as nn

from lib.config import configurable
from lib.model.convert_mxnet import register_model
from lib.model.detection import DetectionHeads, FeatureNet


class RFCN(nn.Module):
    """RFCN(cfg), or RFCN(feature=FeatureNet(...), heads=DetectionHeads(...))."""

    @configurable
    def __init__(self, feature, heads):
        super().__init__()
        self.feature = feature
        self.heads = heads

    @classmethod
    def from_config(cls, cfg):
        return {'feature': FeatureNet(cfg), 'heads': DetectionHeads(cfg)}

    def forward(self, batch):
        """Training: a collated batch (lib.dataset.loader.BatchCollator) -> dict of the four losses."""
        return self.heads.training_losses(self.feature(batch['data']), batch)

    def detect(self, data, im_info):
        """Test: (N, 3, H, W), im_info (N, 3) -> {'rois', 'cls_prob', 'bbox_pred' (de-normalised)}."""
        return self.heads(self.feature(data), im_info)


register_model('rfcn', RFCN)  # the official rfcn_vid-0000.params converts into an RFCN
