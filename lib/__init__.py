"""Shared code of the frame baseline (rfcn/) and Deep Feature Flow (dff_rfcn/).

Dependencies point one way: csrc/ + lib.ops <- lib <- rfcn, dff_rfcn <- experiments/, tools/.
"""
