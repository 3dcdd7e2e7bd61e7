"""What the two demos (rfcn/demo.py: a detector on every frame; dff_rfcn/demo.py: Deep Feature Flow)
share on top of the streaming API (lib/apps/stream.py, which also holds the frame sources, the resizing,
the post-processing and the timing): drawing, key-frame marks, the flow panel, writing the annotated frames
(and an mp4), the progress bar and the per-frame loop itself (docs/fidelity.md §9).

Differences from the original demos, on purpose:

* Frames of a folder are taken in the order of the numbers in their file names (2.jpg before 10.jpg).
  The original took an unsorted glob, i.e. whatever order the filesystem returned, so the key frame
  and the frames propagated from it were not necessarily neighbours in time.
* Boxes are drawn on the BGR frame and written with cv2.imwrite, so the output has the input's colours.
  The original drew on an RGB-converted copy and wrote that with cv2.imwrite, which swapped red and blue
  in every output file.
* Class colours are fixed per class (the original drew random colours on every run).
* A video file, a camera or a stream URL can be the input as well as a folder of frames.

What a run writes: <output>/<stem>.jpg per frame; --mp4 the same frames as a video, in H.264 through PyAV
(`pip install av`; browsers and common players open it), else OpenCV's mp4v with a printed note. DFF marks
its key frames on the frame (a yellow frame and 'KEY <index>'; the others 'frame <index> <- key <index>').
--show-flow puts the flow beside each frame (Middlebury colours, a colour-wheel legend), on one scale for the
whole video: full colour at --flow-max pixels (default 5% of the first frame's diagonal, printed), longer
vectors darker; the flow alone also goes to <output>/flow/<stem>.png for each non-key frame. A progress bar
(stderr) counts the frames; --verbose adds a line per frame, --quiet shows neither.

Timing (docs/fidelity.md §9): the detector call only (lib/apps/stream.py); averages leave out the first two
frames (warm-up). With --batch (the original demo_batch.py: one forward per chunk of frames) each frame is
credited the chunk's time divided by its frames, and the first chunk is the warm-up.
"""
import argparse
import collections
import math
import os
from fractions import Fraction

import cv2
import numpy as np
from easydict import EasyDict as edict
from tqdm import tqdm

from lib.apps.stream import DEFAULT_FPS, DEFAULT_THRESH, DemoInputError, open_source, result_rows
# re-exported: the demos' vocabulary, as the tests and tools/benchmark.py import it
from lib.apps.stream import (FrameSource, class_names_from_cfg, flow_to_image_pixels, natural_key,  # noqa: F401
                             prepare_frame, video_container)
from lib.config import update_from_list
from lib.model.fast_path import add_fast_argument
from lib.utils.cli import run_cli
from lib.utils.fileio import write_bytes
from lib.utils.flow_io import color_wheel, flow_to_color  # noqa: F401 (the demos' flow colouring)
from lib.utils.outputs import make_dirs, remove_empty_dirs, remove_file

WARMUP_FRAMES = 2
FLOW_MAX_FRACTION = 0.05  # --show-flow's default scale: 5% of the frame diagonal, in pixels
KEY_COLOR = (0, 215, 255)  # BGR yellow: the key-frame mark


# ---------------------------------------------------------------------------------------------------
# drawing

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


def _label(im, text, origin, color, font_scale):
    """Text on a filled box of `color` with its top-left corner at `origin`; black or white by contrast."""
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
    x, y = origin
    cv2.rectangle(im, (x, y), (x + tw + 6, y + th + base + 6), color, cv2.FILLED)
    luma = 0.114 * color[0] + 0.587 * color[1] + 0.299 * color[2]
    cv2.putText(im, text, (x + 3, y + th + 3), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                (0, 0, 0) if luma > 128 else (255, 255, 255), 1, cv2.LINE_AA)


def _font_scale(im):
    return max(0.35, (im.shape[0] + im.shape[1]) / 2400.0)


def mark_frame(im, index, key_index, is_key):
    """DFF's frames marked in place: a key frame gets a yellow frame and 'KEY <index>', any other frame
    'frame <index> <- key <key_index>' (the key frame its features were warped from)."""
    h, w = im.shape[:2]
    if is_key:
        thick = max(2, int(round((h + w) / 300.0)))
        cv2.rectangle(im, (0, 0), (w - 1, h - 1), KEY_COLOR, thick)
        _label(im, f'KEY {index}', (thick, thick), KEY_COLOR, _font_scale(im))
    else:
        _label(im, f'frame {index} <- key {key_index}', (2, 2), (60, 60, 60), _font_scale(im))
    return im


