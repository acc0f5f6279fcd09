"""A drift-free periodic loop on its own thread (absolute deadlines on the monotonic clock)."""
from __future__ import annotations

import threading
import time
import traceback

import rclpy


class DeadlineLoop:
    """Calls ``fn()`` every ``period`` s at absolute deadlines (monotonic clock, no drift).

    When more than ``max_lag`` periods late (e.g. after a stall) it skips ahead instead of bursting.
    Records the lateness of each wake-up for jitter statistics (``lateness`` ring, seconds).
    """

    def __init__(self, period: float, fn, name: str = 'loop', max_lag: int = 5):
        self.period = float(period)
        self.fn = fn
        self.max_lag = max_lag
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.ticks = 0
        self.skipped = 0
        self._last_error = -1e9
        self.deadline = 0.0       # scheduled (not actual) monotonic time of the tick being run

    def start(self):
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0):
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        """The loop's thread has not ended yet (a tick may still be running after stop())."""
        return self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._stop.is_set()

    def _run(self):
        next_t = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now < next_t:
                self._stop.wait(next_t - now)
                if self._stop.is_set():
                    break
            self.deadline = next_t
            try:
                self.fn()
            except Exception:  # never let one bad tick kill the loop; stop quietly on shutdown
                if not rclpy.ok():
                    break
                if now - self._last_error > 1.0:
                    self._last_error = now
                    traceback.print_exc()
            self.ticks += 1
            next_t += self.period
            late = time.monotonic() - next_t
            if late > self.max_lag * self.period:
                skip = int(late // self.period) + 1
                next_t += skip * self.period
                self.skipped += skip
