"""Streaming detection, frame by frame as the frames arrive: what rfcn/api.py (the frame baseline) and
dff_rfcn/api.py (Deep Feature Flow) share, and what the demos (lib/apps/demo.py) are built on.

    det = load_detector(checkpoint, cfg=None, device='cpu', ...)   # rfcn.api / dff_rfcn.api
    for r in det.stream(source):                                     # one dict per frame, in order
        r['boxes'], r['scores'], r['labels'], r['class_names'], r['is_key'], r['index'], r['time_s']

A source (open_source) is a video file, a folder of frames (frame-number order), a camera index or a stream
URL that OpenCV opens, or any iterable of BGR uint8 (H, W, 3) arrays, each of any size: every frame is
resized as in testing (SCALES, IMAGE_STRIDE) and its boxes are given back in its own pixels. Nothing of a
frame is kept after its result is yielded (DFF keeps its last key frame's image and features), so memory
stays flat over a stream of any length.

Post-processing is the original demo's: per-class NMS (TEST.NMS) on all boxes, then the detections with a
score above `thresh` (default 0.7, the original demo's), highest score first. Thresholding before NMS
keeps exactly the boxes that NMS then thresholding keeps: a box above the threshold can only be
suppressed by a higher-scoring one, which is above the threshold too. There is no per-image cap.

Timing (docs/fidelity.md §9): `time_s` is this frame's detector call (network forward + box decoding, with a
CUDA synchronisation on a GPU); reading, resizing, NMS and anything the caller does are not in it. In the
batched mode of frames() (the original demo_batch.py) a frame gets its chunk's time divided by its frames.
"""
import collections
import contextlib
import os
import re
import time

import cv2
import numpy as np
import torch

from lib.config import ConfigError, config_from_dict, is_config, load_config, update_from_list
from lib.dataset.loader import get_imdb_class
from lib.dataset.vid_classes import dataset_classes
from lib.model.fast_path import describe_fast_path, fast_overrides, prepare_inference
from lib.model.weights import load_model_weights, read_weights
from lib.utils.device import resolve_device
from lib.utils.image import read_image, resize, to_tensor

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.tif', '.tiff', '.webp')
DEFAULT_FPS = 25.0
DEFAULT_THRESH = 0.7  # the original demos' score threshold
URL = re.compile(r'[A-Za-z][A-Za-z0-9+.-]*://')


class DemoInputError(ValueError):
    """A problem with what the user asked for (source, options): reported without a traceback."""


# Video containers by their file signature: (name, offset, magic). OpenCV's FFmpeg backend also opens text
# files (its 'tty' demuxer renders the text as frames) and single images (image2) as "videos"; only a real
# video container is taken as one.
VIDEO_SIGNATURES = (
    ('MP4 / QuickTime / 3GP', 4, (b'ftyp', b'moov', b'mdat', b'free', b'wide', b'skip', b'pnot')),
    ('AVI', 0, (b'RIFF',)),  # + 'AVI ' at 8, checked below
    ('Matroska / WebM', 0, (b'\x1a\x45\xdf\xa3',)),
    ('FLV', 0, (b'FLV\x01',)),
    ('MPEG program stream', 0, (b'\x00\x00\x01\xba',)),
    ('MPEG video elementary stream', 0, (b'\x00\x00\x01\xb3',)),
    ('H.264 / H.265 Annex B stream', 0, (b'\x00\x00\x00\x01',)),
    ('ASF / WMV', 0, (b'\x30\x26\xb2\x75\x8e\x66\xcf\x11',)),
    ('Ogg', 0, (b'OggS',)),
)
IMAGE_SIGNATURES = ((b'\xff\xd8\xff', 'JPEG'), (b'\x89PNG', 'PNG'), (b'BM', 'BMP'), (b'GIF8', 'GIF'),
                    (b'II*\x00', 'TIFF'), (b'MM\x00*', 'TIFF'))


