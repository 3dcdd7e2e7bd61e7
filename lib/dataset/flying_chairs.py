"""Optical-flow pairs in the Flying Chairs layout (what users download for FlowNet training):

    <root>/data/%05d_img1.ppm, %05d_img2.ppm, %05d_flow.flo   (numbered from 00001)
    <root>/FlyingChairs_train_val.txt                          one line per pair: 1 = train, 2 = validation

Flow convention: img1[y, x] ~ img2[y + v, x + u], u = channel 0. DFF's FlowNet takes [current, key] and
returns the offsets of the current frame's pixels in the key frame, so img1 is the current frame and
img2 the key frame. Images are returned as the detector's tensors (RGB minus PIXEL_MEANS, 0-255);
FlowNetS divides by 255 itself (docs/fidelity.md §5.1)."""
import os

import numpy as np
import torch

from lib.utils.flow_io import read_flo
from lib.utils.image import read_image, to_tensor

LIST_FILE = 'FlyingChairs_train_val.txt'


def read_split(root):
    """(train ids, val ids), 1-based pair numbers, from the list file; clear errors for a bad layout."""
    path = os.path.join(root, LIST_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: a Flying Chairs folder holds {LIST_FILE} and data/ "
                                f"(set FLOW_PRETRAIN.dataset_path)")
    with open(path) as f:
        marks = [line.strip() for line in f if line.strip()]
    bad = [(i + 1, m) for i, m in enumerate(marks) if m not in ('1', '2')]
    if bad:
        raise ValueError(f"{path}: line {bad[0][0]} is {bad[0][1]!r}; every line must be 1 (train) or 2 (val)")
    train = [i + 1 for i, m in enumerate(marks) if m == '1']
    val = [i + 1 for i, m in enumerate(marks) if m == '2']
    return train, val


class FlyingChairs(torch.utils.data.Dataset):
    def __init__(self, root, ids, pixel_means, flip=False, seed=0):
        self.root, self.ids, self.pixel_means = root, list(ids), pixel_means
        self.flip, self.seed = flip, seed
        self.epoch = 0
        missing = [p for i in self.ids[:1] + self.ids[-1:] for p in self.files(i) if not os.path.isfile(p)]
        if missing:
            raise FileNotFoundError(f"Flying Chairs pair file(s) missing: {missing}")

    def files(self, pair_id):
        d = os.path.join(self.root, 'data')
        return [os.path.join(d, f'{pair_id:05d}_img1.ppm'), os.path.join(d, f'{pair_id:05d}_img2.ppm'),
                os.path.join(d, f'{pair_id:05d}_flow.flo')]

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, k):
        p1, p2, pf = self.files(self.ids[k])
        im1, im2, flow = read_image(p1), read_image(p2), read_flo(pf)
        if im1.shape != im2.shape or im1.shape[:2] != flow.shape[:2]:
            raise ValueError(f"pair {self.ids[k]:05d}: sizes differ: img1 {im1.shape[:2]}, img2 {im2.shape[:2]}, "
                             f"flow {flow.shape[:2]} ({pf})")
        planes = np.empty((2,) + flow.shape[:2], np.float32)
        if self.flip and np.random.default_rng([self.seed, self.epoch, k]).random() < 0.5:
            im1, im2 = im1[:, ::-1], im2[:, ::-1]
            np.negative(flow[:, ::-1, 0], out=planes[0])  # mirrored: u changes sign
            planes[1] = flow[:, ::-1, 1]
        else:
            planes[0], planes[1] = flow[:, :, 0], flow[:, :, 1]
        flow = torch.from_numpy(planes)
        return to_tensor(im1, self.pixel_means), to_tensor(im2, self.pixel_means), flow
