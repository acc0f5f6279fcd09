"""Environments the ClosedLoop drives: the MuJoCo bimanual Piper (ROS-free, from piper_core).

An environment steps physics, renders the ego camera, reports joint positions and task status, and takes
per-arm joint commands exactly as `joint_ctrl_single` would (MOVE J at a speed percentage). The simulator
node (piper_bringup.piper_sim) wraps the same `BimanualPiperSim`.
"""
from __future__ import annotations

import numpy as np

from piper_core.layout import ARMS


class SimEnvironment:
    """`piper_core.sim.BimanualPiperSim` behind the loop's environment interface."""

    def __init__(self, task: str, level: str = 'clean', seed: int = 0, image_size=(96, 96)):
        from piper_core.sim.bimanual import BimanualPiperSim   # mujoco: imported only when a sim is made
        self.sim = BimanualPiperSim(task, level, seed=int(seed), image_size=tuple(image_size))
        self.task = task
        self.level = level

    @property
    def physics_dt(self) -> float:
        return self.sim.physics_dt

    @property
    def episode_timeout(self) -> float:
        return float(self.sim.task.spec.episode_timeout)

    def reset(self, seed: int) -> None:
        self.sim.reset(int(seed))

    def step(self, n: int = 1) -> None:
        self.sim.step(n)

    def render(self) -> np.ndarray:
        return self.sim.render()

    def proprio(self) -> np.ndarray:
        return np.concatenate([self.sim.joint_positions(arm) for arm in ARMS])

    def command(self, arm: str, q: np.ndarray) -> None:
        self.sim.command(arm, q, 100.0)

    def task_status(self):
        return self.sim.task_status()

    def instruction(self) -> str:
        return self.sim.instruction()

    def close(self) -> None:
        self.sim.close()


class _ReplayStatus:
    """A recording has no task predicate: never 'success', the loop runs to the end of the bag."""
    success = False
    stage = 'replay'


class BagEnvironment:
    """A recorded bag as the loop's environment, open loop: observations are the recorded ones.

    Loop time 0 is the first moment the ego camera and both arms' joint states exist; the episode ends at the
    last moment every stream (camera, joint states, recorded commands) covers. Frames arrive at their recorded
    stamps (`frame_at`), joint states carry their recorded stamps, and the commands the streamers send are
    collected by a hook (offline.replay) for comparison with the recorded ones (`recorded_command`).
    """

    physics_dt = 0.001            # 1 ms: the streamer's 5 ms and the 20 ms record grid fall on ticks exactly

    def __init__(self, rec):
        from aha_wam.data.rosbag import BagError
        from aha_wam.data.timeline import latest_index
        self.rec, self._latest = rec, latest_index
        starts = [int(rec.image_stamps[0]), *(int(s[0]) for s, _ in rec.joints.values())]
        ends = [int(rec.image_stamps[-1]), *(int(s[-1]) for s, _ in (*rec.joints.values(), *rec.commands.values()))]
        self.t0, end = max(starts), min(ends)
        if end < self.t0:
            raise BagError(f'{rec.path}: the image, joint-state and command streams do not overlap in time '
                           f'(streams start by {self.t0 * 1e-9:.3f} s, one ends at {end * 1e-9:.3f} s)')
        self.duration_ns = end - self.t0
        self.level = 'recorded'
        self.now_ns = 0

    @property
    def episode_timeout(self) -> float:
        return self.duration_ns * 1e-9 + 1e-6      # the last covered moment is still a control step

    def reset(self, seed: int) -> None:
        self.now_ns = 0

    def step(self, n: int = 1) -> None:
        self.now_ns += int(round(n * self.physics_dt * 1e9))

    def frame_at(self, now_ns: int):
        """(image, loop-time stamp, loop time of the next frame) of the newest frame at or before now."""
        stamps = self.rec.image_stamps
        i = int(self._latest(stamps, [self.t0 + now_ns])[0])
        nxt = int(stamps[i + 1]) - self.t0 if i + 1 < len(stamps) else 2**62
        return self.rec.images[i], int(stamps[i]) - self.t0, nxt

    def _newest(self, series, now_ns: int):
        stamps, values = series
        i = int(self._latest(stamps, [self.t0 + now_ns])[0])
        return (None, None) if i < 0 else (values[i], int(stamps[i]) - self.t0)

    def proprio(self) -> np.ndarray:
        return np.concatenate([self._newest(self.rec.joints[arm], self.now_ns)[0] for arm in ARMS])

    def joint_stamps(self) -> tuple[int, ...]:
        return tuple(self._newest(self.rec.joints[arm], self.now_ns)[1] for arm in ARMS)

    def recorded_command(self, now_ns: int) -> np.ndarray:
        """(14,) the recorded commands at `now_ns` (NaN for an arm before its first command)."""
        out = []
        for arm in ARMS:
            q, _ = self._newest(self.rec.commands[arm], now_ns)
            out.append(np.full(7, np.nan) if q is None else np.asarray(q, dtype=float))
        return np.concatenate(out)

    def command(self, arm: str, q: np.ndarray) -> None:
        pass                        # open loop: the recording does not react

    def task_status(self):
        return _ReplayStatus()

    def instruction(self) -> str:
        return self.rec.instruction

    def close(self) -> None:
        pass