def flow_legend(diameter, max_mag):
    """The colour wheel as a disc (BGR uint8, diameter x diameter) on a dark background: the colour of a
    vector pointing from the centre to each point, whose length at the rim is max_mag."""
    r = diameter / 2.0
    y, x = np.mgrid[0:diameter, 0:diameter].astype(np.float64) + 0.5 - r
    disc = flow_to_color(np.stack([x, y], -1) * (float(max_mag) / r), max_mag)
    disc[x * x + y * y > r * r] = (40, 40, 40)
    return disc


def flow_panel(flow, max_mag, size):
    """The flow of one frame as a BGR image of `size` (W, H) in pixels of the frame: the Middlebury colours
    with full colour at max_mag (the whole video's scale), a colour-wheel legend in the bottom-right corner
    and its scale in pixels; flow None (a key frame: no warp) is drawn as zero flow (white)."""
    w, h = size
    panel = (np.full((h, w, 3), 255, np.uint8) if flow is None else flow_to_color(flow, max_mag))
    fs = _font_scale(panel)
    d = max(24, min(h, w) // 4)
    text = f'{max_mag:.3g} px'
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, fs, 1)
    box_w, box_h = max(d, tw) + 8, d + th + base + 12
    x0, y0 = max(w - box_w - 4, 0), max(h - box_h - 4, 0)
    cv2.rectangle(panel, (x0, y0), (x0 + box_w, y0 + box_h), (40, 40, 40), cv2.FILLED)
    xw, yw = x0 + 4 + (box_w - 8 - d) // 2, y0 + 4
    wheel = flow_legend(d, max_mag)[:max(h - yw, 0), :max(w - xw, 0)]  # clipped to a panel smaller than it
    panel[yw:yw + wheel.shape[0], xw:xw + wheel.shape[1]] = wheel
    cv2.putText(panel, text, (x0 + 4, y0 + d + th + 8), cv2.FONT_HERSHEY_SIMPLEX, fs, (255, 255, 255), 1,
                cv2.LINE_AA)
    _label(panel, 'key frame: no flow' if flow is None else 'flow to the key frame', (2, 2), (60, 60, 60), fs)
    return panel


def default_flow_max(image_size):
    """--show-flow's scale when --flow-max is not given: FLOW_MAX_FRACTION of the frame diagonal, in pixels."""
    return FLOW_MAX_FRACTION * math.hypot(*image_size)


# ---------------------------------------------------------------------------------------------------
# output

def write_image(path, im):
    """Encoded by its extension (cv2.imencode), written atomically (no fsync: one of many frames)."""
    ok, data = cv2.imencode(os.path.splitext(path)[1] or '.jpg', im)
    if not ok:
        raise OSError(f"could not write the image {path}")
    write_bytes(path, data.tobytes(), sync=False)


def _pyav():
    """PyAV when it is installed and can encode H.264 (libx264), else (None, why not)."""
    try:
        import av  # optional: the H.264 mp4 (requirements.txt); without it OpenCV writes mp4v
    except ImportError:
        return None, 'PyAV is not installed'
    if 'libx264' not in av.codecs_available:
        return None, f'PyAV {av.__version__} has no libx264 encoder'
    return av, None


class VideoEncoder:
    """An mp4 written frame by frame (BGR uint8 of one size): H.264 (libx264, yuv420p, moov atom first so
    that browsers start playing at once) through PyAV, which browsers and common players open; without PyAV,
    OpenCV's mp4v (MPEG-4 Part 2), with a printed note. Both need an even width and height (H.264 in yuv420p
    refuses an odd one, OpenCV's mp4v silently crops it): an odd one is padded by one pixel (the edge repeated).
    `codec`: 'h264' or 'mp4v'; `note`: the fallback note."""

    def __init__(self, path, fps, size, log=print):
        self.path, self.size = path, (int(size[0]), int(size[1]))
        self.even_size = tuple(s + s % 2 for s in self.size)  # what the file holds
        av, why = _pyav()
        self.note = None
        if av is not None:
            self.codec, self.av = 'h264', av
            self.container = av.open(path, mode='w', format='mp4', options={'movflags': '+faststart'})
            self.stream = self.container.add_stream('libx264', rate=Fraction(float(fps)).limit_denominator(1001))
            self.stream.width, self.stream.height = self.even_size
            self.stream.pix_fmt = 'yuv420p'
            self.stream.options = {'crf': '23', 'preset': 'medium'}
        else:
            self.codec, self.av = 'mp4v', None
            self.writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), float(fps), self.even_size)
            if not self.writer.isOpened():
                self.writer = None
                raise OSError(f"could not open {path} for writing (OpenCV without an mp4v encoder?)")
            self.note = (f"note: {why}: {path} is written by OpenCV as mp4v (MPEG-4 Part 2), which browsers and "
                         f"some players do not open; `pip install av` for H.264")
            log(self.note)

    def write(self, im):
        if (im.shape[1], im.shape[0]) != self.size:
            raise ValueError(f"{self.path}: a frame of {im.shape[1]}x{im.shape[0]} in a video of "
                             f"{self.size[0]}x{self.size[1]}")
        if self.size != self.even_size:
            im = cv2.copyMakeBorder(im, 0, self.size[1] % 2, 0, self.size[0] % 2, cv2.BORDER_REPLICATE)
        if self.av is None:
            self.writer.write(im)
            return
        frame = self.av.VideoFrame.from_ndarray(np.ascontiguousarray(im), format='bgr24')
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self):
        """Flush the encoder and finish the file (once)."""
        if self.av is not None and self.container is not None:
            try:
                for packet in self.stream.encode():
                    self.container.mux(packet)
            finally:
                self.container.close()
                self.container = None
        elif self.av is None and self.writer is not None:
            self.writer.release()
            self.writer = None


