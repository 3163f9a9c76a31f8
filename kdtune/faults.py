"""Fault injection for the resilience tests: exact moments at which to kill a real search.

Like Ray's own ``RAY_testing_*`` variables, these are read from the environment and do nothing
unless set. They exist so that tests can kill a real search (a real driver, real Ray, real
trials) at the moments where a resume can go wrong, instead of hoping a timer lands there:

* ``KDTUNE_TESTING_HOLD_S=<seconds>``: a trial sleeps this long after each checkpoint that is not
  its last, so a test can kill the search while a trial is mid-way with a checkpoint.
* ``KDTUNE_TESTING_KILL_BEFORE_RECORD=<n>``: at the n-th trial end this driver sees, it kills
  itself (and its process group when it leads one, as a SIGKILL from outside would) before
  writing that trial's record.
"""

from __future__ import annotations

import os
import signal
import time

HOLD_ENV = "KDTUNE_TESTING_HOLD_S"
KILL_BEFORE_RECORD_ENV = "KDTUNE_TESTING_KILL_BEFORE_RECORD"

_seen = {"trial_end": 0}


def hold_after_checkpoint() -> None:
    seconds = float(os.environ.get(HOLD_ENV) or 0)
    if seconds > 0:
        time.sleep(seconds)


def before_record() -> None:
    wanted = int(os.environ.get(KILL_BEFORE_RECORD_ENV) or 0)
    if wanted <= 0:
        return
    _seen["trial_end"] += 1
    if _seen["trial_end"] == wanted:
        kill_self()


def kill_self() -> None:
    """SIGKILL this process, with its group when it leads one (a test's own search session)."""
    if os.getpgid(0) == os.getpid():
        os.killpg(os.getpid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)
