"""A search that Ray stops under it ends in one line with the resume command, not a traceback."""

from __future__ import annotations

from ray.exceptions import OutOfMemoryError

from kdtune.errors import SearchInterrupted
from kdtune.search.tuning_run import killed_for_memory


def _tune_style_error(inner: BaseException) -> RuntimeError:
    """What Tune raises when a trial's actor dies: a RuntimeError raised while handling it."""
    try:
        try:
            raise inner
        except BaseException as exc:
            raise RuntimeError(f"Caught unexpected exception: {exc}") from None
    except RuntimeError as outer:
        outer.__context__ = inner
        return outer


def test_a_trial_killed_for_memory_is_recognised_through_the_chain():
    assert killed_for_memory(_tune_style_error(OutOfMemoryError("1 worker(s) were killed")))
    assert not killed_for_memory(_tune_style_error(ValueError("a bug in a trial")))
    assert not killed_for_memory(RuntimeError("plain"))


def test_the_interruption_names_the_reason_and_the_resume_command():
    text = str(SearchInterrupted("results/x", "Ray killed a trial: the node ran low on memory"))
    assert "\n" not in text
    assert text == ("search interrupted (Ray killed a trial: the node ran low on memory); finished "
                    "trials are kept; resume it with python -m kdtune.search --resume results/x")
