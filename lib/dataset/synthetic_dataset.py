"""The imdb of the embedded synthetic dataset: ImageNet VID's code, its own class list, and the data
generated on first use (lib/dataset/synthetic_vid.py) from cfg.dataset.SYNTHETIC."""
from .imagenet_vid import ImageNetVID
from .synthetic_vid import CLASS_LIST_NAME, ensure_dataset


class SyntheticVID(ImageNetVID):
    class_list = CLASS_LIST_NAME

    def __init__(self, image_set, root_path, dataset_path, cfg=None):
        params = dict(cfg.dataset.SYNTHETIC) if cfg is not None else {}
        ensure_dataset(dataset_path, **params)
        super().__init__(image_set, root_path, dataset_path, cfg=cfg)
