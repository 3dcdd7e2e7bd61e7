"""Applications built on lib.core: streaming detection frame by frame, the Python API's shared part (stream),
and the demos' drawing, writing, progress and loop on top of it (demo)."""
