"""Image reading and preprocessing exactly as the original lib/utils/image.py (docs/fidelity.md §7.1):
cv2 decode with IMREAD_COLOR | IMREAD_IGNORE_ORIENTATION (BGR uint8, the stored pixels: an EXIF
orientation tag is not applied, so boxes stay on the pixels they were drawn on) -> optional horizontal
flip -> resize with scale = short_target / short side, capped so that round(scale * long side) <= max_size
-> tensor in RGB order minus PIXEL_MEANS, in the 0-255 range, no std division. im_info = [height, width,
scale]. With several SCALES the original draws one at random per image (choose_scale).

Every decode is checked: a missing file, bytes that do not decode, a JPEG cut short (libjpeg decodes the
part that is there, prints "Premature end of JPEG file" without a file name and carries on) and an image
whose size differs from its annotation's <size> raise an error naming the file."""
import hashlib
import os

import cv2
import numpy as np
import torch

IMREAD_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION  # the original's flags


def jpeg_truncated(data):
    """True when `data` is a JPEG (starts with SOI) whose last scan (SOS, FFDA) is not followed by the end
    marker (EOI, FFD9). Inside a scan 0xFF bytes are stuffed (FF00) or restart markers (FFD0-FFD7), so the
    last FFDA is the last scan header and an intact file has FFD9 after it (trailing bytes after the EOI,
    as some cameras write, are allowed)."""
    if data[:2] != b'\xff\xd8':
        return False
    return data.rfind(b'\xff\xd9') < data.rfind(b'\xff\xda')


def read_image(path, flipped=False, expected_size=None):
    """BGR uint8 (H, W, 3) of the stored pixels. A clear error naming the file when it is missing, does not
    decode, is a truncated JPEG, or (expected_size = (height, width), its annotation's <size>) has
    another size."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image not found: {path}")
    with open(path, 'rb') as f:
        data = f.read()
    if jpeg_truncated(data):
        raise ValueError(f"image is truncated (JPEG without its end marker; an interrupted download or copy?): "
                         f"{path}")
    im = cv2.imdecode(np.frombuffer(data, np.uint8), IMREAD_FLAGS) if data else None
    if im is None:
        raise ValueError(f"image could not be decoded (corrupt or not an image): {path}")
    if expected_size is not None and tuple(im.shape[:2]) != tuple(int(v) for v in expected_size):
        raise ValueError(f"image {path} is {im.shape[1]}x{im.shape[0]} (width x height) but its annotation's "
                         f"<size> says {int(expected_size[1])}x{int(expected_size[0])}")
    if flipped:
        im = im[:, ::-1, :]
    return im


def choose_scale(cfg, *key):
    """Index into cfg.SCALES for one image: 0 with a single scale; with several, a draw that depends only
    on (cfg.seed, *key) (the original drew random.randrange(len(SCALES)) per image from a global RNG; here
    the same image gets the same scale in every run with the same seed, whatever the workers or
    processes). key: integers or strings identifying the image (e.g. epoch and roidb index)."""
    n = len(cfg.SCALES)
    if n <= 1:
        return 0
    words = [int(cfg.seed)] + [int(k) if isinstance(k, (int, np.integer)) else int.from_bytes(
        hashlib.sha1(str(k).encode()).digest()[:4], 'little') for k in key]
    return int(np.random.default_rng(words).integers(n))


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
    out = np.empty((3,) + im.shape[:2], np.float32)
    for c in range(3):  # one pass per output plane (4-5x faster than convert, subtract, transpose; same numbers)
        np.subtract(im[:, :, 2 - c], means[2 - c], out=out[c], dtype=np.float32)
    return torch.from_numpy(out)


def to_bgr_uint8(tensor, pixel_means):
    """Inverse of to_tensor (for visualisation)."""
    means = np.asarray(pixel_means, dtype=np.float32)
    rgb = tensor.detach().cpu().numpy().transpose(1, 2, 0) + means[::-1]
    return np.clip(rgb[:, :, ::-1], 0, 255).astype(np.uint8)


def prepare_image(path, cfg, flipped=False, scale_index=0, expected_size=None):
    """Read (checked against expected_size = (height, width) when given), flip, resize and normalise one
    image with cfg.SCALES[scale_index] / PIXEL_MEANS / IMAGE_STRIDE.
    Returns (tensor (3, H, W), im_info float32 [H, W, scale])."""
    target, max_size = cfg.SCALES[scale_index]
    im = read_image(path, flipped, expected_size)
    im, scale = resize(im, target, max_size, cfg.network.IMAGE_STRIDE)
    tensor = to_tensor(im, cfg.network.PIXEL_MEANS)
    return tensor, np.array([im.shape[0], im.shape[1], scale], dtype=np.float32)
