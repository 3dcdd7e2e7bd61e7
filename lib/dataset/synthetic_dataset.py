"""The imdb of the embedded synthetic dataset: ImageNet VID's code, its own class list, and the data
generated on first use (lib/dataset/synthetic_vid.py) from cfg.dataset.SYNTHETIC."""
import os

from .imagenet_vid import ImageNetVID
from .synthetic_vid import CLASS_LIST_NAME, HARD_DEFAULT_SIZES, HARD_IMAGE_SETS, META_FILE, ensure_dataset, ensure_hard_split


class SyntheticVID(ImageNetVID):
    class_list = CLASS_LIST_NAME

    def __init__(self, image_set, root_path, dataset_path, cfg=None):
        """With a cfg the dataset is (re)generated to match cfg.dataset.SYNTHETIC; without one an
        existing dataset is used as it is and a missing one is generated with the defaults. The harder
        split's image sets (VID_val_hard_*) are added to the dataset when asked for (its sizes:
        cfg.dataset.SYNTHETIC.hard_videos / hard_frames / hard_tune_videos)."""
        if cfg is not None and cfg.dataset.get('CLASSES'):
            raise ValueError("dataset.CLASSES is for a dataset of your own (dataset.dataset: ImageNetVID); the "
                             "synthetic dataset has its own classes: leave dataset.CLASSES empty")
        sizes = dict(cfg.dataset.SYNTHETIC) if cfg is not None else {}
        hard = {k: v for k, v in sizes.items() if k in HARD_DEFAULT_SIZES}
        if cfg is not None:
            ensure_dataset(dataset_path, **sizes)
        elif not os.path.isfile(os.path.join(dataset_path, META_FILE)):
            ensure_dataset(dataset_path)
        if image_set in HARD_IMAGE_SETS:
            ensure_hard_split(dataset_path, **hard)
        super().__init__(image_set, root_path, dataset_path, cfg=cfg)
