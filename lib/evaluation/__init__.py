"""Evaluation of detections: the ImageNet VID protocol and the motion-specific mAP (imagenet_vid_eval)."""
