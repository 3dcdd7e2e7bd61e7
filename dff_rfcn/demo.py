#!/usr/bin/env python
"""Deep Feature Flow demo (docs/fidelity.md#9-demos), a thin user of dff_rfcn/api.py: the full network on key
frames, FlowNet + feature warping on the others, boxes with 'class score' drawn on the frames, key frames
marked, written as <output>/<stem>.jpg (and --mp4, H.264 with PyAV installed); --show-flow draws each frame's
flow to its key frame beside it, on one colour scale for the whole video with a colour-wheel legend, and writes
it as <output>/flow/<stem>.png (Middlebury colour code, in pixels of the original frame; key frames have no
flow and get none).

    python dff_rfcn/demo.py --checkpoint model/rfcn_dff_flownet_vid-0000.params \\
        --input demo/ILSVRC2015_val_00007010 --output demo/rfcn_dff --mp4 demo/rfcn_dff.mp4 --show-flow
    python -m dff_rfcn.demo ...   (the same, from the repository root)

--cfg: default the config stored in the checkpoint, else the real ImageNet VID yaml
(experiments/dff_rfcn/cfgs/resnet_v1_101_flownet_imagenet_vid_rfcn_end2end_ohem.yaml).
Key frames: frame 0 and every --key-interval frames after it (default TEST.KEY_FRAME_INTERVAL = 10), by
position in the frame order (frame-number order for a folder); a key frame is its own key image.
--key-interval adaptive: key frames where the video needs them (docs/key_frames.md).
Post-processing as the original: per-class NMS 0.3 on all boxes, detections with score > --thresh
(0.7). Prints the detector time per frame (network + box decoding), key and non-key frames apart, and
their averages after 2 warm-up frames. --batch: the original demo_batch.py, one forward per chunk of
key-interval frames (1 key + the others, DFF.detect_batch; time per frame = chunk time / frames in it).
Shared logic and the differences from the original: lib/apps/demo.py, lib/apps/stream.py.
"""
from lib.apps.demo import cli, demo_arg_parser, open_input, run_demo


def main(argv=None):
    args = demo_arg_parser(__doc__, dff=True).parse_args(argv)
    source = open_input(args)
    # the model imports the custom ops (lib/ops): after the options, so that --help works before they are built
    from dff_rfcn.api import load_detector  # lazy: loads the custom ops (see above)
    detector = load_detector(args.checkpoint, cfg=args.cfg, device=args.device, key_interval=args.key_interval,
                             overrides=args.set, fast=args.fast)
    summary = run_demo(args, detector, source, name='dff demo')
    summary['key_interval'] = detector.settings['key_interval']
    return summary


if __name__ == '__main__':
    cli(main)
