"""How the tools end on a refusal the project raised on purpose."""
import sys
from contextlib import contextmanager

from .errors import (CheckpointWriteError, LSSKDCheckpointError,
                     LSSKDConfigError, NonFiniteLossError)
from .work_dir_lock import WorkDirInUseError

# Errors whose message already says what is wrong and what to do.
REFUSALS = (LSSKDConfigError, LSSKDCheckpointError, CheckpointWriteError,
            NonFiniteLossError, WorkDirInUseError)


@contextmanager
def refusals_without_traceback():
    """Print a refusal's message alone and exit with status 1.

    A traceback buries the message that names the problem and the fix under
    frames of mmengine's Runner; unexpected errors keep theirs.
    """
    try:
        yield
    except REFUSALS as error:
        print(f'{type(error).__name__}: {error}', file=sys.stderr, flush=True)
        raise SystemExit(1) from None
