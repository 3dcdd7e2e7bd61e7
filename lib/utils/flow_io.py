"""Optical-flow files and images of the Flying Chairs layout.

* ``.flo`` (Middlebury format, used by Flying Chairs): float32 magic 202021.25 (the bytes ``b'PIEH'``),
  int32 width, int32 height, then height*width*2 float32 in row-major order, u (x displacement) and
  v (y displacement) interleaved. Little-endian, as every published file is.
* ``.ppm`` images: binary P6, read and written with OpenCV (BGR channel order, like every image of
  this project).

Flow convention (Flying Chairs): the flow maps img1 pixels to img2, img1[y, x] ~= img2[y + v, x + u].
``flow_to_color`` draws a flow field in the Middlebury colour code (the demos' --show-flow).
"""
import os

import cv2
import numpy as np

from lib.utils.fileio import atomic_write, write_bytes
from lib.utils.image import read_image

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
    data = np.ascontiguousarray(flow, dtype='<f4')

    def write(f):
        f.write(header)
        f.write(data.tobytes())

    atomic_write(path, write, sync=False)  # a dataset file: the dataset's marker, written last, makes it whole


def read_ppm(path):
    """Read a .ppm image (BGR uint8), as Flying Chairs' img1/img2 files."""
    return read_image(path)  # lib.utils.image: clear errors naming the file


def write_ppm(path, img):
    """Write a BGR uint8 image as a binary (P6) .ppm."""
    path = os.fspath(path)
    ok, data = cv2.imencode('.ppm', img, [cv2.IMWRITE_PXM_BINARY, 1])
    if not ok:
        raise OSError(f"could not encode image: {path}")
    write_bytes(path, data.tobytes(), sync=False)


# Middlebury colour wheel: hue segments red-yellow, yellow-green, green-cyan, cyan-blue, blue-magenta,
# magenta-red with these numbers of steps (Baker et al., "A Database and Evaluation Methodology for
# Optical Flow", the flow-code colour key).
_WHEEL_SEGMENTS = (('RY', 15), ('YG', 6), ('GC', 4), ('CB', 11), ('BM', 13), ('MR', 6))


def color_wheel():
    """(55, 3) float RGB colours in [0, 255] around the wheel; entry 0 is pure red."""
    rows = []
    for name, n in _WHEEL_SEGMENTS:
        ramp = np.floor(255.0 * np.arange(n) / n)
        up, down, full, zero = ramp, 255.0 - ramp, np.full(n, 255.0), np.zeros(n)
        rows.append({'RY': (full, up, zero), 'YG': (down, full, zero), 'GC': (zero, full, up),
                     'CB': (zero, down, full), 'BM': (up, zero, full), 'MR': (full, zero, down)}[name])
    return np.concatenate([np.stack(r, 1) for r in rows], 0)


def flow_to_color(flow, max_mag=None):
    """(H, W, 2) flow (u = x, v = y, any unit) -> (H, W, 3) uint8 BGR in the Middlebury colour code.

    Direction is the hue: +x (rightwards) is the wheel's entry 0, red; +y (downwards) is towards
    yellow/orange, -x cyan-blue, -y blue-magenta. Magnitude / max_mag is the saturation: zero flow is
    white, magnitude max_mag full colour, larger magnitudes full colour darkened to 75% (as the
    reference code). max_mag defaults to the largest finite magnitude of this field. Non-finite vectors
    (unknown flow) are black.

    Unlike the reference code, which maps the angle onto (ncols - 1) steps so that +x with v = +0 and
    with v = -0 get different colours, the angle is mapped onto the closed wheel of ncols steps.
    """
    flow = np.asarray(flow, dtype=np.float64)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must have shape (H, W, 2), got {flow.shape}")
    u, v = flow[..., 0], flow[..., 1]
    known = np.isfinite(u) & np.isfinite(v)
    u, v = np.where(known, u, 0.0), np.where(known, v, 0.0)
    mag = np.sqrt(u * u + v * v)
    if max_mag is None:
        max_mag = float(mag.max()) if mag.size else 0.0
    rad = mag / max(float(max_mag), 1e-12)
    wheel = color_wheel() / 255.0
    n = len(wheel)
    # angle of the motion, 0 for +x, increasing towards +y (image y points down), in [0, 1) turns
    turns = (np.arctan2(v, u) / (2 * np.pi)) % 1.0
    pos = turns * n
    k0 = np.floor(pos).astype(np.int64) % n
    k1 = (k0 + 1) % n
    f = (pos - np.floor(pos))[..., None]
    col = (1 - f) * wheel[k0] + f * wheel[k1]
    r = rad[..., None]
    col = np.where(r <= 1, 1 - r * (1 - col), col * 0.75)
    rgb = np.floor(255.0 * np.clip(col, 0, 1)).astype(np.uint8)
    rgb[~known] = 0
    return np.ascontiguousarray(rgb[..., ::-1])
