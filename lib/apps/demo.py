"""What the two demos (rfcn/demo.py: a detector on every frame; dff_rfcn/demo.py: Deep Feature Flow)
share: the frame source, preprocessing of in-memory frames, the original demo's post-processing,
drawing, writing the annotated frames (and an optional mp4), the flow colouring, the timing and the
per-frame loop itself (docs/fidelity.md §9).

Differences from the original demos, on purpose:

* Frames of a folder are taken in the order of the numbers in their file names (2.jpg before 10.jpg).
  The original took an unsorted glob, i.e. whatever order the filesystem returned, so the key frame
  and the frames propagated from it were not necessarily neighbours in time.
* Boxes are drawn on the BGR frame and written with cv2.imwrite, so the output has the input's colours.
  The original drew on an RGB-converted copy and wrote that with cv2.imwrite, which swapped red and blue
  in every output file.
* Class colours are fixed per class (the original drew random colours on every run).
* A video file can be the input as well as a folder of frames.

Post-processing is the original demo's: per-class NMS (TEST.NMS = 0.3) on all boxes, then keep the
detections whose score is above --thresh (default 0.7). Thresholding before NMS, as
lib.core.tester.postprocess does, keeps exactly the same boxes: a box above the threshold can only be
suppressed by a higher-scoring one, which is above the threshold too. There is no per-image cap.

Timing (docs/fidelity.md §9): only the detector call (network forward + box decoding, with a CUDA synchronisation
on a GPU) is timed; image reading, preprocessing, NMS, drawing and writing are not. Averages leave out
the first two frames (warm-up). With --batch (the original demo_batch.py: one forward per chunk of frames)
each frame is credited the chunk's time divided by its frames, and the first chunk is the warm-up.
"""
import argparse
import collections
import os
import re
import time

import cv2
import numpy as np
import torch

from lib.config import load_config, update_from_list
from lib.dataset.loader import get_imdb_class
from lib.dataset.vid_classes import dataset_classes
from lib.model.fast_path import add_fast_argument, fast_overrides, prepare_inference
from lib.model.weights import load_model_weights
from lib.utils.cli import run_cli
from lib.utils.device import resolve_device
from lib.utils.fileio import write_bytes
from lib.utils.flow_io import color_wheel, flow_to_color  # noqa: F401 (the demos' flow colouring)
from lib.utils.image import read_image, resize, to_tensor
from lib.utils.outputs import make_dirs, remove_empty_dirs, remove_file

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.tif', '.tiff', '.webp')
DEFAULT_FPS = 25.0
WARMUP_FRAMES = 2


class DemoInputError(ValueError):
    """A problem with what the user asked for (input path, options): reported without a traceback."""


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
# frames

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
        if max_frames is not None and int(max_frames) < 1:
            raise DemoInputError(f"--max-frames must be at least 1, got {max_frames}")
        self.path = os.fspath(path)
        self.max_frames = None if max_frames is None else int(max_frames)
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
        cap = self._open()
        try:
            i = 0
            while self.max_frames is None or i < self.max_frames:
                ok, im = cap.read()
                if not ok or im is None:
                    break
                yield Frame(i, f'{i:0{self.digits}d}', im)
                i += 1
        finally:
            cap.release()


def prepare_frame(im, cfg):
    """A BGR uint8 frame -> (tensor (3, H, W), im_info [H, W, scale]); the same resize and normalisation
    as lib.utils.image.prepare_image (docs/fidelity.md §7.1), for frames already in memory."""
    target, max_size = cfg.SCALES[0]
    im, scale = resize(im, target, max_size, cfg.network.IMAGE_STRIDE)
    return to_tensor(im, cfg.network.PIXEL_MEANS), np.array([im.shape[0], im.shape[1], scale], dtype=np.float32)


# ---------------------------------------------------------------------------------------------------
# classes, post-processing, drawing

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