def video_container(path):
    """The name of the video container `path` holds, judged by its first bytes; a DemoInputError naming
    the file when it is an image, text or anything else that is not a video container."""
    with open(path, 'rb') as f:
        head = f.read(400)
    for name, offset, magics in VIDEO_SIGNATURES:
        if any(head[offset:offset + len(m)] == m for m in magics):
            if name == 'AVI' and head[8:12] not in (b'AVI ', b'AVIX'):
                continue  # another RIFF file (WAV, WebP)
            return name
    if len(head) >= 189 and head[0] == 0x47 and head[188] == 0x47:
        return 'MPEG transport stream'
    kind = next((k for magic, k in IMAGE_SIGNATURES if head.startswith(magic)),
                'WebP' if head[:4] == b'RIFF' and head[8:12] == b'WEBP' else None)
    if kind:
        raise DemoInputError(f"{path} is a {kind} image, not a video; for frames give the folder that holds them")
    raise DemoInputError(f"{path} is not a video container (MP4/MOV, AVI, Matroska/WebM, FLV, MPEG-PS/TS, ASF, "
                         f"Ogg, H.264/H.265 stream): give a video file or a folder of frames")


# ---------------------------------------------------------------------------------------------------
# sources

Frame = collections.namedtuple('Frame', ['index', 'stem', 'image'])  # image: BGR uint8 (H, W, 3)


def natural_key(name):
    """Sort key that compares the digit runs of a file name as numbers: '2.jpg' < '10.jpg',
    'frame_9' < 'frame_10'; letters compare case-insensitively. Even positions of the key are always
    strings and odd positions integers, so any two keys compare."""
    parts = re.split(r'(\d+)', name)
    return [int(p) if i % 2 else p.lower() for i, p in enumerate(parts)] + [name]


def list_frame_files(folder):
    """The image files of `folder` (not recursive) in frame-number order."""
    names = [n for n in os.listdir(folder)
             if n.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(folder, n))]
    if not names:
        raise DemoInputError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in the folder {folder}")
    names.sort(key=natural_key)
    stems = [os.path.splitext(n)[0] for n in names]
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        raise DemoInputError(f"{folder}: several images share a name and would be written to the same output "
                             f"file: {', '.join(dup[:5])}")
    return [os.path.join(folder, n) for n in names]


class FrameSource:
    """Frames of a folder of images (in frame-number order) or of a video file (cv2.VideoCapture), as
    Frame(index, stem, image). Output names: the image's file name without extension, or the frame
    index zero-padded to 6 digits for a video. Errors name the path: missing, an empty folder, a
    video that cannot be opened or has no frame, a file that is not a video container (video_container)."""

    def __init__(self, path, max_frames=None):
        self.path = os.fspath(path)
        self.max_frames = _check_max_frames(max_frames)
        if not os.path.exists(self.path):
            raise FileNotFoundError(f"input not found: {self.path} (expected a folder of frames or a video file)")
        self.is_video = not os.path.isdir(self.path)
        self.fps = DEFAULT_FPS
        if self.is_video:
            self.container = video_container(self.path)
            cap = self._open()
            try:
                ok, first = cap.read()
                if not ok or first is None:
                    raise DemoInputError(f"no frame could be read from the video {self.path}")
                fps = cap.get(cv2.CAP_PROP_FPS)
                if fps and np.isfinite(fps) and fps > 0:
                    self.fps = float(fps)
                count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            finally:
                cap.release()
            self.frame_size = (first.shape[1], first.shape[0])
            self.digits = max(6, len(str(max(count, 1) - 1)))
            self.files = None
        else:
            self.files = list_frame_files(self.path)
            if self.max_frames is not None:
                self.files = self.files[:self.max_frames]

    def _open(self):
        cap = cv2.VideoCapture(self.path)
        if not cap.isOpened():
            cap.release()
            raise DemoInputError(f"cannot open the video file {self.path} (not a video, or a format OpenCV cannot "
                                 f"read)")
        return cap

    def __len__(self):
        """Number of frames for a folder; for a video, the container's frame count (may be approximate),
        capped by max_frames."""
        if not self.is_video:
            return len(self.files)
        cap = self._open()
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        cap.release()
        return n if self.max_frames is None else min(n, self.max_frames)

    def __iter__(self):
        if not self.is_video:
            for i, f in enumerate(self.files):
                yield Frame(i, os.path.splitext(os.path.basename(f))[0], read_image(f))
            return
        yield from capture_frames(self._open(), self.max_frames, self.digits)


