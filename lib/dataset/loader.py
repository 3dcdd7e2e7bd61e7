"""Training data: the combined roidb, the original's aspect-grouped order, and batches with RPN targets.

Randomness is derived from (cfg.seed, epoch, item) only, never from a global RNG, so that any
number of workers, processes or a resumed run see exactly the same data (order, flips are in the
roidb, RPN subsampling, DFF key-frame offsets).
"""
import numpy as np
import torch

from lib.rpn.anchor_target import assign_anchor
from lib.rpn.anchors import generate_anchors
from lib.utils.image import choose_scale, prepare_image

from .cocovid import CocoVID
from .imagenet_vid import ImageNetVID, append_flipped_images, filter_roidb
from .synthetic_dataset import SyntheticVID


def get_imdb_class(name):
    classes = {'ImageNetVID': ImageNetVID, 'SyntheticVID': SyntheticVID, 'CocoVID': CocoVID}
    if name not in classes:
        raise ValueError(f"dataset.dataset = {name!r} is not known; choose one of {sorted(classes)}")
    return classes[name]


def make_imdb(cfg, image_set):
    cls = get_imdb_class(cfg.dataset.dataset)
    return cls(image_set, cfg.dataset.root_path, cfg.dataset.dataset_path, cfg=cfg)


def load_train_roidb(cfg):
    """The training roidb (docs/fidelity.md §7.2): image sets joined by '+', each flipped (TRAIN.FLIP), filtered."""
    roidb = []
    for image_set in cfg.dataset.image_set.split('+'):
        r = make_imdb(cfg, image_set).gt_roidb()
        if cfg.TRAIN.FLIP:
            r = append_flipped_images(r)
        roidb.extend(r)
    roidb = filter_roidb(roidb)
    if not roidb:
        raise ValueError(f"no training image with a ground-truth box in {cfg.dataset.image_set}")
    return roidb


def feature_size(side, num_stride2=4):
    """Stride-16 feature-map size: conv1, pool1, res3, res4 each floor((s-1)/2)+1 (docs/fidelity.md §3.1);
    num_stride2=3 for the stride-8 backbone (network.RCNN_FEAT_STRIDE 8: res4 keeps stride 1)."""
    for _ in range(num_stride2):
        side = (side - 1) // 2 + 1
    return side


class EpochOrder:
    """The original's order (docs/fidelity.md §7.4): with ASPECT_GROUPING, landscape (w >= h) and portrait images are
    permuted separately and concatenated, then cut into chunks of `images_per_update` and the chunks are
    shuffled; the incomplete last chunk is dropped (the original loader stops at a full batch).
    Each chunk is one optimiser update: with W processes, B images per process and A accumulation
    steps, image k of an update goes to micro-step k // (W*B), process (k // B) % W.

    original_chunk_order (TRAIN.ORIGINAL_CHUNK_ORDER, default True) keeps a quirk of the original's
    AnchorLoader.reset: it shuffles the chunks of inds[:-extra] with extra = len(roidb) % batch, so when the
    roidb length is a multiple of the update size (extra = 0, inds[:-0] is empty) the chunks are NOT
    shuffled: every epoch runs all landscape chunks, then all portrait ones. False shuffles them always."""

    def __init__(self, roidb, images_per_update, seed, shuffle=True, aspect_grouping=True, original_chunk_order=True):
        self.n = len(roidb)
        self.landscape = np.array([r['width'] >= r['height'] for r in roidb])
        self.images_per_update = images_per_update
        self.seed, self.shuffle, self.aspect_grouping = seed, shuffle, aspect_grouping
        self.original_chunk_order = original_chunk_order
        self.updates_per_epoch = self.n // images_per_update
        if self.updates_per_epoch == 0:
            raise ValueError(f"{self.n} training images are fewer than one update's {images_per_update}")

    def order(self, epoch):
        rng = np.random.default_rng([self.seed, epoch])
        shuffle_chunks = self.shuffle
        if not self.shuffle:
            idx = np.arange(self.n)
        elif self.aspect_grouping:
            horz, vert = np.flatnonzero(self.landscape), np.flatnonzero(~self.landscape)
            idx = np.concatenate([rng.permutation(horz), rng.permutation(vert)])
            if self.original_chunk_order and self.n % self.images_per_update == 0:
                shuffle_chunks = False  # the original's inds[:-0] == []: nothing shuffled
        else:
            idx = rng.permutation(self.n)
        chunks = idx[:self.updates_per_epoch * self.images_per_update].reshape(self.updates_per_epoch, -1)
        if shuffle_chunks:
            chunks = chunks[rng.permutation(len(chunks))]
        return chunks


