"""Shared code of the frame baseline (rfcn/) and Deep Feature Flow (dff_rfcn/).

Dependencies point one way: csrc/ + lib.ops <- lib <- rfcn, dff_rfcn <- experiments/, tools/.
Inside lib, lowest first: lib.ops <- lib.{config, bbox, utils} <- lib.{rpn, rcnn} <- lib.{dataset, model}
<- lib.evaluation <- lib.core <- lib.apps; tests/test_layers.py keeps these rules.
"""
