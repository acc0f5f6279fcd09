"""Rate and latency bookkeeping for diagnostics (computed in-node: `ros2 topic hz` under-reads)."""
from __future__ import annotations

import collections
import threading
import time

import numpy as np


class RateMeter:
    """Events per second over a sliding window of the last `window` seconds."""

    def __init__(self, window: float = 2.0, clock=time.monotonic):
        self.window = window
        self.clock = clock
        self._times: collections.deque[float] = collections.deque()

    def tick(self) -> None:
        self._times.append(self.clock())

    def rate(self) -> float:
        now = self.clock()
        while self._times and now - self._times[0] > self.window:
            self._times.popleft()
        if len(self._times) < 2:
            return 0.0
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else 0.0


class LatencyStats:
    """Recent samples (ms) with percentiles."""

    def __init__(self, size: int = 500):
        self._samples: collections.deque[float] = collections.deque(maxlen=size)

    def add(self, ms: float) -> None:
        self._samples.append(float(ms))

    def percentiles(self, *qs: float) -> list[float]:
        if not self._samples:
            return [float('nan')] * len(qs)
        return [float(v) for v in np.percentile(np.asarray(self._samples), qs)]


class FrameClock:
    """Arrival times of camera frames, to phase-lock a fixed-rate loop to the camera.

    A 20 Hz executor sampling a 30 Hz camera at a random phase sees images up to one frame period (33 ms)
    old, and that age is pure end-to-end latency. When the next frame is due within `max_wait` s, the loop
    waits for it (bounded) and computes on a fresh image instead. Thread-safe: `arrived` is called from
    the subscription callback, `wait_if_imminent` from the control thread.
    """

    def __init__(self, max_wait: float, history: int = 16, clock=time.monotonic):
        if max_wait < 0:
            raise ValueError(f'max_wait must be >= 0 s, got {max_wait}')
        self.max_wait = float(max_wait)
        self.clock = clock
        self._arrivals: collections.deque[float] = collections.deque(maxlen=max(3, history))
        self._cond = threading.Condition()
        self._count = 0

    def arrived(self) -> None:
        with self._cond:
            self._arrivals.append(self.clock())
            self._count += 1
            self._cond.notify_all()

    def _period(self) -> float | None:          # caller holds the lock
        if len(self._arrivals) < 3:
            return None
        return float(np.median(np.diff(np.asarray(self._arrivals))))

    def period(self) -> float | None:
        """Median interval between recent frames, s (None until three frames arrived)."""
        with self._cond:
            return self._period()

    def due_in(self) -> float | None:
        """Seconds until the next frame is expected (negative if overdue); None while the period is unknown."""
        with self._cond:
            period = self._period()
            return None if period is None else self._arrivals[-1] + period - self.clock()

    def wait_if_imminent(self) -> float:
        """Block until the next frame arrives if it is due within `max_wait`; returns the seconds waited."""
        due = self.due_in()
        if due is None or not 0.0 < due <= self.max_wait:
            return 0.0
        t0 = self.clock()
        with self._cond:
            seen = self._count
            # A little slack past the expected arrival (delivery jitter), never more than max_wait in all.
            self._cond.wait_for(lambda: self._count != seen, timeout=min(self.max_wait, due + 0.005))
        return self.clock() - t0
