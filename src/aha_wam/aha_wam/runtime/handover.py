"""Chunk hand-over: which part of a freshly predicted chunk is still in the future, and when it starts.

A chunk predicted from an observation taken at `obs_ns` describes actions for the control steps
obs, obs + dt, ..., obs + (H-1) dt. By the time inference has finished at `now_ns`, the first
d = ceil((now - obs) / dt) of them are already due or past: executing them late would replay the past.
So the executor starts the trajectory at the action that is due now (index d, stamp obs + d*dt) — the
"start the new chunk at the step that is now due" rule — and reports d, the inference delay measured in
consumed action steps (notes/aha-wam.md §11: measure delay in steps, not from a latency estimate).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class HandOver:
    """The executable tail of a chunk: actions[first:] start at `start_ns`, one every `period_ns`."""

    first: int               # index of the first action still to execute (= inference delay in steps)
    start_ns: int            # absolute time of actions[first], ns (common header.stamp of both arms)
    period_ns: int           # action step period, ns
    actions: np.ndarray      # [n, A] the executable actions (n = H - first, may be 0)

    @property
    def empty(self) -> bool:
        return self.actions.shape[0] == 0

    def times_from_start(self) -> np.ndarray:
        """Seconds from `start_ns` of every executable action: 0, dt, 2 dt, ..."""
        return np.arange(self.actions.shape[0]) * (self.period_ns * 1e-9)


def hand_over(chunk: np.ndarray, obs_ns: int, now_ns: int, period_ns: int) -> HandOver:
    """Cut `chunk` ([H, A], action i due at obs_ns + i*period_ns) at the first action not yet past `now_ns`."""
    if chunk.ndim != 2:
        raise ValueError(f'chunk must be [H, A], got shape {chunk.shape}')
    if period_ns <= 0:
        raise ValueError(f'period_ns must be positive, got {period_ns}')
    elapsed = max(0, now_ns - obs_ns)
    first = min(chunk.shape[0], math.ceil(elapsed / period_ns))
    return HandOver(first=first, start_ns=obs_ns + first * period_ns, period_ns=period_ns, actions=chunk[first:])
