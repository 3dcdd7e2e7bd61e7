"""Video datasets in mmtracking's CocoVID json format, read through pycocotools, for training and testing
with the same scripts as the ILSVRC layout (docs/datasets.md).

A file holds ``videos`` ({id, name}), ``images`` ({id, file_name, width, height, video_id, frame_id}, frame ids
0-based; an image without a video, video_id absent or -1, is a still image, as ImageNet DET), ``annotations``
({id, image_id, category_id, bbox [x, y, w, h], instance_id}) and ``categories`` ({id, name, encode_name}).
Boxes follow mmtracking's conversion of the ILSVRC XML: x = xmin, w = xmax - xmin, so the annotated inclusive
box is [x, y, x + w, y + h]; the roidb and the evaluation then treat it exactly as the XML box. Instance ids
are the track ids of the motion buckets (-1 or absent: no track). The class list is the categories in the
file's order, the label of each (what the ILSVRC XML calls the WNID) its ``encode_name``, else its name.

With ``dataset.dataset: CocoVID``, image set ``X`` is ``<dataset_path>/annotations/X.json`` and its file
names are relative to ``<dataset_path>/<img_prefix>``. Training takes the frames marked
``is_vid_train_frame`` when the file marks any (mmtracking's 15 frames per video) and every still image;
otherwise every image (an image's own is_vid_train_frame: false leaves it out). Testing takes every image,
video by video in frame order; an image's id is its global frame id in the detections file.

A malformed file is a ValueError naming the file and its first bad entry.
"""
import contextlib
import hashlib
import io
import json
import math
import os
import re

import numpy as np

from .imagenet_vid import ImageNetVID, roidb_entry
from .vid_classes import BACKGROUND, dataset_classes

COCOVID_VERSION = 1  # bump when the roidb built from a json changes: old caches are rebuilt
TOP_LEVEL = ('videos', 'images', 'annotations', 'categories')


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def has_video(image):
    """Whether an image entry is a frame of a video (a still image has no video_id, or -1 / null)."""
    return image.get('video_id') not in (None, -1)


def is_train_image(image, marked):
    """Whether training takes an image: its is_vid_train_frame when it has one; else a still image always, a
    video frame when the file marks no image (marked: whether any image has is_vid_train_frame)."""
    if 'is_vid_train_frame' in image:
        return image['is_vid_train_frame']
    return not has_video(image) or not marked


