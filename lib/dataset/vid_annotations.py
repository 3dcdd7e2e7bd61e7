"""ImageNet VID / DET annotation files (one XML per image or frame), read by the training roidb
(lib/dataset/imagenet_vid.py) and by the evaluation's ground truth (lib/evaluation/imagenet_vid_eval.py)."""
import os
import xml.etree.ElementTree as ET

import numpy as np


def parse_vid_xml(path, class_to_index, unknown="raise"):
    """Read one ILSVRC VID/DET annotation XML.

    Returns ``{'height': int, 'width': int, 'boxes': (n,4) float64 [xmin, ymin, xmax, ymax] as written
    in the file (no clipping, no shift), 'labels': (n,) int64 class indices, 'trackids': (n,) int64
    (-1 where the object has no <trackid>, e.g. DET)}``.

    ``unknown``: what to do with an object whose WNID is not in ``class_to_index``: ``'raise'`` (the
    evaluation; the original eval raises too) or ``'drop'`` (the training roidb, docs/fidelity.md §7.2).

    Raises FileNotFoundError for a missing file, ValueError (naming the file) for malformed XML, a
    missing/non-numeric field, or (with ``unknown='raise'``) an object whose WNID is not in
    ``class_to_index``.
    """
    if unknown not in ("raise", "drop"):
        raise ValueError(f"unknown={unknown!r}: expected 'raise' or 'drop'")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ValueError(f"{path}: malformed annotation XML ({exc})") from None

    def number(elem, tag, where):
        text = elem.findtext(tag)
        if text is None or not text.strip():
            raise ValueError(f"{path}: missing <{tag}> in {where}")
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{path}: <{tag}> in {where} is not a number: {text.strip()!r}") from None

    size = root.find("size")
    if size is None:
        raise ValueError(f"{path}: missing <size>")
    height = number(size, "height", "<size>")
    width = number(size, "width", "<size>")

    boxes, labels, trackids = [], [], []
    for k, obj in enumerate(root.findall("object")):
        where = f"object #{k}"
        wnid = (obj.findtext("name") or "").strip()
        if not wnid:
            raise ValueError(f"{path}: missing <name> in {where}")
        if wnid not in class_to_index:
            if unknown == "drop":
                continue
            raise ValueError(f"{path}: {where} has WNID {wnid!r}, which is not in the class list "
                             f"({len(class_to_index)} classes)")
        tid_text = obj.findtext("trackid")
        if tid_text is None or not tid_text.strip():
            trackid = -1
        else:
            try:
                trackid = int(tid_text.strip())
            except ValueError:
                raise ValueError(f"{path}: <trackid> in {where} is not an integer: "
                                 f"{tid_text.strip()!r}") from None
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise ValueError(f"{path}: missing <bndbox> in {where}")
        boxes.append([number(bndbox, t, where) for t in ("xmin", "ymin", "xmax", "ymax")])
        labels.append(int(class_to_index[wnid]))
        trackids.append(trackid)

    return {
        "height": int(round(height)),
        "width": int(round(width)),
        "boxes": np.asarray(boxes, np.float64).reshape(-1, 4),
        "labels": np.asarray(labels, np.int64),
        "trackids": np.asarray(trackids, np.int64),
    }