def class_color(j):
    """A fixed, well-spread BGR colour for class j (golden-ratio hue steps)."""
    hue = int(round(((j * 0.618033988749895) % 1.0) * 179))
    hsv = np.array([[[hue, 220, 235]]], dtype=np.uint8)
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def draw_detections(im, dets, class_names):
    """Draw rows [class, score, x1, y1, x2, y2] on a copy of a BGR image: a box per detection and a
    'name score' label (the original's '%s %.3f' text). Returns the BGR copy."""
    out = np.ascontiguousarray(im).copy()
    h, w = out.shape[:2]
    thick = max(1, int(round((h + w) / 600.0)))
    font_scale = max(0.35, (h + w) / 2400.0)
    for row in dets:
        j, score = int(row[0]), float(row[1])
        x1, y1, x2, y2 = (int(round(float(v))) for v in row[2:6])
        color = class_color(j)
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thick)
        name = class_names[j] if 0 <= j < len(class_names) else f'class {j}'
        text = f'{name} {score:.3f}'
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        tx = min(max(x1, 0), max(w - tw, 0))
        ty = y1 - 2 if y1 - th - base - 2 >= 0 else min(y1 + th + 2, h - base)  # above the box, else inside
        cv2.rectangle(out, (tx, ty - th - 1), (tx + tw, ty + base - 1), color, cv2.FILLED)
        luma = 0.114 * color[0] + 0.587 * color[1] + 0.299 * color[2]
        cv2.putText(out, text, (tx, ty - 1), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                    (0, 0, 0) if luma > 128 else (255, 255, 255), 1, cv2.LINE_AA)
    return out


# ---------------------------------------------------------------------------------------------------
# output

def write_image(path, im):
    """Encoded by its extension (cv2.imencode), written atomically (no fsync: one of many frames)."""
    ok, data = cv2.imencode(os.path.splitext(path)[1] or '.jpg', im)
    if not ok:
        raise OSError(f"could not write the image {path}")
    write_bytes(path, data.tobytes(), sync=False)


class DetectionWriter:
    """Annotated frames as <out>/<stem>.jpg, in the order they come, and optionally an mp4 ('mp4v').
    The mp4 has the first frame's size; a later frame of another size (folders only) is resized to it."""

    def __init__(self, out_dir, mp4=None, fps=DEFAULT_FPS):
        self.out_dir = os.fspath(out_dir)
        self.created = []  # (files this writer created, folders it created): what discard() removes
        self.folders = [(self.out_dir, make_dirs(self.out_dir))]
        self.mp4, self.fps = mp4, float(fps)
        self.video, self.size = None, None
        self.paths = []

    def track(self, path):
        """Note `path` (about to be written) as this run's own file when it does not exist yet."""
        if not os.path.exists(path):
            self.created.append(path)

    def folder(self, path):
        self.folders.append((path, make_dirs(path)))

    def discard(self):
        """A failed run: remove the files this writer created and the folders it made (if empty)."""
        self.close()
        for path in self.created:
            remove_file(path)
        for path, top in reversed(self.folders):
            remove_empty_dirs(path, top)

    def write(self, stem, im):
        path = os.path.join(self.out_dir, f'{stem}.jpg')
        self.track(path)
        write_image(path, im)
        self.paths.append(path)
        if self.mp4:
            if self.video is None:
                self.folder(os.path.dirname(os.path.abspath(self.mp4)))
                self.track(self.mp4)
                self.size = (im.shape[1], im.shape[0])
                self.video = cv2.VideoWriter(self.mp4, cv2.VideoWriter_fourcc(*'mp4v'), self.fps, self.size)
                if not self.video.isOpened():
                    self.video = None
                    raise OSError(f"could not open {self.mp4} for writing (OpenCV without an mp4v encoder?)")
            if (im.shape[1], im.shape[0]) != self.size:
                im = cv2.resize(im, self.size, interpolation=cv2.INTER_AREA)
            self.video.write(im)
        return path

    def close(self):
        if self.video is not None:
            self.video.release()
            self.video = None


# ---------------------------------------------------------------------------------------------------
# flow colouring (Middlebury colour code)

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


# ---------------------------------------------------------------------------------------------------
# timing

