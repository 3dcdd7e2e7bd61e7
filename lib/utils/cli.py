"""Error handling of the entry scripts: bad input (a missing file, a malformed config, list, annotation,
image or checkpoint, a checkpoint that does not fit the config, a file refused because loading it could run
code, a full disk while saving, custom ops that are not built) ends with one 'error: ...' line, which names
the file, key or shape at fault, and exit status 2, instead of a traceback. DFF_DEBUG=1 re-raises, for the
traceback.

A SIGTERM (a scheduler's cancel, `kill`, torchrun stopping the other workers after one failed) ends the process
as Ctrl-C does, through Python's clean-up instead of around it: the temporary files of an interrupted save
or test are removed (lib/utils/fileio.atomic_write, the test's per-rank parts) and the exit status is 143.

An error raised in a DataLoader worker reaches the main process re-raised by torch as the same type with
the message "Caught ValueError in DataLoader worker process 0.\\nOriginal Traceback ...": it is reported
with the worker's original message, exactly as the same error raised in the main process."""
import os
import re
import signal
import sys
import threading

from lib.utils.fileio import DiskFullError

# ConfigError and the datasets' / checkpoints' input errors are ValueErrors (a file refused because loading
# it could run code too); class-list lookups KeyErrors; a full disk while saving DiskFullError
USER_ERRORS = (FileNotFoundError, NotADirectoryError, ValueError, KeyError, DiskFullError)
OPS_MODULE = 'lib.ops._C'  # lib/ops/_loader.py raises ImportError(name=OPS_MODULE) when the ops are not built

_WORKER = re.compile(r'^Caught (\w+) in DataLoader worker process \d+\.\nOriginal Traceback')


def user_message(e):
    """The message to show for a user error `e` (a worker's original message when torch wrapped it)."""
    message = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
    m = _WORKER.match(message)
    if m:
        # the traceback's last part is '<module.>ExcName: message' (possibly several lines): take it
        found = list(re.finditer(rf'^(?:[\w.]+\.)?{m.group(1)}: ', message, flags=re.M))
        if found:
            message = message[found[-1].end():].rstrip('\n')
            if isinstance(e, KeyError) and len(message) > 1 and message[0] == message[-1] and message[0] in '"\'':
                message = message[1:-1]  # a KeyError's message is printed with its quotes
    return message


def _close_progress_bars():
    """Close the progress bars a failed loop left open, so that the error line starts a line of its own."""
    tqdm = sys.modules.get('tqdm')
    for bar in list(getattr(getattr(tqdm, 'tqdm', None), '_instances', ())):
        bar.close()


class Terminated(SystemExit):
    """Raised in the main thread by a SIGTERM while run_cli runs (exit status 128 + 15)."""


def _install_sigterm():
    """SIGTERM -> Terminated in this process's main thread (module docstring); a process forked from it (a
    DataLoader worker) keeps the default: it dies at once, as before."""
    if threading.current_thread() is not threading.main_thread():
        return None
    owner = os.getpid()

    def on_sigterm(signum, frame):
        if os.getpid() != owner:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM during the clean-up kills at once
        _close_progress_bars()
        print('terminated (SIGTERM): stopping, temporary files removed', file=sys.stderr)
        raise Terminated(128 + signal.SIGTERM)

    return signal.signal(signal.SIGTERM, on_sigterm)


def run_cli(fn, *args, errors=USER_ERRORS):
    """fn(*args); a user error -> 'error: <message>' on stderr and exit status 2; SIGTERM -> clean-up and exit
    status 143 (module docstring)."""
    previous = _install_sigterm()
    try:
        return fn(*args)
    except (*errors, ImportError) as e:
        if os.environ.get('DFF_DEBUG') or (isinstance(e, ImportError) and e.name != OPS_MODULE
                                           and not isinstance(e, errors)):
            raise
        _close_progress_bars()
        print(f'error: {user_message(e)}\n(DFF_DEBUG=1 shows the traceback)', file=sys.stderr)
        sys.exit(2)
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
