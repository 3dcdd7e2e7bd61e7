"""Conversion between the ILSVRC layout (ImageNetVID: ImageSets lists, Annotations XML, Data JPEGs) and
mmtracking's CocoVID json (CocoVID), both ways; tools/convert_dataset.py is the command line, docs/datasets.md
the description.

ILSVRC -> CocoVID writes a json only: its file names are relative to the ILSVRC root's Data folder
('VID/<video>/%06d.JPEG', 'DET/<image>.JPEG'), so the images stay where they are (dataset.img_prefix points
at <root>/Data). A video listed in the image set brings all its frames (DFF's key frames are any frame of
the video); the images of a training list are marked is_vid_train_frame (true for the listed ones).

CocoVID -> ILSVRC writes the Annotations XML, the ImageSets lists and, for the images, symbolic links to the
json's images (or hard links, or copies): Data/VID/<video name>/%06d.JPEG, Data/DET/<file name without its
extension and a leading DET/>.JPEG.

Lists, either way: a training list (frame id column 1, the original's) marks its frames; a test list gives
each frame its global id (VID_val_videos: `video start 0 n`, VID_val_frames: `video/%06d id`), which is the
image id in the json. Boxes: bbox [x, y, w, h] = [xmin, ymin, xmax - xmin, ymax - ymin] (mmtracking's
conversion), so a round trip gives the XML boxes back exactly.
"""
import json
import os
import shutil
import xml.etree.ElementTree as ET

import numpy as np

from lib.utils.fileio import atomic_write, write_text
from lib.utils.outputs import make_dirs, remove_empty_dirs, remove_file

from .cocovid import CocoVIDFile, has_video, is_train_image
from .imagenet_vid import ImageNetVID
from .vid_annotations import parse_vid_xml
from .vid_classes import wnid_to_index

LIST_FORMATS = ('auto', 'train', 'videos', 'frames')
IMAGE_MODES = ('symlink', 'hardlink', 'copy')


def _number(v):
    """A json number: an int when the value is integral (as the XML's integer pixels)."""
    v = float(v)
    return int(v) if v.is_integer() else v