def capture_frames(cap, max_frames=None, digits=6):
    """Frame(index, stem: the index zero-padded to `digits`, image) of an open cv2.VideoCapture until it ends
    (or max_frames); the capture is released at the end."""
    try:
        i = 0
        while max_frames is None or i < max_frames:
            ok, im = cap.read()
            if not ok or im is None:
                break
            yield Frame(i, f'{i:0{digits}d}', im)
            i += 1
    finally:
        cap.release()


def prepare_frame(im, cfg):
    """A BGR uint8 frame -> (tensor (3, H, W), im_info [H, W, scale]); the same resize and normalisation
    as lib.utils.image.prepare_image (docs/fidelity.md §7.1), for frames already in memory."""
    target, max_size = cfg.SCALES[0]
    im, scale = resize(im, target, max_size, cfg.network.IMAGE_STRIDE)
    return to_tensor(im, cfg.network.PIXEL_MEANS), np.array([im.shape[0], im.shape[1], scale], dtype=np.float32)


def _check_max_frames(max_frames):
    if max_frames is not None and int(max_frames) < 1:
        raise DemoInputError(f"--max-frames must be at least 1, got {max_frames}")
    return None if max_frames is None else int(max_frames)


class CaptureSource:
    """Frames of a camera (an index) or a stream URL (rtsp://, http://, file://, ...) that cv2.VideoCapture
    opens, as Frame(index, stem, image) until the capture ends; stems are the frame index, 6 digits."""

    def __init__(self, target, max_frames=None):
        self.target, self.max_frames = target, _check_max_frames(max_frames)
        self.what = f'camera {target}' if isinstance(target, int) else f'the stream {target}'
        cap = self._open()
        fps = cap.get(cv2.CAP_PROP_FPS)
        cap.release()
        self.fps = float(fps) if fps and np.isfinite(fps) and 0 < fps < 1000 else DEFAULT_FPS

    def _open(self):
        cap = cv2.VideoCapture(self.target)
        if not cap.isOpened():
            cap.release()
            raise DemoInputError(f"cannot open {self.what} (OpenCV's VideoCapture does not open it)")
        return cap

    def __len__(self):
        return 0  # not known in advance

    def __iter__(self):
        yield from capture_frames(self._open(), self.max_frames)


def check_frame(im, index):
    """A frame given in memory must be a BGR uint8 (H, W, 3) array; a DemoInputError names the frame."""
    if not isinstance(im, np.ndarray):
        raise DemoInputError(f"frame {index} of the source is a {type(im).__name__}, not a numpy array "
                             f"(BGR uint8, shape (H, W, 3))")
    if im.dtype != np.uint8 or im.ndim != 3 or im.shape[2] != 3 or min(im.shape[:2]) < 1:
        raise DemoInputError(f"frame {index} of the source has dtype {im.dtype} and shape {im.shape}: expected "
                             f"a BGR uint8 image of shape (H, W, 3)")
    return im


class ArraySource:
    """Frames from any iterable of BGR uint8 (H, W, 3) arrays (a list, a generator, a (N, H, W, 3) array),
    taken one at a time as they come; stems are the frame index, 6 digits."""

    def __init__(self, frames, max_frames=None, fps=DEFAULT_FPS):
        self.frames, self.max_frames, self.fps = frames, _check_max_frames(max_frames), float(fps)

    def __len__(self):
        try:
            n = len(self.frames)
        except TypeError:
            return 0  # a generator: not known in advance
        return n if self.max_frames is None else min(n, self.max_frames)

    def __iter__(self):
        for i, im in enumerate(self.frames):
            if self.max_frames is not None and i >= self.max_frames:
                break
            yield Frame(i, f'{i:06d}', check_frame(im, i))