class _Checker:
    """Checks a parsed CocoVID file entry by entry; the first problem is a ValueError naming the file and entry."""

    def __init__(self, path, data):
        self.path, self.data = path, data

    def fail(self, where, what):
        raise ValueError(f"{self.path}: {where}: {what}")

    def entries(self, key):
        for k, entry in enumerate(self.data[key]):
            where = f"{key}[{k}]"
            if not isinstance(entry, dict):
                self.fail(where, f"expected an object, got {entry!r}")
            if 'id' in entry:
                where += f" (id {entry['id']!r})"
            yield where, entry

    def require(self, where, entry, key, test, expected):
        if key not in entry:
            self.fail(where, f"missing key {key!r}")
        if not test(entry[key]):
            self.fail(where, f"{key} = {entry[key]!r}: expected {expected}")
        return entry[key]

    def unique(self, seen, value, where, what):
        if value in seen:
            self.fail(where, f"duplicate {what} {value!r} (also {seen[value]})")
        seen[value] = where.split(' ')[0]

    def check(self):
        data = self.data
        if not isinstance(data, dict):
            self.fail('top level', f"expected a json object with {', '.join(TOP_LEVEL)}")
        for key in TOP_LEVEL[1:]:
            if key not in data:
                self.fail('top level', f"missing key {key!r} (a CocoVID file has {', '.join(TOP_LEVEL)})")
        for key in TOP_LEVEL:
            if key in data and not isinstance(data[key], list):
                self.fail(key, f"expected a list, got {type(data[key]).__name__}")
        if not data['categories']:
            self.fail('categories', 'no categories: the class list comes from them')
        ids, names, labels = {}, {}, {}
        for where, cat in self.entries('categories'):
            self.unique(ids, self.require(where, cat, 'id', _is_int, 'an integer'), where, 'id')
            name = self.require(where, cat, 'name', lambda v: isinstance(v, str) and v.strip(), 'a name')
            self.unique(names, name, where, 'name')
            if BACKGROUND in (name, cat.get('encode_name')):
                self.fail(where, f"{BACKGROUND!r} is implied (class 0); list the object classes only")
            if 'encode_name' in cat:
                self.require(where, cat, 'encode_name', lambda v: isinstance(v, str) and v.strip(), 'a label')
            self.unique(labels, cat.get('encode_name', name), where, 'label (encode_name, else name)')
        videos, video_names = {}, {}
        for where, video in self.entries('videos') if 'videos' in data else ():
            self.unique(videos, self.require(where, video, 'id', _is_int, 'an integer'), where, 'id')
            name = self.require(where, video, 'name', lambda v: isinstance(v, str) and v.strip(), 'a name')
            self.unique(video_names, name, where, 'video name')
        images, frames = {}, {}
        for where, image in self.entries('images'):
            self.unique(images, self.require(where, image, 'id', _is_int, 'an integer'), where, 'id')
            self.require(where, image, 'file_name', lambda v: isinstance(v, str) and v.strip(), 'a file name')
            for key in ('width', 'height'):
                self.require(where, image, key, lambda v: _is_int(v) and v > 0, 'a positive integer')
            if has_video(image):
                vid = self.require(where, image, 'video_id', _is_int, 'an integer (-1 or absent: a still image)')
                if vid not in videos:
                    self.fail(where, f"unknown video_id {vid}" + ('' if 'videos' in data else
                                                                  " (the file has no 'videos')"))
                fid = self.require(where, image, 'frame_id', lambda v: _is_int(v) and v >= 0,
                                   'a frame index (0-based)')
                self.unique(frames, (vid, fid), where, '(video_id, frame_id)')
            if 'is_vid_train_frame' in image and not isinstance(image['is_vid_train_frame'], bool):
                self.fail(where, f"is_vid_train_frame = {image['is_vid_train_frame']!r}: expected true or false")
        image_by_id = {im['id']: im for im in data['images']}
        anns, instances = {}, {}
        for where, ann in self.entries('annotations'):
            self.unique(anns, self.require(where, ann, 'id', _is_int, 'an integer'), where, 'id')
            image_id = self.require(where, ann, 'image_id', _is_int, 'an integer')
            if image_id not in images:
                self.fail(where, f"unknown image_id {image_id}")
            cat = self.require(where, ann, 'category_id', _is_int, 'an integer')
            if cat not in ids:
                self.fail(where, f"unknown category_id {cat}")
            box = self.require(where, ann, 'bbox', lambda v: isinstance(v, list) and len(v) == 4
                               and all(_is_number(x) for x in v), '[x, y, w, h] (4 numbers)')
            image = image_by_id[image_id]
            x, y, w, h = box
            if w < 0 or h < 0:
                self.fail(where, f"bbox {box}: negative width or height")
            if x < 0 or y < 0 or x + w > image['width'] or y + h > image['height']:
                self.fail(where, f"bbox {box} is outside image {image_id} ({image['width']} x {image['height']})")
            if 'video_id' in ann and ann['video_id'] not in (None, -1, image.get('video_id')):
                self.fail(where, f"video_id {ann['video_id']!r}, but image {image_id} is in video "
                                 f"{image.get('video_id')!r}")
            instance = ann.get('instance_id', -1)
            if not _is_int(instance):
                self.fail(where, f"instance_id = {instance!r}: expected an integer (-1: no track)")
            if instance >= 0:
                self.unique(instances, (image_id, instance), where, '(image_id, instance_id)')


def _pattern(image_root, frames):
    """The roidb's frame pattern of a video, given {frame_id: file_name}: a format string (``pattern % k`` is
    frame k's path, as the ILSVRC layout's ``<video>/%06d.JPEG``) when the file names number the frames by
    their frame id, else a VideoFrames of the listed frames."""
    paths = {fid: os.path.join(image_root, name) for fid, name in frames.items()}
    first = paths[min(paths)]
    m = re.fullmatch(r'(.*?)(\d+)(\D*)', first, flags=re.S)
    if m:
        head, digits, tail = (s.replace('%', '%%') for s in m.groups())
        for fmt in (f'%0{len(digits)}d', '%d'):
            pattern = head + fmt + tail
            if all(pattern % fid == path for fid, path in paths.items()):
                return pattern
    return VideoFrames(paths)


class VideoFrames:
    """The frames of a video whose file names are not numbered by frame id: ``frames % k`` is frame k's path,
    as the ``pattern`` string of the ILSVRC layout's roidb entries gives it (DFF's key frame)."""

    def __init__(self, paths):
        self.paths = dict(paths)

    def __mod__(self, k):
        try:
            return self.paths[int(k)]
        except KeyError:
            raise ValueError(f"frame {int(k)} of the video of {self.paths[min(self.paths)]} is not in its "
                             f"annotation file (frames {min(self.paths)}..{max(self.paths)})") from None

    def __eq__(self, other):
        return isinstance(other, VideoFrames) and other.paths == self.paths

    def __repr__(self):
        return f'VideoFrames({len(self.paths)} frames from {self.paths[min(self.paths)]!r})'


