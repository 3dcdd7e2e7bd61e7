"""Output folders of a run that may fail: remember which folders it created, so that a failed run removes
what it wrote and the folders it made, and nothing else."""
import os


def make_dirs(path):
    """os.makedirs(path); returns the topmost folder it created (None when `path` existed)."""
    path = os.path.abspath(path)
    top = None
    while not os.path.isdir(path if top is None else os.path.dirname(top)):
        top = path if top is None else os.path.dirname(top)
    os.makedirs(path, exist_ok=True)
    return top


def remove_file(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def remove_empty_dirs(path, top):
    """Remove `path` and its parents up to `top` (the folders make_dirs created), each only if empty."""
    if top is None:
        return
    path, top = os.path.abspath(path), os.path.abspath(top)
    while True:
        try:
            os.rmdir(path)
        except OSError:
            return  # not empty (or gone): left alone
        if path == top or not path.startswith(top + os.sep):
            return
        path = os.path.dirname(path)