# ------------------------------------------------------------------------------------ ILSVRC -> CocoVID
def ilsvrc_to_cocovid(root, image_set, classes, list_kind='auto'):
    """The CocoVID dict of one ILSVRC image set, and a summary dict (counts). classes: (names, wnids),
    background first (lib/dataset/vid_classes.py). list_kind: 'train' (every image marked
    is_vid_train_frame, true for the listed ones; ids numbered 1..; objects with another label left out as
    the training roidb does),
    'test' (ids = the list's global frame ids, another label is an error as in the evaluation) or 'auto'
    (test when every line is a whole video or a frame with its own id, else train)."""
    if list_kind not in ('auto', 'train', 'test'):
        raise ValueError(f"list kind {list_kind!r}: expected auto, train or test")
    lst = ImageNetVID(image_set, root, root)  # parses and checks the list (its class list is not used)
    names, wnids = classes
    n = len(lst.image_set_index)
    if list_kind == 'auto':
        whole = all(lst.pattern[i] is None or lst.frame_seg_id[i] == 0 for i in range(n))
        ids = [lst.frame_id[i] for i in range(n)]
        list_kind = 'test' if whole and len(set(ids)) == len(ids) else 'train'
    train = list_kind == 'train'
    # what to write, in list order: a video's frames (all of them for a 4-column line) or a still image
    videos, order, marked, repeated = {}, [], set(), 0
    for i, index in enumerate(lst.image_set_index):
        if lst.pattern[i] is not None:
            video, seg_len = os.path.dirname(index), lst.frame_seg_len[i]
            frames = videos.setdefault(video, {})
            if not frames:
                order.append(('video', video))
            elif max(frames) + 1 != seg_len:
                raise ValueError(f"{lst.image_set_file}: video {video} is listed with {seg_len} frames and with "
                                 f"{max(frames) + 1}")
            start = lst.frame_id[i]
            for k in range(seg_len):
                frames.setdefault(k, start + k if not train else None)
            key = (video, lst.frame_seg_id[i])
        elif lst.det_vid == 'VID':
            video, base = os.path.split(index)
            try:
                k = int(base)
            except ValueError:
                raise ValueError(f"{lst.image_set_file}: {index}: a VID frame's name is its frame number") from None
            frames = videos.setdefault(video, {})
            if not frames:
                order.append(('video', video))
            frames[k] = lst.frame_id[i] if not train else None
            key = (video, k)
        else:
            key = ('', index)
            if key not in marked:
                order.append(('still', (index, lst.frame_id[i])))
        repeated += key in marked
        marked.add(key)

    data = {'videos': [], 'images': [], 'annotations': [],
            'categories': [{'id': k, 'name': names[k], 'encode_name': wnids[k]} for k in range(1, len(names))]}
    counts = {'clipped': 0, 'dropped': 0}
    instance_ids = {}
    to_index = wnid_to_index(wnids)
    next_id = [1]

    def add_image(index, image_id, video_id=None, frame_id=None, flag=None):
        image_id = next_id[0] if image_id is None else image_id
        next_id[0] = image_id + 1
        xml = os.path.join(root, 'Annotations', lst.det_vid, index + '.xml')
        rec = parse_vid_xml(xml, to_index, unknown='drop' if train else 'raise')
        image = {'id': image_id, 'file_name': f'{lst.det_vid}/{index}.JPEG', 'width': rec['width'],
                 'height': rec['height']}
        if video_id is not None:
            image.update(video_id=video_id, frame_id=frame_id)
        if train:
            image['is_vid_train_frame'] = flag
        data['images'].append(image)
        for box, label, track in zip(rec['boxes'], rec['labels'], rec['trackids']):
            clipped = np.clip(box, 0, [rec['width'], rec['height']] * 2)
            counts['clipped'] += bool(np.any(clipped != box))
            x1, y1, x2, y2 = clipped
            if x2 < x1 or y2 < y1:
                counts['dropped'] += 1
                continue
            instance = -1
            if video_id is not None and track >= 0:
                instance = instance_ids.setdefault((video_id, int(track)), len(instance_ids) + 1)
            w, h = x2 - x1, y2 - y1
            data['annotations'].append({
                'id': len(data['annotations']) + 1, 'image_id': image_id,
                'video_id': -1 if video_id is None else video_id,
                'category_id': int(label), 'instance_id': instance,
                'bbox': [_number(x1), _number(y1), _number(w), _number(h)], 'area': _number(w * h), 'iscrowd': 0})

    for kind, item in order:
        if kind == 'still':
            index, frame_id = item
            add_image(index, None if train else frame_id, flag=True)
            continue
        video_id = len(data['videos']) + 1
        data['videos'].append({'id': video_id, 'name': item})
        for k, image_id in sorted(videos[item].items()):
            add_image(f'{item}/{k:06d}', image_id, video_id, k, ((item, k) in marked) if train else None)
    ids = [im['id'] for im in data['images']]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{lst.image_set_file}: the frame ids of a test list must be unique (they become image ids); "
                         f"convert it as a training list (--list train)")
    summary = {'kind': list_kind, 'videos': len(data['videos']), 'images': len(data['images']),
               'annotations': len(data['annotations']), 'marked': sum(bool(im.get('is_vid_train_frame'))
                                                                      for im in data['images']),
               'repeated': repeated, **counts}
    return data, summary


def write_cocovid(path, data):
    """Write a CocoVID dict as json (atomically); refuses to replace an existing file."""
    if os.path.exists(path):
        raise ValueError(f"{path} exists: remove it or write elsewhere")
    write_text(path, json.dumps(data, separators=(',', ':')) + '\n')


# ------------------------------------------------------------------------------------ CocoVID -> ILSVRC
def vid_xml(folder, filename, width, height, objects):
    """The text of an ILSVRC annotation XML; objects: (label, [xmin, ymin, xmax, ymax], trackid or None)."""
    ann = ET.Element('annotation')
    ET.SubElement(ann, 'folder').text = folder
    ET.SubElement(ann, 'filename').text = filename
    size = ET.SubElement(ann, 'size')
    ET.SubElement(size, 'width').text = str(width)
    ET.SubElement(size, 'height').text = str(height)
    for label, box, track in objects:
        el = ET.SubElement(ann, 'object')
        if track is not None:
            ET.SubElement(el, 'trackid').text = str(track)
        ET.SubElement(el, 'name').text = label
        bb = ET.SubElement(el, 'bndbox')
        for tag, v in zip(('xmin', 'ymin', 'xmax', 'ymax'), box):
            ET.SubElement(bb, tag).text = str(_number(v))
        ET.SubElement(el, 'occluded').text = '0'
        ET.SubElement(el, 'generated').text = '0'
    ET.indent(ann, space='\t')
    return ET.tostring(ann, encoding='unicode') + '\n'


