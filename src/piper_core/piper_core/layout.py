"""The bimanual AgileX Piper layout, defined once for the whole workspace.

Every 7-vector is one arm in piper_ros order (``joint1`` .. ``joint6`` in rad, then the gripper's total
opening in metres); every 14-vector is ``left`` then ``right`` (notes/piper.md §1, notes/aha-wam.md: the
policy's action and proprioception order). Code that needs an arm's part of a 14-vector asks
:func:`arm_slice` instead of writing ``7 * i``, so the order has exactly one home.
"""
from __future__ import annotations

import numpy as np

ARMS = ('left', 'right')
ARM_JOINT_NAMES = ('joint1', 'joint2', 'joint3', 'joint4', 'joint5', 'joint6')
JOINT_NAMES = ARM_JOINT_NAMES + ('gripper',)   # order of every 7-vector
DOF_PER_ARM = len(JOINT_NAMES)                 # 7
ACTION_DIM = DOF_PER_ARM * len(ARMS)           # 14
GRIPPER_INDEX = DOF_PER_ARM - 1                # index of the gripper inside a 7-vector

# Joint position limits, rad (SDK = URDF, notes/piper.md §6); gripper total opening, m.
JOINT_LOWER = np.array([-2.618, 0.0, -2.967, -1.745, -1.22, -2.0944])
JOINT_UPPER = np.array([2.618, 3.14, 0.0, 1.745, 1.22, 2.0944])
GRIPPER_MIN = 0.0
GRIPPER_MAX = 0.07             # m, standard gripper stroke (two fingers, 0..0.035 each)
LOWER7 = np.append(JOINT_LOWER, GRIPPER_MIN)
UPPER7 = np.append(JOINT_UPPER, GRIPPER_MAX)
LOWER14 = np.tile(LOWER7, len(ARMS))
UPPER14 = np.tile(UPPER7, len(ARMS))

JOINT_SPEED_MAX = 3.0          # rad/s, firmware cap (piper_sdk#12)
GRIPPER_SPEED_MAX = 0.1        # m/s of total opening, conservative
MAX_VELOCITY7 = np.array([JOINT_SPEED_MAX] * len(ARM_JOINT_NAMES) + [GRIPPER_SPEED_MAX])


def arm_index(arm: str | int) -> int:
    """Position of ``arm`` (name or index) in :data:`ARMS`; a clear error for anything else."""
    if isinstance(arm, (int, np.integer)) and not isinstance(arm, bool):
        if 0 <= int(arm) < len(ARMS):
            return int(arm)
    elif arm in ARMS:
        return ARMS.index(arm)
    raise ValueError(f'unknown arm {arm!r}; the bimanual layout has {ARMS}')


def arm_slice(arm: str | int) -> slice:
    """The 7 entries of ``arm`` inside a 14-vector (joints then gripper)."""
    i = arm_index(arm)
    return slice(DOF_PER_ARM * i, DOF_PER_ARM * (i + 1))


def joints_slice(arm: str | int) -> slice:
    """The 6 arm joints of ``arm`` inside a 14-vector (no gripper)."""
    i = arm_index(arm)
    return slice(DOF_PER_ARM * i, DOF_PER_ARM * i + GRIPPER_INDEX)


def gripper_dim(arm: str | int) -> int:
    """Index of ``arm``'s gripper inside a 14-vector."""
    return DOF_PER_ARM * arm_index(arm) + GRIPPER_INDEX


GRIPPER_DIMS = tuple(gripper_dim(a) for a in ARMS)


def split_arms(vector) -> dict[str, np.ndarray]:
    """A (..., 14) array as ``{arm: (..., 7)}`` views."""
    vector = np.asarray(vector)
    if vector.shape[-1] != ACTION_DIM:
        raise ValueError(f'expected a last dimension of {ACTION_DIM} (left+right), got shape {vector.shape}')
    return {arm: vector[..., arm_slice(arm)] for arm in ARMS}


def join_arms(per_arm) -> np.ndarray:
    """``{arm: (..., 7)}`` (or a sequence in ARMS order) as one (..., 14) array."""
    parts = [per_arm[a] for a in ARMS] if isinstance(per_arm, dict) else list(per_arm)
    if len(parts) != len(ARMS):
        raise ValueError(f'expected {len(ARMS)} arms {ARMS}, got {len(parts)}')
    parts = [np.asarray(p, dtype=float) for p in parts]
    for arm, p in zip(ARMS, parts):
        if p.shape[-1] != DOF_PER_ARM:
            raise ValueError(f'arm {arm!r}: expected {DOF_PER_ARM} values {JOINT_NAMES}, got shape {p.shape}')
    return np.concatenate(parts, axis=-1)
