"""The GPU check's hard overall deadline.

At the deadline a one-shot alarm (``SIGALRM``) raises :class:`DeadlineExceeded` in the main thread,
wherever a row is: the row and every row after it read ``n/a (deadline)``. Should the main
thread be stuck in native code that never returns to Python, a watchdog thread calls
``on_hang`` (write what was measured, stop the trial processes, exit) ``grace`` seconds later,
so the lent machine is never held past its limit.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from typing import Any


class DeadlineExceeded(BaseException):  # noqa: N818 - like KeyboardInterrupt: no `except Exception` swallows it
    """The overall deadline passed."""


class Deadline:
    """``Deadline(seconds, on_hang).run(fn)`` runs ``fn`` under the alarm and the watchdog;
    ``left()`` says how many seconds remain (timeouts inside rows are bounded by it)."""

    def __init__(self, seconds: float, on_hang: Callable[[], None], grace: float = 20.0):
        self.seconds, self.on_hang, self.grace = seconds, on_hang, grace
        self.end = time.monotonic() + seconds
        self._previous: Any = None
        self._watchdog: threading.Timer | None = None

    def left(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def passed(self) -> bool:
        return self.left() <= 0.0

    def check(self) -> None:
        if self.passed():
            raise DeadlineExceeded(f"the {self.seconds:g} s deadline passed")

    def _alarm(self, signum: int, frame: Any) -> None:
        raise DeadlineExceeded(f"the {self.seconds:g} s deadline passed")

    def arm(self) -> None:
        self.end = time.monotonic() + self.seconds
        self._watchdog = threading.Timer(self.seconds + self.grace, self.on_hang)
        self._watchdog.daemon = True
        self._watchdog.start()
        if hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGALRM, self._alarm)
            signal.setitimer(signal.ITIMER_REAL, max(self.seconds, 1e-6))  # one shot

    def disarm(self) -> None:
        """Stop the alarm and the watchdog; safe to call twice."""
        if self._previous is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous)
            self._previous = None
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def run(self, fn: Callable[[], None]) -> bool:
        """``fn()`` under the deadline: True if it finished, False if the deadline cut it,
        wherever the alarm struck (arming, inside ``fn``, or while disarming)."""
        finished = False
        try:
            try:
                self.arm()
                fn()
                finished = True
            finally:
                self.disarm()
        except DeadlineExceeded:
            self.disarm()  # the alarm is one-shot: once it has struck, this cannot be cut
        return finished