def _safe_relative(path, what, json_path):
    parts = path.replace('\\', '/').split('/')
    if os.path.isabs(path) or not path or '..' in parts or '' in parts:
        raise ValueError(f"{json_path}: {what} {path!r} cannot name a folder in the ILSVRC layout (it must be a "
                         f"relative path without '..')")
    return path


def ilsvrc_index(f, image_id):
    """(Data/Annotations subfolder, index) of a CocoVID image in the ILSVRC layout."""
    image = f.coco.imgs[image_id]
    if has_video(image):
        video = _safe_relative(f.videos[image['video_id']]['name'], 'video name', f.path)
        return 'VID', f"{video}/{image['frame_id']:06d}"
    stem = os.path.splitext(image['file_name'])[0]
    if stem.startswith('DET/'):
        stem = stem[4:]  # the ILSVRC layout's own folder (ilsvrc_to_cocovid's file names): not repeated
    return 'DET', _safe_relative(stem, 'file name', f.path)


def _list_lines(f, list_format):
    """{'VID': [lines], 'DET': [lines]} of the ImageSets lists."""
    lines = {'VID': [], 'DET': []}
    marked = f.marks_train_frames()
    if list_format == 'train':
        for image in f.images:
            sub, index = ilsvrc_index(f, image['id'])
            if not is_train_image(image, marked):
                continue
            if sub == 'DET':
                lines['DET'].append(f"{index} 1")
            else:
                frames = f.video_frames[image['video_id']]
                lines['VID'].append(f"{os.path.dirname(index)} 1 {image['frame_id']} {max(frames) + 1}")
        return lines
    for video_id, image_ids in f.video_groups():
        if video_id is None:
            sub, index = ilsvrc_index(f, image_ids[0])
            lines['DET'].append(f"{index} {image_ids[0]}")
        elif list_format == 'frames':
            lines['VID'] += [f"{ilsvrc_index(f, i)[1]} {i}" for i in image_ids]
        else:
            if image_ids != list(range(image_ids[0], image_ids[0] + len(image_ids))):
                raise ValueError(f"{f.path}: video {f.videos[video_id]['name']!r}: its image ids are not consecutive "
                                 f"in frame order, which a per-video list (video start_id 0 num_frames) needs: "
                                 f"use the per-frame list (--list frames)")
            video = os.path.dirname(ilsvrc_index(f, image_ids[0])[1])
            lines['VID'].append(f"{video} {image_ids[0]} 0 {len(image_ids)}")
    if list_format == 'frames':  # the json's image order, as a per-frame list is read
        order = {im['id']: k for k, im in enumerate(f.images)}
        lines['VID'].sort(key=lambda line: order[int(line.split()[1])])
    return lines


def _same(path, what, images, is_text):
    """Whether the existing `path` is what would be written: the same XML text, or the same image (a link to
    it, or a file with its bytes)."""
    if is_text:
        with open(path, encoding='utf-8') as fh:
            return fh.read() == what
    if images == 'symlink' and os.path.islink(path):
        return os.readlink(path) == os.path.abspath(what)
    if os.path.islink(path):
        return False
    if os.path.samefile(path, what):
        return True
    with open(path, 'rb') as a, open(what, 'rb') as b:
        return a.read() == b.read()