class DemoTimer:
    """Seconds per frame by kind ('frame', or 'key' / 'non-key'); averages leave out the first
    `warmup` frames of the run, whatever their kind."""

    def __init__(self, warmup=WARMUP_FRAMES):
        self.warmup = int(warmup)
        self.seen = 0
        self.times = collections.OrderedDict()

    def add(self, kind, seconds):
        self.times.setdefault(kind, [])
        if self.seen >= self.warmup:
            self.times[kind].append(float(seconds))
        self.seen += 1

    def average(self, kind=None):
        """Average over the timed frames of `kind` (all kinds when None); None before any."""
        t = [s for k, v in self.times.items() if kind is None or k == kind for s in v]
        return sum(t) / len(t) if t else None

    def count(self, kind=None):
        return sum(len(v) for k, v in self.times.items() if kind is None or k == kind)

    def summary(self):
        def fmt(a):
            return '-' if a is None else f'{a:.4f} s'
        parts = [f'{k} {fmt(self.average(k))} ({self.count(k)} frames)' for k in self.times]
        if len(self.times) > 1:
            parts.append(f'all {fmt(self.average())} ({self.count()} frames)')
        return (f'average time per frame after {self.warmup} warm-up frames (network + box decoding): '
                + ', '.join(parts))


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


# ---------------------------------------------------------------------------------------------------
# command line and the loop

def demo_arg_parser(description, dff=False):
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--cfg', required=True, help='experiment yaml')
    p.add_argument('--checkpoint', required=True, help='model weights (a checkpoint of this project)')
    p.add_argument('--input', required=True, help='a folder of frames (taken in frame-number order) or a video file')
    p.add_argument('--output', required=True, help='folder for the annotated frames <stem>.jpg')
    p.add_argument('--mp4', default=None, help='also write the annotated frames as this mp4 video')
    p.add_argument('--thresh', type=float, default=0.7, help='score threshold of the drawn detections (0.7)')
    p.add_argument('--device', default=None, help='cpu, cuda, cuda:N or auto (default: the config\'s device)')
    p.add_argument('--max-frames', type=int, default=None, help='stop after this many frames')
    if dff:
        p.add_argument('--key-interval', type=int, default=None,
                       help='key frame every N frames, from frame 0 (default TEST.KEY_FRAME_INTERVAL)')
        p.add_argument('--show-flow', action='store_true',
                       help='also write the flow of every non-key frame as <output>/flow/<stem>.png')
    p.add_argument('--batch', action='store_true',
                   help=('the original demo_batch.py: chunks of key-interval frames (1 key + the others) in one forward'
                         if dff else 'the original demo_batch.py: chunks of 10 frames in one forward'))
    p.add_argument('--quiet', action='store_true', help='no per-frame line')
    p.add_argument('--set', nargs='*', action='extend', default=[], metavar='KEY=VALUE',
                   help='config overrides (yaml values); may be repeated')
    add_fast_argument(p)
    return p


def setup(args):
    """Config (yaml + --set + --fast + --device), the torch device, the class names and the frame source (opened
    first, so that a bad input is reported before a model is built)."""
    cfg = update_from_list(update_from_list(load_config(args.cfg), args.set), fast_overrides(args.fast), '--fast')
    if args.device is not None:
        update_from_list(cfg, [f'device={args.device}'], source='--device')
    source = FrameSource(args.input, args.max_frames)
    device = torch.device(resolve_device(cfg))
    return cfg, device, class_names_from_cfg(cfg), source


def load_demo_model(model, args, cfg, device):
    """The demo's model: --checkpoint's weights, on `device`, in eval mode, with the config's inference fast
    path (TEST.FAST_PATH / --fast, lib/model/fast_path.py)."""
    load_model_weights(model, args.checkpoint, cfg=cfg)
    model.to(device).eval()
    return prepare_inference(model, cfg, device)[0]


