"""The demos (rfcn/demo.py, dff_rfcn/demo.py) and their shared parts (lib/apps/demo.py): frame order and
input errors, the DFF key-frame schedule, annotated frames + mp4 + flow images on a real video
(tests/fixtures/video/bikes.mp4) with random weights, and the Middlebury flow colours."""
import os
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from lib.config import load_config, update_from_list
from lib.apps import demo as D
from lib.utils.checkpoint import save_checkpoint
from lib.utils.fileio import load_torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIKES = os.path.join(ROOT, 'tests', 'fixtures', 'video', 'bikes.mp4')  # 640 x 272, 250 frames, 25 fps
CFG = os.path.join(ROOT, 'experiments', 'rfcn', 'cfgs', 'synthetic_vid_cpu.yaml')
# small and fast: the synthetic CPU network, a quarter-width FlowNet, frames resized to 68 x 160
SETS = ['SCALES=[96,160]', 'network.FLOW_WIDTH_MULT=0.25', 'device=cpu']
NUM_FRAMES = 12


def _cfg():
    return update_from_list(load_config(CFG), SETS)


@pytest.fixture(scope='module')
def dff_checkpoint(tmp_path_factory):
    from dff_rfcn.model import DFF
    torch.manual_seed(0)
    model = DFF(_cfg())
    path = str(tmp_path_factory.mktemp('ck') / 'dff_random.pth')
    save_checkpoint(path, {'model': model.state_dict()})
    return path


@pytest.fixture(scope='module')
def rfcn_checkpoint(dff_checkpoint, tmp_path_factory):
    """The DFF checkpoint without FlowNet: the same feature network and heads as an R-FCN."""
    state = load_torch(dff_checkpoint)['model']
    path = str(tmp_path_factory.mktemp('ck') / 'rfcn_random.pth')
    save_checkpoint(path, {'model': {k: v for k, v in state.items() if not k.startswith('flownet.')}})
    return path


@pytest.fixture(scope='module')
def frames_dir(tmp_path_factory):
    """The first NUM_FRAMES frames of bikes.mp4 as 0.png ... 11.png (name order != number order)."""
    folder = tmp_path_factory.mktemp('frames')
    cap = cv2.VideoCapture(BIKES)
    for i in range(NUM_FRAMES):
        ok, im = cap.read()
        assert ok
        cv2.imwrite(str(folder / f'{i}.png'), im)
    cap.release()
    (folder / 'notes.txt').write_text('not a frame')
    return str(folder)


def _argv(ck, inp, out, *extra):
    return ['--cfg', CFG, '--checkpoint', ck, '--input', inp, '--output', str(out), '--quiet', *extra,
            '--set', *SETS]


def _count_video_frames(path):
    cap = cv2.VideoCapture(path)
    assert cap.isOpened(), path
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


# ------------------------------------------------------------------------------------------- frame source

def test_folder_frames_in_number_order(tmp_path):
    for name in ['10.jpg', '2.jpg', '1.jpg', 'img_0003.PNG', 'readme.txt']:
        if name.endswith('.txt'):
            (tmp_path / name).write_text('x')
        else:
            cv2.imwrite(str(tmp_path / name), np.zeros((4, 6, 3), np.uint8))
    src = D.FrameSource(str(tmp_path))
    assert [f.stem for f in src] == ['1', '2', '10', 'img_0003']
    assert [f.index for f in src] == [0, 1, 2, 3]
    assert len(src) == 4
    assert [f.stem for f in D.FrameSource(str(tmp_path), max_frames=2)] == ['1', '2']
    names = ['frame_10', 'frame_9', 'frame_100', 'Frame_11', 'a', '000002']
    assert sorted(names, key=D.natural_key) == ['000002', 'a', 'frame_9', 'frame_10', 'Frame_11', 'frame_100']


def test_video_frames(tmp_path):
    src = D.FrameSource(BIKES, max_frames=3)
    frames = list(src)
    assert [f.stem for f in frames] == ['000000', '000001', '000002']
    assert all(f.image.shape == (272, 640, 3) and f.image.dtype == np.uint8 for f in frames)
    assert src.fps == pytest.approx(25.0)