# The salts of item_generator: each random choice made for a training item draws from a stream of its own.
SALT_ANCHOR_SAMPLING = 1  # RPN anchor targets: which anchors are sampled (BatchCollator)
SALT_ROI_SAMPLING = 2     # the detection heads' roi sampling (the trainer's per-image generators)
SALT_KEY_FRAME = 3        # DFF's key frame: its offset from the current frame (dff_rfcn/dataset.py)


def item_generator(seed, epoch, index, salt):
    """A torch.Generator for one random choice (`salt`, one of the SALT_* above) about training item
    `index` in `epoch`: the same in every run with the same seed, whatever the workers or processes."""
    g = torch.Generator()
    g.manual_seed(int(np.random.SeedSequence([seed, epoch, index, salt]).generate_state(1)[0]))
    return g


class TrainDataset(torch.utils.data.Dataset):
    """Items are (epoch, roidb index) pairs: the image tensor, im_info and gt boxes [x1,y1,x2,y2,cls]
    scaled to the network input (rounded and clipped as the baseline's get_image, docs/fidelity.md §7.5).
    Subclasses (DFF) add the key frame."""

    def __init__(self, roidb, cfg):
        self.roidb, self.cfg = roidb, cfg

    def __len__(self):
        return len(self.roidb)

    def scale_index(self, epoch, index):
        """Which of cfg.SCALES this item is resized to: the original drew one per image each time it was
        loaded; here a draw from (seed, epoch, roidb index) (lib.utils.image.choose_scale)."""
        return choose_scale(self.cfg, 'train', epoch, index)

    def load(self, entry, path=None, scale_index=0):
        """One image of `entry` (its own, or `path`: a frame of the same video), checked against the
        entry's annotated size."""
        return prepare_image(path or entry['image'], self.cfg, flipped=entry['flipped'], scale_index=scale_index,
                             expected_size=(entry['height'], entry['width']))

    def gt_boxes(self, entry, scale, im_info, round_clip=True):
        boxes = entry['boxes'].astype(np.float32) * scale
        if round_clip:
            boxes = np.round(boxes)
            boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, im_info[1] - 1)
            boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, im_info[0] - 1)
        return np.concatenate([boxes, entry['gt_classes'][:, None].astype(np.float32)], 1)

    def __getitem__(self, item):
        epoch, index = item
        entry = self.roidb[index]
        tensor, im_info = self.load(entry, scale_index=self.scale_index(epoch, index))
        return {'data': tensor, 'im_info': im_info, 'gt_boxes': self.gt_boxes(entry, im_info[2], im_info),
                'epoch': epoch, 'index': index}


class BatchCollator:
    """Pads images of a micro-batch to a common size (bottom/right, zeros) and computes the RPN anchor
    targets for the padded feature map (as the original AnchorLoader)."""

    def __init__(self, cfg, extra_image_keys=()):
        self.cfg = cfg
        self.image_keys = ('data',) + tuple(extra_image_keys)
        self.base_anchors = generate_anchors(base_size=cfg.network.RPN_FEAT_STRIDE,
                                             ratios=tuple(cfg.network.ANCHOR_RATIOS),
                                             scales=tuple(cfg.network.ANCHOR_SCALES))

    def __call__(self, items):
        H = max(it['data'].shape[1] for it in items)
        W = max(it['data'].shape[2] for it in items)
        batch = {}
        for key in self.image_keys:
            if key in items[0]:
                out = torch.zeros(len(items), items[0][key].shape[0], H, W)
                for i, it in enumerate(items):
                    out[i, :, :it[key].shape[1], :it[key].shape[2]] = it[key]
                batch[key] = out
        batch['im_info'] = torch.from_numpy(np.stack([it['im_info'] for it in items]))
        batch['gt_boxes'] = [torch.from_numpy(it['gt_boxes']) for it in items]
        n2 = int(self.cfg.network.RPN_FEAT_STRIDE).bit_length() - 1  # stride-2 layers: 4 for 16, 3 for 8
        fh, fw = feature_size(H, n2), feature_size(W, n2)
        targets = [assign_anchor(fh, fw, torch.from_numpy(it['gt_boxes']), float(it['im_info'][0]),
                                 float(it['im_info'][1]), self.cfg,
                                 generator=item_generator(self.cfg.seed, it['epoch'], it['index'],
                                                          SALT_ANCHOR_SAMPLING),
                                 base_anchors=self.base_anchors)
                   for it in items]
        for k in ('label', 'bbox_target', 'bbox_weight'):
            batch['rpn_' + k] = torch.stack([t[k] for t in targets])
        for k in items[0]:
            if k not in batch and k not in ('data', 'gt_boxes', 'im_info'):
                batch[k] = [it[k] for it in items]
        return batch


