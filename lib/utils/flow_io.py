"""Optical-flow files and images of the Flying Chairs layout.

* ``.flo`` (Middlebury format, used by Flying Chairs): float32 magic 202021.25 (the bytes ``b'PIEH'``),
  int32 width, int32 height, then height*width*2 float32 in row-major order, u (x displacement) and
  v (y displacement) interleaved. Little-endian, as every published file is.
* ``.ppm`` images: binary P6, read and written with OpenCV (BGR channel order, like every image of
  this project).

Flow convention (Flying Chairs): the flow maps img1 pixels to img2, img1[y, x] ~= img2[y + v, x + u].
"""
import os

import cv2
import numpy as np

FLO_MAGIC = 202021.25
FLO_MAGIC_BYTES = b'PIEH'
_HEADER_BYTES = 12
# Larger than any real flow field (Flying Chairs: 512x384; Sintel: 1024x436); a header beyond this is
# taken to be a corrupt file rather than an allocation to attempt.
MAX_FLO_SIDE = 1 << 15
MAX_FLO_PIXELS = 1 << 27


def read_flo(path):
    """Read a Middlebury ``.flo`` file. Returns an (H, W, 2) float32 array (u, v).

    Raises FileNotFoundError for a missing file, ValueError (naming the file) for a bad magic
    number, absurd sizes, or a data size that does not match the header.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"flow file not found: {path}")
    with open(path, 'rb') as f:
        data = f.read()
    if len(data) < _HEADER_BYTES:
        raise ValueError(f"{path}: truncated .flo file ({len(data)} bytes, the header alone has "
                         f"{_HEADER_BYTES})")
    if data[:4] != FLO_MAGIC_BYTES:
        magic = np.frombuffer(data[:4], '<f4')[0]
        raise ValueError(f"{path}: not a .flo file: bad magic {data[:4]!r} (float {magic!r}), expected "
                         f"{FLO_MAGIC_BYTES!r} (float {FLO_MAGIC})")
    width, height = (int(v) for v in np.frombuffer(data[4:12], '<i4'))
    if not (0 < width <= MAX_FLO_SIDE and 0 < height <= MAX_FLO_SIDE and width * height <= MAX_FLO_PIXELS):
        raise ValueError(f"{path}: absurd flow size in the header: width {width}, height {height} "
                         f"(corrupt file?)")
    expected = _HEADER_BYTES + width * height * 2 * 4
    if len(data) < expected:
        raise ValueError(f"{path}: truncated .flo file: {len(data)} bytes, the header "
                         f"({width}x{height}) needs {expected}")
    if len(data) > expected:
        raise ValueError(f"{path}: {len(data) - expected} unexpected trailing bytes after the "
                         f"{width}x{height} flow field (corrupt file?)")
    flow = np.frombuffer(data, '<f4', count=width * height * 2, offset=_HEADER_BYTES)
    return flow.reshape(height, width, 2).astype(np.float32)


def write_flo(path, flow):
    """Write an (H, W, 2) flow field (u, v) as a Middlebury ``.flo`` file (float32, little-endian)."""
    path = os.fspath(path)
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"{path}: a flow field must have shape (H, W, 2), got {flow.shape}")
    height, width = flow.shape[:2]
    if not (0 < width <= MAX_FLO_SIDE and 0 < height <= MAX_FLO_SIDE and width * height <= MAX_FLO_PIXELS):
        raise ValueError(f"{path}: cannot write a flow field of size {width}x{height}")
    header = FLO_MAGIC_BYTES + np.array([width, height], '<i4').tobytes()
    with open(path, 'wb') as f:
        f.write(header)
        f.write(np.ascontiguousarray(flow, dtype='<f4').tobytes())


def read_image(path, flags=cv2.IMREAD_COLOR):
    """cv2.imread that raises FileNotFoundError (naming the path) instead of returning None."""
    path = os.fspath(path)
    img = cv2.imread(path, flags)
    if img is None:
        if os.path.isfile(path):
            raise FileNotFoundError(f"image could not be decoded (not an image, or corrupt): {path}")
        raise FileNotFoundError(f"image not found: {path}")
    return img


def read_ppm(path):
    """Read a .ppm image (BGR uint8), as Flying Chairs' img1/img2 files."""
    return read_image(path)


def write_ppm(path, img):
    """Write a BGR uint8 image as a binary (P6) .ppm."""
    path = os.fspath(path)
    if not cv2.imwrite(path, img, [cv2.IMWRITE_PXM_BINARY, 1]):
        raise OSError(f"could not write image: {path}")


def flow_to_color(flow, max_mag=None):
    """Visualise a flow field: (H, W, 3) uint8 BGR, hue = direction, saturation = magnitude.

    HSV colour wheel: u > 0 (rightwards) is red, v > 0 (downwards) yellow-green, u < 0 cyan,
    v < 0 blue-violet; zero flow is white and a flow of magnitude >= ``max_mag`` fully saturated
    (default: the largest finite magnitude of this field). Non-finite vectors (unknown flow) are black.
    """
    flow = np.asarray(flow, dtype=np.float32)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must have shape (H, W, 2), got {flow.shape}")
    u, v = flow[..., 0], flow[..., 1]
    known = np.isfinite(u) & np.isfinite(v)
    u = np.where(known, u, 0.0).astype(np.float32)
    v = np.where(known, v, 0.0).astype(np.float32)
    mag, ang = cv2.cartToPolar(u, v, angleInDegrees=True)
    if max_mag is None:
        max_mag = float(mag.max()) if mag.size else 0.0
    max_mag = max(float(max_mag), 1e-6)
    hsv = np.empty(flow.shape[:2] + (3,), np.uint8)
    hsv[..., 0] = np.round(ang / 2.0).astype(np.int32) % 180
    hsv[..., 1] = np.round(np.clip(mag / max_mag, 0.0, 1.0) * 255.0).astype(np.uint8)
    hsv[..., 2] = 255
    bgr = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    bgr[~known] = 0
    return bgr
