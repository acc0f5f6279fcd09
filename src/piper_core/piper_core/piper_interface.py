"""ROS-free semantics of the AgileX piper_ros (humble) driver interface, shared by the simulator node,
the trajectory streamer and tests.

Reference: shared notes piper.md §1-§2, §6. The real node ``piper_single_ctrl`` interprets
``joint_ctrl_single`` (sensor_msgs/JointState) like this, and so do we:

* arm joints **by name** (``joint1`` .. ``joint6``); a missing name commands **0 rad**;
* the gripper **by index 6** of ``position`` (whatever its name) when ``len(position) >= 7``: total
  opening in metres, multiplied by ``gripper_val_mutiple`` and clamped to 0..0.08 m; absent = no
  gripper command (the gripper keeps its previous target);
* ``velocity[6]`` = arm speed in percent (rounded, clamped 1..100) when ``velocity`` has at least 7
  entries that are not all 0, else 100 %;
* ``effort[6]`` = gripper effort in N·m clipped to 0.5..3 when ``effort`` has at least 7 entries,
  else 1 N·m.

Where the real node would raise (a name without a position, non-finite values) we reject the message
with a clear reason instead.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .layout import (ARM_JOINT_NAMES, GRIPPER_MAX, GRIPPER_MIN, GRIPPER_SPEED_MAX, JOINT_LOWER,  # noqa: F401
                     JOINT_NAMES, JOINT_SPEED_MAX, JOINT_UPPER, LOWER7, MAX_VELOCITY7, UPPER7)

GRIPPER_NODE_CLAMP = 0.08      # m, the driver's clamp (80000 um)

SPEED_PCT_DEFAULT = 100.0
GRIPPER_EFFORT_DEFAULT = 1.0   # N·m
GRIPPER_EFFORT_MIN = 0.5
GRIPPER_EFFORT_MAX = 3.0

# PiperStatusMsg.arm_status codes used by the simulator (notes §2).
ARM_STATUS_OK = 0
ARM_STATUS_TARGET_OVER_LIMIT = 4
CTRL_MODE_STANDBY = 0
CTRL_MODE_CAN = 1
MODE_FEEDBACK_MOVE_J = 1
MOTION_REACHED = 0
MOTION_MOVING = 1


class CommandError(ValueError):
    """A joint_ctrl_single message that cannot be interpreted (the node logs it and ignores it)."""


@dataclass(frozen=True)
class JointCommand:
    """One interpreted ``joint_ctrl_single`` message."""
    q: np.ndarray                  # (6,) arm joint targets, rad
    gripper: float | None          # total opening target, m (None: no gripper command)
    speed_pct: float               # 1..100
    gripper_effort: float          # N·m, 0.5..3

    def over_limit(self) -> np.ndarray:
        """(6,) bool: which arm joint targets lie outside the joint limits (-> arm_status 4)."""
        return joint_limit_flags(self.q)


def joint_limit_flags(q, tol: float = 1e-6) -> np.ndarray:
    """(6,) bool, True where ``q[i]`` is outside [JOINT_LOWER, JOINT_UPPER] (plus ``tol``)."""
    q = np.asarray(q, dtype=float)[:6]
    return (q < JOINT_LOWER - tol) | (q > JOINT_UPPER + tol)


def parse_joint_ctrl_single(name, position, velocity=(), effort=(), gripper_multiplier: int = 1) -> JointCommand:
    """Interpret a ``joint_ctrl_single`` JointState exactly like piper_ros humble (see module doc)."""
    name = list(name)
    position = [float(p) for p in position]
    velocity = [float(v) for v in velocity]
    effort = [float(e) for e in effort]
    if len(name) > len(position):
        raise CommandError(f'{len(name)} names but only {len(position)} positions')
    if not all(math.isfinite(p) for p in position):
        raise CommandError('non-finite position')
    q = np.zeros(6)
    for i, n in enumerate(name):
        if n in ARM_JOINT_NAMES:
            q[ARM_JOINT_NAMES.index(n)] = position[i]
    gripper = None
    if len(position) >= 7:
        gripper = min(max(position[6] * int(gripper_multiplier), 0.0), GRIPPER_NODE_CLAMP)
    speed = SPEED_PCT_DEFAULT
    if len(velocity) >= 7 and any(v != 0.0 for v in velocity):
        v6 = velocity[6]
        if not math.isfinite(v6):
            raise CommandError('non-finite velocity[6] (speed percent)')
        speed = float(min(max(round(v6), 1), 100))
    grip_effort = GRIPPER_EFFORT_DEFAULT
    if len(effort) >= 7:
        e6 = effort[6]
        if not math.isfinite(e6):
            raise CommandError('non-finite effort[6] (gripper effort)')
        grip_effort = min(max(e6, GRIPPER_EFFORT_MIN), GRIPPER_EFFORT_MAX)
    return JointCommand(q=q, gripper=gripper, speed_pct=speed, gripper_effort=grip_effort)


def err_code_from_flags(angle_limit, comm_fault=(False,) * 6) -> int:
    """``err_code`` bit field as in the SDK's 0x2A1 decoding: bits 0-5 joint angle limits, bits 8-13
    joint communication faults."""
    code = 0
    for i, f in enumerate(angle_limit):
        code |= int(bool(f)) << i
    for i, f in enumerate(comm_fault):
        code |= int(bool(f)) << (8 + i)
    return code
