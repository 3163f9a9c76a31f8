"""Fault injection for the resilience tests: exact moments at which to kill a real search.

Like Ray's own ``RAY_testing_*`` variables, these are read from the environment and do nothing
unless set. They exist so that tests can kill a real search (a real driver, real Ray, real
trials) at the moments where a resume can go wrong, instead of hoping a timer in the test
process lands there (a test's polling loop can be starved of the CPU for seconds):

* ``KDTUNE_TESTING_HOLD_S=<seconds>``: a trial sleeps this long after each checkpoint that is not
  its last, so a kill can land while a trial is mid-way with a checkpoint;
  ``KDTUNE_TESTING_HOLD_KIND=<kind>`` limits that to ``kind`` trials (``search`` or ``confirm``),
  so a run killed in its confirm stage does not wait in every search trial first.
* ``KDTUNE_TESTING_KILL_AFTER_CHECKPOINT=<kind>``: ``KILL_DELAY_S`` after the first checkpointed
  result of a ``kind`` trial (``search`` or ``confirm``) reaches it, the driver kills itself
  (one snapshot period later, so Ray's saved state names that checkpoint; with the hold above
  and ``train.epochs >= 2`` the trial is mid-way then).
* ``KDTUNE_TESTING_KILL_BEFORE_RECORD=<n>``: at the n-th trial end this driver sees, it kills
  itself before writing that trial's record.
* ``KDTUNE_TESTING_KILL_AFTER_RECORD=<kind>``: at the first end of a ``kind`` trial, it kills
  itself just after writing that trial's record, before Ray's next snapshot can hold the end
  (the record is then ahead of Ray's saved state: the resume must not train that trial again).
  With it, a held ``kind`` trial goes on after its hold only once another trial of its stage
  has a checkpoint old enough for Ray's snapshot to hold it, so the kill finds that trial
  mid-way with a checkpoint even when it started late (a CI run once found none: its actor
  had waited for a CPU). Local storage only (the checkpoints are looked for on disk).

A driver "kills itself" with SIGKILL to its process group when it leads one (as a SIGKILL from
outside a search started in its own session would: Ray's processes go with it).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

HOLD_ENV = "KDTUNE_TESTING_HOLD_S"
HOLD_KIND_ENV = "KDTUNE_TESTING_HOLD_KIND"
KILL_AFTER_CHECKPOINT_ENV = "KDTUNE_TESTING_KILL_AFTER_CHECKPOINT"
KILL_BEFORE_RECORD_ENV = "KDTUNE_TESTING_KILL_BEFORE_RECORD"
KILL_AFTER_RECORD_ENV = "KDTUNE_TESTING_KILL_AFTER_RECORD"
KILL_DELAY_S = 3.0  # > TUNE_GLOBAL_CHECKPOINT_S (2 s): the snapshot after the checkpoint is saved
SIBLING_WAIT_S = 60.0  # at most this long for another trial's checkpoint (then go on without)

_seen = {"trial_end": 0, "armed": False}


def hold_after_checkpoint(kind: str, context: Any = None) -> None:
    """A ``kind`` trial just saved a checkpoint that is not its last (``context``: its Ray Tune
    context, whose storage names the trial's folder)."""
    seconds = float(os.environ.get(HOLD_ENV) or 0)
    if seconds > 0 and os.environ.get(HOLD_KIND_ENV) in (None, "", kind):
        time.sleep(seconds)
        if context is not None and os.environ.get(KILL_AFTER_RECORD_ENV) == kind:
            wait_for_another_checkpoint(Path(context.get_storage().trial_fs_path))


def wait_for_another_checkpoint(trial_folder: Path) -> None:
    """Until a trial folder beside ``trial_folder`` holds a checkpoint written at least
    ``KILL_DELAY_S`` ago (Ray has registered it and snapshotted since), or ``SIBLING_WAIT_S``."""
    deadline = time.monotonic() + SIBLING_WAIT_S
    while time.monotonic() < deadline:
        now = time.time()
        for checkpoint in trial_folder.parent.glob("*/checkpoint_*"):
            if checkpoint.parent != trial_folder and now - checkpoint.stat().st_mtime >= KILL_DELAY_S:
                return
        time.sleep(0.2)


def after_checkpoint(kind: str) -> None:
    """A checkpointed result of a ``kind`` trial reached the driver."""
    if os.environ.get(KILL_AFTER_CHECKPOINT_ENV) != kind or _seen["armed"]:
        return
    _seen["armed"] = True
    timer = threading.Timer(KILL_DELAY_S, kill_self)
    timer.daemon = True
    timer.start()


def before_record() -> None:
    wanted = int(os.environ.get(KILL_BEFORE_RECORD_ENV) or 0)
    if wanted <= 0:
        return
    _seen["trial_end"] += 1
    if _seen["trial_end"] == wanted:
        kill_self()


def after_record(kind: str) -> None:
    """A ``kind`` trial's end was just recorded."""
    if os.environ.get(KILL_AFTER_RECORD_ENV) == kind:
        kill_self()


def kill_self() -> None:
    """SIGKILL this process, with its group when it leads one (a test's own search session)."""
    if os.getpgid(0) == os.getpid():
        os.killpg(os.getpid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)
