#!/usr/bin/env python
"""Frame-baseline demo (the original rfcn/demo.py; docs/fidelity.md#9-demos): R-FCN on every frame of a folder of frames
or a video, boxes with 'class score' drawn on the frames, written as <output>/<stem>.jpg (and an mp4).

    python rfcn/demo.py --cfg experiments/rfcn/cfgs/resnet_v1_101_imagenet_vid_rfcn_end2end_ohem.yaml \\
        --checkpoint model/rfcn_vid-0000.pth --input demo/ILSVRC2015_val_00007010 --output demo/rfcn
    python -m rfcn.demo ...   (the same, from the repository root)

Post-processing as the original: per-class NMS 0.3 on all boxes, detections with score > --thresh
(0.7). Prints the detector time per frame (network + box decoding) and the average after 2 warm-up
frames. --batch: the original demo_batch.py, 10 frames per forward (time per frame = batch time / 10).
Shared logic and the differences from the original: lib/apps/demo.py.
"""
import torch

from lib.apps.demo import cli, demo_arg_parser, load_demo_model, run_demo, setup

BATCH_FRAMES = 10  # the original rfcn/demo_batch.py: batches of 10 frames


def main(argv=None):
    args = demo_arg_parser(__doc__).parse_args(argv)
    cfg, device, class_names, source = setup(args)
    # the model imports the custom ops (lib/ops): after the options, so that --help works before they are built
    from lib.model.detection import im_detect_boxes  # lazy: loads the custom ops (see above)
    from rfcn.model import RFCN  # lazy: loads the custom ops (see above)
    model = load_demo_model(RFCN(cfg), args, cfg, device)

    @torch.no_grad()
    def detect(index, data, im_info):
        scores, boxes = im_detect_boxes(model.detect(data, im_info), im_info)
        return scores[0], boxes[0], 'frame', None

    @torch.no_grad()
    def detect_chunk(indices, data, im_info):  # demo_batch.py: the frames of a chunk in one forward
        scores, boxes = im_detect_boxes(model.detect(data, im_info), im_info)
        return [(s, b, 'frame', None) for s, b in zip(scores, boxes)]

    return run_demo(args, cfg, device, class_names, source, detect, name='rfcn demo', detect_chunk=detect_chunk,
                    chunk_size=BATCH_FRAMES if args.batch else None)


if __name__ == '__main__':
    cli(main)
