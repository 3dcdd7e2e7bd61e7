"""ImageNet VID / DET image database (docs/fidelity.md §7.2): image-set files, XML annotations, the roidb with
flipping and filtering, cached to disk and rebuilt when its inputs change.

Layout under dataset_path (e.g. ./data/ILSVRC2015):
    ImageSets/<image_set>.txt
    Data/{DET|VID}/<index>.JPEG, Annotations/{DET|VID}/<index>.xml
Image-set lines: 2 columns `index frame_id` (DET lists, VID_val_frames) or 4 columns
`video_dir frame_id frame_seg_id frame_seg_len` (VID_train_15frames, VID_val_videos).
"""
import hashlib
import os
import pickle
import sys
import warnings

import numpy as np

from lib.utils.fileio import atomic_write, load_data_pickle

from .vid_annotations import parse_vid_xml
from .vid_classes import dataset_classes

ROIDB_VERSION = 1  # bump when the roidb layout changes: old caches are rebuilt


class ImageNetVID:
    """One image set of ImageNet VID/DET (e.g. 'VID_train_15frames', 'DET_train_30classes')."""

    class_list = 'imagenet_vid'

    def __init__(self, image_set, root_path, dataset_path, cfg=None):
        self.image_set = image_set
        self.name = f'{type(self).__name__}_{image_set}'
        self.root_path = root_path
        self.data_path = dataset_path
        self.det_vid = image_set.split('_')[0]
        if self.det_vid not in ('DET', 'VID'):
            raise ValueError(f"image set {image_set!r}: the name must start with DET_ or VID_ (it chooses "
                             f"Data/DET or Data/VID)")
        self.classes, self.wnids = dataset_classes(cfg, self.class_list)
        self.num_classes = len(self.classes)
        self._wnid_to_index = {w: i for i, w in enumerate(self.wnids) if i > 0}
        self.cache_path = os.path.join(root_path, 'cache')
        self._load_image_set_index()

    # ------------------------------------------------------------------ image set
    @property
    def image_set_file(self):
        return os.path.join(self.data_path, 'ImageSets', self.image_set + '.txt')

    def _load_image_set_index(self):
        path = self.image_set_file
        if not os.path.isfile(path):
            raise FileNotFoundError(f"image-set file not found: {path}")
        self.image_set_index, self.frame_id = [], []
        self.pattern, self.frame_seg_id, self.frame_seg_len = [], [], []
        with open(path) as f:
            for lineno, line in enumerate(f, 1):
                cols = line.split()
                if not cols:
                    continue
                try:
                    if len(cols) == 2:
                        self.image_set_index.append(cols[0])
                        self.frame_id.append(int(cols[1]))
                        self.pattern.append(None)
                        self.frame_seg_id.append(None)
                        self.frame_seg_len.append(None)
                    elif len(cols) == 4:
                        seg_id, seg_len = int(cols[2]), int(cols[3])
                        if seg_len <= 0:
                            raise ValueError(f"video {cols[0]} has {seg_len} frames (empty video)")
                        if not 0 <= seg_id < seg_len:
                            raise ValueError(f"frame index {seg_id} outside the video's {seg_len} frames")
                        self.image_set_index.append(f'{cols[0]}/{seg_id:06d}')
                        self.frame_id.append(int(cols[1]))
                        self.pattern.append(cols[0] + '/%06d')
                        self.frame_seg_id.append(seg_id)
                        self.frame_seg_len.append(seg_len)
                    else:
                        raise ValueError(f"expected 2 columns (path frame_id) or 4 (video_dir frame_id "
                                         f"frame_idx num_frames), got {len(cols)}")
                except ValueError as e:
                    raise ValueError(f"{path}:{lineno}: malformed line {line.strip()!r}: {e}") from None
        if not self.image_set_index:
            raise ValueError(f"image-set file is empty: {path}")

    def image_path(self, index):
        return os.path.join(self.data_path, 'Data', self.det_vid, index + '.JPEG')

    def annotation_path(self, index):
        return os.path.join(self.data_path, 'Annotations', self.det_vid, index + '.xml')

    # ------------------------------------------------------------------ roidb
    def _fingerprint(self):
        """Changes whenever the image-set file, any annotation file or the class list changes."""
        h = hashlib.sha1()
        h.update(repr((ROIDB_VERSION, self.wnids)).encode())
        for path in [self.image_set_file] + [self.annotation_path(i) for i in self.image_set_index]:
            try:
                st = os.stat(path)
                h.update(f'{path}:{st.st_size}:{st.st_mtime_ns};'.encode())
            except FileNotFoundError:
                h.update(f'{path}:missing;'.encode())
        return h.hexdigest()

    def gt_roidb(self):
        """The roidb (list of dicts, docs/fidelity.md §7.2), from the cache when it is still valid."""
        cache_file = os.path.join(self.cache_path, self.name + '_gt_roidb.pkl')
        key = self._fingerprint()
        if os.path.isfile(cache_file):
            try:
                cached = load_data_pickle(cache_file)  # plain data only: never runs code from the file
                if isinstance(cached, dict) and cached.get('key') == key:
                    return cached['roidb']
            except ValueError as exc:  # unreadable or unsafe (UnsafeFileError) cache: rebuilt, overwritten
                print(f"roidb cache {cache_file} not used ({exc}); rebuilding", file=sys.stderr)
        roidb = [self._load_annotation(i) for i in range(len(self.image_set_index))]
        payload = {'key': key, 'roidb': roidb}
        atomic_write(cache_file, lambda f: pickle.dump(payload, f, pickle.HIGHEST_PROTOCOL))
        return roidb

    def _load_annotation(self, i):
        index = self.image_set_index[i]
        image = self.image_path(index)
        if not os.path.isfile(image):
            raise FileNotFoundError(f"image not found: {image} (listed in {self.image_set_file})")
        xml = self.annotation_path(index)
        rec = parse_vid_xml(xml, self._wnid_to_index, unknown='drop')
        entry = roidb_entry(image, self.frame_id[i], rec['height'], rec['width'], rec['boxes'], rec['labels'],
                            self.num_classes, xml)
        if self.pattern[i] is not None:
            entry['pattern'] = os.path.join(self.data_path, 'Data', self.det_vid, self.pattern[i] + '.JPEG')
            entry['frame_seg_id'] = self.frame_seg_id[i]
            entry['frame_seg_len'] = self.frame_seg_len[i]
        return entry

    # ------------------------------------------------------------------ test frames
    def test_frames(self):
        """Frames to test, one dict per frame in list order: {'image', 'frame_id', 'video', 'frame_seg_id',
        'frame_seg_len'}. A 4-column list (VID_val_videos) is expanded to every frame of each video with
        frame ids start_frame_id + k; a 2-column list (VID_val_frames) is taken as is (video = its folder)."""
        frames = []
        for i, index in enumerate(self.image_set_index):
            if self.pattern[i] is not None:
                if self.frame_seg_id[i] != 0:
                    continue  # a video line of a test list: expand once
                video = os.path.dirname(index)
                for k in range(self.frame_seg_len[i]):
                    frames.append({'image': self.image_path(self.pattern[i] % k), 'frame_id': self.frame_id[i] + k,
                                   'video': video, 'frame_seg_id': k, 'frame_seg_len': self.frame_seg_len[i],
                                   'index': self.pattern[i] % k})
            else:
                frames.append({'image': self.image_path(index), 'frame_id': self.frame_id[i],
                               'video': os.path.dirname(index), 'frame_seg_id': None, 'frame_seg_len': None,
                               'index': index})
        for fr in frames:
            if not os.path.isfile(fr['image']):
                raise FileNotFoundError(f"image not found: {fr['image']} (from {self.image_set_file})")
        return frames