class DetectionWriter:
    """Annotated frames as <out>/<stem>.jpg, in the order they come, and optionally an mp4 (VideoEncoder).
    The mp4 has the first frame's size; a later frame of another size (folders only) is resized to it."""

    def __init__(self, out_dir, mp4=None, fps=DEFAULT_FPS, log=print):
        self.out_dir = os.fspath(out_dir)
        self.created = []  # (files this writer created, folders it created): what discard() removes
        self.folders = [(self.out_dir, make_dirs(self.out_dir))]
        self.mp4, self.fps, self.log = mp4, float(fps), log
        self.video = None
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
                self.video = VideoEncoder(self.mp4, self.fps, (im.shape[1], im.shape[0]), log=self.log)
            if (im.shape[1], im.shape[0]) != self.video.size:
                im = cv2.resize(im, self.video.size, interpolation=cv2.INTER_AREA)
            self.video.write(im)
        return path

    def close(self):
        if self.video is not None:
            self.video.close()


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


# ---------------------------------------------------------------------------------------------------
# command line and the loop

def _key_interval(text):
    """--key-interval: an integer or 'adaptive'."""
    if text == 'adaptive':
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'adaptive', got {text!r}") from None


def demo_arg_parser(description, dff=False):
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--cfg', default=None,
                   help='experiment yaml (default: the config stored in the checkpoint, else the real ImageNet VID '
                        'yaml)')
    p.add_argument('--checkpoint', required=True,
                   help='model weights: a checkpoint of this project (.pth) or the official .params')
    p.add_argument('--input', required=True,
                   help='a folder of frames (taken in frame-number order), a video file, a camera index or a '
                        'stream URL')
    p.add_argument('--output', required=True, help='folder for the annotated frames <stem>.jpg')
    p.add_argument('--mp4', default=None,
                   help='also write the annotated frames as this mp4 video (H.264 with PyAV, else mp4v)')
    p.add_argument('--thresh', type=float, default=DEFAULT_THRESH,
                   help=f'score threshold of the drawn detections ({DEFAULT_THRESH})')
    p.add_argument('--device', default=None, help='cpu, cuda, cuda:N or auto (default: the config\'s device)')
    p.add_argument('--max-frames', type=int, default=None, help='stop after this many frames')
    if dff:
        p.add_argument('--key-interval', type=_key_interval, default=None,
                       help='key frame every N frames, from frame 0, or "adaptive" (docs/key_frames.md; default: '
                            'the config\'s TEST.KEY_FRAME_SCHEDULE / KEY_FRAME_INTERVAL)')
        p.add_argument('--show-flow', action='store_true',
                       help='draw the flow of each frame beside it (one colour scale for the whole video, a '
                            'colour-wheel legend) and write it as <output>/flow/<stem>.png for non-key frames')
        p.add_argument('--flow-max', type=float, default=None, metavar='PIXELS',
                       help=f'--show-flow: flow length (pixels of the frame) drawn at full colour, the same for '
                            f'every frame (default {FLOW_MAX_FRACTION * 100:g}%% of the first frame\'s diagonal)')
    p.add_argument('--batch', action='store_true',
                   help=('the original demo_batch.py: chunks of key-interval frames (1 key + the others) in one forward'
                         if dff else 'the original demo_batch.py: chunks of 10 frames in one forward'))
    p.add_argument('--verbose', action='store_true', help='a line per frame (kind, time, detections)')
    p.add_argument('--quiet', action='store_true', help='no progress bar, no per-frame line')
    p.add_argument('--set', nargs='*', action='extend', default=[], metavar='KEY=VALUE',
                   help='config overrides (yaml values); may be repeated')
    add_fast_argument(p)
    return p


