#!/usr/bin/env python
"""Frame-baseline demo (the original rfcn/demo.py; docs/fidelity.md#9-demos), a thin user of rfcn/api.py:
R-FCN on every frame of a folder of frames, a video, a camera or a stream, boxes with 'class score' drawn on
the frames, written as <output>/<stem>.jpg (and --mp4, H.264 with PyAV installed).

    python rfcn/demo.py --checkpoint model/rfcn_vid-0000.params \\
        --input demo/ILSVRC2015_val_00007010 --output demo/rfcn --mp4 demo/rfcn.mp4
    python -m rfcn.demo ...   (the same, from the repository root)

--cfg: default the config stored in the checkpoint, else the real ImageNet VID yaml
(experiments/rfcn/cfgs/resnet_v1_101_imagenet_vid_rfcn_end2end_ohem.yaml).
Post-processing as the original: per-class NMS 0.3 on all boxes, detections with score > --thresh
(0.7). Prints the detector time per frame (network + box decoding) and the average after 2 warm-up
frames. --batch: the original demo_batch.py, 10 frames per forward (time per frame = batch time / 10).
Shared logic and the differences from the original: lib/apps/demo.py, lib/apps/stream.py.
"""
from lib.apps.demo import cli, demo_arg_parser, open_input, run_demo


def main(argv=None):
    args = demo_arg_parser(__doc__).parse_args(argv)
    source = open_input(args)
    # the model imports the custom ops (lib/ops): after the options, so that --help works before they are built
    from rfcn.api import load_detector  # lazy: loads the custom ops (see above)
    detector = load_detector(args.checkpoint, cfg=args.cfg, device=args.device, overrides=args.set, fast=args.fast)
    return run_demo(args, detector, source, name='rfcn demo')


if __name__ == '__main__':
    cli(main)
