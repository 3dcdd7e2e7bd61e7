"""Class lists of the video detection datasets (index -> name, index -> WNID).

Index 0 is always the background. ImageNet VID has 30 object classes; the order and the WNIDs are
those of the official code (docs/fidelity.md §7.3). Other datasets (e.g. a synthetic one used by
the smoke tests) add theirs with :func:`register_class_list`; :func:`get_class_list` looks a list up by
name (this is what the evaluation CLI's ``--classes`` option takes). A user's own dataset in the ILSVRC
layout lists its classes in the config instead (``dataset.CLASSES``, :func:`dataset_classes`).
"""

from typing import Dict, Sequence, Tuple

BACKGROUND = "__background__"

IMAGENET_VID_CLASSES: Tuple[str, ...] = (
    BACKGROUND,
    "airplane", "antelope", "bear", "bicycle", "bird", "bus", "car", "cattle", "dog",
    "domestic_cat", "elephant", "fox", "giant_panda", "hamster", "horse", "lion", "lizard",
    "monkey", "motorcycle", "rabbit", "red_panda", "sheep", "snake", "squirrel", "tiger",
    "train", "turtle", "watercraft", "whale", "zebra",
)

IMAGENET_VID_WNIDS: Tuple[str, ...] = (
    BACKGROUND,
    "n02691156", "n02419796", "n02131653", "n02834778", "n01503061", "n02924116", "n02958343",
    "n02402425", "n02084071", "n02121808", "n02503517", "n02118333", "n02510455", "n02342885",
    "n02374451", "n02129165", "n01674464", "n02484322", "n03790512", "n02324045", "n02509815",
    "n02411705", "n01726692", "n02355227", "n02129604", "n04468005", "n01662784", "n04530566",
    "n02062744", "n02391049",
)

# name -> (class names, WNIDs); both tuples start with the background entry.
CLASS_LISTS: Dict[str, Tuple[Tuple[str, ...], Tuple[str, ...]]] = {}


def _checked(name, names, wnids):
    names = tuple(str(n) for n in names)
    wnids = names if wnids is None else tuple(str(w) for w in wnids)
    if len(names) != len(wnids):
        raise ValueError(f"class list {name!r}: {len(names)} names but {len(wnids)} WNIDs")
    if len(names) < 2 or names[0] != BACKGROUND or wnids[0] != BACKGROUND:
        raise ValueError(f"class list {name!r} must start with {BACKGROUND!r} and have at least "
                         f"one object class")
    for what, seq in (("names", names), ("WNIDs", wnids)):
        if len(set(seq)) != len(seq):
            dup = sorted({x for x in seq if seq.count(x) > 1})
            raise ValueError(f"class list {name!r}: duplicate {what} {dup}")
    return names, wnids


def register_class_list(name: str, names: Sequence[str], wnids: Sequence[str] = None,
                        overwrite: bool = False) -> None:
    """Register a class list under ``name``.

    ``names`` (and ``wnids``, the annotation-file labels; defaults to ``names``) must have the same
    length and start with ``'__background__'``; entries must be unique.
    """
    names, wnids = _checked(name, names, wnids)
    if name in CLASS_LISTS and not overwrite and CLASS_LISTS[name] != (names, wnids):
        raise ValueError(f"class list {name!r} is already registered with different content")
    CLASS_LISTS[name] = (names, wnids)


def get_class_list(name: str) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    """(names, wnids) of a registered class list, background first."""
    try:
        return CLASS_LISTS[name]
    except KeyError:
        raise KeyError(f"unknown class list {name!r}; registered: {sorted(CLASS_LISTS)}") from None


def class_list_from_entries(entries, where="dataset.CLASSES"):
    """(names, wnids), background first, from config entries: a label string (the annotation files'
    <name>, used as the class name too) or a pair [label, name]."""
    names, wnids = [BACKGROUND], [BACKGROUND]
    for k, e in enumerate(entries):
        if isinstance(e, str) and e.strip():
            label = name = e.strip()
        elif isinstance(e, (list, tuple)) and len(e) == 2 and all(isinstance(x, str) and x.strip() for x in e):
            label, name = e[0].strip(), e[1].strip()
        else:
            raise ValueError(f"{where}[{k}] = {e!r}: expected a label (the annotation files' <name>) or a pair "
                             f"[label, class name]")
        if BACKGROUND in (label, name):
            raise ValueError(f"{where}[{k}]: {BACKGROUND!r} is implied (index 0); list the object classes only")
        names.append(name)
        wnids.append(label)
    return _checked(where, names, wnids)


def dataset_classes(cfg, default) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    """(names, wnids) of a dataset: cfg.dataset.CLASSES when given, else ``default``: the name of a registered
    list, or a function cfg -> (names, wnids, where they come from) (CocoVID: its json's categories);
    checked against cfg.dataset.NUM_CLASSES (which sizes the network's classifier)."""
    entries = list(cfg.dataset.get("CLASSES") or []) if cfg is not None else []
    source = f"dataset.CLASSES ({len(entries)} classes)" if entries else f"the {default!r} class list"
    if entries:
        names, wnids = class_list_from_entries(entries)
    elif callable(default):
        names, wnids, source = default(cfg)
    else:
        names, wnids = get_class_list(default)
    if cfg is not None and len(names) != int(cfg.dataset.NUM_CLASSES):
        raise ValueError(f"dataset.NUM_CLASSES = {cfg.dataset.NUM_CLASSES} but {source} gives {len(names)} "
                         f"classes with the background: set NUM_CLASSES to {len(names)}")
    return names, wnids


def wnid_to_index(wnids: Sequence[str]) -> Dict[str, int]:
    """{WNID: class index} for the object classes (the background entry is left out)."""
    return {w: i for i, w in enumerate(wnids) if i > 0}


# The embedded synthetic dataset (lib/dataset/synthetic_vid.py): a subset of ImageNet VID's classes.
SYNTHETIC_VID_CLASSES: Tuple[str, ...] = (BACKGROUND, "airplane", "car", "dog", "horse", "zebra")
SYNTHETIC_VID_WNIDS: Tuple[str, ...] = (BACKGROUND, "n02691156", "n02958343", "n02084071", "n02374451", "n02391049")

register_class_list("imagenet_vid", IMAGENET_VID_CLASSES, IMAGENET_VID_WNIDS)
register_class_list("synthetic_vid", SYNTHETIC_VID_CLASSES, SYNTHETIC_VID_WNIDS)
