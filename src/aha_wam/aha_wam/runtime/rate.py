"""Rate and latency bookkeeping for diagnostics (computed in-node: `ros2 topic hz` under-reads)."""
from __future__ import annotations

import collections
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
