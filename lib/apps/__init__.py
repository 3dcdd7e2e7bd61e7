"""Applications built on lib.core: the demos' shared frame source, drawing, timing and loop (demo)."""
