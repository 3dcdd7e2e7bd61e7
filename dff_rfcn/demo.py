#!/usr/bin/env python
"""Deep Feature Flow demo (docs/fidelity.md#9-demos): the full network on key frames, FlowNet
+ feature warping on the others, boxes with 'class score' drawn on the frames, written as
<output>/<stem>.jpg (and an mp4); --show-flow also writes each non-key frame's flow to the key frame as a
colour image <output>/flow/<stem>.png (Middlebury colour code, in pixels of the original frame,
normalised per frame; key frames have no flow and get none).

    python dff_rfcn/demo.py --cfg experiments/dff_rfcn/cfgs/resnet_v1_101_flownet_imagenet_vid_rfcn_end2end_ohem.yaml \\
        --checkpoint model/rfcn_dff_flownet_vid-0000.pth --input demo/ILSVRC2015_val_00007010 --output demo/rfcn_dff
    python -m dff_rfcn.demo ...   (the same, from the repository root)

Key frames: frame 0 and every --key-interval frames after it (default TEST.KEY_FRAME_INTERVAL = 10), by
position in the frame order (frame-number order for a folder); a key frame is its own key image.
Post-processing as the original: per-class NMS 0.3 on all boxes, detections with score > --thresh
(0.7). Prints the detector time per frame (network + box decoding), key and non-key frames apart, and
their averages after 2 warm-up frames. --batch: the original demo_batch.py, one forward per chunk of
key-interval frames (1 key + the others, DFF.detect_batch; time per frame = chunk time / frames in it).
Shared logic and the differences from the original: lib/apps/demo.py.
"""
import os

import torch

from lib.apps.demo import DemoInputError, cli, demo_arg_parser, load_demo_model, run_demo, setup


def main(argv=None):
    args = demo_arg_parser(__doc__, dff=True).parse_args(argv)
    cfg, device, class_names, source = setup(args)
    interval = int(cfg.TEST.KEY_FRAME_INTERVAL if args.key_interval is None else args.key_interval)
    if interval < 1:
        raise DemoInputError(f"the key frame interval must be at least 1, got {interval}")
    # the model imports the custom ops (lib/ops): after the options, so that --help works before they are built
    from dff_rfcn.model import DFF  # lazy: loads the custom ops (see above)
    from dff_rfcn.tester import VideoDetector  # lazy: loads the custom ops (see above)
    from lib.model.detection import im_detect_boxes  # lazy: loads the custom ops (see above)
    model = load_demo_model(DFF(cfg), args, cfg, device)
    detector = VideoDetector(model, interval)  # the tester's key-frame schedule and cache
    video = os.path.abspath(args.input)

    captured = {}
    if args.show_flow:  # keep FlowNet's (flow, scale) of the current frame; converted after the timing
        model.flownet.register_forward_hook(lambda module, inputs, output: captured.__setitem__('flow', output[0]))

    def detect(index, data, im_info):
        captured.clear()
        keys_before = detector.stats['key']
        scores, boxes = detector({'video': video, 'frame_seg_id': index}, data, im_info)
        kind = 'key' if detector.stats['key'] > keys_before else 'non-key'
        return scores, boxes, kind, captured.get('flow')

    @torch.no_grad()
    def detect_chunk(indices, data, im_info):
        """demo_batch.py: a chunk starts at a key frame; the key and the other frames in one forward."""
        captured.clear()
        scores, boxes = im_detect_boxes(model.detect_batch(data[:1], data[1:], im_info), im_info)
        flows = captured.get('flow')
        return [(s, b, 'batch', None if (k == 0 or flows is None) else flows[k - 1:k])
                for k, (s, b) in enumerate(zip(scores, boxes))]

    flow_dir = os.path.join(args.output, 'flow') if args.show_flow else None
    summary = run_demo(args, cfg, device, class_names, source, detect, name='dff demo', flow_dir=flow_dir,
                       detect_chunk=detect_chunk, chunk_size=interval if args.batch else None)
    summary['key_interval'] = interval
    return summary


if __name__ == '__main__':
    cli(main)