def _json_load(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"CocoVID annotation file not found: {path}")
    try:
        with open(path, 'rb') as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid json ({e})") from None


def categories_classes(categories):
    """(names, wnids) of a checked categories list: background first, then the categories in file order; the
    label (ILSVRC's WNID) is encode_name, else the name."""
    names = (BACKGROUND,) + tuple(c['name'] for c in categories)
    wnids = (BACKGROUND,) + tuple(c.get('encode_name', c['name']) for c in categories)
    return names, wnids


class CocoVIDFile:
    """A checked CocoVID file, indexed by pycocotools: .coco (pycocotools.coco.COCO), .videos {id: entry},
    .classes (names, wnids), .cat_to_index {category id: class index}, .video_frames {video id: {frame id:
    image id}}."""

    def __init__(self, path):
        from pycocotools.coco import COCO
        self.path = os.fspath(path)
        data = _json_load(self.path)
        _Checker(self.path, data).check()
        self.coco = COCO()
        self.coco.dataset = data
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
            self.coco.createIndex()
        self.videos = {v['id']: v for v in data.get('videos') or []}
        self.classes = categories_classes(data['categories'])
        self.cat_to_index = {c['id']: k for k, c in enumerate(data['categories'], 1)}
        self.video_frames = {}
        for image in data['images']:
            if has_video(image):
                self.video_frames.setdefault(image['video_id'], {})[image['frame_id']] = image['id']

    @property
    def images(self):
        """Image entries in file order."""
        return self.coco.dataset['images']

    def record(self, image_id):
        """{'height', 'width', 'boxes' (n, 4) [x1, y1, x2, y2] inclusive as annotated, 'labels' class indices,
        'trackids' (instance ids, -1 for none)} of one image, annotations in file order."""
        image = self.coco.imgs[image_id]
        anns = self.coco.imgToAnns.get(image_id, [])
        boxes = np.array([[a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2], a['bbox'][1] + a['bbox'][3]]
                          for a in anns], np.float64).reshape(-1, 4)
        labels = np.array([self.cat_to_index[a['category_id']] for a in anns], np.int64)
        tracks = np.array([a.get('instance_id', -1) if has_video(image) else -1 for a in anns], np.int64)
        return {'height': image['height'], 'width': image['width'], 'boxes': boxes, 'labels': labels,
                'trackids': tracks}

    def frame_index(self, image_id):
        """The frame's name in the detections' evaluation list: '<video name>/%06d' (frame id) for a video
        frame (the motion buckets read the video and the frame number from it), the file name without its
        extension for a still image."""
        image = self.coco.imgs[image_id]
        if has_video(image):
            return f"{self.videos[image['video_id']]['name']}/{image['frame_id']:06d}"
        return os.path.splitext(image['file_name'])[0]

    def video_groups(self):
        """[(video id or None, [image ids in frame order])] in the order of the videos' first images in the
        file; each still image is a group of its own."""
        groups, where = [], {}
        for image in self.images:
            if not has_video(image):
                groups.append((None, [image['id']]))
            elif image['video_id'] not in where:
                where[image['video_id']] = len(groups)
                frames = self.video_frames[image['video_id']]
                groups.append((image['video_id'], [frames[k] for k in sorted(frames)]))
        return groups

    def marks_train_frames(self):
        return any('is_vid_train_frame' in image for image in self.images)


def cocovid_json(dataset_path, image_set):
    return os.path.join(dataset_path, 'annotations', image_set + '.json')


def cocovid_classes(cfg):
    """The class list of a CocoVID config (its test set's json): (names, wnids, where from); used where only
    the config is at hand (demos, re-scoring)."""
    path = cocovid_json(cfg.dataset.dataset_path, cfg.dataset.test_image_set)
    data = _json_load(path)
    checker = _Checker(path, data)
    if not isinstance(data, dict) or not isinstance(data.get('categories'), list) or not data['categories']:
        checker.fail('categories', 'missing or empty: the class list comes from them')
    for where, cat in checker.entries('categories'):
        checker.require(where, cat, 'name', lambda v: isinstance(v, str) and v.strip(), 'a name')
    names, wnids = categories_classes(data['categories'])
    return names, wnids, f"the class list from the categories of {path}"