def open_source(source, max_frames=None):
    """What stream() reads: an open source (FrameSource, CaptureSource, ArraySource) as it is; an int: a
    camera index; a string or path: a stream URL (scheme://...), a video file or a folder of frames, or, when
    no such file exists and it is a number, a camera index; a (N, H, W, 3) array or any other iterable: frames
    in memory. Errors name the source."""
    if isinstance(source, (FrameSource, CaptureSource, ArraySource)):
        return source
    if isinstance(source, bool):
        raise DemoInputError(f"source: expected a video, a folder, a camera index, a URL or frames, got {source!r}")
    if isinstance(source, (int, np.integer)):
        return CaptureSource(int(source), max_frames)
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if URL.match(path):
            return CaptureSource(path, max_frames)
        if path.strip().isdigit() and not os.path.exists(path):
            return CaptureSource(int(path), max_frames)
        return FrameSource(path, max_frames)
    if isinstance(source, np.ndarray) and source.ndim != 4:
        raise DemoInputError(f"source: an array of shape {source.shape} is not a sequence of frames; give a list "
                             f"of BGR uint8 (H, W, 3) frames or one (N, H, W, 3) array")
    if isinstance(source, (bytes, dict)) or not hasattr(source, '__iter__'):
        raise DemoInputError(f"source: expected a video file, a folder of frames, a camera index, a stream URL or "
                             f"an iterable of BGR uint8 frames, got a {type(source).__name__}")
    return ArraySource(source, max_frames)


# ---------------------------------------------------------------------------------------------------
# classes, post-processing, timing

def class_names_from_cfg(cfg):
    """Class names (background first) of the config's dataset: dataset.CLASSES, else the imdb class's
    registered class list; the dataset itself is neither loaded nor generated."""
    try:
        return list(dataset_classes(cfg, get_imdb_class(cfg.dataset.dataset).class_list)[0])
    except ValueError as e:
        raise DemoInputError(str(e)) from None


def demo_postprocess(scores, boxes, cfg, thresh):
    """The original demo's post-processing (see the module docstring). Rows [class, score, x1, y1, x2, y2]."""
    from lib.core.tester import postprocess  # lazy: it loads the custom ops; the demos' --help works without them
    return postprocess(scores, boxes, float(thresh), float(cfg.TEST.NMS), 0, bool(cfg.CLASS_AGNOSTIC))


def sync(device):
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize()


def timed_call(fn, device, *args):
    """(fn(*args), seconds), synchronising the GPU before and after."""
    sync(device)
    t0 = time.perf_counter()
    out = fn(*args)
    sync(device)
    return out, time.perf_counter() - t0


def flow_to_image_pixels(flow, im_info, stride, image_size):
    """FlowNet's output (2, h, w) or (1, 2, h, w), in feature cells of the resized image (stride 16),
    -> (H0, W0, 2) float32 flow in pixels of the original frame (image_size = (W0, H0))."""
    if isinstance(flow, torch.Tensor):
        flow = flow.detach().float().cpu().numpy()
    flow = np.asarray(flow, dtype=np.float32)
    if flow.ndim == 4:
        flow = flow[0]
    hr, wr, scale = int(im_info[0]), int(im_info[1]), float(im_info[2])
    f = flow.transpose(1, 2, 0) * (float(stride) / scale)
    h, w = f.shape[:2]
    # each feature cell covers stride x stride pixels of the resized image; the grid may overhang it
    f = cv2.resize(f, (w * stride, h * stride), interpolation=cv2.INTER_LINEAR)[:hr, :wr]
    return cv2.resize(f, tuple(int(s) for s in image_size), interpolation=cv2.INTER_LINEAR)


def make_result(index, dets, class_names, is_key, seconds):
    """The result of one frame from rows [class, score, x1, y1, x2, y2]: boxes (K, 4) float32 in the frame's
    pixels, scores (K,) float32, labels (K,) int64 indices into class_names (background first, so >= 1),
    highest score first; is_key, index, time_s."""
    dets = np.asarray(dets, dtype=np.float32).reshape(-1, 6)
    order = np.argsort(-dets[:, 1], kind='stable')
    dets = dets[order]
    return {'boxes': np.ascontiguousarray(dets[:, 2:6]), 'scores': np.ascontiguousarray(dets[:, 1]),
            'labels': dets[:, 0].astype(np.int64), 'class_names': class_names, 'is_key': bool(is_key),
            'index': int(index), 'time_s': float(seconds)}


