"""Error handling of the entry scripts: bad input (a missing file, a malformed config, list, annotation or
checkpoint, a checkpoint that does not fit the config, a file refused because loading it could run code, a
full disk while saving) ends with one 'error: ...' line, which names the file, key or shape at fault, and
exit status 2, instead of a traceback. DFF_DEBUG=1 re-raises, for the traceback."""
import os
import sys

from lib.utils.fileio import DiskFullError

# ConfigError and the datasets' / checkpoints' input errors are ValueErrors (a file refused because loading
# it could run code too); class-list lookups KeyErrors; a full disk while saving DiskFullError
USER_ERRORS = (FileNotFoundError, NotADirectoryError, ValueError, KeyError, DiskFullError)


def run_cli(fn, *args, errors=USER_ERRORS):
    """fn(*args); a user error -> 'error: <message>' on stderr and exit status 2."""
    try:
        return fn(*args)
    except errors as e:
        if os.environ.get('DFF_DEBUG'):
            raise
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f'error: {message}\n(DFF_DEBUG=1 shows the traceback)', file=sys.stderr)
        sys.exit(2)
