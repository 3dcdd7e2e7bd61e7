"""The Python API (rfcn/api.py, dff_rfcn/api.py on lib/apps/stream.py): the documented example runs as
written, the result format, the sources, the key-frame schedule of a stream, flat memory over a long stream,
and its input errors."""
import json
import os
import re
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
import torch

from lib.apps import stream as S
from lib.config import ConfigError, load_config, update_from_list
from lib.utils.checkpoint import save_checkpoint
from lib.utils.provenance import plain

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIKES = os.path.join(ROOT, 'tests', 'fixtures', 'video', 'bikes.mp4')  # 640 x 272, 250 frames, 25 fps
API_DOC = os.path.join(ROOT, 'README.md')  # its "Python API" section
CFG = os.path.join(ROOT, 'experiments', 'rfcn', 'cfgs', 'synthetic_vid_cpu.yaml')
# small and fast: the synthetic CPU network, a quarter-width FlowNet, frames resized to at most 96 x 160
SETS = ['SCALES=[96,160]', 'network.FLOW_WIDTH_MULT=0.25', 'device=cpu']
KEYS = {'boxes', 'scores', 'labels', 'class_names', 'is_key', 'index', 'time_s'}


def _cfg():
    return update_from_list(load_config(CFG), SETS)


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    """A randomly initialised DFF checkpoint that stores its config, as training writes them, and the same
    weights without FlowNet as an R-FCN checkpoint (the same feature network and heads)."""
    from dff_rfcn.model import DFF
    torch.manual_seed(0)
    cfg = _cfg()
    state = DFF(cfg).state_dict()
    folder = tmp_path_factory.mktemp('ck')
    dff, rfcn = str(folder / 'dff.pth'), str(folder / 'rfcn.pth')
    save_checkpoint(dff, {'model': state, 'cfg': plain(cfg)})
    save_checkpoint(rfcn, {'model': {k: v for k, v in state.items() if not k.startswith('flownet.')},
                           'cfg': plain(cfg)})
    return dff, rfcn


def _frames(n, sizes=((144, 256),)):
    """A generated source: n BGR frames, a bright square moving over a gradient, cycling through `sizes`."""
    for i in range(n):
        h, w = sizes[i % len(sizes)]
        im = np.zeros((h, w, 3), np.uint8)
        im[..., 0] = np.linspace(40, 200, w, dtype=np.uint8)[None]
        x, y = (7 * i) % (w - 32), (3 * i) % (h - 32)
        im[y:y + 32, x:x + 32] = (30, 200, 240)
        yield im


def api_example(path=API_DOC):
    """The python code block under the '## Python API' heading."""
    text = open(path, encoding='utf-8').read()
    section = re.search(r'^## Python API\n(.*?)(?=^## |\Z)', text, re.S | re.M)
    assert section, f'{path}: no "## Python API" section'
    block = re.search(r'```python\n(.*?)```', section.group(1), re.S)
    assert block, f'{path}: no python code block in the "## Python API" section'
    return block.group(1)


# ------------------------------------------------------------------------------------------- the example

def test_documented_example_runs_as_written(checkpoints, tmp_path, monkeypatch, capsys):
    """The example, executed as it is written, in a folder holding the files it names: a random checkpoint
    (with its config) at its checkpoint path and bikes.mp4 at tests/fixtures/video: a line per frame of the
    250, the key frames every 10th."""
    code = api_example()
    assert len(code.strip().splitlines()) <= 10
    ck = re.search(r"load_detector\('([^']+)'", code).group(1)
    video = re.search(r"stream\('([^']+)'", code).group(1)
    os.makedirs(tmp_path / os.path.dirname(ck))
    os.symlink(checkpoints[0], tmp_path / ck)
    os.makedirs(tmp_path / os.path.dirname(video))
    os.symlink(BIKES, tmp_path / video)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, API_DOC, 'exec'), {'__name__': '__main__'})
    lines = [m.groups() for m in re.finditer(r'^frame (\d+) \((key|non-key), \d+ ms\): (\d+) detections$',
                                             capsys.readouterr().out, re.M)]
    assert [int(i) for i, _, _ in lines] == list(range(250))
    assert [int(i) for i, kind, _ in lines if kind == 'key'] == list(range(0, 250, 10))


