"""Image reading and preprocessing exactly as the original lib/utils/image.py (spec 4.3):
cv2.imread (BGR uint8) -> optional horizontal flip -> resize with scale = short_target / short side,
capped so that round(scale * long side) <= max_size -> tensor in RGB order minus PIXEL_MEANS, in the
0-255 range, no std division. im_info = [height, width, scale]."""
import os

import cv2
import numpy as np
import torch


def read_image(path, flipped=False):
    """BGR uint8 (H, W, 3); a clear error naming the file when it is missing or unreadable."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image not found: {path}")
    im = cv2.imread(path, cv2.IMREAD_COLOR)
    if im is None:
        raise ValueError(f"image could not be decoded (corrupt or not an image): {path}")
    if flipped:
        im = im[:, ::-1, :]
    return im


def resize_scale(height, width, target_size, max_size):
    """The original's scale rule: short side -> target_size unless the long side would exceed max_size."""
    short, long_ = min(height, width), max(height, width)
    scale = float(target_size) / float(short)
    if np.round(scale * long_) > max_size:
        scale = float(max_size) / float(long_)
    return scale


def resize(im, target_size, max_size, stride=0):
    """cv2.resize(fx=fy=scale, INTER_LINEAR); with stride > 0 the image is zero-padded to a multiple
    of it (IMAGE_STRIDE; 0 in every config of the original). Returns (image, scale)."""
    scale = resize_scale(im.shape[0], im.shape[1], target_size, max_size)
    im = cv2.resize(im, None, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    if stride > 0:
        h = int(np.ceil(im.shape[0] / stride) * stride)
        w = int(np.ceil(im.shape[1] / stride) * stride)
        padded = np.zeros((h, w, 3), dtype=im.dtype)
        padded[:im.shape[0], :im.shape[1]] = im
        im = padded
    return im, scale


def to_tensor(im, pixel_means):
    """BGR uint8 (H, W, 3) -> float32 (3, H, W) in RGB order minus the means (given B, G, R)."""
    means = np.asarray(pixel_means, dtype=np.float32)
    rgb = im[:, :, ::-1].astype(np.float32) - means[::-1]
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))


def to_bgr_uint8(tensor, pixel_means):
    """Inverse of to_tensor (for visualisation)."""
    means = np.asarray(pixel_means, dtype=np.float32)
    rgb = tensor.detach().cpu().numpy().transpose(1, 2, 0) + means[::-1]
    return np.clip(rgb[:, :, ::-1], 0, 255).astype(np.uint8)


def prepare_image(path, cfg, flipped=False, scale_index=0):
    """Read, flip, resize and normalise one image with the cfg's SCALES / PIXEL_MEANS / IMAGE_STRIDE.
    Returns (tensor (3, H, W), im_info float32 [H, W, scale])."""
    target, max_size = cfg.SCALES[scale_index]
    im = read_image(path, flipped)
    im, scale = resize(im, target, max_size, cfg.network.IMAGE_STRIDE)
    tensor = to_tensor(im, cfg.network.PIXEL_MEANS)
    return tensor, np.array([im.shape[0], im.shape[1], scale], dtype=np.float32)
