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
