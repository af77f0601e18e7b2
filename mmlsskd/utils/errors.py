"""The errors LSSKD refuses a setting, a checkpoint or a step with.

Each names what is wrong and how to fix it, one sentence each, and is
raised as early as the information exists; the checks themselves live
beside what they check (the store's in the store, the checkpoint's in
:mod:`mmlsskd.utils.checkpoint_checks`, the training set's in
:mod:`mmlsskd.datasets.training_set_checks`).
"""


class LSSKDConfigError(ValueError):
    """A setting that cannot work, found before training starts."""


class LSSKDCheckpointError(ValueError):
    """A checkpoint that cannot be resumed or loaded as asked."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written; the earlier ones are intact."""


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite; the step was not applied."""


def refusal_message(subject: str, problem: str, fix: str) -> str:
    """``subject: problem. fix``, as every refusal reads."""
    return f'{subject}: {problem}. {fix}'


def config_error(subject: str, problem: str, fix: str) -> LSSKDConfigError:
    """An :class:`LSSKDConfigError` worded as every other one."""
    return LSSKDConfigError(refusal_message(subject, problem, fix))


def check_unit_interval(
        subject: str,
        value: float,
        fix: str = 'It is the weight of the past prediction in the soft '
        'target; PS-KD uses 0.8, 0 switches past predictions off.') -> None:
    """``value`` must lie in [0, 1] (e.g. ``alpha_T``)."""
    if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise config_error(subject, f'must lie in [0, 1], got {value!r}',
                           fix)