def roidb_entry(image, frame_id, height, width, boxes, labels, num_classes, source):
    """One roidb entry (the original's load_vid_annotation, docs/fidelity.md §7.2) from boxes [x1, y1, x2, y2]
    as annotated (inclusive pixels): clipped to the image, no -1 shift, stored as uint16 (fractions truncated); a box
    inverted or empty after clipping is dropped with a warning naming `source` (the annotation file)."""
    raw = np.asarray(boxes, np.float64).reshape(-1, 4)
    boxes = raw.copy()
    boxes[:, 0] = np.maximum(boxes[:, 0], 0)
    boxes[:, 1] = np.maximum(boxes[:, 1], 0)
    boxes[:, 2] = np.minimum(boxes[:, 2], width - 1)
    boxes[:, 3] = np.minimum(boxes[:, 3], height - 1)
    inverted = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if inverted.any():
        # The original would store such boxes (wrapping through uint16); they are dropped here.
        warnings.warn(f"{source}: dropping {int(inverted.sum())} object(s) with an inverted or empty box after "
                      f"clipping: {raw[inverted].tolist()}")
    keep = ~inverted
    boxes = boxes[keep].astype(np.uint16)
    gt_classes = np.asarray(labels)[keep].astype(np.int32)
    overlaps = np.zeros((len(gt_classes), num_classes), dtype=np.float32)
    overlaps[np.arange(len(gt_classes)), gt_classes] = 1.0
    return {
        'image': image,
        'frame_id': frame_id,
        'height': height,
        'width': width,
        'boxes': boxes,
        'gt_classes': gt_classes,
        'gt_overlaps': overlaps,
        'max_classes': overlaps.argmax(axis=1) if len(gt_classes) else np.zeros(0, np.int64),
        'max_overlaps': overlaps.max(axis=1) if len(gt_classes) else np.zeros(0, np.float32),
        'flipped': False,
    }


def append_flipped_images(roidb):
    """docs/fidelity.md §7.2: x1' = W - x2 - 1, x2' = W - x1 - 1, flipped = True; returns roidb + flipped copies."""
    flipped = []
    for r in roidb:
        boxes = r['boxes'].astype(np.int64)
        new = dict(r)
        nb = boxes.copy()
        nb[:, 0] = r['width'] - boxes[:, 2] - 1
        nb[:, 2] = r['width'] - boxes[:, 0] - 1
        new['boxes'] = nb.astype(np.uint16)
        new['flipped'] = True
        flipped.append(new)
    return roidb + flipped


def filter_roidb(roidb):
    """Drop entries without any gt box (the original's filter_roidb)."""
    return [r for r in roidb if len(r['gt_classes']) > 0]
