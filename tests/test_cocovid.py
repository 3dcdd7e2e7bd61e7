"""CocoVID json datasets (lib/dataset/cocovid.py) and the converter (tools/convert_dataset.py): the synthetic
dataset's CocoVID copy gives the ILSVRC copy's roidbs, test frames and ground truth; ILSVRC -> CocoVID ->
ILSVRC gives the same lists, roidbs and ground truth back; bad json is one error line naming the file and the
first bad entry; training and testing on the CocoVID copy give the ILSVRC copy's detections and mAP."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from lib.config import load_config, update_from_list
from lib.dataset.cocovid import CocoVID, CocoVIDFile, VideoFrames
from lib.dataset.cocovid_convert import cocovid_to_ilsvrc, ilsvrc_to_cocovid, write_cocovid
from lib.dataset.imagenet_vid import ImageNetVID
from lib.evaluation.imagenet_vid_eval import compute_motion_iou, load_gt, make_gt
from lib.dataset.loader import make_imdb
from lib.dataset.synthetic_dataset import SyntheticVID
from lib.dataset.synthetic_vid import ensure_dataset
from lib.dataset.vid_classes import get_class_list, wnid_to_index
from tests.small_run import ROOT, TINY_SYNTHETIC, run_script, tiny_overrides

SETS = ('DET_train_30classes', 'VID_train_15frames', 'VID_val_videos', 'VID_val_frames')
RFCN_CFG = 'experiments/rfcn/cfgs/synthetic_vid_cpu.yaml'
DFF_CFG = 'experiments/dff_rfcn/cfgs/synthetic_vid_cpu.yaml'
CLASSES = get_class_list('synthetic_vid')


def cocovid_copy(tmp):
    """The tiny synthetic dataset (ILSVRC layout) and its CocoVID copy (one json per image set)."""
    root, out = os.path.join(tmp, 'synthetic_vid'), os.path.join(tmp, 'cocovid')
    ensure_dataset(root, **TINY_SYNTHETIC)
    for image_set in SETS:
        write_cocovid(os.path.join(out, 'annotations', image_set + '.json'),
                      ilsvrc_to_cocovid(root, image_set, CLASSES)[0])
    return root, out


def coco_sets(tmp, out=None):
    return ['dataset.dataset=CocoVID', f'dataset.dataset_path={out or os.path.join(tmp, "cocovid")}',
            f'dataset.img_prefix={os.path.join(tmp, "synthetic_vid", "Data")}']


def coco_cfg(tmp, cfg=RFCN_CFG, extra=()):
    return update_from_list(load_config(os.path.join(ROOT, cfg)), tiny_overrides(tmp) + coco_sets(tmp) + list(extra))


def assert_same_entry(a, b, skip=()):
    assert a.keys() == b.keys()
    for k in a:
        if k in skip:
            continue
        if isinstance(a[k], np.ndarray):
            assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k
        else:
            assert a[k] == b[k], (k, a[k], b[k])


def relative(entry, root):
    """An entry with its image and pattern paths relative to the dataset root (two copies in two folders)."""
    out = dict(entry)
    for k in ('image', 'pattern'):
        if k in out:
            out[k] = os.path.relpath(out[k], root) if k == 'image' else out[k].replace(root + os.sep, '')
    return out


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp('cocovid'))
    return (tmp,) + cocovid_copy(tmp)


def test_the_cocovid_copy_gives_the_ilsvrc_roidbs_frames_and_ground_truth(data):
    tmp, root, out = data
    cfg = coco_cfg(tmp)
    for image_set in SETS:
        ilsvrc = SyntheticVID(image_set, os.path.join(tmp, 'cache_a'), root)
        coco = make_imdb(cfg, image_set)
        assert isinstance(coco, CocoVID) and (coco.classes, coco.wnids) == CLASSES
        if image_set.startswith('DET') or image_set == 'VID_train_15frames':
            a, b = ilsvrc.gt_roidb(), coco.gt_roidb()
            assert len(a) == len(b) == {'DET_train_30classes': 4, 'VID_train_15frames': 30}[image_set]
            for k, (x, y) in enumerate(zip(a, b)):
                # the same entry; frame_id is the image id (the training lists' column holds 1, unused in training)
                assert_same_entry(x, y, skip=('frame_id',))
                assert x['frame_id'] == 1 and y['frame_id'] == coco.image_set_index[k]
            assert any('pattern' in y for y in b) == image_set.startswith('VID')
            continue
        fa, fb = ilsvrc.test_frames(), coco.test_frames()
        keys = ('image', 'frame_id', 'video', 'index')
        assert [{k: f[k] for k in keys} for f in fa] == [{k: f[k] for k in keys} for f in fb]
        assert [f['frame_seg_id'] for f in fb] == list(range(8))
        # the evaluation's ground truth: the same boxes, labels and motion IoUs (instance ids as track ids)
        frame_list = [(f['index'], f['frame_id']) for f in fa]
        to_index = wnid_to_index(CLASSES[1])
        ga = load_gt(os.path.join(root, 'Annotations', 'VID'), frame_list, to_index)
        gb = make_gt(frame_list, coco.eval_records(frame_list, to_index), to_index)
        assert ga['frames'] == gb['frames']
        for ra, rb in zip(ga['records'], gb['records']):
            for k in ('height', 'width', 'boxes', 'labels'):
                assert np.array_equal(ra[k], rb[k]), k
            assert (rb['trackids'] >= 1).all()
        assert all(np.array_equal(x, y) for x, y in zip(compute_motion_iou(ga), compute_motion_iou(gb)))


def test_round_trip_ilsvrc_cocovid_ilsvrc_gives_identical_lists_and_roidbs(data):
    tmp, root, out = data
    back = os.path.join(tmp, 'back')
    for image_set in SETS:
        fmt = 'frames' if image_set == 'VID_val_frames' else 'train' if image_set.startswith('DET') else 'auto'
        s = cocovid_to_ilsvrc(os.path.join(out, 'annotations', image_set + '.json'), os.path.join(root, 'Data'),
                              back, image_set, fmt)
        assert s['image_set'] == image_set
        for where in ('ImageSets',):
            assert open(os.path.join(root, where, image_set + '.txt')).read() == \
                open(os.path.join(back, where, image_set + '.txt')).read()
    cfg = update_from_list(load_config(os.path.join(ROOT, RFCN_CFG)), tiny_overrides(tmp) + [
        'dataset.dataset=ImageNetVID', f'dataset.CLASSES={json.dumps(list(zip(CLASSES[1][1:], CLASSES[0][1:])))}'])
    for image_set in SETS:
        a = SyntheticVID(image_set, os.path.join(tmp, 'cache_a'), root)
        b = ImageNetVID(image_set, os.path.join(tmp, 'cache_b'), back, cfg=cfg)
        assert (b.classes, b.wnids) == CLASSES
        ra, rb = a.gt_roidb(), b.gt_roidb()
        assert len(ra) == len(rb) > 0
        for x, y in zip(ra, rb):
            assert_same_entry(relative(x, root), relative(y, back))
        assert [relative(f, root) for f in a.test_frames()] == [relative(f, back) for f in b.test_frames()]
    # the XML: the same sizes, boxes, labels and tracks (track ids renumbered per video, in order of appearance)
    frames = [(f'val/ILSVRC2015_val_00000000/{k:06d}', k + 1) for k in range(8)]
    to_index = wnid_to_index(CLASSES[1])
    ga, gb = (load_gt(os.path.join(r, 'Annotations', 'VID'), frames, to_index) for r in (root, back))
    for x, y in zip(ga['records'], gb['records']):
        assert all(np.array_equal(x[k], y[k]) for k in ('height', 'width', 'boxes', 'labels'))
    assert all(np.array_equal(x, y) for x, y in zip(compute_motion_iou(ga), compute_motion_iou(gb)))
    # images are symbolic links to the originals
    link = os.path.join(back, 'Data', 'VID', 'val', 'ILSVRC2015_val_00000000', '000003.JPEG')
    assert os.path.islink(link) and os.path.samefile(link, os.path.join(root, 'Data', 'VID', 'val',
                                                                         'ILSVRC2015_val_00000000', '000003.JPEG'))


def test_the_converter_replaces_nothing_and_removes_what_a_failed_run_wrote(data, tmp_path):
    tmp, root, out = data
    src = os.path.join(out, 'annotations', 'VID_val_videos.json')
    dst = str(tmp_path / 'ilsvrc')
    os.makedirs(os.path.join(dst, 'Annotations', 'VID', 'val', 'ILSVRC2015_val_00000000'))
    clash = os.path.join(dst, 'Annotations', 'VID', 'val', 'ILSVRC2015_val_00000000', '000005.xml')
    open(clash, 'w').write('<annotation/>')
    with pytest.raises(ValueError, match=r'000005\.xml exists and differs from what image 6 of .* gives'):
        cocovid_to_ilsvrc(src, os.path.join(root, 'Data'), dst, 'val_videos')
    assert sorted(os.listdir(os.path.dirname(clash))) == ['000005.xml'] and not os.path.exists(
        os.path.join(dst, 'Data'))
    # a failure while writing (an image that cannot be linked: its folder is a file) removes what was written
    os.remove(clash)
    os.makedirs(os.path.join(dst, 'Data', 'VID', 'val'))
    open(os.path.join(dst, 'Data', 'VID', 'val', 'ILSVRC2015_val_00000000'), 'w').write('in the way')
    with pytest.raises((FileExistsError, NotADirectoryError)):
        cocovid_to_ilsvrc(src, os.path.join(root, 'Data'), dst, 'val_videos', images='copy')
    assert os.listdir(os.path.join(dst, 'Annotations', 'VID', 'val', 'ILSVRC2015_val_00000000')) == []
    assert not os.path.exists(os.path.join(dst, 'ImageSets'))
    with pytest.raises(ValueError, match='exists: remove it'):
        write_cocovid(src, {})


def _renamed_copy(tmp_path, out, root, rename):
    """The training json with its file names renamed (rename(file_name, frame_id) -> new name) and links of
    those names to the frames; returns a config that reads it."""
    d = json.load(open(os.path.join(out, 'annotations', 'VID_train_15frames.json')))
    images = tmp_path / 'images'
    for im in d['images']:
        source = os.path.join(root, 'Data', im['file_name'])
        im['file_name'] = rename(im['file_name'], im['frame_id'])
        (images / im['file_name']).parent.mkdir(parents=True, exist_ok=True)
        (images / im['file_name']).symlink_to(source)
    (tmp_path / 'annotations').mkdir()
    (tmp_path / 'annotations' / 'VID_train_15frames.json').write_text(json.dumps(d))
    return update_from_list(load_config(os.path.join(ROOT, DFF_CFG)), tiny_overrides(tmp_path) + [
        'dataset.dataset=CocoVID', f'dataset.dataset_path={tmp_path}', f'dataset.img_prefix={images}',
        'dataset.test_image_set=VID_train_15frames'])


def test_file_names_not_numbered_by_frame_id_give_a_frame_table(tmp_path, data):
    """mmtracking's MOT files name frame 0 000001.jpg: DFF's key frame k is looked up by frame id."""
    tmp, root, out = data
    cfg = _renamed_copy(tmp_path, out, root, lambda name, k: f"{os.path.dirname(name)}/img{k + 1:05d}.jpg")
    roidb = make_imdb(cfg, 'VID_train_15frames').gt_roidb()
    entry = roidb[3]
    assert isinstance(entry['pattern'], VideoFrames) and entry['frame_seg_len'] == 20
    assert entry['pattern'] % 4 == str(tmp_path / 'images/VID/train/ILSVRC2015_train_00000000/img00005.jpg')
    with pytest.raises(ValueError, match='frame 20 of the video of .*img00001.jpg is not in its annotation file'):
        entry['pattern'] % 20
    # DFF's training pairs read the key frame through it: the same pairs as from the ILSVRC copy
    from dff_rfcn.dataset import PairDataset
    ilsvrc = SyntheticVID('VID_train_15frames', str(tmp_path / 'c'), root).gt_roidb()
    pairs = [(PairDataset(ilsvrc, cfg)[(e, 3)], PairDataset(roidb, cfg)[(e, 3)]) for e in range(4)]
    assert all(a['eq_flag'] == b['eq_flag'] and (a['data_ref'] == b['data_ref']).all() for a, b in pairs)
    assert any(a['eq_flag'] == 0 for a, _ in pairs)


def test_a_percent_sign_in_a_folder_name_is_kept_out_of_the_frame_pattern(tmp_path, data):
    tmp, root, out = data
    cfg = _renamed_copy(tmp_path, out, root, lambda name, k: f"100%/{name}")
    entry = make_imdb(cfg, 'VID_train_15frames').gt_roidb()[0]
    assert entry['pattern'] == str(tmp_path / 'images/100%%/VID/train/ILSVRC2015_train_00000000/%06d.JPEG')
    assert entry['pattern'] % 7 == str(tmp_path / 'images/100%/VID/train/ILSVRC2015_train_00000000/000007.JPEG')
    # and plain '%06d' names give the ILSVRC layout's own format string
    assert make_imdb(coco_cfg(tmp), 'VID_train_15frames').gt_roidb()[0]['pattern'] == os.path.join(
        root, 'Data', 'VID', 'train', 'ILSVRC2015_train_00000000', '%06d.JPEG')


def _good(out):
    return json.load(open(os.path.join(out, 'annotations', 'VID_val_videos.json')))


def _drop(key):
    def edit(d):
        del d[key]
    return edit


def _set(where, k, key, value):
    def edit(d):
        if value is KeyError:
            del d[where][k][key]
        else:
            d[where][k][key] = value
    return edit


BAD = [
    (_drop('images'), r"top level: missing key 'images' \(a CocoVID file has videos, images, annotations, "
                      r"categories\)"),
    (_drop('categories'), r"top level: missing key 'categories'"),
    (_set('images', 2, 'file_name', KeyError), r"images\[2\] \(id 3\): missing key 'file_name'"),
    (_set('annotations', 4, 'bbox', [150, 10, 20, 10]), r"annotations\[4\] \(id 5\): bbox \[150, 10, 20, 10\] "
                                                        r"is outside "
                                                        r"image 5 \(160 x 96\)"),
    (_set('annotations', 1, 'bbox', [-1, 10, 20, 10]), r"annotations\[1\] \(id 2\): bbox \[-1, 10, 20, 10\] "
                                                       r"is outside"),
    (_set('annotations', 1, 'bbox', [1, 10, -2, 10]), r"annotations\[1\] \(id 2\): bbox .* negative width or height"),
    (_set('images', 6, 'video_id', 9), r"images\[6\] \(id 7\): unknown video_id 9"),
    (_set('annotations', 3, 'category_id', 17), r"annotations\[3\] \(id 4\): unknown category_id 17"),
    (_set('annotations', 3, 'image_id', 99), r"annotations\[3\] \(id 4\): unknown image_id 99"),
    (_set('images', 4, 'id', 2), r"images\[4\] \(id 2\): duplicate id 2 \(also images\[1\]\)"),
    (_set('annotations', 7, 'id', 1), r"annotations\[7\] \(id 1\): duplicate id 1 \(also annotations\[0\]\)"),
    (_set('categories', 2, 'id', 1), r"categories\[2\] \(id 1\): duplicate id 1 \(also categories\[0\]\)"),
    (_set('categories', 3, 'name', 'car'), r"categories\[3\] \(id 4\): duplicate name 'car' \(also categories\[1\]\)"),
    (_set('videos', 0, 'id', 'one'), r"videos\[0\] \(id 'one'\): id = 'one': expected an integer"),
    (_set('images', 5, 'frame_id', 2), r"images\[5\] \(id 6\): duplicate \(video_id, frame_id\) \(1, 2\) "
                                       r"\(also images\[2\]\)"),
    (_set('images', 0, 'width', 0), r"images\[0\] \(id 1\): width = 0: expected a positive integer"),
    (_set('annotations', 0, 'instance_id', 'a'), r"annotations\[0\] \(id 1\): instance_id = 'a'"),
]


@pytest.mark.parametrize('edit,message', BAD, ids=[m.split(':')[0].replace('\\', '')[:40] for _, m in BAD])
def test_bad_json_names_the_file_and_the_first_bad_entry(data, tmp_path, edit, message):
    tmp, root, out = data
    d = _good(out)
    edit(d)
    path = tmp_path / 'bad.json'
    path.write_text(json.dumps(d))
    with pytest.raises(ValueError, match=f'^{path}: {message}'):
        CocoVIDFile(path)


def test_bad_json_is_one_error_line_from_the_tools_and_the_entry_scripts(data, tmp_path):
    tmp, root, out = data
    d = _good(out)
    d['annotations'][2]['bbox'] = [100, 50, 61, 10]
    bad = tmp_path / 'cocovid' / 'annotations'
    bad.mkdir(parents=True)
    (bad / 'VID_train_15frames.json').write_text(json.dumps(d))
    (bad / 'broken.json').write_text('{"videos": [')
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT)
    expected = (f"error: {bad / 'VID_train_15frames.json'}: annotations[2] (id 3): bbox [100, 50, 61, 10] is outside "
                f"image 3 (160 x 96)")
    proc = subprocess.run([sys.executable, 'tools/convert_dataset.py', 'to-ilsvrc', '--json',
                           str(bad / 'VID_train_15frames.json'),
                           '--img-prefix', os.path.join(root, 'Data'), '--out', str(tmp_path / 'x'),
                           '--image-set', 'v'],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith(expected), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 2 and not os.path.exists(tmp_path / 'x')  # + the DFF_DEBUG hint
    proc = subprocess.run([sys.executable, 'tools/convert_dataset.py', 'to-ilsvrc', '--json', str(bad / 'broken.json'),
                           '--img-prefix', root, '--out', str(tmp_path / 'x'), '--image-set', 'v'],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith(f"error: {bad / 'broken.json'}: not valid json"), proc.stderr
    # training reads the json before anything is trained or written
    proc = run_script('experiments/rfcn/rfcn_end2end_train_test.py', RFCN_CFG,
                      tiny_overrides(tmp_path) + coco_sets(tmp, str(tmp_path / 'cocovid')) +
                      ['dataset.image_set=VID_train_15frames'], check=False)
    assert proc.returncode == 2 and proc.stderr.splitlines()[-2] == expected, proc.stderr[-2000:]


def test_class_list_comes_from_the_json(data, tmp_path):
    tmp, root, out = data
    from lib.apps.demo import class_names_from_cfg
    cfg = coco_cfg(tmp)
    assert class_names_from_cfg(cfg) == list(CLASSES[0])  # the test set's json, without loading the dataset
    with pytest.raises(ValueError, match=r'NUM_CLASSES = 31 but the class list from the categories of '
                                         r'.*_frames.json gives 6'):
        make_imdb(coco_cfg(tmp, extra=['dataset.NUM_CLASSES=31']), 'VID_val_frames')
    with pytest.raises(ValueError, match='a CocoVID dataset takes its classes from the json'):
        make_imdb(coco_cfg(tmp, extra=['dataset.CLASSES=["n02691156"]']), 'VID_val_frames')
    # training and test files with other categories: refused
    other = tmp_path / 'annotations'
    other.mkdir()
    for image_set in ('VID_train_15frames', 'VID_val_frames'):
        d = json.load(open(os.path.join(out, 'annotations', image_set + '.json')))
        if image_set == 'VID_val_frames':
            d['categories'][0], d['categories'][1] = d['categories'][1], d['categories'][0]
        (other / (image_set + '.json')).write_text(json.dumps(d))
    cfg = coco_cfg(tmp, extra=[f'dataset.dataset_path={tmp_path}'])
    with pytest.raises(ValueError, match='VID_train_15frames.json and .*VID_val_frames.json have different categories'):
        make_imdb(cfg, 'VID_train_15frames')


def _scores(test_dir):
    result = json.load(open(os.path.join(test_dir, 'eval.json')))
    return {k: result[k] for k in ('mAP', 'AP', 'npos', 'motion', 'motion_AP', 'motion_npos', 'num_frames')}


@pytest.mark.slow
@pytest.mark.parametrize('script,cfg,test_set,extra', [
    ('experiments/rfcn/rfcn_end2end_train_test.py', RFCN_CFG, 'VID_val_frames', []),
    ('experiments/dff_rfcn/dff_rfcn_end2end_train_test.py', DFF_CFG, 'VID_val_videos',
     ["network.pretrained=''", "network.pretrained_flow=''"])], ids=['rfcn', 'dff'])
def test_training_and_testing_on_the_cocovid_copy_give_the_same_detections_and_map(tmp_path, script, cfg,
                                                                                    test_set, extra):
    root, out = cocovid_copy(str(tmp_path))
    common = ['TRAIN.MAX_ITERS=3'] + extra
    results = {}
    for name, sets in (('ilsvrc', []), ('cocovid', coco_sets(str(tmp_path)))):
        overrides = [s for s in tiny_overrides(tmp_path) if not s.startswith('output_path=')]
        run_script(script, cfg, overrides + sets + common + [f'output_path={tmp_path}/out_{name}'])
        test_dir = os.path.join(tmp_path, f'out_{name}', 'synthetic_vid_cpu', test_set)
        results[name] = (_scores(test_dir), open(os.path.join(test_dir, f'det_{test_set}_all.txt')).read())
    (scores_a, dets_a), (scores_b, dets_b) = results['ilsvrc'], results['cocovid']
    assert dets_a and dets_a == dets_b
    assert scores_a == scores_b and scores_a['mAP'] > 0 and scores_a['num_frames'] == 8
    # the evaluator re-scores the CocoVID test's file from the same config (its json is the ground truth)
    test_dir = os.path.join(tmp_path, 'out_cocovid', 'synthetic_vid_cpu', test_set)
    out_json = str(tmp_path / 'rescored.json')
    overrides = [s for s in tiny_overrides(tmp_path) if not s.startswith('output_path=')]
    proc = subprocess.run([sys.executable, '-m', 'lib.evaluation.imagenet_vid_eval', '--dets',
                           os.path.join(test_dir, f'det_{test_set}_all.txt'), '--cfg', cfg, '--out', out_json,
                           '--set', *overrides, *coco_sets(str(tmp_path)), *common], cwd=ROOT, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    rescored = json.load(open(out_json))
    assert {k: rescored[k] for k in scores_b} == scores_b
