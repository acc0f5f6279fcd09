"""ROS-free trajectory validation, replacement and interpolation for the trajectory streamer.

Semantics follow ros2_controllers' joint_trajectory_controller (shared notes ros2.md §4):

* ``start`` (the header stamp, seconds) 0 = start now (at the next tick); otherwise the absolute start
  time. A trajectory whose last point already lies in the past is rejected.
* ``time_from_start`` strictly increasing and >= 0. Joint names: a non-empty, duplicate-free subset of
  ``joint1..joint6, gripper``; joints not named keep the desired value they had when the trajectory
  became active.
* A new trajectory **replaces the old one from its start time**: queued trajectories starting at or
  after the new start are dropped; the one running before keeps running until the new start.
* Interpolation: positions only -> linear; with velocities -> cubic Hermite (accelerations are
  accepted but ignored). Before the first point it interpolates from the *desired* state at activation
  (``interpolate_from_desired_state``), so streamed chunks join without jumps.
* After the last point the final positions are held; with nothing received the arm holds the first
  measured position.
* Limits: positions further than ``position_tolerance`` outside the joint limits are rejected; those
  within the tolerance are clamped. The output is rate-limited to the per-joint velocity limits (a
  trajectory that asks for more lags behind rather than exceeding them; a warning says so at accept).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .piper_interface import JOINT_NAMES, LOWER7, MAX_VELOCITY7, UPPER7


class TrajectoryError(ValueError):
    """The trajectory is malformed and was rejected (the message says why)."""


@dataclass(frozen=True)
class Limits:
    lower: np.ndarray = field(default_factory=lambda: LOWER7.copy())         # (7,)
    upper: np.ndarray = field(default_factory=lambda: UPPER7.copy())         # (7,)
    max_velocity: np.ndarray = field(default_factory=lambda: MAX_VELOCITY7.copy())  # (7,) > 0
    position_tolerance: np.ndarray = field(default_factory=lambda: np.array([0.02] * 6 + [0.005]))

    def __post_init__(self):
        for key in ('lower', 'upper', 'max_velocity', 'position_tolerance'):
            v = np.asarray(getattr(self, key), dtype=float)
            if v.shape != (7,) or not np.all(np.isfinite(v)):
                raise ValueError(f'{key} must be 7 finite numbers (joint1..joint6, gripper), got {v.tolist()}')
            object.__setattr__(self, key, v)
        if np.any(self.lower > self.upper):
            raise ValueError('lower limit above upper limit')
        if np.any(self.max_velocity <= 0):
            raise ValueError('max_velocity must be > 0')
        if np.any(self.position_tolerance < 0):
            raise ValueError('position_tolerance must be >= 0')


@dataclass(frozen=True)
class Trajectory:
    """A validated trajectory for one arm."""
    index: np.ndarray               # (k,) indices into the 7-vector joint1..joint6, gripper
    t: np.ndarray                   # (n,) time_from_start, s, strictly increasing, >= 0
    pos: np.ndarray                 # (n, k)
    vel: np.ndarray | None          # (n, k) or None (linear interpolation)
    start: float                    # header stamp, s (0 = start on receipt)
    peak_velocity_ratio: float      # max over segments of |dq/dt| / max_velocity (> 1: will lag)

    @property
    def duration(self) -> float:
        return float(self.t[-1])


def parse_trajectory(joint_names, points, start: float, limits: Limits) -> Trajectory:
    """Validate a JointTrajectory given as ``joint_names`` and ``points`` = sequence of
    (time_from_start s, positions, velocities, accelerations); raises TrajectoryError."""
    names = list(joint_names)
    if not names:
        raise TrajectoryError('no joint_names')
    if len(set(names)) != len(names):
        raise TrajectoryError(f'duplicate joint names {names}')
    unknown = [n for n in names if n not in JOINT_NAMES]
    if unknown:
        raise TrajectoryError(f'unknown joint names {unknown} (expected a subset of {list(JOINT_NAMES)})')
    if not math.isfinite(start) or start < 0:
        raise TrajectoryError(f'bad header stamp {start}')
    if len(points) == 0:
        raise TrajectoryError('no points')
    k = len(names)
    index = np.array([JOINT_NAMES.index(n) for n in names])
    t = np.empty(len(points))
    pos = np.empty((len(points), k))
    has_vel = len(points[0][2]) > 0
    vel = np.empty((len(points), k)) if has_vel else None
    for i, (tfs, p, v, a) in enumerate(points):
        if len(p) != k:
            raise TrajectoryError(f'point {i}: {len(p)} positions for {k} joints')
        if has_vel and len(v) != k:
            raise TrajectoryError(f'point {i}: {len(v)} velocities for {k} joints (all points or none)')
        if not has_vel and len(v) != 0:
            raise TrajectoryError(f'point {i}: velocities given but point 0 has none')
        if len(a) not in (0, k):
            raise TrajectoryError(f'point {i}: {len(a)} accelerations for {k} joints')
        t[i] = tfs
        pos[i] = p
        if has_vel:
            vel[i] = v
    if not np.all(np.isfinite(t)) or not np.all(np.isfinite(pos)) or (has_vel and not np.all(np.isfinite(vel))):
        raise TrajectoryError('non-finite time, position or velocity')
    if t[0] < 0:
        raise TrajectoryError(f'negative time_from_start {t[0]}')
    if len(t) > 1 and np.any(np.diff(t) <= 0):
        i = int(np.argmax(np.diff(t) <= 0)) + 1
        raise TrajectoryError(f'time_from_start not strictly increasing at point {i} ({t[i - 1]} -> {t[i]})')
    lo, hi, tol = limits.lower[index], limits.upper[index], limits.position_tolerance[index]
    bad = (pos < lo - tol) | (pos > hi + tol)
    if np.any(bad):
        i, j = np.argwhere(bad)[0]
        raise TrajectoryError(f'point {i}: {names[j]} = {pos[i, j]:.4f} outside limits '
                              f'[{lo[j]:.4f}, {hi[j]:.4f}] (tolerance {tol[j]})')
    pos = np.clip(pos, lo, hi)
    ratio = 0.0
    if len(t) > 1:
        seg_v = np.abs(np.diff(pos, axis=0)) / np.diff(t)[:, None]
        ratio = float(np.max(seg_v / limits.max_velocity[index]))
    if has_vel:
        ratio = max(ratio, float(np.max(np.abs(vel) / limits.max_velocity[index])))
    return Trajectory(index=index, t=t, pos=pos, vel=vel, start=float(start), peak_velocity_ratio=ratio)


def _hermite(t0, t1, p0, p1, v0, v1, t):
    h = t1 - t0
    s = (t - t0) / h
    s2, s3 = s * s, s * s * s
    return ((2 * s3 - 3 * s2 + 1) * p0 + (s3 - 2 * s2 + s) * h * v0
            + (-2 * s3 + 3 * s2) * p1 + (s3 - s2) * h * v1)


class _Active:
    """A trajectory that has become active at ``t_act`` from desired state ``q_act``."""

    def __init__(self, traj: Trajectory, t_act: float, q_act: np.ndarray):
        self.traj = traj
        self.q_act = q_act.copy()          # (7,) desired state at activation
        self.tau_act = t_act - traj.start  # activation time on the trajectory's own clock

    def sample(self, now: float) -> np.ndarray:
        tr = self.traj
        q = self.q_act.copy()
        tau = now - tr.start
        if tau >= tr.t[-1]:
            q[tr.index] = tr.pos[-1]
        elif tau < tr.t[0]:
            # Pre-segment: from the desired state at activation to the first point.
            t0 = min(self.tau_act, tr.t[0])
            if tr.t[0] - t0 <= 1e-9:
                q[tr.index] = tr.pos[0]
            else:
                p0 = self.q_act[tr.index]
                if tr.vel is None:
                    s = (max(tau, t0) - t0) / (tr.t[0] - t0)
                    q[tr.index] = p0 + s * (tr.pos[0] - p0)
                else:
                    q[tr.index] = _hermite(t0, tr.t[0], p0, tr.pos[0], np.zeros_like(p0), tr.vel[0], max(tau, t0))
        else:
            i = int(np.searchsorted(tr.t, tau, side='right')) - 1
            t0, t1 = tr.t[i], tr.t[i + 1]
            if tr.vel is None:
                s = (tau - t0) / (t1 - t0)
                q[tr.index] = tr.pos[i] + s * (tr.pos[i + 1] - tr.pos[i])
            else:
                q[tr.index] = _hermite(t0, t1, tr.pos[i], tr.pos[i + 1], tr.vel[i], tr.vel[i + 1], tau)
        return q

    def done(self, now: float) -> bool:
        return now - self.traj.start >= self.traj.t[-1]


class ArmStreamer:
    """Per-arm trajectory state: queue, active trajectory, desired command (7-vector).

    Not thread-safe; the node serialises access with a lock.
    """

    def __init__(self, limits: Limits | None = None):
        self.limits = limits or Limits()
        self.command: np.ndarray | None = None   # last output, None until the first measured state
        self._queue: list[Trajectory] = []       # sorted by start, all with start > last tick
        self._active: _Active | None = None
        self._last_t: float | None = None
        self.accepted = 0
        self.rejected = 0

    @property
    def initialized(self) -> bool:
        return self.command is not None

    @property
    def busy(self) -> bool:
        """A trajectory is queued or still running (not yet at its last point)."""
        return bool(self._queue) or (self._active is not None and not self._active.done(self._last_t or 0.0))

    def set_measured(self, q7) -> None:
        """Hold the measured position (startup, or resync while idle)."""
        q7 = np.asarray(q7, dtype=float)
        if q7.shape != (7,) or not np.all(np.isfinite(q7)):
            raise ValueError(f'measured state must be 7 finite numbers, got {q7}')
        self.command = np.clip(q7, self.limits.lower, self.limits.upper)
        self._active = None
        self._queue.clear()

    def resync_arm_joints(self, q7) -> None:
        """Replace the held arm-joint targets (not the gripper) with measured values; only when idle."""
        q7 = np.asarray(q7, dtype=float)
        self.command[:6] = np.clip(q7[:6], self.limits.lower[:6], self.limits.upper[:6])
        self._active = None

    def submit(self, traj: Trajectory, now: float) -> float:
        """Queue ``traj`` (replacing everything from its start time); returns the effective start."""
        if not self.initialized:
            raise TrajectoryError('no joint state received yet for this arm; cannot start a trajectory')
        start = traj.start if traj.start > 0 else now
        if start + traj.duration < now:
            raise TrajectoryError(f'trajectory already over (start {start:.3f} + {traj.duration:.3f} s < now {now:.3f})')
        if traj.start == 0:
            traj = Trajectory(traj.index, traj.t, traj.pos, traj.vel, start, traj.peak_velocity_ratio)
        self._queue = [q for q in self._queue if q.start < start]
        self._queue.append(traj)
        self.accepted += 1
        return start

    def step(self, now: float) -> np.ndarray | None:
        """Advance to time ``now`` (s) and return the (7,) command, or None before initialisation."""
        if self.command is None:
            return None
        dt = 0.0 if self._last_t is None else max(0.0, now - self._last_t)
        self._last_t = now
        max_step = self.limits.max_velocity * dt
        cmd = self.command
        if self._active is not None:
            cmd = self._limited(self._active.sample(now), max_step)
        if self._queue and self._queue[0].start <= now:
            # Activation: the newest trajectory that has started takes over from the desired state now.
            while self._queue and self._queue[0].start <= now:
                self._active = _Active(self._queue.pop(0), now, cmd)
            cmd = self._limited(self._active.sample(now), max_step)
        self.command = cmd
        return self.command

    def _limited(self, target: np.ndarray, max_step: np.ndarray) -> np.ndarray:
        cmd = self.command + np.clip(target - self.command, -max_step, max_step)
        return np.clip(cmd, self.limits.lower, self.limits.upper)