def result_rows(result):
    """A result's detections back as rows [class, score, x1, y1, x2, y2] (float32)."""
    return np.concatenate([result['labels'][:, None].astype(np.float32), result['scores'][:, None],
                           result['boxes']], 1)


# ---------------------------------------------------------------------------------------------------
# config and model

def detector_config(checkpoint, cfg=None, default_yaml=None, overrides=(), device=None, fast=None, keep=None):
    """The config a detector is built from: `cfg` (a yaml path or a config) when given, else the config the
    checkpoint stores (a training checkpoint of this project), else `default_yaml` (an official .params, a
    bare state dict); then the 'KEY=VALUE' overrides; then `fast` (the inference fast path, TEST.FAST_PATH /
    FAST_DTYPE: None: the config's; False: off; True: on; 'bfloat16', 'float16' (CUDA), 'float32': on, in
    that dtype; lib/model/fast_path.py fast_overrides); then `device` (cpu, cuda, cuda:N, auto; None: the
    config's), which must be there. Errors name the file or key at fault (a missing checkpoint given with a
    cfg: when its weights are loaded). keep: a dict that receives the checkpoint's content ('weights') when it
    was read for its stored config; build_model(..., weights=keep.get('weights')) then does not read it again."""
    checkpoint = os.fspath(checkpoint)
    if cfg is None:
        if not os.path.isfile(checkpoint):
            raise FileNotFoundError(f"checkpoint not found: {checkpoint} (a .pth of this project or an official "
                                    f".params)")
        weights = None if checkpoint.endswith('.params') else read_weights(checkpoint)
        stored = None if weights is None else weights[2]
        if keep is not None and weights is not None:
            keep['weights'] = weights
        if isinstance(stored, dict):
            cfg = config_from_dict(stored, f"{checkpoint} (the config it stores; pass cfg= for another)")
        else:
            cfg = load_config(default_yaml)
    elif isinstance(cfg, (str, os.PathLike)):
        cfg = load_config(os.fspath(cfg))
    elif not is_config(cfg):
        raise ConfigError(f"cfg: expected the path of a yaml file or a config (lib.config.load_config), got a "
                          f"{type(cfg).__name__}")
    update_from_list(cfg, list(overrides))
    update_from_list(cfg, fast_overrides(fast), source='fast')
    if device is not None:
        update_from_list(cfg, [f'device={device}'], source='device')
    resolve_device(cfg)  # a device that is not there: an error before anything is loaded
    return cfg


def build_model(model_cls, checkpoint, cfg, log=print, weights=None):
    """model_cls(cfg) with the checkpoint's weights (lib/model/weights.py load_model_weights: a .pth of this
    project or an official .params), on the config's device, in eval mode, with the config's inference fast
    path (TEST.FAST_PATH, lib/model/fast_path.py). weights: the file's content if detector_config read it
    already (its `keep`). Returns (model, torch.device)."""
    device = torch.device(resolve_device(cfg))
    model = model_cls(cfg)
    load_model_weights(model, os.fspath(checkpoint), cfg=cfg, log=log, read=weights)
    return prepare_inference(model.to(device).eval(), cfg, device)[0], device


# ---------------------------------------------------------------------------------------------------
# the stream

Session = collections.namedtuple('Session', ['detect', 'detect_chunk', 'starts_chunk'])
Session.__doc__ = """What a detector does for one stream (a new video, its own key-frame cache):
detect(index, data (1, 3, H, W), im_info (1, 3)) -> (scores (R, C), boxes (R, 4k) in frame pixels, is_key,
flow: FlowNet's output or None); detect_chunk(indices, data (n, 3, H, W), im_info (n, 3)) -> such a tuple per
frame (the batched mode); starts_chunk(index): whether frame `index` begins a chunk in the batched mode."""


