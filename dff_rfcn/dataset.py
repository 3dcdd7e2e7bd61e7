"""DFF training pairs (get_pair_image, docs/fidelity.md §5.4): the annotated (current) frame plus a key frame
MIN_OFFSET..MAX_OFFSET frames away in the same video (clipped to the video), same flip and resize;
eq_flag = 1 when the key is the current frame and for DET images (key = the image itself)."""
import numpy as np
import torch

from lib.dataset.loader import SALT_KEY_FRAME, BatchCollator, TrainDataset, item_generator


class PairDataset(TrainDataset):
    def __getitem__(self, item):
        epoch, index = item
        entry = self.roidb[index]
        scale_index = self.scale_index(epoch, index)  # one scale for the pair (as get_pair_image)
        data, im_info = self.load(entry, scale_index=scale_index)
        if 'pattern' in entry:
            g = item_generator(self.cfg.seed, epoch, index, SALT_KEY_FRAME)
            lo, hi = int(self.cfg.TRAIN.MIN_OFFSET), int(self.cfg.TRAIN.MAX_OFFSET)
            offset = int(torch.randint(lo, hi + 1, (1,), generator=g))
            ref_id = int(np.clip(entry['frame_seg_id'] + offset, 0, entry['frame_seg_len'] - 1))
            eq = ref_id == entry['frame_seg_id']
            data_ref = data if eq else self.load(entry, entry['pattern'] % ref_id, scale_index)[0]
            if data_ref.shape != data.shape:
                raise ValueError(f"key frame {entry['pattern'] % ref_id} has another size than {entry['image']}")
        else:
            data_ref, eq = data, True
        return {'data': data, 'data_ref': data_ref, 'im_info': im_info,
                'gt_boxes': self.gt_boxes(entry, im_info[2], im_info, round_clip=False),
                'eq_flag': float(eq), 'epoch': epoch, 'index': index}


class PairCollator(BatchCollator):
    def __init__(self, cfg):
        super().__init__(cfg, extra_image_keys=('data_ref',))

    def __call__(self, items):
        batch = super().__call__(items)
        batch['eq_flag'] = torch.tensor(batch['eq_flag'], dtype=torch.float32)
        return batch
