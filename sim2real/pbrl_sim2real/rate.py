"""A fixed-period control loop timer (like ``rospy.Rate``), drift-free and counting overruns."""

from __future__ import annotations

import time
from typing import Callable


class Rate:
    """Call :meth:`sleep` once per loop iteration to run at ``1 / period_s`` Hz.

    Deadlines advance by exactly ``period_s`` (no drift from the loop body's duration). When the body overran
    a whole period, the schedule restarts from now instead of bursting to catch up, and ``overruns`` counts it.
    """

    def __init__(self, period_s: float, *, clock: Callable[[], float] = time.perf_counter,
                 sleeper: Callable[[float], None] = time.sleep) -> None:
        if not period_s > 0:
            raise ValueError(f"period_s: expected > 0, got {period_s}")
        self.period_s, self._clock, self._sleep = float(period_s), clock, sleeper
        self._next = self._clock() + self.period_s
        self.overruns = 0

    def sleep(self) -> float:
        """Wait until the next tick; returns the seconds slept (0 after an overrun)."""
        now = self._clock()
        wait = self._next - now
        if wait > 0:
            self._sleep(wait)
            self._next += self.period_s
            return wait
        self.overruns += 1
        self._next = now + self.period_s
        return 0.0