def cocovid_to_ilsvrc(json_path, image_root, out_root, image_set, list_format='auto', images='symlink'):
    """Write one CocoVID json in the ILSVRC layout under out_root: Data (links or copies), Annotations XML,
    ImageSets/VID_<name>.txt (video frames) and/or DET_<name>.txt (still images), name = image_set without a
    leading VID_ / DET_. list_format: 'train' (the marked frames, else all, `video 1 frame n`; stills
    `image 1`), 'videos' (`video start_id 0 n`, DFF's test list), 'frames' (`video/%06d id`, the baseline's)
    or 'auto' (train when the json marks frames, else videos). Returns a summary dict. Nothing is replaced:
    an existing list, or an image or XML other than the one this would write, is an error before anything is
    written; a failure removes what was written."""
    if list_format not in LIST_FORMATS:
        raise ValueError(f"list format {list_format!r}: expected one of {', '.join(LIST_FORMATS)}")
    if images not in IMAGE_MODES:
        raise ValueError(f"images {images!r}: expected one of {', '.join(IMAGE_MODES)}")
    f = CocoVIDFile(json_path)
    if list_format == 'auto':
        list_format = 'train' if f.marks_train_frames() else 'videos'
    name = image_set[4:] if image_set.startswith(('VID_', 'DET_')) else image_set
    if list_format in ('train', 'videos'):
        for video_id, frames in f.video_frames.items():
            missing = sorted(set(range(max(frames) + 1)) - set(frames))
            if missing:
                raise ValueError(f"{f.path}: video {f.videos[video_id]['name']!r} has no frame {missing[0]} (frames "
                                 f"0..{max(frames)}): a {list_format} list needs every frame of its videos; "
                                 f"use --list frames")
    lines = _list_lines(f, list_format)
    lists = {sub: os.path.join(out_root, 'ImageSets', f'{sub}_{name}.txt') for sub in lines if lines[sub]}
    # every file to write, checked before any is written
    jobs = []
    for image in f.images:
        sub, index = ilsvrc_index(f, image['id'])
        src = os.path.join(image_root, image['file_name'])
        if not os.path.isfile(src):
            raise FileNotFoundError(f"image not found: {src} (image {image['id']} of {f.path})")
        jobs.append((image, sub, index, src))
    for path in lists.values():
        if os.path.lexists(path):
            raise ValueError(f"{path} exists: choose another --image-set or --out (nothing is replaced)")
    # an image or XML already there is kept when it is the one this would write (a second image set of the
    # same frames, e.g. VID_val_frames after VID_val_videos); anything else there is an error
    tracks, wnids, writes, seen = {}, f.classes[1], [], set()
    for image, sub, index, src in jobs:
        rec = f.record(image['id'])
        objects = []
        for box, label, track in zip(rec['boxes'], rec['labels'], rec['trackids']):
            if track >= 0:  # per video from 0, in order of appearance (as ILSVRC's track ids)
                per_video = tracks.setdefault(image['video_id'], {})
                track = per_video.setdefault(int(track), len(per_video))
            objects.append((wnids[label], box, None if track < 0 else track))
        text = vid_xml(os.path.dirname(index), os.path.basename(index), image['width'], image['height'], objects)
        for dst, what in ((os.path.join(out_root, 'Data', sub, index + '.JPEG'), src),
                          (os.path.join(out_root, 'Annotations', sub, index + '.xml'), text)):
            if dst in seen:
                raise ValueError(f"{f.path}: two images would be written to {dst}")
            seen.add(dst)
            if os.path.lexists(dst):
                if not _same(dst, what, images, is_text=dst.endswith('.xml')):
                    raise ValueError(f"{dst} exists and differs from what image {image['id']} of {f.path} gives: "
                                     f"write into another --out (nothing is replaced)")
                continue
            writes.append((dst, what))
    created, folders = [], {}
    try:
        for dst, what in writes:
            folder = os.path.dirname(dst)
            if folder not in folders:
                folders[folder] = make_dirs(folder)
            created.append(dst)
            if dst.endswith('.xml'):
                atomic_write(dst, lambda out, text=what: out.write(text), 'w', sync=False)
            elif images == 'symlink':
                os.symlink(os.path.abspath(what), dst)
            elif images == 'hardlink':
                os.link(what, dst)
            else:
                shutil.copyfile(what, dst)
        for sub, path in lists.items():
            folder = os.path.dirname(path)
            if folder not in folders:
                folders[folder] = make_dirs(folder)
            created.append(path)
            write_text(path, ''.join(line + '\n' for line in lines[sub]))
    except BaseException:
        for path in created:
            remove_file(path)
        for folder, top in sorted(folders.items(), key=lambda kv: -len(kv[0])):
            remove_empty_dirs(folder, top)
        raise
    parts = [f'{sub}_{name}' for sub in ('DET', 'VID') if sub in lists]
    return {'list_format': list_format, 'image_set': '+'.join(parts), 'lists': list(lists.values()),
            'images': len(jobs), 'videos': len(f.video_frames), 'classes': f.classes}
