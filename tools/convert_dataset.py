#!/usr/bin/env python
"""Convert a video dataset between the ILSVRC layout and mmtracking's CocoVID json (docs/datasets.md).

    # ILSVRC -> CocoVID: one json per image set, <out>/annotations/<image set>.json; the images are not copied
    # (file names relative to <root>/Data: dataset.img_prefix)
    python tools/convert_dataset.py to-cocovid --root data/ILSVRC2015 --out data/ILSVRC2015_cocovid \\
        --image-set VID_train_15frames --image-set VID_val_videos [--classes imagenet_vid | my_config.yaml]

    # CocoVID -> ILSVRC: Annotations XML, ImageSets/VID_<name>.txt (and DET_<name>.txt for still images),
    # Data/ as symbolic links to the json's images (--images hardlink or copy instead)
    python tools/convert_dataset.py to-ilsvrc --json data/my_videos/annotations/train.json \\
        --img-prefix data/my_videos/frames --out data/my_videos_ilsvrc --image-set train [--list train]

--list: how the image set is read or written. to-cocovid: train (listed frames marked is_vid_train_frame),
test (the list's frame ids become image ids) or auto (test when every line is a whole video or a frame with
an id of its own). to-ilsvrc: train (`video 1 frame n`), videos (`video start_id 0 n`: DFF's test list),
frames (`video/%06d id`: the baseline's) or auto (train when the json marks frames, else videos).
Both print the config lines that use the result. Bad input ends with one `error:` line naming the file and
the first bad entry; nothing existing is replaced, and a failed conversion removes what it wrote.
"""
import argparse
import os

from lib.utils.cli import run_cli


def to_cocovid(args):
    from lib.dataset.cocovid_convert import ilsvrc_to_cocovid, write_cocovid
    from lib.evaluation.imagenet_vid_eval import resolve_classes
    if not os.path.isdir(args.root):
        raise FileNotFoundError(f"--root: folder not found: {args.root}")
    classes = resolve_classes(args.classes)
    written = []
    for image_set in args.image_set:
        data, s = ilsvrc_to_cocovid(args.root, image_set, classes, args.list)
        path = os.path.join(args.out, 'annotations', image_set + '.json')
        write_cocovid(path, data)
        written.append(image_set)
        print(f"{path}: {s['kind']} list, {s['videos']} videos, {s['images']} images"
              + (f" ({s['marked']} marked for training)" if s['kind'] == 'train' else '')
              + f", {s['annotations']} boxes; {s['clipped']} boxes clipped to the image, {s['dropped']} inverted "
                f"boxes left out, {s['repeated']} repeated list lines")
    print("config (yaml):\n"
          f"  dataset:\n    dataset: CocoVID\n    dataset_path: {args.out}\n"
          f"    img_prefix: {os.path.abspath(os.path.join(args.root, 'Data'))}\n"
          f"    image_set: {'+'.join(written)}   # and test_image_set: one of them\n"
          f"    NUM_CLASSES: {len(classes[0])}")


def to_ilsvrc(args):
    from lib.dataset.cocovid_convert import cocovid_to_ilsvrc
    s = cocovid_to_ilsvrc(args.json, args.img_prefix, args.out, args.image_set, args.list, args.images)
    names, wnids = s['classes']
    how = {'symlink': 'symbolic links to', 'hardlink': 'hard links to', 'copy': 'copies of'}[args.images]
    print(f"{args.out}: {s['images']} images ({how} the json's), {s['videos']} videos, "
          f"{s['list_format']} list(s): {', '.join(s['lists'])}")
    entries = ', '.join(f'[{w}, {n}]' for w, n in zip(wnids[1:], names[1:]))
    print("config (yaml):\n"
          f"  dataset:\n    dataset: ImageNetVID\n    dataset_path: {args.out}\n"
          f"    image_set: {s['image_set']}\n    NUM_CLASSES: {len(names)}\n    CLASSES: [{entries}]")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest='command', required=True)
    a = sub.add_parser('to-cocovid', help='ILSVRC layout -> CocoVID json (images referenced, not copied)')
    a.add_argument('--root', required=True, help='the ILSVRC root (ImageSets/, Annotations/, Data/)')
    a.add_argument('--image-set', required=True, action='append', help='a list under ImageSets/, without .txt '
                   '(may be repeated)')
    a.add_argument('--out', required=True, help='writes <out>/annotations/<image set>.json')
    a.add_argument('--classes', default='imagenet_vid', help='class list: a registered name (imagenet_vid, '
                   'synthetic_vid) or a yaml config (its dataset.CLASSES)')
    a.add_argument('--list', default='auto', choices=('auto', 'train', 'test'))
    b = sub.add_parser('to-ilsvrc', help='CocoVID json -> ILSVRC layout (XML, lists, linked images)')
    b.add_argument('--json', required=True, help='the CocoVID annotation file')
    b.add_argument('--img-prefix', required=True, help="the folder the json's file names are relative to")
    b.add_argument('--out', required=True, help='the ILSVRC root to write (Data/, Annotations/, ImageSets/)')
    b.add_argument('--image-set', required=True, help='list name: writes ImageSets/VID_<name>.txt (video frames) '
                   'and/or DET_<name>.txt (still images)')
    b.add_argument('--list', default='auto', choices=('auto', 'train', 'videos', 'frames'))
    b.add_argument('--images', default='symlink', choices=('symlink', 'hardlink', 'copy'),
                   help='how Data/ gets the images (default: symbolic links to them)')
    args = p.parse_args(argv)
    (to_cocovid if args.command == 'to-cocovid' else to_ilsvrc)(args)


if __name__ == '__main__':
    run_cli(main)
