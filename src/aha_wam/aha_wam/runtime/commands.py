"""Per-arm commands: what the executor sends to each arm's trajectory streamer, ROS-free.

A chunk becomes one `ArmCommand` per arm with the *same* start time (both arms stay in step); a hold is a
one-point command at the measured position that starts on receipt (`start_ns = 0`, the
joint_trajectory_controller convention). The executor node turns these into JointTrajectory messages; the
ClosedLoop feeds them to `piper_core.trajectory.ArmStreamer`, the streamer node's own core.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from piper_core.layout import ARMS, JOINT_NAMES, split_arms
from piper_core.trajectory import Limits, Trajectory, parse_trajectory

from aha_wam.runtime.handover import HandOver


@dataclasses.dataclass(frozen=True)
class ArmCommand:
    """One arm's trajectory: positions[i] (joint1..6 rad, gripper m) due at start_ns + times_s[i]."""

    start_ns: int             # absolute start (0 = on receipt)
    times_s: np.ndarray       # (n,) seconds from start, strictly increasing
    positions: np.ndarray     # (n, 7)

    def trajectory(self, limits: Limits) -> Trajectory:
        """The streamer core's validated trajectory (raises TrajectoryError like the streamer node would)."""
        return parse_trajectory(JOINT_NAMES, [(float(t), q, (), ()) for t, q in zip(self.times_s, self.positions)],
                                self.start_ns * 1e-9, limits)


def chunk_commands(handover: HandOver) -> dict[str, ArmCommand]:
    """The executable tail of a chunk, split per arm, one common start stamp."""
    times = handover.times_from_start()
    return {arm: ArmCommand(handover.start_ns, times, np.asarray(q, dtype=float))
            for arm, q in split_arms(handover.actions).items()}


def hold_commands(proprio: np.ndarray) -> dict[str, ArmCommand]:
    """Stop where the arms are: one point at the measured position, starting on receipt."""
    return {arm: ArmCommand(0, np.zeros(1), np.asarray(q, dtype=float)[None])
            for arm, q in split_arms(proprio).items()}


__all__ = ['ARMS', 'ArmCommand', 'chunk_commands', 'hold_commands']
