"""Piper arm kinematics, ROS-free: modified-DH forward kinematics and damped-least-squares IK.

Sources (see shared notes, piper.md §5): the modified DH table used by ``piper_sdk``
(T_i = RotX(alpha) TransX(a) RotZ(theta + q) TransZ(d)) for firmware >= S-V1.6-3 and for older
firmware (joint 2/3 zero offsets differ by 2 degrees), and the URDF joint origins of
``piper_description`` (used to build the MJCF, so the MJCF-vs-DH test is a real cross-check).

All lengths in metres, angles in radians, frames are the arm's base frame (base_link).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..layout import GRIPPER_MAX, JOINT_LOWER, JOINT_SPEED_MAX, JOINT_UPPER  # noqa: F401  (re-exported)

# Modified DH: (a m, alpha rad, theta offset rad (new fw), theta offset (old fw), d m)
_DEG = np.pi / 180.0
DH_TABLE = (
    (0.0, 0.0, 0.0, 0.0, 0.123),
    (0.0, -np.pi / 2, -172.22 * _DEG, -174.22 * _DEG, 0.0),
    (0.28503, 0.0, -102.78 * _DEG, -100.78 * _DEG, 0.0),
    (-0.02198, np.pi / 2, 0.0, 0.0, 0.25075),
    (0.0, -np.pi / 2, 0.0, 0.0, 0.0),
    (0.0, np.pi / 2, 0.0, 0.0, 0.091),
)

# URDF joint origins (xyz, rpy) of piper_description, new firmware; old firmware overrides j2/j3 rpy.
URDF_JOINTS = (
    ((0.0, 0.0, 0.123), (0.0, 0.0, 0.0)),
    ((0.0, 0.0, 0.0), (1.5708, -0.1359, -3.1416)),
    ((0.28503, 0.0, 0.0), (0.0, 0.0, -1.7939)),
    ((-0.021984, -0.25075, 0.0), (1.5708, 0.0, 0.0)),
    ((0.0, 0.0, 0.0), (-1.5708, 0.0, 0.0)),
    ((8.8259e-5, -0.091, 0.0), (1.5708, 0.0, 0.0)),
)
URDF_OLD_FW = {1: (1.5708, -0.10095, -3.1416), 2: (0.0, 0.0, -1.759)}

# Tool centre point (between the finger pads) along the flange z axis.
TCP_OFFSET = 0.14


def urdf_joints(old_firmware: bool = False):
    """URDF joint origins [(xyz, rpy)] for the chosen firmware."""
    out = []
    for i, (xyz, rpy) in enumerate(URDF_JOINTS):
        if old_firmware and i in URDF_OLD_FW:
            rpy = URDF_OLD_FW[i]
        out.append((xyz, rpy))
    return out


def rot_x(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rot_z(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def rpy_matrix(r, p, y):
    """URDF fixed-axis roll-pitch-yaw: R = Rz(y) Ry(p) Rx(r)."""
    return rot_z(y) @ rot_y(p) @ rot_x(r)


def mat_to_quat_xyzw(R):
    """Rotation matrix -> unit quaternion (x, y, z, w), w >= 0."""
    R = np.asarray(R, dtype=float)
    tr = np.trace(R)
    if tr > 0:
        s = np.sqrt(tr + 1.0) * 2
        w, x, y, z = 0.25 * s, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = np.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2]) * 2
        w, x, y, z = (R[2, 1] - R[1, 2]) / s, 0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s
    elif R[1, 1] > R[2, 2]:
        s = np.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2]) * 2
        w, x, y, z = (R[0, 2] - R[2, 0]) / s, (R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s
    else:
        s = np.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1]) * 2
        w, x, y, z = (R[1, 0] - R[0, 1]) / s, (R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s
    q = np.array([x, y, z, w])
    q /= np.linalg.norm(q)
    return q if q[3] >= 0 else -q


def quat_xyzw_to_mat(q):
    x, y, z, w = np.asarray(q, dtype=float) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def _dh_link(a, alpha, theta, d):
    ca, sa, ct, st = np.cos(alpha), np.sin(alpha), np.cos(theta), np.sin(theta)
    return np.array([
        [ct, -st, 0.0, a],
        [st * ca, ct * ca, -sa, -sa * d],
        [st * sa, ct * sa, ca, ca * d],
        [0.0, 0.0, 0.0, 1.0],
    ])


def fk_frames(q, old_firmware: bool = False):
    """Homogeneous transforms base->link_i (i = 1..6) for joint angles q (6,), modified DH."""
    q = np.asarray(q, dtype=float)[:6]
    T = np.eye(4)
    frames = []
    for i, (a, alpha, th_new, th_old, d) in enumerate(DH_TABLE):
        T = T @ _dh_link(a, alpha, (th_old if old_firmware else th_new) + q[i], d)
        frames.append(T)
    return frames


def fk(q, old_firmware: bool = False):
    """Flange (link6) pose in the base frame as a 4x4 matrix (modified DH)."""
    return fk_frames(q, old_firmware)[-1]


def fk_urdf(q, old_firmware: bool = False):
    """Flange pose from the URDF joint origins (independent of the DH table; agrees within ~0.2 mm)."""
    T = np.eye(4)
    for (xyz, rpy), qi in zip(urdf_joints(old_firmware), np.asarray(q, dtype=float)[:6]):
        J = np.eye(4)
        J[:3, :3] = rpy_matrix(*rpy) @ rot_z(qi)
        J[:3, 3] = xyz
        T = T @ J
    return T


def tcp_pose(q, old_firmware: bool = False, tcp_offset: float = TCP_OFFSET):
    T = fk(q, old_firmware).copy()
    T[:3, 3] = T[:3, 3] + T[:3, 2] * tcp_offset
    return T


def _chain_fast(q, old_firmware: bool):
    """Plain-float modified-DH chain (fast for IK): list of (R 3x3 nested lists, p 3-list) per link."""
    import math
    R = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    p = [0.0, 0.0, 0.0]
    out = []
    for i, (a, alpha, th_new, th_old, d) in enumerate(DH_TABLE):
        th = (th_old if old_firmware else th_new) + float(q[i])
        ca, sa, ct, st = math.cos(alpha), math.sin(alpha), math.cos(th), math.sin(th)
        # local transform (rotation L, translation t)
        L = ((ct, -st, 0.0), (st * ca, ct * ca, -sa), (st * sa, ct * sa, ca))
        t = (a, -sa * d, ca * d)
        p = [p[r] + R[r][0] * t[0] + R[r][1] * t[1] + R[r][2] * t[2] for r in range(3)]
        R = [[R[r][0] * L[0][c] + R[r][1] * L[1][c] + R[r][2] * L[2][c] for c in range(3)] for r in range(3)]
        out.append((R, p))
    return out


def jacobian(q, old_firmware: bool = False, tcp_offset: float = TCP_OFFSET):
    """Geometric Jacobian (6x6: linear; angular) of the TCP point, base frame; also returns the TCP pose."""
    chain = _chain_fast(q, old_firmware)
    R6, p6 = chain[-1]
    pe = [p6[r] + R6[r][2] * tcp_offset for r in range(3)]
    J = np.empty((6, 6))
    for i, (R, p) in enumerate(chain):
        z0, z1, z2 = R[0][2], R[1][2], R[2][2]
        d0, d1, d2 = pe[0] - p[0], pe[1] - p[1], pe[2] - p[2]
        J[0, i] = z1 * d2 - z2 * d1
        J[1, i] = z2 * d0 - z0 * d2
        J[2, i] = z0 * d1 - z1 * d0
        J[3, i], J[4, i], J[5, i] = z0, z1, z2
    T = np.eye(4)
    T[:3, :3] = R6
    T[:3, 3] = pe
    return J, T


def rotation_error(R_target, R):
    """Axis-angle vector w such that R_target ~= exp([w]) R."""
    Re = R_target @ R.T
    cos = np.clip((np.trace(Re) - 1) / 2, -1.0, 1.0)
    angle = np.arccos(cos)
    v = np.array([Re[2, 1] - Re[1, 2], Re[0, 2] - Re[2, 0], Re[1, 0] - Re[0, 1]])
    if angle < 1e-6:
        return 0.5 * v
    if np.pi - angle < 1e-4:
        # near pi: axis from the symmetric part
        axis = np.sqrt(np.clip((np.diag(Re) + 1) / 2, 0, None))
        k = int(np.argmax(axis))
        axis[(k + 1) % 3] = np.copysign(axis[(k + 1) % 3], Re[k, (k + 1) % 3] + Re[(k + 1) % 3, k])
        axis[(k + 2) % 3] = np.copysign(axis[(k + 2) % 3], Re[k, (k + 2) % 3] + Re[(k + 2) % 3, k])
        return angle * axis / np.linalg.norm(axis)
    return angle / (2 * np.sin(angle)) * v


@dataclass
class IKResult:
    q: np.ndarray
    pos_err: float      # m
    rot_err: float      # rad
    success: bool


def ik(target_pos, target_rot=None, q0=None, old_firmware: bool = False, tcp_offset: float = TCP_OFFSET,
       max_iter: int = 150, pos_tol: float = 1e-3, rot_tol: float = 1e-2, damping: float = 0.02,
       rot_weight: float = 0.4, seeds=None) -> IKResult:
    """Damped-least-squares IK for the TCP (flange + tcp_offset along flange z), joint limits enforced.

    target_rot: 3x3 rotation of the flange frame (None = position only). Tries q0 first, then the
    given/extra seeds; returns the best solution (lowest weighted error)."""
    target_pos = np.asarray(target_pos, dtype=float)
    starts = []
    if q0 is not None:
        starts.append(np.clip(np.asarray(q0, dtype=float)[:6], JOINT_LOWER, JOINT_UPPER))
    if seeds is not None:
        starts.extend(np.asarray(s, dtype=float)[:6] for s in seeds)
    if not starts or seeds is None:
        yaw = np.arctan2(target_pos[1], target_pos[0])
        starts.append(np.array([yaw, 1.2, -1.2, 0.0, 0.6, 0.0]))
        starts.append(np.array([yaw, 0.8, -1.6, 0.0, 0.8, 0.0]))
    best = None
    w = np.array([1, 1, 1, rot_weight, rot_weight, rot_weight])
    Rt = None if target_rot is None else np.asarray(target_rot, dtype=float)
    eye = damping ** 2 * np.eye(6 if Rt is not None else 3)
    for q in starts:
        q = np.clip(q.copy(), JOINT_LOWER, JOINT_UPPER)
        hist = []
        for it in range(max_iter):
            J, T = jacobian(q, old_firmware, tcp_offset)
            e_p = target_pos - T[:3, 3]
            if Rt is not None:
                e_r = rotation_error(Rt, T[:3, :3])
                e = np.concatenate([e_p, e_r]) * w
                Jw = J * w[:, None]
            else:
                e_r = np.zeros(3)
                e = e_p
                Jw = J[:3]
            en = float(e @ e)
            if np.linalg.norm(e_p) < pos_tol * 0.2 and np.linalg.norm(e_r) < rot_tol * 0.2:
                break
            hist.append(en)
            # stagnation (clamped at a limit / unreachable): give up on this start early
            if it >= 12 and en > 0.9 * hist[-12]:
                break
            dq = Jw.T @ np.linalg.solve(Jw @ Jw.T + eye, e)
            step = np.max(np.abs(dq))
            if step > 0.3:
                dq *= 0.3 / step
            q = np.clip(q + dq, JOINT_LOWER, JOINT_UPPER)
        T = tcp_pose(q, old_firmware, tcp_offset)
        pe = float(np.linalg.norm(target_pos - T[:3, 3]))
        re = float(np.linalg.norm(rotation_error(Rt, T[:3, :3]))) if Rt is not None else 0.0
        res = IKResult(q, pe, re, pe < pos_tol and re < rot_tol)
        if best is None or (res.pos_err + 0.1 * res.rot_err) < (best.pos_err + 0.1 * best.rot_err):
            best = res
        if res.success:
            break
    return best
