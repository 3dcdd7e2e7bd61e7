"""The synthetic ImageNet-VID-layout dataset and its Flying-Chairs-layout flow pairs
(lib/dataset/synthetic_vid.py, lib/utils/flow_io.py)."""
import json
import os
import re
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest

from lib.dataset import synthetic_vid as sv
from lib.dataset.vid_annotations import parse_vid_xml
from lib.evaluation.imagenet_vid_eval import compute_motion_iou, motion_buckets
from lib.utils.flow_io import read_flo, read_ppm, write_flo, write_ppm
from lib.utils.image import read_image

SMALL = dict(train_videos=2, train_frames=20, val_videos=2, val_frames=12, det_images=5, flow_pairs=4,
             flow_val_fraction=0.25)
TINY = dict(train_videos=1, train_frames=3, val_videos=1, val_frames=2, det_images=2, flow_pairs=2)
H, W = sv.DEFAULT_SIZES['height'], sv.DEFAULT_SIZES['width']
WNIDS = set(sv.SYNTHETIC_WNIDS[1:])


@pytest.fixture(scope='module')
def small(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('synth') / 'synthetic_vid')
    meta = sv.generate(root, seed=0, **SMALL)
    return root, meta


def _lines(root, name):
    with open(os.path.join(root, 'ImageSets', name + '.txt')) as f:
        text = f.read()
    assert text.endswith('\n')
    return [line.split(' ') for line in text.splitlines()]


def _all_files(root):
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            out[os.path.relpath(p, root)] = os.stat(p).st_mtime_ns
    return out


def _objects(xml_path):
    root = ET.parse(xml_path).getroot()
    objs = []
    for o in root.findall('object'):
        b = o.find('bndbox')
        objs.append({'trackid': o.findtext('trackid'), 'name': o.findtext('name'),
                     'box': tuple(int(b.findtext(k)) for k in ('xmin', 'ymin', 'xmax', 'ymax')),
                     'occluded': o.findtext('occluded'), 'generated': o.findtext('generated')})
    return root, objs


