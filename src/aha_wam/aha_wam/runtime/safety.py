"""Guards that decide whether a predicted chunk may reach the arms; if not, the arms hold position."""
from __future__ import annotations

import dataclasses

import numpy as np

from piper_core.layout import LOWER14, UPPER14

# Piper limits per arm (joint1..joint6 rad, gripper total opening m): the layout's, defined once in piper_core.
from piper_core.layout import LOWER7 as PIPER_LOWER, UPPER7 as PIPER_UPPER  # noqa: E402


DEFAULT_TOLERANCE = 0.06           # rad, arm joints
DEFAULT_GRIPPER_TOLERANCE = 0.07   # m, grippers: one full stroke (see ChunkGuard)


@dataclasses.dataclass(frozen=True)
class Verdict:
    ok: bool
    nonfinite: bool = False
    out_of_limits: bool = False
    detail: str = ''


@dataclasses.dataclass(frozen=True)
class ChunkGuard:
    """Rejects chunks with NaN/Inf or targets beyond the joint limits (plus a tolerance); clamps the rest."""

    lower: np.ndarray = dataclasses.field(default_factory=lambda: LOWER14.copy())
    upper: np.ndarray = dataclasses.field(default_factory=lambda: UPPER14.copy())
    # rad (and m): predictions this close outside a limit are clamped, not rejected. Demonstrations start
    # exactly on limits (home: joint2 = 0, grippers closed = 0), so a trained policy's chunks graze them by a
    # few centi-radians; 0.06 accepts that and still rejects garbage.
    tolerance: float = DEFAULT_TOLERANCE
    # m: the gripper is a force-limited position servo and the Piper driver clamps its command to the stroke,
    # so "close a little more than fully" is the ordinary way to grasp (demonstrations command exactly 0 and
    # a policy overshoots that by centimetres). Only a target further than one stroke outside is garbage.
    gripper_tolerance: float = DEFAULT_GRIPPER_TOLERANCE

    def __post_init__(self):
        if self.lower.shape != self.upper.shape or np.any(self.lower > self.upper):
            raise ValueError('ChunkGuard: lower/upper must have the same shape and lower <= upper')
        if not (self.tolerance >= 0 and self.gripper_tolerance >= 0):
            raise ValueError('ChunkGuard: tolerances must be >= 0')
        margin = np.full(self.lower.shape, float(self.tolerance))
        margin[6::7] = self.gripper_tolerance      # per arm: joint1..joint6, then the gripper opening
        object.__setattr__(self, '_margin', margin)

    def check(self, chunk: np.ndarray) -> Verdict:
        if chunk.ndim != 2 or chunk.shape[1] != self.lower.shape[0]:
            return Verdict(False, detail=f'chunk shape {chunk.shape} != [H, {self.lower.shape[0]}]')
        if not np.all(np.isfinite(chunk)):
            bad = np.argwhere(~np.isfinite(chunk))[0]
            return Verdict(False, nonfinite=True, detail=f'non-finite action at step {bad[0]}, dim {bad[1]}')
        below = chunk < self.lower - self._margin
        above = chunk > self.upper + self._margin
        if below.any() or above.any():
            step, dim = np.argwhere(below | above)[0]
            return Verdict(False, out_of_limits=True,
                           detail=f'action dim {dim} = {chunk[step, dim]:.4f} at step {step} outside '
                                  f'[{self.lower[dim]:.4f}, {self.upper[dim]:.4f}]')
        return Verdict(True)

    def clamp(self, chunk: np.ndarray) -> np.ndarray:
        """Clamp an accepted chunk to the exact limits (removes the tolerance overshoot)."""
        return np.clip(chunk, self.lower, self.upper)