class StreamDetector:
    """A detector over a stream of frames (the module docstring), made by rfcn/api.py and dff_rfcn/api.py.

    session(with_flow): a context manager yielding the Session of one stream (a fresh key-frame cache for
    each stream, so that several streams of one detector do not disturb each other). marks_key_frames:
    whether the frames differ (DFF: key and non-key frames) or all run the whole network (the frame
    baseline: every frame is_key). settings: what the detector was loaded with (shown by the demos), with
    'fast_path': what it infers with (e.g. 'fold_bn+channels_last+gemm+bfloat16', or 'eager float32')."""

    def __init__(self, model, cfg, device, class_names, session, marks_key_frames=False, settings=None):
        self.model, self.cfg, self.device = model, cfg, torch.device(device)
        self.class_names = tuple(class_names)
        self.stride = int(cfg.network.RCNN_FEAT_STRIDE)
        self.session, self.marks_key_frames = session, bool(marks_key_frames)
        self.settings = {'fast_path': describe_fast_path(cfg), **(settings or {})}

    def stream(self, source, thresh=DEFAULT_THRESH, max_frames=None):
        """One result dict per frame of `source` (open_source), in order, as the frames arrive: boxes (K, 4)
        float32 in the frame's pixels, scores (K,), labels (K,) indices into class_names, class_names,
        is_key, index, time_s (this frame's network time). The source is opened (and checked) at once."""
        return (result for _, result in self.frames(source, thresh=thresh, max_frames=max_frames))

    def frames(self, source, thresh=DEFAULT_THRESH, max_frames=None, with_flow=False, batch=False):
        """(Frame, result) per frame, for the demos: stream()'s results with the frame (index, stem, image).
        with_flow: result['flow'] is the flow FlowNet estimated from the frame to its key frame, (H, W, 2)
        float32 in the frame's pixels (None on key frames). batch: the original demo_batch.py, one forward
        per chunk (session.starts_chunk), the frames of a chunk of one size, each credited chunk time / n.
        The source is opened (and checked) at once, the frames are read as the results are taken."""
        return self._run(open_source(source, max_frames), float(thresh), bool(with_flow), bool(batch))

    def _run(self, source, thresh, with_flow, batch):
        with self.session(with_flow) as session:
            for chunk in _chunks(source, session.starts_chunk if batch else None):
                prepared = [prepare_frame(frame.image, self.cfg) for frame in chunk]
                if batch:
                    shapes = {tuple(d.shape) for d, _ in prepared}
                    if len(shapes) > 1:
                        raise DemoInputError(f"--batch needs frames of one size; {chunk[0].stem} .. "
                                             f"{chunk[-1].stem} resize to {sorted(shapes)}")
                    data = torch.stack([d for d, _ in prepared]).to(self.device)
                    im_info = torch.from_numpy(np.stack([i for _, i in prepared])).to(self.device)
                    outs, seconds = timed_call(session.detect_chunk, self.device, [f.index for f in chunk], data,
                                               im_info)
                    seconds /= len(chunk)
                else:
                    data = prepared[0][0].unsqueeze(0).to(self.device)
                    im_info = torch.from_numpy(prepared[0][1][None]).to(self.device)
                    out, seconds = timed_call(session.detect, self.device, chunk[0].index, data, im_info)
                    outs = [out]
                for frame, (_, info), (scores, boxes, is_key, flow) in zip(chunk, prepared, outs):
                    result = make_result(frame.index, demo_postprocess(scores, boxes, self.cfg, thresh),
                                         self.class_names, is_key, seconds)
                    if with_flow:
                        size = (frame.image.shape[1], frame.image.shape[0])
                        result['flow'] = (None if flow is None else
                                          flow_to_image_pixels(flow, info, self.stride, size))
                    yield frame, result


def _chunks(frames, starts_chunk=None):
    """Lists of consecutive frames: one frame each, or (starts_chunk given) cut before every frame whose index
    starts a chunk."""
    chunk = []
    for frame in frames:
        if chunk and (starts_chunk is None or starts_chunk(frame.index)):
            yield chunk
            chunk = []
        chunk.append(frame)
    if chunk:
        yield chunk


@contextlib.contextmanager
def forward_output(module, enabled=True, pick=lambda output: output):
    """A dict whose 'output' entry is pick(module's output) of its last forward while the context is open (a
    forward hook, removed on exit); nothing is hooked when not enabled."""
    captured = {}
    handle = module.register_forward_hook(
        lambda m, inputs, output: captured.__setitem__('output', pick(output))) if enabled else None
    try:
        yield captured
    finally:
        if handle is not None:
            handle.remove()