def _warp_back(img2, flow):
    """img2 sampled at (x + u, y + v): img1 as predicted from img2 by the flow."""
    h, w = flow.shape[:2]
    mx = (np.arange(w, dtype=np.float32)[None, :] + flow[..., 0]).astype(np.float32)
    my = (np.arange(h, dtype=np.float32)[:, None] + flow[..., 1]).astype(np.float32)
    return cv2.remap(img2, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


# ------------------------------------------------------------------------------------------ classes
def test_class_list():
    from lib.dataset.vid_classes import IMAGENET_VID_CLASSES, IMAGENET_VID_WNIDS, get_class_list
    assert sv.SYNTHETIC_CLASSES[0] == sv.SYNTHETIC_WNIDS[0] == '__background__'
    assert 5 <= len(sv.SYNTHETIC_CLASSES) <= 6
    for name, wnid in zip(sv.SYNTHETIC_CLASSES[1:], sv.SYNTHETIC_WNIDS[1:]):
        assert IMAGENET_VID_WNIDS[IMAGENET_VID_CLASSES.index(name)] == wnid
    assert get_class_list(sv.CLASS_LIST_NAME) == (sv.SYNTHETIC_CLASSES, sv.SYNTHETIC_WNIDS)


# ------------------------------------------------------------------------------------------ layout
def test_train_15_frame_rule():
    for n in range(1, 15):
        assert sv.train_frame_indices(n) == list(range(n))
    for n in range(15, 700):
        idx = sv.train_frame_indices(n)
        assert idx == [int(np.floor(n * (i + 0.5) / 15)) for i in range(15)], n
        assert len(set(idx)) == 15 and 0 <= idx[0] and idx[-1] < n
    assert sv.train_frame_indices(20) == [0, 2, 3, 4, 6, 7, 8, 10, 11, 12, 14, 15, 16, 18, 19]


def test_image_sets_and_layout(small):
    root, meta = small
    n = SMALL['train_frames']
    train = _lines(root, 'VID_train_15frames')
    assert len(train) == SMALL['train_videos'] * 15
    for v in range(SMALL['train_videos']):
        rows = train[v * 15:(v + 1) * 15]
        assert all(len(r) == 4 for r in rows)
        assert {r[0] for r in rows} == {f'train/ILSVRC2015_train_{v:08d}'}
        assert all(r[1] == '1' and r[3] == str(n) for r in rows)
        assert [int(r[2]) for r in rows] == sv.train_frame_indices(n)
        vdir = os.path.join(root, 'Data', 'VID', rows[0][0])
        assert sorted(os.listdir(vdir)) == [f'{t:06d}.JPEG' for t in range(n)]
        adir = os.path.join(root, 'Annotations', 'VID', rows[0][0])
        assert sorted(os.listdir(adir)) == [f'{t:06d}.xml' for t in range(n)]

    videos = _lines(root, 'VID_val_videos')
    frames = _lines(root, 'VID_val_frames')
    m = SMALL['val_frames']
    assert len(videos) == SMALL['val_videos'] and len(frames) == SMALL['val_videos'] * m
    start = 1
    for v, row in enumerate(videos):
        assert row == [f'val/ILSVRC2015_val_{v:08d}', str(start), '0', str(m)]
        for k in range(m):
            assert frames[v * m + k] == [f'val/ILSVRC2015_val_{v:08d}/{k:06d}', str(start + k)]
            assert os.path.isfile(os.path.join(root, 'Data', 'VID', f'val/ILSVRC2015_val_{v:08d}/{k:06d}.JPEG'))
            assert os.path.isfile(os.path.join(root, 'Annotations', 'VID',
                                               f'val/ILSVRC2015_val_{v:08d}/{k:06d}.xml'))
        start += m
    assert [int(f[1]) for f in frames] == list(range(1, start))

    det = _lines(root, 'DET_train_30classes')
    assert len(det) == SMALL['det_images']
    seen = set()
    for path, one in det:
        assert one == '1'
        mt = re.fullmatch(r'train/ILSVRC2013_train/(n\d{8})/(n\d{8})_(\d+)', path)
        assert mt and mt.group(1) == mt.group(2) and mt.group(1) in WNIDS, path
        assert path not in seen
        seen.add(path)
        assert read_image(os.path.join(root, 'Data', 'DET', path + '.JPEG')).shape == (H, W, 3)
        xml_root, objs = _objects(os.path.join(root, 'Annotations', 'DET', path + '.xml'))
        assert xml_root.find('object/trackid') is None
        assert mt.group(1) in {o['name'] for o in objs}  # the folder's class is in the image
    assert len({p.split('/')[2] for p, _ in det}) == min(SMALL['det_images'], len(WNIDS))

    with open(os.path.join(root, 'FlowPairs', 'FlyingChairs_train_val.txt')) as f:
        split = f.read().split()
    assert len(split) == SMALL['flow_pairs'] and set(split) <= {'1', '2'}
    assert split.count('2') == round(SMALL['flow_pairs'] * SMALL['flow_val_fraction'])
    data = sorted(os.listdir(os.path.join(root, 'FlowPairs', 'data')))
    assert data == sorted(f'{k:05d}_{s}' for k in range(1, SMALL['flow_pairs'] + 1)
                          for s in ('img1.ppm', 'img2.ppm', 'flow.flo'))
    with open(os.path.join(root, 'FlowPairs', 'data', '00001_img1.ppm'), 'rb') as f:
        assert f.read(2) == b'P6'

    with open(os.path.join(root, sv.META_FILE)) as f:
        saved = json.load(f)
    assert saved['version'] == sv.GENERATOR_VERSION and saved['seed'] == 0
    assert saved['params'] == sv.resolve_params(**SMALL) == meta['params']
    assert not os.path.exists(os.path.join(root, '.synthetic_vid_incomplete'))


def test_xml_annotations(small):
    root = small[0]
    n_objects, multi = 0, 0
    for split in ('train', 'val'):
        vdir = os.path.join(root, 'Annotations', 'VID', split)
        for video in sorted(os.listdir(vdir)):
            track_class = {}
            for fn in sorted(os.listdir(os.path.join(vdir, video))):
                path = os.path.join(vdir, video, fn)
                xml_root, objs = _objects(path)
                assert xml_root.tag == 'annotation'
                assert xml_root.findtext('folder') == f'{split}/{video}'
                assert xml_root.findtext('filename') == fn[:-4]
                assert xml_root.findtext('source/database') == 'ILSVRC_2015'
                assert (int(xml_root.findtext('size/width')), int(xml_root.findtext('size/height'))) == (W, H)
                tids = [o['trackid'] for o in objs]
                assert len(set(tids)) == len(tids)
                for o in objs:
                    assert o['name'] in WNIDS
                    assert track_class.setdefault(o['trackid'], o['name']) == o['name']  # one class per track
                    x1, y1, x2, y2 = o['box']
                    assert 0 <= x1 and x2 <= W - 1 and 0 <= y1 and y2 <= H - 1
                    assert x2 - x1 + 1 >= 4 and y2 - y1 + 1 >= 4
                    assert o['occluded'] in ('0', '1') and o['generated'] == '0'
                    # the element order of the ILSVRC files
                    assert [c.tag for c in xml_root.find('object')] == ['trackid', 'name', 'bndbox', 'occluded',
                                                                        'generated']
                rec = parse_vid_xml(path, {w: i for i, w in enumerate(sv.SYNTHETIC_WNIDS) if i})
                assert rec['boxes'].tolist() == [list(o['box']) for o in objs]
                assert rec['trackids'].tolist() == [int(t) for t in tids]
                n_objects += len(objs)
                multi += len(objs) > 1
    assert n_objects > 0 and multi > 0


def test_boxes_fit_the_objects():
    """The box of each annotated object is the tight box of the pixels where it is on top."""
    params = sv.resolve_params()
    scene, _ = sv.video_scene(3, 'val', 0, params)
    for t in (0, 5):
        img, label, info = scene.render(t)
        for o in scene.annotate(t, label, info):
            ys, xs = np.nonzero(label == o['trackid'] + 1)
            assert o['box'] == (xs.min(), ys.min(), xs.max(), ys.max())
        assert img.shape == (H, W, 3) and img.dtype == np.float32


def test_imdb_reads_the_dataset(small, tmp_path):
    """The project's ImageNet VID reader accepts the layout (with the synthetic class list)."""
    from lib.dataset.imagenet_vid import ImageNetVID

    class Synthetic(ImageNetVID):
        class_list = sv.CLASS_LIST_NAME

    root = small[0]
    for image_set in ('VID_train_15frames', 'DET_train_30classes', 'VID_val_frames'):
        roidb = Synthetic(image_set, str(tmp_path), root).gt_roidb()
        assert len(roidb) == len(_lines(root, image_set))
        assert sum(len(r['boxes']) for r in roidb) > 0
        assert all(r['height'] == H and r['width'] == W for r in roidb)
    frames = Synthetic('VID_val_videos', str(tmp_path), root).test_frames()
    assert [f['frame_id'] for f in frames] == list(range(1, SMALL['val_videos'] * SMALL['val_frames'] + 1))


# ------------------------------------------------------------------------------------------ generation
def test_determinism(tmp_path):
    a, b, c = (str(tmp_path / x) for x in 'abc')
    sv.generate(a, seed=0, **TINY)
    sv.generate(b, seed=0, **TINY)
    sv.generate(c, seed=1, **TINY)
    files = ['Data/VID/train/ILSVRC2015_train_00000000/000002.JPEG',
             'Annotations/VID/train/ILSVRC2015_train_00000000/000002.xml',
             'Data/VID/val/ILSVRC2015_val_00000000/000001.JPEG',
             'FlowPairs/data/00002_img1.ppm', 'FlowPairs/data/00002_flow.flo',
             'ImageSets/DET_train_30classes.txt']
    assert set(_all_files(a)) == set(_all_files(b))
    for f in files:
        with open(os.path.join(a, f), 'rb') as fa, open(os.path.join(b, f), 'rb') as fb:
            assert fa.read() == fb.read(), f
    for f in files[:5]:
        with open(os.path.join(a, f), 'rb') as fa, open(os.path.join(c, f), 'rb') as fc:
            assert fa.read() != fc.read(), f


def _contents(root):
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            if f not in (sv.META_FILE, sv._LOCK_FILE):  # the meta records the seconds it took
                with open(p, 'rb') as fh:
                    out[os.path.relpath(p, root)] = fh.read()
    return out


def test_processes_write_the_same_bytes(tmp_path):
    # generate() hands its items to a pool of processes on a large dataset; every item draws from its own
    # streams, so the bytes (image sets' order included) are those of one process
    sizes = dict(SMALL, det_images=12, flow_pairs=6)
    one, two = (str(tmp_path / x) for x in ('one', 'two'))
    sv.generate(one, seed=3, workers=1, **sizes)
    sv.generate(two, seed=3, workers=2, **sizes)
    a, b = _contents(one), _contents(two)
    assert a.keys() == b.keys() and len(a) > 100
    assert [k for k in a if a[k] != b[k]] == []
    # DET image k is its class's (k // 5 + 1)-th: the names the sequential counters gave
    det = _lines(one, 'DET_train_30classes')
    assert [d[0].rsplit('/', 1)[1] for d in det[:6]] == [f'{sv.SYNTHETIC_WNIDS[1 + k % 5]}_{k // 5 + 1}' for k in range(6)]
    assert sv._auto_workers(10) == 1  # the tests' small datasets stay in one process
    # the harder split (videos of shots) likewise
    sv.ensure_hard_split(one, workers=1, hard_videos=3, hard_frames=8, hard_tune_videos=2)
    sv.ensure_hard_split(two, workers=2, hard_videos=3, hard_frames=8, hard_tune_videos=2)
    a, b = _contents(one), _contents(two)
    assert a.keys() == b.keys() and sum('val_hard' in k for k in a) > 40
    assert [k for k in a if k != sv.HARD_META_FILE and a[k] != b[k]] == []


def test_idempotent_and_regenerates(tmp_path):
    root = str(tmp_path / 'ds')
    sv.generate(root, seed=0, **TINY)
    before = _all_files(root)
    meta = sv.generate(root, seed=0, **TINY)   # same parameters: nothing is rewritten
    assert sv.ensure_dataset(root, seed=0, **TINY) == root
    assert _all_files(root) == before
    assert meta['params'] == sv.resolve_params(**TINY)

    changed = dict(TINY, det_images=1, train_frames=4)
    meta = sv.generate(root, seed=0, **changed)
    assert meta['params'] == sv.resolve_params(**changed)
    det = _lines(root, 'DET_train_30classes')
    assert len(det) == 1
    assert os.path.isfile(os.path.join(root, 'Data', 'DET', det[0][0] + '.JPEG'))
    n_det_files = sum(1 for f in _all_files(root) if f.startswith('Data/DET/'))
    assert n_det_files == 1  # the old DET images were removed
    assert [int(r[2]) for r in _lines(root, 'VID_train_15frames')] == [0, 1, 2, 3]  # < 15 frames: all of them
    with open(os.path.join(root, sv.META_FILE)) as f:
        assert json.load(f)['params'] == meta['params']

    # seed change -> regenerated
    sv.generate(root, seed=5, **changed)
    with open(os.path.join(root, sv.META_FILE)) as f:
        assert json.load(f)['seed'] == 5

    # an interrupted generation (marker left, no meta file) is redone
    os.remove(os.path.join(root, sv.META_FILE))
    open(os.path.join(root, '.synthetic_vid_incomplete'), 'w').close()
    sv.generate(root, seed=5, **changed)
    assert os.path.isfile(os.path.join(root, sv.META_FILE))
    assert not os.path.exists(os.path.join(root, '.synthetic_vid_incomplete'))


def test_refuses_foreign_dataset_and_bad_params(tmp_path):
    root = tmp_path / 'real'
    (root / 'Data' / 'VID').mkdir(parents=True)
    (root / 'Data' / 'VID' / 'keep.txt').write_text('x')
    with pytest.raises(RuntimeError, match='refusing'):
        sv.generate(str(root), **TINY)
    assert (root / 'Data' / 'VID' / 'keep.txt').exists()
    with pytest.raises(TypeError, match='num_videos'):
        sv.generate(str(tmp_path / 'x'), num_videos=3)
    with pytest.raises(ValueError, match='train_frames'):
        sv.resolve_params(train_frames=0)


# ------------------------------------------------------------------------------------------ motion / flow
def _track_displacements(boxes_per_frame):
    disp = []
    for prev, cur in zip(boxes_per_frame, boxes_per_frame[1:]):
        for tid, b in cur.items():
            if tid in prev:
                p = prev[tid]
                disp.append(np.hypot((b[0] + b[2] - p[0] - p[2]) / 2, (b[1] + b[3] - p[1] - p[3]) / 2))
    return np.array(disp)


def test_val_motion_buckets_each_hold_a_share(small):
    # validation object speeds (VAL_SPEEDS) are mixed so that the evaluator's motion buckets (motion IoU over
    # +-10 frames: slow > 0.9, medium 0.7..0.9, fast < 0.7) each hold at least a sixth of the instances, for
    # any seed; the fast ones move up to half their size over a key-frame interval (the warp matters there)
    params = sv.resolve_params()
    for seed in (0, 1):
        frames, records, disp = [], [], []
        for v in range(20):
            scene, _ = sv.video_scene(seed, 'val', v, params)
            per_video = []
            for t in range(params['val_frames']):
                img, label, info = scene.render(t)
                objs = scene.annotate(t, label, info)
                per_video.append({o['trackid']: o['box'] for o in objs})
                frames.append((f'val/{v}/{t:06d}', len(frames) + 1))
                records.append({'labels': np.array([o['class_id'] for o in objs], np.int64),
                                'trackids': np.array([o['trackid'] for o in objs], np.int64),
                                'boxes': np.array([o['box'] for o in objs], np.float64).reshape(-1, 4)})
            disp.append(_track_displacements(per_video))
        buckets = motion_buckets(np.concatenate(compute_motion_iou({'frames': frames, 'records': records})))
        share = np.bincount(buckets, minlength=3) / len(buckets)
        assert len(buckets) > 500 and share.min() >= 1 / 6, (seed, share)
        disp = np.concatenate(disp)
        assert 0.006 * params['width'] <= np.percentile(disp, 90) <= 0.015 * params['width'], (seed, np.percentile(disp, 90))
    # and the written val annotations of the small dataset move
    root = small[0]
    disp = []
    for video in sorted(os.listdir(os.path.join(root, 'Annotations', 'VID', 'val'))):
        d = os.path.join(root, 'Annotations', 'VID', 'val', video)
        per_video = [{o['trackid']: o['box'] for o in _objects(os.path.join(d, fn))[1]} for fn in sorted(os.listdir(d))]
        disp.append(_track_displacements(per_video))
    assert np.percentile(np.concatenate(disp), 90) >= 0.005 * W


def test_flow_pairs_on_disk_match_the_generator(small):
    root = small[0]
    params = sv.resolve_params(**SMALL)
    for k in (1, SMALL['flow_pairs']):
        pair = sv.flow_pair(0, k, params)
        base = os.path.join(root, 'FlowPairs', 'data', f'{k:05d}')
        np.testing.assert_array_equal(read_ppm(base + '_img1.ppm'), pair['img1'])
        np.testing.assert_array_equal(read_ppm(base + '_img2.ppm'), pair['img2'])
        np.testing.assert_array_equal(read_flo(base + '_flow.flo'), pair['flow'])
        assert 1 <= abs(pair['i'] - pair['j']) <= params['max_pair_gap']


def test_ground_truth_flow_warps_img2_onto_img1():
    """Flying Chairs convention: img1[y, x] ~= img2[y + v, x + u]. Sampling img2 along the flow
    reproduces img1 on the pixels visible in both frames; zero flow does far worse."""
    params = sv.resolve_params()
    warp_err, zero_err, obj_warp, obj_zero = [], [], [], []
    orders = set()
    for k in range(1, 13):
        pair = sv.flow_pair(0, k, params)
        orders.add(pair['i'] < pair['j'])
        img1, img2, flow, valid = (pair[x] for x in ('img1', 'img2', 'flow', 'valid'))
        assert flow.dtype == np.float32 and flow.shape == (H, W, 2)
        assert valid.mean() > 0.5
        a = img1.astype(np.float32)
        err = np.abs(_warp_back(img2, flow).astype(np.float32) - a).mean(axis=2)
        err0 = np.abs(img2.astype(np.float32) - a).mean(axis=2)
        warp_err.append(err[valid].mean())
        zero_err.append(err0[valid].mean())
        moving = valid & (pair['label1'] > 0) & (np.hypot(flow[..., 0], flow[..., 1]) > 3)
        if moving.sum() > 50:
            obj_warp.append(err[moving].mean())
            obj_zero.append(err0[moving].mean())
        assert warp_err[-1] < 4.0, (k, warp_err[-1])
    assert orders == {True, False}  # both orderings occur
    assert np.mean(warp_err) < 2.5 and np.mean(zero_err) > 4 * np.mean(warp_err), (warp_err, zero_err)
    # on the moving objects
    assert len(obj_warp) >= 6
    assert np.mean(obj_warp) < 6.0 and np.mean(obj_zero) > 6 * np.mean(obj_warp), (obj_warp, obj_zero)


def test_flow_is_exact_layer_motion():
    """A pixel's flow is the displacement of its layer's point: the object under a pixel of frame i is at
    p + flow in frame j, also where the object is occluded or leaves the frame."""
    params = sv.resolve_params()
    scene, _ = sv.video_scene(0, 'train', 1, params)
    i, j = 4, 11
    img_i, lab_i, _ = scene.render(i)
    flow = scene.flow(i, j, lab_i)
    ai, aj = scene.layer_affines(i), scene.layer_affines(j)
    ys, xs = np.nonzero(lab_i >= 0)
    pick = np.random.default_rng(0).choice(len(xs), 500, replace=False)
    for y, x in zip(ys[pick], xs[pick]):
        layer = lab_i[y, x]
        q = (np.array([x, y]) - ai[layer, 1:]) / ai[layer, 0]        # the point in the layer's own image
        np.testing.assert_allclose(np.array([x, y]) + flow[y, x], aj[layer, 0] * q + aj[layer, 1:], atol=1e-3)
    assert np.abs(scene.flow(i, i, lab_i)).max() < 1e-4


# ------------------------------------------------------------------------------------------ flow_io
def test_flo_round_trip_and_format(tmp_path):
    rng = np.random.default_rng(0)
    flow = (rng.standard_normal((7, 11, 2)) * 20).astype(np.float32)
    path = str(tmp_path / 'a.flo')
    write_flo(path, flow)
    np.testing.assert_array_equal(read_flo(path), flow)
    with open(path, 'rb') as f:
        data = f.read()
    assert data[:4] == b'PIEH' and np.frombuffer(data[:4], '<f4')[0] == np.float32(202021.25)
    assert np.frombuffer(data[4:12], '<i4').tolist() == [11, 7]
    assert len(data) == 12 + 7 * 11 * 2 * 4
    np.testing.assert_array_equal(np.frombuffer(data[12:], '<f4')[:4], [flow[0, 0, 0], flow[0, 0, 1],
                                                                        flow[0, 1, 0], flow[0, 1, 1]])


def test_flo_errors(tmp_path):
    good = str(tmp_path / 'good.flo')
    write_flo(good, np.zeros((4, 5, 2), np.float32))
    with open(good, 'rb') as f:
        data = f.read()
    cases = {
        'magic.flo': (b'NOPE' + data[4:], 'bad magic'),
        'trunc.flo': (data[:-8], 'truncated'),
        'header.flo': (data[:6], 'truncated'),
        'huge.flo': (data[:4] + np.array([100000, 100000], '<i4').tobytes() + data[12:], 'absurd'),
        'negative.flo': (data[:4] + np.array([-5, 4], '<i4').tobytes() + data[12:], 'absurd'),
        'long.flo': (data + b'\0' * 8, 'trailing'),
    }
    for name, (content, msg) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ValueError, match=msg) as exc:
            read_flo(str(path))
        assert str(path) in str(exc.value)
    with pytest.raises(FileNotFoundError, match='missing.flo'):
        read_flo(str(tmp_path / 'missing.flo'))
    with pytest.raises(ValueError, match=r'\(H, W, 2\)'):
        write_flo(str(tmp_path / 'bad.flo'), np.zeros((4, 5, 3), np.float32))


def test_images_io(tmp_path):
    img = np.random.default_rng(1).integers(0, 256, (6, 9, 3)).astype(np.uint8)
    path = str(tmp_path / 'x.ppm')
    write_ppm(path, img)
    with open(path, 'rb') as f:
        assert f.read(2) == b'P6'
    np.testing.assert_array_equal(read_ppm(path), img)
    with pytest.raises(FileNotFoundError, match='nothere.JPEG'):
        read_image(str(tmp_path / 'nothere.JPEG'))
    (tmp_path / 'junk.JPEG').write_bytes(b'not an image')
    with pytest.raises(ValueError, match='junk.JPEG'):
        read_image(str(tmp_path / 'junk.JPEG'))