def test_frame_source_errors(tmp_path, monkeypatch):
    missing = str(tmp_path / 'nope')
    with pytest.raises(FileNotFoundError, match='nope'):
        D.FrameSource(missing)
    empty = tmp_path / 'empty'
    empty.mkdir()
    (empty / 'list.txt').write_text('no images here')
    with pytest.raises(D.DemoInputError, match='no image files.*empty'):
        D.FrameSource(str(empty))
    fake = tmp_path / 'fake.mp4'
    fake.write_text('this is not a video')
    with pytest.raises(D.DemoInputError, match='fake.mp4 is not a video container'):
        D.FrameSource(str(fake))
    # FFmpeg would render a text file as 'frames' and take a single image as a one-frame video: refused
    text = tmp_path / 'notes.txt'
    text.write_text('hello\nworld\n' * 50)
    with pytest.raises(D.DemoInputError, match='notes.txt is not a video container'):
        D.FrameSource(str(text))
    image = tmp_path / 'still.jpg'
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(D.DemoInputError, match='still.jpg is a JPEG image, not a video; .*folder'):
        D.FrameSource(str(image))
    assert D.video_container(BIKES) == 'MP4 / QuickTime / 3GP'
    broken = tmp_path / 'broken.mp4'  # an MP4 signature, then garbage: OpenCV cannot open it
    broken.write_bytes(b'\x00\x00\x00\x20ftypisom' + b'\x00garbage' * 50)
    with pytest.raises(D.DemoInputError, match='(cannot open the video file|no frame could be read from the video) '
                                               '.*broken.mp4'):
        D.FrameSource(str(broken))
    dup = tmp_path / 'dup'
    dup.mkdir()
    for name in ['3.jpg', '3.png']:
        cv2.imwrite(str(dup / name), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(D.DemoInputError, match='same output'):
        D.FrameSource(str(dup))

    class NoFrames:  # a container that opens but yields no frame
        def __init__(self, path):
            pass

        def isOpened(self):
            return True

        def read(self):
            return False, None

        def get(self, prop):
            return 0

        def release(self):
            pass

    monkeypatch.setattr(D.cv2, 'VideoCapture', NoFrames)
    with pytest.raises(D.DemoInputError, match='no frame could be read .*bikes.mp4'):
        D.FrameSource(BIKES)


def test_prepare_frame_matches_prepare_image(frames_dir):
    from lib.utils.image import prepare_image
    cfg = _cfg()
    path = os.path.join(frames_dir, '3.png')
    a, info_a = prepare_image(path, cfg)
    b, info_b = D.prepare_frame(cv2.imread(path), cfg)
    assert torch.equal(a, b) and np.array_equal(info_a, info_b)
    assert tuple(info_b[:2]) == (68, 160)


def test_class_names_from_cfg():
    assert D.class_names_from_cfg(_cfg()) == ['__background__', 'airplane', 'car', 'dog', 'horse', 'zebra']
    real = load_config(os.path.join(ROOT, 'experiments', 'dff_rfcn', 'cfgs',
                                    'resnet_v1_101_flownet_imagenet_vid_rfcn_end2end_ohem.yaml'))
    names = D.class_names_from_cfg(real)
    assert len(names) == 31 and names[1] == 'airplane' and names[30] == 'zebra'


# ------------------------------------------------------------------------------------------- flow colours

def test_flow_colors():
    wheel = D.color_wheel()
    assert wheel.shape == (55, 3) and tuple(wheel[0]) == (255, 0, 0)
    flow = np.array([[[3.0, 0.0], [0.0, 0.0], [np.nan, 1.0], [1.5, 0.0], [-3.0, 0.0], [6.0, 0.0]]])
    bgr = D.flow_to_color(flow, max_mag=3.0)
    assert bgr.dtype == np.uint8 and bgr.shape == (1, 6, 3)
    assert tuple(bgr[0, 0]) == (0, 0, 255)        # pure +x at full magnitude: the wheel's angle-0 colour, red
    assert tuple(bgr[0, 1]) == (255, 255, 255)    # zero flow: white
    assert tuple(bgr[0, 2]) == (0, 0, 0)          # unknown flow: black
    assert tuple(bgr[0, 3]) == (127, 127, 255)    # half magnitude: half saturated
    expect = np.floor((wheel[27] + wheel[28]) / 2)[::-1]  # -x: half a turn = position 27.5 of 55
    assert np.array_equal(bgr[0, 4], expect.astype(np.uint8))
    assert tuple(bgr[0, 5]) == (0, 0, 191)        # beyond max_mag: full colour darkened to 75%
    # default normalisation: the field's largest magnitude; +y (down) lies a quarter turn on
    down = D.flow_to_color(np.array([[[0.0, 2.0], [0.0, 1.0]]]))
    q = 55 / 4.0
    col = (1 - (q % 1)) * wheel[int(q)] + (q % 1) * wheel[int(q) + 1]
    assert np.array_equal(down[0, 0], np.floor(col)[::-1].astype(np.uint8))
    assert down[0, 1].min() > down[0, 0].min()   # half the magnitude: paler


def test_flow_panel_legend_and_key_mark():
    """The flow panel: the Middlebury colours at the given scale, a colour wheel whose rim is that scale (+x
    red, centre white), white for a key frame (no flow); the key-frame mark: a yellow frame."""
    flow = np.zeros((120, 200, 2))
    flow[..., 0] = 4.0  # rightwards, half the scale of 8 px: half-saturated red
    panel = D.flow_panel(flow, 8.0, (200, 120))
    assert panel.shape == (120, 200, 3)
    assert tuple(panel[60, 60]) == tuple(D.flow_to_color(flow, 8.0)[60, 60]) == (127, 127, 255)
    d = 30  # min(120, 200) // 4
    wheel = D.flow_legend(d, 8.0)
    assert tuple(wheel[d // 2, d - 1]) == (0, 0, 255) or wheel[d // 2, d - 1, 2] > 200 > wheel[d // 2, d - 1, 0]
    assert wheel[d // 2, d // 2].min() > 230 and tuple(wheel[0, 0]) == (40, 40, 40)
    assert any(np.array_equal(panel[y:y + d, x:x + d], wheel) for y in range(90) for x in range(170))
    key = D.flow_panel(None, 8.0, (200, 120))
    assert key[40:80, 40:120].min() == 255
    im = np.full((50, 80, 3), 128, np.uint8)
    D.mark_frame(im, 7, 7, True)
    assert tuple(im[49, 40]) == tuple(im[25, 0]) == D.KEY_COLOR
    im = np.full((50, 80, 3), 128, np.uint8)
    D.mark_frame(im, 9, 7, False)
    assert tuple(im[49, 40]) == (128, 128, 128) and (im[:20] != 128).any()


@pytest.mark.parametrize('hide_pyav', [False, True])
def test_mp4_h264_or_the_fallback_note(tmp_path, monkeypatch, capsys, hide_pyav):
    """The mp4: H.264 through PyAV (optional in requirements.txt); without PyAV (as installed, or hidden),
    OpenCV's mp4v and a note; in both an odd size is padded to an even one (mp4v would crop it), the last
    column and row repeating the edge."""
    if hide_pyav:
        monkeypatch.setitem(sys.modules, 'av', None)  # `import av` raises ImportError
    pyav = _have_pyav()
    path = str(tmp_path / 'v.mp4')
    enc = D.VideoEncoder(path, 25.0, (161, 97))
    for i in range(5):
        im = np.full((97, 161, 3), 40 * i, np.uint8)
        im[:, -1] = im[-1] = 250  # the edge the padding repeats
        enc.write(im)
    enc.close()
    enc.close()  # idempotent
    cap = cv2.VideoCapture(path)
    ok, first = cap.read()
    cap.release()
    assert ok and _count_video_frames(path) == 5 and first.shape == (98, 162, 3)
    assert first[:, -1].mean() > 200 and first[-1].mean() > 200 and first[:90, :150].mean() < 20  # edge, not black
    printed = capsys.readouterr().out
    if pyav:
        assert enc.codec == 'h264' and _fourcc(path) in ('h264', 'avc1')
        assert enc.note is None and 'note:' not in printed
    else:
        assert enc.codec == 'mp4v' and _fourcc(path) in ('mp4v', 'fmp4')  # MPEG-4 Part 2
        assert printed.startswith('note: PyAV ') and 'pip install av' in printed
    with pytest.raises(ValueError, match='a frame of 160x97 in a video of 161x97'):
        D.VideoEncoder(str(tmp_path / 'w.mp4'), 25.0, (161, 97), log=lambda m: None).write(
            np.zeros((97, 160, 3), np.uint8))


def test_flow_to_image_pixels():
    flow = torch.zeros(1, 2, 5, 10)
    flow[:, 0] = 1.0  # one feature cell = 16 pixels of the resized image = 16 / 0.25 = 64 original pixels
    out = D.flow_to_image_pixels(flow, np.array([68, 160, 0.25], np.float32), 16, (640, 272))
    assert out.shape == (272, 640, 2)
    assert np.allclose(out[..., 0], 64.0) and np.allclose(out[..., 1], 0.0)


# ------------------------------------------------------------------------------------------- the demos

def _fourcc(path):
    cap = cv2.VideoCapture(path)
    code = int(cap.get(cv2.CAP_PROP_FOURCC))
    cap.release()
    return code.to_bytes(4, 'little').decode('ascii', 'replace').lower()


def _have_pyav():
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return 'libx264' in av.codecs_available


def test_dff_demo_on_video(dff_checkpoint, tmp_path, capsys):
    """--show-flow: the flow beside each frame (the frames twice as wide), on the one scale printed; key frames
    marked (yellow frame) and their flow panel white (no flow); the mp4 in H.264 (or the fallback note)."""
    from dff_rfcn.demo import main
    out, mp4 = tmp_path / 'out', str(tmp_path / 'out.mp4')
    s = main(_argv(dff_checkpoint, BIKES, out, '--max-frames', str(NUM_FRAMES), '--key-interval', '5',
                   '--show-flow', '--mp4', mp4, '--thresh', '0.1'))
    printed = capsys.readouterr().out
    stems = [f'{i:06d}' for i in range(NUM_FRAMES)]
    assert s['frames'] == stems
    assert sorted(f for f in os.listdir(out) if f.endswith('.jpg')) == [f'{x}.jpg' for x in stems]
    assert s['paths'] == [os.path.join(str(out), f'{x}.jpg') for x in stems]  # written in frame order
    key = [i for i, k in enumerate(s['kinds']) if k == 'key']
    assert key == [0, 5, 10] and s['kinds'].count('non-key') == NUM_FRAMES - 3
    assert s['flow_max'] == pytest.approx(0.05 * np.hypot(640, 272))
    assert f'full colour at {s["flow_max"]:.3g} px for the whole video' in printed
    for i, path in enumerate(s['paths']):
        im = cv2.imread(path).astype(int)
        assert im.shape == (272, 1280, 3)
        yellow = np.abs(im[136, 0] - D.KEY_COLOR).max() < 40 and np.abs(im[271, 320] - D.KEY_COLOR).max() < 40
        white = im[100:170, 900:1000].min() > 235  # the middle of the flow panel
        assert yellow == white == (i in key), i
    non_key = [x for i, x in enumerate(stems) if i not in key]
    assert sorted(os.listdir(out / 'flow')) == [f'{x}.png' for x in non_key]
    assert cv2.imread(str(out / 'flow' / f'{non_key[0]}.png')).shape == (272, 640, 3)
    assert _count_video_frames(mp4) == NUM_FRAMES
    if _have_pyav():
        assert s['video_codec'] == 'h264' and _fourcc(mp4) in ('h264', 'avc1')
    else:
        assert s['video_codec'] == 'mp4v' and f"{mp4} is written by OpenCV as mp4v" in printed
    timer = s['timer']
    assert timer.count('key') == 2 and timer.count('non-key') == NUM_FRAMES - 2 - 2  # frames 0, 1: warm-up
    assert sum(len(d) for d in s['detections']) > 0  # random weights, low threshold: boxes were drawn


def test_dff_default_interval_and_rfcn_demo_on_folder(dff_checkpoint, rfcn_checkpoint, frames_dir, tmp_path):
    """Both demos on a folder named 0.png ... 11.png: frames go in number order, DFF's key frames are
    chosen by that order (TEST.KEY_FRAME_INTERVAL when --key-interval is not given), and on key frames
    DFF detects exactly what R-FCN with the same feature network and heads does."""
    from dff_rfcn.demo import main as dff_main
    from rfcn.demo import main as rfcn_main
    stems = [str(i) for i in range(NUM_FRAMES)]
    d = dff_main(_argv(dff_checkpoint, frames_dir, tmp_path / 'dff', '--thresh', '0.1') + ['TEST.KEY_FRAME_INTERVAL=4'])
    assert d['frames'] == stems and d['key_interval'] == 4
    assert [i for i, k in enumerate(d['kinds']) if k == 'key'] == [0, 4, 8]
    assert not os.path.exists(tmp_path / 'dff' / 'flow')
    r = rfcn_main(_argv(rfcn_checkpoint, frames_dir, tmp_path / 'rfcn', '--thresh', '0.1', '--max-frames', '9'))
    assert r['frames'] == stems[:9] and set(r['kinds']) == {'frame'}
    assert sorted(os.listdir(tmp_path / 'rfcn'), key=D.natural_key) == [f'{x}.jpg' for x in stems[:9]]
    assert r['timer'].count() == 9 - 2
    for i in (0, 4, 8):
        assert len(r['detections'][i]) > 0
        np.testing.assert_allclose(d['detections'][i], r['detections'][i], rtol=1e-5, atol=1e-3)


def test_batch_demos_detect_what_the_frame_by_frame_demos_detect(dff_checkpoint, rfcn_checkpoint, frames_dir,
                                                                  tmp_path):
    """--batch (the original demo_batch.py): DFF in chunks of key-interval frames (1 key + the others in one
    forward, the last chunk shorter), R-FCN in chunks of 10; the same detections and flow images as frame by
    frame, each frame credited its chunk's time / frames, the first chunk left out as the warm-up."""
    from dff_rfcn.demo import main as dff_main
    from rfcn.demo import main as rfcn_main
    one = dff_main(_argv(dff_checkpoint, frames_dir, tmp_path / 'one', '--thresh', '0.1', '--key-interval', '5',
                         '--show-flow'))
    bat = dff_main(_argv(dff_checkpoint, frames_dir, tmp_path / 'bat', '--thresh', '0.1', '--key-interval', '5',
                         '--show-flow', '--batch'))
    assert bat['frames'] == one['frames'] and set(bat['kinds']) == {'batch'}
    assert sorted(os.listdir(tmp_path / 'bat' / 'flow')) == sorted(os.listdir(tmp_path / 'one' / 'flow'))
    for a, b in zip(one['detections'], bat['detections']):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-2)
    t = bat['times']
    assert t[0] == t[4] and t[5] == t[9] and t[10] == t[11] and t[0] != t[5]  # chunks 0-4, 5-9, 10-11
    assert bat['timer'].count() == NUM_FRAMES - 5
    r1 = rfcn_main(_argv(rfcn_checkpoint, frames_dir, tmp_path / 'r1', '--thresh', '0.1'))
    rb = rfcn_main(_argv(rfcn_checkpoint, frames_dir, tmp_path / 'rb', '--thresh', '0.1', '--batch'))
    assert rb['frames'] == r1['frames'] and len(set(rb['times'][:10])) == 1 and rb['timer'].count() == 2
    for a, b in zip(r1['detections'], rb['detections']):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-2)
    mixed = tmp_path / 'mixed'
    mixed.mkdir()
    cv2.imwrite(str(mixed / '1.png'), np.zeros((100, 200, 3), np.uint8))
    cv2.imwrite(str(mixed / '2.png'), np.zeros((200, 100, 3), np.uint8))
    with pytest.raises(D.DemoInputError, match=r'--batch needs frames of one size; 1 \.\. 2'):
        rfcn_main(_argv(rfcn_checkpoint, str(mixed), tmp_path / 'rm', '--batch'))


def test_progress_bar_and_verbose_lines(rfcn_checkpoint, frames_dir, tmp_path, capsys):
    """Without --quiet a progress bar counts the frames (stderr); --verbose adds a line per frame."""
    from rfcn.demo import main
    argv = [a for a in _argv(rfcn_checkpoint, frames_dir, tmp_path / 'o', '--max-frames', '3', '--verbose')
            if a != '--quiet']
    main(argv)
    out, err = capsys.readouterr()
    assert re.search(r'rfcn demo: 100%.*3/3', err), err
    assert re.findall(r'^\[rfcn demo\] frame (\d) (\d+) frame: ', out, re.M) == [('0', '0'), ('1', '1'), ('2', '2')]


def test_scripts_run_from_the_command_line(tmp_path):
    """As scripts, from another folder, with the packages importable (PYTHONPATH stands for the install that
    init.sh does): the script's own folder (rfcn/ with test.py, model.py ...) first on sys.path shadows
    nothing they import."""
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT)
    # on an input that does not exist: one clean error line
    proc = subprocess.run([sys.executable, os.path.join(ROOT, 'rfcn', 'demo.py'), '--cfg', CFG, '--checkpoint',
                           str(tmp_path / 'none.pth'), '--input', str(tmp_path / 'missing.mp4'), '--output',
                           str(tmp_path / 'o'), '--set', *SETS], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert 'error: input not found' in proc.stderr and 'missing.mp4' in proc.stderr
    assert 'Traceback' not in proc.stderr
    proc = subprocess.run([sys.executable, '-m', 'dff_rfcn.demo', '--help'], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert '--key-interval' in proc.stdout and '--show-flow' in proc.stdout
    # the test scripts of the original's names test a checkpoint with --cfg
    for script in (os.path.join(ROOT, 'rfcn', 'test.py'), os.path.join(ROOT, 'dff_rfcn', 'test.py')):
        proc = subprocess.run([sys.executable, script, '--help'], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0 and '--cfg' in proc.stdout and '--checkpoint' in proc.stdout, proc.stderr
        assert '--resume' not in proc.stdout and '--skip-train' not in proc.stdout
