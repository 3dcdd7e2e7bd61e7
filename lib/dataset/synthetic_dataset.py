"""The imdb of the embedded synthetic dataset: ImageNet VID's code, its own class list, and the data
generated on first use (lib/dataset/synthetic_vid.py) from cfg.dataset.SYNTHETIC."""
import os

from .imagenet_vid import ImageNetVID
from .synthetic_vid import CLASS_LIST_NAME, META_FILE, ensure_dataset


class SyntheticVID(ImageNetVID):
    class_list = CLASS_LIST_NAME

    def __init__(self, image_set, root_path, dataset_path, cfg=None):
        """With a cfg the dataset is (re)generated to match cfg.dataset.SYNTHETIC; without one an
        existing dataset is used as it is and a missing one is generated with the defaults."""
        if cfg is not None and cfg.dataset.get('CLASSES'):
            raise ValueError("dataset.CLASSES is for a dataset of your own (dataset.dataset: ImageNetVID); the "
                             "synthetic dataset has its own classes: leave dataset.CLASSES empty")
        if cfg is not None:
            ensure_dataset(dataset_path, **dict(cfg.dataset.SYNTHETIC))
        elif not os.path.isfile(os.path.join(dataset_path, META_FILE)):
            ensure_dataset(dataset_path)
        super().__init__(image_set, root_path, dataset_path, cfg=cfg)