def open_input(args):
    """The frame source of --input, after the options are checked: opened before any model is built, so that
    a bad input or option is reported first."""
    if getattr(args, 'flow_max', None) is not None and not args.flow_max > 0:
        raise DemoInputError(f"--flow-max must be a positive number of pixels, got {args.flow_max}")
    if args.device is not None:  # its spelling, as the config checks it (whether it is there: when loading)
        update_from_list(edict(device='auto'), [f'device={args.device}'], source='--device')
    return open_source(args.input, args.max_frames)


def run_demo(args, detector, source, name='demo'):
    """The loop over `source` with a StreamDetector (lib/apps/stream.py): frame by frame, or with --batch
    chunk by chunk (the original demo_batch.py). Draws, marks key frames (DFF), adds the flow panel
    (--show-flow), writes, times. Returns a summary dict: frames (stems in order), kinds, paths, flow_paths,
    detections (rows [class, score, x1, y1, x2, y2]), times, timer, flow_max, video_codec,
    fast_path (the inference path: lib/apps/stream.py StreamDetector.settings)."""
    batch, show_flow = bool(args.batch), bool(getattr(args, 'show_flow', False))
    flow_dir = os.path.join(args.output, 'flow') if show_flow else None
    writer = DetectionWriter(args.output, args.mp4, source.fps, log=tqdm.write)
    if flow_dir:
        writer.folder(flow_dir)
    if batch and detector.settings.get('batch_frames') is None:
        raise DemoInputError("--batch needs a fixed key interval: the adaptive schedule decides each key frame "
                             "from the frames before it")
    timer = DemoTimer(warmup=int(detector.settings['batch_frames']) if batch else WARMUP_FRAMES)
    summary = {'frames': [], 'kinds': [], 'paths': [], 'flow_paths': [], 'detections': [], 'times': [],
               'flow_max': None}
    key_index = None
    bar = tqdm(total=len(source) or None, desc=name, unit='frame', disable=bool(args.quiet), dynamic_ncols=True)
    try:
        for frame, r in detector.frames(source, thresh=args.thresh, with_flow=show_flow, batch=batch):
            kind = ('batch' if batch else ('key' if r['is_key'] else 'non-key') if detector.marks_key_frames
                    else 'frame')
            timer.add(kind, r['time_s'])
            dets = result_rows(r)
            im = draw_detections(frame.image, dets, detector.class_names)
            if detector.marks_key_frames:
                key_index = frame.index if r['is_key'] else key_index
                mark_frame(im, frame.index, key_index, r['is_key'])
            if show_flow:
                size = (frame.image.shape[1], frame.image.shape[0])
                if summary['flow_max'] is None:
                    summary['flow_max'] = float(args.flow_max or default_flow_max(size))
                    tqdm.write(f'[{name}] flow colours: full colour at {summary["flow_max"]:.3g} px for the whole '
                               f'video (' + ('--flow-max' if args.flow_max else
                                             f'{FLOW_MAX_FRACTION:.0%} of the frame diagonal; --flow-max to '
                                             f'change') + ')')
                if r['flow'] is not None:
                    path = os.path.join(flow_dir, f'{frame.stem}.png')
                    writer.track(path)
                    write_image(path, flow_to_color(r['flow'], summary['flow_max']))
                    summary['flow_paths'].append(path)
                im = np.hstack([im, flow_panel(r['flow'], summary['flow_max'], size)])
            summary['paths'].append(writer.write(frame.stem, im))
            summary['frames'].append(frame.stem)
            summary['kinds'].append(kind)
            summary['detections'].append(dets)
            summary['times'].append(r['time_s'])
            bar.update(1)
            avg = timer.average(kind)
            bar.set_postfix_str(f'{kind} {r["time_s"]:.3f} s, {len(dets)} dets', refresh=False)
            if args.verbose and not args.quiet:
                tqdm.write(f'[{name}] frame {frame.index} {frame.stem} {kind}: {r["time_s"]:.4f} s '
                           f'(average {kind} {"-" if avg is None else f"{avg:.4f} s"}), {len(dets)} detections')
    except BaseException:
        bar.close()
        writer.discard()  # a failed run leaves no output of its own behind
        raise
    finally:
        writer.close()
    bar.close()
    if not summary['frames']:
        raise DemoInputError(f"no frame was processed from {args.input}")
    summary['video_codec'] = writer.video.codec if writer.video is not None else None
    video = f', {args.mp4} ({summary["video_codec"]})' if args.mp4 else ''
    print(f'[{name}] {len(summary["frames"])} frames -> {args.output}{video}'
          + (f', flow images in {flow_dir}' if flow_dir else ''))
    print(f'[{name}] {timer.summary()}; {detector.settings["fast_path"]}', flush=True)
    summary['timer'], summary['fast_path'] = timer, detector.settings['fast_path']
    return summary


def cli(main, argv=None):
    """Run main(argv); input and config errors end with one 'error:' line and exit status 2 (lib.utils.cli)."""
    run_cli(main, argv)
