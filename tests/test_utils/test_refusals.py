"""The tools' refusal wrapper: the project's refusals end in their message
and exit status 1 (reliability.md); every other error keeps its
traceback."""
import pytest

from mmlsskd.utils import (CheckpointWriteError, LSSKDCheckpointError,
                           LSSKDConfigError, NonFiniteLossError)
from mmlsskd.utils.refusals import refusals_without_traceback
from mmlsskd.utils.work_dir_lock import WorkDirInUseError


@pytest.mark.parametrize('error', [
    LSSKDConfigError, LSSKDCheckpointError, CheckpointWriteError,
    NonFiniteLossError, WorkDirInUseError
])
def test_a_refusal_is_its_message_and_status_1(error, capsys):
    with pytest.raises(SystemExit) as exit_:
        with refusals_without_traceback():
            raise error('subject: what is wrong. How to fix it.')
    assert exit_.value.code == 1
    # No traceback is chained to the exit: the message is all a user sees.
    assert exit_.value.__cause__ is None and exit_.value.__suppress_context__
    assert capsys.readouterr().err == \
        f'{error.__name__}: subject: what is wrong. How to fix it.\n'


@pytest.mark.parametrize('error', [
    RuntimeError, KeyError, ValueError, OSError, FloatingPointError,
    AssertionError
])
def test_an_unexpected_error_keeps_its_traceback(error, capsys):
    """Errors the project did not raise on purpose, even of a refusal's
    base class (ValueError, OSError, FloatingPointError), are crashes to
    debug, not refusals."""
    raised = error('boom')
    with pytest.raises(error) as caught:
        with refusals_without_traceback():
            raise raised
    assert caught.value is raised
    assert caught.value.__traceback__ is not None
    assert capsys.readouterr().err == ''