def _chunks(frames, size):
    """Lists of up to `size` consecutive frames."""
    chunk = []
    for frame in frames:
        chunk.append(frame)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def run_demo(args, cfg, device, class_names, source, detect, name='demo', flow_dir=None, detect_chunk=None,
             chunk_size=None):
    """The loop over the FrameSource `source`, frame by frame or, with detect_chunk and chunk_size, chunk by
    chunk (the original demo_batch.py).

    `detect(frame_index, data, im_info)` (timed) returns (scores (R, C), boxes (R, 4k), kind, flow or None):
    boxes in original-frame pixels, flow as FlowNet's output (written as a colour image to
    flow_dir/<stem>.png when flow_dir is given). `detect_chunk(frame_indices, data (n, 3, H, W),
    im_info (n, 3))` (timed as a whole; each frame is credited chunk time / n, kind 'batch', the first chunk
    is the warm-up) returns such a tuple per frame; the frames of a chunk must have the same size.
    Returns a summary dict: frames (stems in order), kinds, paths, flow_paths, times, timer."""
    writer = DetectionWriter(args.output, args.mp4, source.fps)
    if flow_dir:
        writer.folder(flow_dir)
    batched = detect_chunk is not None and chunk_size
    timer = DemoTimer(warmup=int(chunk_size) if batched else WARMUP_FRAMES)
    summary = {'frames': [], 'kinds': [], 'paths': [], 'flow_paths': [], 'detections': [], 'times': []}
    stride = int(cfg.network.RCNN_FEAT_STRIDE)
    try:
        for chunk in _chunks(source, int(chunk_size) if batched else 1):
            prepared = [prepare_frame(frame.image, cfg) for frame in chunk]
            if batched:
                shapes = {tuple(d.shape) for d, _ in prepared}
                if len(shapes) > 1:
                    raise DemoInputError(f"--batch needs frames of one size; {chunk[0].stem} .. {chunk[-1].stem} "
                                         f"resize to {sorted(shapes)}")
                data = torch.stack([d for d, _ in prepared]).to(device)
                im_info_t = torch.from_numpy(np.stack([i for _, i in prepared])).to(device)
                results, seconds = timed_call(detect_chunk, device, [f.index for f in chunk], data, im_info_t)
                results = [(sc, bx, 'batch', fl) for sc, bx, _, fl in results]
                seconds = seconds / len(chunk)
            else:
                data = prepared[0][0].unsqueeze(0).to(device)
                im_info_t = torch.from_numpy(prepared[0][1][None]).to(device)
                result, seconds = timed_call(detect, device, chunk[0].index, data, im_info_t)
                results = [result]
            for frame, (_, im_info), (scores, boxes, kind, flow) in zip(chunk, prepared, results):
                timer.add(kind, seconds)
                dets = demo_postprocess(scores, boxes, cfg, args.thresh)
                summary['paths'].append(writer.write(frame.stem, draw_detections(frame.image, dets, class_names)))
                if flow_dir and flow is not None:
                    size = (frame.image.shape[1], frame.image.shape[0])
                    path = os.path.join(flow_dir, f'{frame.stem}.png')
                    writer.track(path)
                    write_image(path, flow_to_color(flow_to_image_pixels(flow, im_info, stride, size)))
                    summary['flow_paths'].append(path)
                summary['frames'].append(frame.stem)
                summary['kinds'].append(kind)
                summary['detections'].append(dets)
                summary['times'].append(seconds)
                if not getattr(args, 'quiet', False):
                    avg = timer.average(kind)
                    print(f'[{name}] frame {frame.index} {frame.stem} {kind}: {seconds:.4f} s '
                          f'(average {kind} {"-" if avg is None else f"{avg:.4f} s"}), {len(dets)} detections',
                          flush=True)
    except BaseException:
        writer.discard()  # a failed run leaves no output of its own behind
        raise
    finally:
        writer.close()
    if not summary['frames']:
        raise DemoInputError(f"no frame was processed from {args.input}")
    print(f'[{name}] {len(summary["frames"])} frames -> {args.output}' + (f', {args.mp4}' if args.mp4 else '')
          + (f', flow images in {flow_dir}' if flow_dir else ''))
    print(f'[{name}] {timer.summary()}', flush=True)
    summary['timer'] = timer
    return summary


def cli(main, argv=None):
    """Run main(argv); input and config errors end with one 'error:' line and exit status 2 (lib.utils.cli)."""
    run_cli(main, argv)