class CocoVID(ImageNetVID):
    """One CocoVID json as an image set: the same roidb entries, test frames and evaluation as the ILSVRC
    layout (ImageNetVID), read from <dataset_path>/annotations/<image_set>.json."""

    class_list = staticmethod(cocovid_classes)

    def __init__(self, image_set, root_path, dataset_path, cfg=None):
        if cfg is not None and cfg.dataset.get('CLASSES'):
            raise ValueError("dataset.CLASSES is for the ILSVRC layout (dataset.dataset: ImageNetVID); a CocoVID "
                             "dataset takes its classes from the json's categories: leave dataset.CLASSES empty")
        self.image_set = image_set
        self.name = f'{type(self).__name__}_{image_set}'
        self.root_path = root_path
        self.data_path = dataset_path
        prefix = str(cfg.dataset.get('img_prefix') or '') if cfg is not None else ''
        self.image_root = os.path.join(dataset_path, prefix) if prefix else dataset_path
        self.cache_path = os.path.join(root_path, 'cache')
        self.file = CocoVIDFile(self.image_set_file)
        source = f"the class list from the categories of {self.image_set_file}"
        self.classes, self.wnids = dataset_classes(cfg, lambda _: self.file.classes + (source,))
        self.num_classes = len(self.classes)
        if cfg is not None and image_set != cfg.dataset.test_image_set:
            test_json = cocovid_json(dataset_path, cfg.dataset.test_image_set)
            if os.path.isfile(test_json) and cocovid_classes(cfg)[:2] != (self.classes, self.wnids):
                raise ValueError(f"{self.image_set_file} and {test_json} have different categories (names, labels "
                                 f"or order): training and testing need one class list")
        self._load_image_set_index()

    @property
    def image_set_file(self):
        return cocovid_json(self.data_path, self.image_set)

    def _load_image_set_index(self):
        """The training images (image ids, file order; is_train_image)."""
        marked = self.file.marks_train_frames()
        self.image_set_index = [im['id'] for im in self.file.images if is_train_image(im, marked)]
        if not self.image_set_index:
            raise ValueError(f"{self.image_set_file}: no image to train on (every image has is_vid_train_frame "
                             f"false)")
        self._patterns = {}

    def image_path(self, image_id):
        return os.path.join(self.image_root, self.file.coco.imgs[image_id]['file_name'])

    def video_pattern(self, video_id):
        if video_id not in self._patterns:
            frames = {fid: self.file.coco.imgs[i]['file_name'] for fid, i in self.file.video_frames[video_id].items()}
            self._patterns[video_id] = _pattern(self.image_root, frames)
        return self._patterns[video_id]

    def _fingerprint(self):
        h = hashlib.sha1()
        h.update(repr((COCOVID_VERSION, self.wnids, os.path.abspath(self.image_root))).encode())
        st = os.stat(self.image_set_file)
        h.update(f'{os.path.abspath(self.image_set_file)}:{st.st_size}:{st.st_mtime_ns}'.encode())
        return h.hexdigest()

    def _load_annotation(self, i):
        image_id = self.image_set_index[i]
        image = self.image_path(image_id)
        if not os.path.isfile(image):
            raise FileNotFoundError(f"image not found: {image} (image {image_id} of {self.image_set_file})")
        rec = self.file.record(image_id)
        entry = roidb_entry(image, image_id, rec['height'], rec['width'], rec['boxes'], rec['labels'],
                            self.num_classes, f"{self.image_set_file} (image {image_id})")
        info = self.file.coco.imgs[image_id]
        if has_video(info):
            entry['pattern'] = self.video_pattern(info['video_id'])
            entry['frame_seg_id'] = info['frame_id']
            entry['frame_seg_len'] = max(self.file.video_frames[info['video_id']]) + 1
        return entry

    def test_frames(self):
        """Every image, video by video in frame order (ImageNetVID.test_frames' dicts); frame_id = image id.
        A still image is a video of one frame."""
        frames = []
        for video_id, image_ids in self.file.video_groups():
            seg_len = 1 if video_id is None else max(self.file.video_frames[video_id]) + 1
            for image_id in image_ids:
                index = self.file.frame_index(image_id)
                info = self.file.coco.imgs[image_id]
                frames.append({'image': self.image_path(image_id), 'frame_id': image_id,
                               'video': index if video_id is None else self.file.videos[video_id]['name'],
                               'frame_seg_id': info['frame_id'] if video_id is not None else 0,
                               'frame_seg_len': seg_len, 'index': index})
        for fr in frames:
            if not os.path.isfile(fr['image']):
                raise FileNotFoundError(f"image not found: {fr['image']} (from {self.image_set_file})")
        return frames

    def eval_records(self, frames, class_to_index):
        """The evaluation's ground-truth records of `frames` ((index, image id) pairs of test_frames), read from
        the json: raw boxes, instance ids as track ids (the fields lib.evaluation.imagenet_vid_eval.make_gt takes;
        the tester builds the ground truth from them). The json is read in full anyway, so there is no cache."""
        wnids = self.file.classes[1]
        records = []
        for _, image_id in frames:
            rec = self.file.record(int(image_id))
            rec['labels'] = np.array([class_to_index[wnids[c]] for c in rec['labels']], np.int64)
            records.append(rec)
        return records