class MicroBatchSampler(torch.utils.data.Sampler):
    """Yields this process's micro-batches of (epoch, index) from `start_update` of `epoch` on."""

    def __init__(self, order, epoch, start_update, rank, world_size, batch_images, accumulate):
        self.order, self.epoch, self.start_update = order, epoch, start_update
        self.rank, self.world_size = rank, world_size
        self.batch_images, self.accumulate = batch_images, accumulate

    def __len__(self):
        return (self.order.updates_per_epoch - self.start_update) * self.accumulate

    def __iter__(self):
        chunks = self.order.order(self.epoch)
        for u in range(self.start_update, self.order.updates_per_epoch):
            for m in range(self.accumulate):
                start = (m * self.world_size + self.rank) * self.batch_images
                yield [(self.epoch, int(i)) for i in chunks[u][start:start + self.batch_images]]


def accumulation_steps(cfg, world_size):
    """Micro-steps per optimiser update. With `gpus` set (the original's '0,1,2,3'), an update holds the
    original's len(gpus) x TRAIN.BATCH_IMAGES images whatever the number of processes: len(gpus) /
    world_size micro-steps (TRAIN.ACCUMULATE_GRAD may be left at 1 or give the same number). With gpus ''
    it is TRAIN.ACCUMULATE_GRAD. A split that does not divide is a ValueError saying how to fix it."""
    accumulate = int(cfg.TRAIN.ACCUMULATE_GRAD)
    if accumulate < 1:
        raise ValueError(f"TRAIN.ACCUMULATE_GRAD = {accumulate}: expected 1 or more micro-steps per update")
    gpus = [g for g in str(cfg.gpus).split(',') if g.strip()]
    if not gpus:
        return accumulate
    n = len(gpus)
    if n % world_size:
        fits = [k for k in range(1, n + 1) if n % k == 0]
        raise ValueError(f"gpus = '{cfg.gpus}': an update holds {n} x TRAIN.BATCH_IMAGES images, which "
                         f"{world_size} processes cannot share evenly: run {' or '.join(map(str, fits))} "
                         f"process(es) (torchrun --nproc_per_node), or set gpus='' and TRAIN.ACCUMULATE_GRAD")
    steps = n // world_size
    if accumulate not in (1, steps):
        raise ValueError(f"gpus = '{cfg.gpus}' over {world_size} process(es) means {steps} micro-step(s) per "
                         f"update, but TRAIN.ACCUMULATE_GRAD = {accumulate}: leave TRAIN.ACCUMULATE_GRAD at 1, "
                         f"or set gpus='' to use it")
    return steps


def images_per_update(cfg, world_size):
    return world_size * int(cfg.TRAIN.BATCH_IMAGES) * accumulation_steps(cfg, world_size)


def updates_per_epoch(cfg, roidb, world_size):
    return len(roidb) // images_per_update(cfg, world_size)


def make_train_loader(dataset, order, epoch, start_update, rank, world_size, cfg, collator):
    sampler = MicroBatchSampler(order, epoch, start_update, rank, world_size, cfg.TRAIN.BATCH_IMAGES,
                                accumulation_steps(cfg, world_size))
    workers = int(cfg.TRAIN.NUM_WORKERS)
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collator, num_workers=workers,
                                       persistent_workers=False, prefetch_factor=2 if workers else None)


__all__ = ['load_train_roidb', 'make_imdb', 'feature_size', 'EpochOrder', 'TrainDataset', 'BatchCollator',
           'make_train_loader', 'accumulation_steps', 'images_per_update', 'updates_per_epoch', 'item_generator',
           'SALT_ANCHOR_SAMPLING', 'SALT_ROI_SAMPLING', 'SALT_KEY_FRAME']