# ------------------------------------------------------------------------------------------- results

def test_result_format_dff_and_rfcn(checkpoints):
    """Both APIs give the same format; boxes in each frame's own pixels (frames of two sizes); on key frames
    DFF detects what R-FCN with its feature network and heads does; every R-FCN frame is a key frame."""
    from dff_rfcn.api import load_detector as load_dff
    from rfcn.api import load_detector as load_rfcn
    dff, rfcn = load_dff(checkpoints[0], key_interval=3), load_rfcn(checkpoints[1])
    frames = list(_frames(7, sizes=((144, 256), (144, 256), (300, 180))))
    d = list(dff.stream(frames, thresh=0.1))
    r = list(rfcn.stream(iter(frames), thresh=0.1))
    for res, im in zip(d + r, frames + frames):
        assert set(res) == KEYS
        k = len(res['boxes'])
        assert res['boxes'].dtype == np.float32 and res['boxes'].shape == (k, 4)
        assert res['scores'].dtype == np.float32 and res['scores'].shape == (k,)
        assert res['labels'].dtype == np.int64 and res['labels'].shape == (k,)
        assert np.all(np.diff(res['scores']) <= 0) and np.all(res['scores'] > 0.1)
        assert k == 0 or (res['labels'].min() >= 1 and res['labels'].max() <= 5)
        assert res['class_names'] == ('__background__', 'airplane', 'car', 'dog', 'horse', 'zebra')
        h, w = im.shape[:2]
        assert np.all(res['boxes'] >= 0) and np.all(res['boxes'][:, [0, 2]] <= w)
        assert np.all(res['boxes'][:, [1, 3]] <= h) and res['time_s'] > 0
    assert [x['index'] for x in d] == [x['index'] for x in r] == list(range(7))
    assert sum(len(x['boxes']) for x in d) > 0
    assert all(x['is_key'] for x in r)
    # sizes A A B A A B A after resizing: a frame of another size than its key frame cannot be warped from it
    # and starts a new interval, so the key frames are 0, then every change of size (interval 3 never ends)
    sizes = [S.prepare_frame(im, dff.cfg)[0].shape for im in frames]
    assert sizes[0] == sizes[1] != sizes[2]
    assert [x['is_key'] for x in d] == [True, False, True, True, False, True, True]
    for i in (0, 2):
        for key in ('boxes', 'scores', 'labels'):
            np.testing.assert_allclose(d[i][key], r[i][key], rtol=1e-5, atol=1e-3)


