"""FlowNet-Simple as DFF uses it (docs/fidelity.md §5.1), with the Caffe/MXNet layer names kept as attribute names
so the official flownet-0000.params / DFF checkpoint keys map one-to-one.

Input: the detector's mean-subtracted RGB tensors of the current and the key frame, /255, concatenated
as [current, key], average-pooled 2x2 ('full'/ceil convention) to half resolution. LeakyReLU(0.1)
after every conv of the encoder and every cropped deconvolution. MXNet's Deconvolution(k4, s2, p0)
followed by Crop(offset (1, 1)) to the skip connection's size equals ConvTranspose2d(k4, s2, p1)
followed by [:H_skip, :W_skip]. The decoder's 194-channel stride-8 map is average-pooled 2x2 (ceil)
to stride 16, where Convolution5 gives the flow (x2.5: flow/20 at half resolution -> feature pixels)
and Convolution5_scale (1x1, init weight 0 / bias 1, bias frozen) the 1024-channel scale map.

Returns (flow (N, 2, h, w) in feature-map pixels, channel 0 = x; scale (N, feat_dim, h, w)) at the
stride-16 size of the detector's conv_feat; the other flow predictions (Convolution1..4) feed only
the decoder, and `multiscale=True` also returns them for FlowNet pretraining.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from lib.config import configurable
from .resnet_v1 import feature_stride


def _crop(x, like):
    return x[:, :, :like.shape[2], :like.shape[3]]


class FlowNetS(nn.Module):
    FLOW_SCALE = 2.5  # docs/fidelity.md §5.1: Convolution5 x 2.5
    # decoder stages (deconvolution, flow upsampling, flow prediction), the original's layer names
    DECODER = (('deconv5', 'upsample_flow6to5', 'Convolution2'), ('deconv4', 'upsample_flow5to4', 'Convolution3'),
               ('deconv3', 'upsample_flow4to3', 'Convolution4'), ('deconv2', 'upsample_flow3to2', 'Convolution5'))

    @configurable
    def __init__(self, feat_dim=1024, width_mult=1.0, feat_stride=16):
        """FlowNetS(cfg) (network.DFF_FEAT_DIM, network.FLOW_WIDTH_MULT, RCNN_FEAT_STRIDE) or
        FlowNetS(feat_dim=, width_mult=, feat_stride=). feat_stride 8 (not in the original: the synthetic CPU
        configs, docs/synthetic.md) predicts at the decoder's own stride-8 map, without resize_concat5, and
        scales the flow to stride-8 feature pixels (x5)."""
        super().__init__()
        # resize_data: the original scales the concatenated images, then pools them; the inference fast path
        # (lib/model/fast_path.py) pools each image first (the same sums, another rounding order, 2-3x faster)
        self.pool_inputs_first = False
        self._pooled_key = None  # (key image, its version, pooled): the fast path pools a key image once
        if int(feat_stride) not in (8, 16):
            raise ValueError(f'FlowNet-S predicts at feature stride 8 or 16, got {feat_stride}')
        self.feat_stride = int(feat_stride)
        self.flow_scale = self.FLOW_SCALE * 16 / self.feat_stride

        def c(n):
            return max(2, int(round(n * width_mult)))

        c64, c128, c256, c512, c1024 = c(64), c(128), c(256), c(512), c(1024)
        conv = nn.Conv2d
        self.flow_conv1 = conv(6, c64, 7, 2, 3)
        self.conv2 = conv(c64, c128, 5, 2, 2)
        self.conv3 = conv(c128, c256, 5, 2, 2)
        self.conv3_1 = conv(c256, c256, 3, 1, 1)
        self.conv4 = conv(c256, c512, 3, 2, 1)
        self.conv4_1 = conv(c512, c512, 3, 1, 1)
        self.conv5 = conv(c512, c512, 3, 2, 1)
        self.conv5_1 = conv(c512, c512, 3, 1, 1)
        self.conv6 = conv(c512, c1024, 3, 2, 1)
        self.conv6_1 = conv(c1024, c1024, 3, 1, 1)
        self.Convolution1 = conv(c1024, 2, 3, 1, 1)
        # the decoder, coarse to fine: each stage concatenates [encoder skip, deconvolved map, upsampled flow]
        # and predicts a flow from it (registered in the original's order: deconv, upsample, prediction)
        cin = c1024
        for (deconv, upsample, predict), skip, out in zip(self.DECODER, (c512, c512, c256, c128),
                                                            (c512, c256, c128, c64)):
            setattr(self, deconv, nn.ConvTranspose2d(cin, out, 4, 2, 1))
            setattr(self, upsample, nn.ConvTranspose2d(2, 2, 4, 2, 1))
            cin = skip + out + 2
            setattr(self, predict, conv(cin, 2, 3, 1, 1))
        self.Convolution5_scale = conv(cin, feat_dim, 1, 1, 0)
        self.concat_channels = cin
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, a=0.1, nonlinearity='leaky_relu')
                nn.init.zeros_(m.bias)
        # docs/fidelity.md §5.1: the scale map starts at exactly 1; its bias is frozen (lr_mult 0, lib/model/params.py)
        nn.init.zeros_(self.Convolution5_scale.weight)
        nn.init.ones_(self.Convolution5_scale.bias)

    @classmethod
    def from_config(cls, cfg):
        return {'feat_dim': int(cfg.network.DFF_FEAT_DIM), 'width_mult': float(cfg.network.FLOW_WIDTH_MULT),
                'feat_stride': feature_stride(cfg)}

    def _pool_key(self, key):
        """The key image pooled 2x2, on the fast path: kept while the same key tensor comes back unchanged (the
        non-key frames of an interval pass their key frame's image; pooling it once saves 1-4 ms a frame at
        600x1000). Not under autograd or torch.compile."""
        if torch.is_grad_enabled() or torch.compiler.is_compiling():
            return F.avg_pool2d(key, 2, 2, ceil_mode=True)
        cached = self._pooled_key
        if cached is not None and cached[0] is key and cached[1] == key._version:
            return cached[2]
        pooled = F.avg_pool2d(key, 2, 2, ceil_mode=True)
        self._pooled_key = (key, key._version, pooled)
        return pooled

    def forward(self, cur, key, multiscale=False):
        lrelu = lambda t: F.leaky_relu(t, 0.1)  # noqa: E731
        if self.pool_inputs_first:  # the inference fast path: the same sums at a quarter of the pixels
            x = torch.cat([F.avg_pool2d(cur, 2, 2, ceil_mode=True), self._pool_key(key)], 1) / 255.0
        else:
            x = torch.cat([cur, key], 1) / 255.0
            x = F.avg_pool2d(x, 2, 2, ceil_mode=True)  # resize_data
        c1 = lrelu(self.flow_conv1(x))
        c2 = lrelu(self.conv2(c1))
        c3 = lrelu(self.conv3_1(lrelu(self.conv3(c2))))
        c4 = lrelu(self.conv4_1(lrelu(self.conv4(c3))))
        c5 = lrelu(self.conv5_1(lrelu(self.conv5(c4))))
        c6 = lrelu(self.conv6_1(lrelu(self.conv6(c5))))
        x, flows = c6, [self.Convolution1(c6)]  # flow6
        for (deconv, upsample, predict), skip in zip(self.DECODER, (c5, c4, c3, c2)):
            x = torch.cat([skip, lrelu(_crop(getattr(self, deconv)(x), skip)),
                           _crop(getattr(self, upsample)(flows[-1]), skip)], 1)
            if predict != 'Convolution5':  # flow5, flow4, flow3; Convolution5 predicts after resize_concat5
                flows.append(getattr(self, predict)(x))
        pooled = F.avg_pool2d(x, 2, 2, ceil_mode=True) if self.feat_stride == 16 else x  # resize_concat5: 8 -> 16
        flow = self.Convolution5(pooled) * self.flow_scale
        scale = self.Convolution5_scale(pooled)
        if multiscale:
            # raw predictions (flow/20 in half-resolution pixels) at strides 64, 32, 16, 8 (of the input)
            return flow, scale, flows + [self.Convolution5(x)]
        return flow, scale


def build_flownet(cfg):
    """The FlowNet-S of a config (network.DFF_FEAT_DIM, network.FLOW_WIDTH_MULT)."""
    return FlowNetS(cfg)