def test_flows_and_interleaved_streams(checkpoints):
    """frames(with_flow=True): each non-key frame's flow to its key frame in the frame's pixels, none on key
    frames; two streams of one detector interleaved give what each gives alone (a key-frame cache each)."""
    from dff_rfcn.api import load_detector
    det = load_detector(checkpoints[0], key_interval=4)
    out = list(det.frames(_frames(6), thresh=0.1, with_flow=True))
    assert [f.index for f, _ in out] == list(range(6))
    for frame, res in out:
        if res['is_key']:
            assert res['flow'] is None
        else:
            assert res['flow'].shape == (144, 256, 2) and res['flow'].dtype == np.float32
    assert [res['is_key'] for _, res in out] == [True, False, False, False, True, False]
    alone = [list(det.stream(_frames(6), thresh=0.1)) for _ in range(2)]
    a, b = det.stream(_frames(6), thresh=0.1), det.stream(list(_frames(6))[::-1], thresh=0.1)
    mixed = [(next(a), next(b)) for _ in range(6)]
    reverse = list(det.stream(list(_frames(6))[::-1], thresh=0.1))
    for i, (x, y) in enumerate(mixed):
        np.testing.assert_allclose(x['scores'], alone[0][i]['scores'], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(y['scores'], reverse[i]['scores'], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(alone[0][5]['boxes'], alone[1][5]['boxes'], rtol=1e-5, atol=1e-4)


def test_sources(tmp_path):
    """A video file, a stream URL, a folder, a (N, H, W, 3) array and a generator: frames in order; a camera
    that is not there and frames that are not BGR uint8 images: errors naming them."""
    assert [f.image.shape for f in S.open_source(BIKES, max_frames=2)] == [(272, 640, 3)] * 2
    url = S.open_source('file://' + BIKES, max_frames=3)
    assert isinstance(url, S.CaptureSource) and url.fps == pytest.approx(25.0)
    video = [f.image for f in S.open_source(BIKES, max_frames=3)]
    assert all(np.array_equal(a.image, b) for a, b in zip(url, video))
    for i, im in enumerate(video):
        cv2.imwrite(str(tmp_path / f'{10 - i}.png'), im)
    assert [f.stem for f in S.open_source(str(tmp_path))] == ['8', '9', '10']
    stack = S.open_source(np.stack(video))
    assert len(stack) == 3 and [f.stem for f in stack] == ['000000', '000001', '000002']
    assert len(S.open_source(_frames(5))) == 0 and len(list(S.open_source(_frames(5), max_frames=4))) == 4
    with pytest.raises(S.DemoInputError, match='cannot open camera 97'):
        S.open_source(97)
    with pytest.raises(S.DemoInputError, match='cannot open the stream rtsp://127.0.0.1:1/none'):
        S.open_source('rtsp://127.0.0.1:1/none')
    with pytest.raises(S.DemoInputError, match=r'frame 1 of the source has dtype float32 and shape \(8, 8, 3\)'):
        list(S.open_source([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.float32)]))
    with pytest.raises(S.DemoInputError, match=r'frame 0 of the source has dtype uint8 and shape \(8, 8\)'):
        list(S.open_source([np.zeros((8, 8), np.uint8)]))
    with pytest.raises(S.DemoInputError, match='frame 0 of the source is a str'):
        list(S.open_source(['a.jpg']))
    with pytest.raises(S.DemoInputError, match=r'array of shape \(8, 8, 3\) is not a sequence of frames'):
        S.open_source(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(S.DemoInputError, match='got a float'):
        S.open_source(2.5)
    with pytest.raises(FileNotFoundError, match='nothere.mp4'):
        S.open_source(str(tmp_path / 'nothere.mp4'))


def test_config_and_argument_errors(checkpoints, tmp_path):
    """cfg: the checkpoint's stored config, else the real DFF yaml; a given yaml or config; overrides and
    device. Bad input: one clear message naming the file, key or value."""
    from dff_rfcn.api import DEFAULT_CFG, key_frame_interval, load_detector
    cfg = S.detector_config(checkpoints[0], None, DEFAULT_CFG, ['TEST.NMS=0.4'], 'cpu')
    assert cfg.SCALES == [(96, 160)] and cfg.network.RESNET_UNITS == [1, 1, 1, 1] and cfg.TEST.NMS == 0.4
    bare = str(tmp_path / 'bare.pth')
    save_checkpoint(bare, {'model': {'w': torch.zeros(1)}})
    real = S.detector_config(bare, None, DEFAULT_CFG)
    assert real.network.RESNET_DEPTH == 101 and real.dataset.dataset == 'ImageNetVID' and real.SCALES == [(600, 1000)]
    assert S.detector_config(bare, CFG).SCALES == [(192, 320)]
    assert S.detector_config(bare, _cfg()).SCALES == [(96, 160)]
    odd = str(tmp_path / 'odd.pth')
    save_checkpoint(odd, {'model': {'w': torch.zeros(1)}, 'cfg': {'network': {'RESNET_WIDHT': 16}}})
    with pytest.raises(ConfigError, match=re.escape(odd) + r".*unknown config key 'network.RESNET_WIDHT'.*"
                                                            r"RESNET_WIDTH"):
        load_detector(odd)
    with pytest.raises(FileNotFoundError, match='checkpoint not found: .*none.pth'):
        load_detector(str(tmp_path / 'none.pth'))
    with pytest.raises(ConfigError, match="device: expected one of auto, cpu, cuda, cuda:N, got 'gpu'"):
        load_detector(checkpoints[0], device='gpu')
    with pytest.raises(ValueError, match='does not fit the DFF built from the config'):
        load_detector(checkpoints[0], cfg=os.path.join(ROOT, DEFAULT_CFG))
    det = load_detector(checkpoints[0])
    with pytest.raises(FileNotFoundError, match='input not found: .*nothere.mp4'):
        det.stream(str(tmp_path / 'nothere.mp4'))  # when stream() is called, before any frame is asked for
    with pytest.raises(ValueError, match='key frame interval must be at least 1, got 0'):
        key_frame_interval(0, cfg)
    with pytest.raises(ValueError, match=r"expected an int >= 1 or 'adaptive', got 2\.5"):
        key_frame_interval(2.5, cfg)
    assert key_frame_interval(None, cfg) == cfg.TEST.KEY_FRAME_INTERVAL and key_frame_interval(np.int64(3), cfg) == 3


def test_adaptive_key_frames_in_a_stream(checkpoints):
    """key_interval='adaptive' (docs/key_frames.md): the first frame, then a key frame at a shot cut (here: the
    frames of another generated video) and at the maximum interval; the batched mode refuses it."""
    from dff_rfcn.api import key_frame_interval, load_detector
    det = load_detector(checkpoints[0], key_interval='adaptive', overrides=['TEST.KEY_FRAME_MAX_INTERVAL=8',
                                                                           'TEST.KEY_FRAME_WARP_ERROR=1000'])
    assert det.settings['key_interval'] == 'adaptive'
    other = [255 - im[..., ::-1] for im in _frames(4)]  # another scene: inverted colours
    keys = [r['is_key'] for r in det.stream(list(_frames(11)) + other, thresh=0.1)]
    assert [i for i, k in enumerate(keys) if k] == [0, 8, 11]
    with pytest.raises(ValueError, match='batched mode .* needs a fixed key_interval'):
        list(det.frames(_frames(3), batch=True))
    assert key_frame_interval(None, update_from_list(_cfg(), ['TEST.KEY_FRAME_SCHEDULE=adaptive'])) == 'adaptive'


def test_fast_path_through_the_api(checkpoints):
    """fast=True (the demos' --fast): the float32 fast path detects what the eager path does (float rounding), for
    DFF with the fixed and the adaptive key-frame schedule and for R-FCN; fast='bf16' runs bfloat16 autocast,
    through the adaptive schedule's FlowNet-only step too, with float32 results; fast=False turns a config's fast
    path off; a dtype that is not one is named."""
    from dff_rfcn.api import load_detector as load_dff
    from rfcn.api import load_detector as load_rfcn
    frames = list(_frames(6))
    adaptive = {'key_interval': 'adaptive', 'overrides': ['TEST.KEY_FRAME_WARP_ERROR=1000']}
    for load, ck, kwargs in ((load_dff, checkpoints[0], {'key_interval': 3}), (load_dff, checkpoints[0], adaptive),
                             (load_rfcn, checkpoints[1], {})):
        eager, fast = load(ck, **kwargs), load(ck, fast=True, **kwargs)
        assert (eager.settings['fast_path'], fast.settings['fast_path']) == ('eager float32', 'fold_bn+channels_last+gemm')
        a, b = list(eager.stream(frames, thresh=0.1)), list(fast.stream(frames, thresh=0.1))
        assert [x['is_key'] for x in b] == [x['is_key'] for x in a] and sum(len(x['boxes']) for x in a) > 0
        assert load is load_rfcn or not all(x['is_key'] for x in a)
        for x, y in zip(a, b):
            for key in ('boxes', 'scores', 'labels'):
                np.testing.assert_allclose(y[key], x[key], rtol=1e-4, atol=1e-3)
    bf16 = load_dff(checkpoints[0], fast='bf16', **adaptive)
    assert bf16.settings['fast_path'] == 'fold_bn+channels_last+gemm+bfloat16' and bf16.cfg.TEST.FAST_DTYPE == 'bfloat16'
    results = list(bf16.stream(frames, thresh=0.1))
    assert not all(x['is_key'] for x in results) and {x['scores'].dtype for x in results} == {np.dtype(np.float32)}
    off = load_rfcn(checkpoints[1], overrides=['TEST.FAST_PATH=true'], fast=False)
    assert off.settings['fast_path'] == 'eager float32' and off.cfg.TEST.FAST_PATH is False
    with pytest.raises(ValueError, match="fast: expected one of float32, bfloat16, float16 .*got 'fp8'"):
        load_rfcn(checkpoints[1], fast='fp8')


# ------------------------------------------------------------------------------------------- memory

MEMORY_SCRIPT = textwrap.dedent('''
    import json, resource, sys, tracemalloc
    import numpy as np, torch
    sys.path.insert(0, {root!r})
    from dff_rfcn.api import load_detector
    from tests.test_api import _frames
    torch.manual_seed(0)
    det = load_detector({ck!r}, key_interval=10)
    n = int(sys.argv[1])
    tracemalloc.start()
    count = sum(1 for _ in det.stream(_frames(n), thresh=0.1))
    traced = tracemalloc.get_traced_memory()[1]
    print(json.dumps({{'frames': count, 'traced_peak': traced,
                      'rss_peak': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}}))
''')


def test_memory_stays_flat_over_a_long_stream(checkpoints, tmp_path):
    """stream() over 300 generated frames peaks within 10% of its peak over 30 frames: the process's peak RSS
    and the peak of what Python allocates (tracemalloc: numpy arrays, results, frames), each in a fresh
    process."""
    script = tmp_path / 'memory.py'
    script.write_text(MEMORY_SCRIPT.format(root=ROOT, ck=checkpoints[0]))
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT)
    peaks = {}
    for n in (30, 300):
        proc = subprocess.run([sys.executable, str(script), str(n)], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
        peaks[n] = json.loads(proc.stdout.strip().splitlines()[-1])
        assert peaks[n]['frames'] == n
    for key in ('rss_peak', 'traced_peak'):
        assert peaks[300][key] <= 1.10 * peaks[30][key], (key, peaks)


@pytest.mark.parametrize('api', ['dff_rfcn', 'rfcn'])
def test_a_checkpoint_is_read_once(checkpoints, monkeypatch, api):
    """Without cfg the checkpoint is read for its stored config; its weights come from that same read (a
    real checkpoint is hundreds of MB). With cfg it is read once, for the weights."""
    import importlib

    from lib.model import weights as W
    reads = []
    real = W.load_torch

    def counting(path, *a, **k):
        reads.append(os.path.abspath(path))
        return real(path, *a, **k)

    monkeypatch.setattr(W, 'load_torch', counting)
    load_detector = importlib.import_module(f'{api}.api').load_detector
    ckpt = checkpoints[0] if api == 'dff_rfcn' else checkpoints[1]
    load_detector(ckpt, log=lambda *a: None)
    assert reads == [os.path.abspath(ckpt)]
    reads.clear()
    load_detector(ckpt, cfg=_cfg(), log=lambda *a: None)
    assert reads == [os.path.abspath(ckpt)]
