"""Scripted IK experts: joint-space waypoint plans for every task, closed-loop by phases (ROS-free).

An expert is a small state machine. ``next_plan(state)`` looks at the current scene (``state`` is
``BimanualPiperSim.scene_state()``: joint positions, object poses, task status) and returns the
``Plan`` for the next phase (approach+grasp, lift, hand over, place, ...) or ``None`` when it is done.
Each phase is planned from the *current* state, so the expert also works from any state it is started
in, re-tries a failed grasp, and can be used to record demonstrations.

A ``Plan`` is a list of waypoints ``(time_from_start_s, q_left(7,), q_right(7,))`` (joint1..6 rad,
gripper total opening m), dense enough (20 Hz, minimum-jerk timing inside each segment) that linear
interpolation between waypoints — what the trajectory streamer / ``harness`` do at 200 Hz — is smooth.
``plan.arm_trajectory(arm)`` gives ``(times, positions)`` for one trajectory_msgs/JointTrajectory.

Grasp geometry: the Piper wrist (joint5 +-70 deg) cannot point straight down far above the table, so
grasps tilt the approach axis about the finger-closing axis (pads stay parallel to the object faces);
the tilt is searched per grasp so that approach, grasp and lift are all reachable.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..layout import ARMS
from . import kinematics as kin
WAYPOINT_DT = 0.05           # s between plan waypoints inside a segment
JOINT_SPEED = 1.8            # rad/s peak joint speed used for timing (firmware cap 3 rad/s)
CART_SPEED = 0.12            # m/s for straight-line TCP segments
GRIPPER_RATE = 0.15          # m/s of opening (the simulated gripper moves at up to 0.2 m/s)
OPEN = 0.07
HOME = np.zeros(7)


class PlanningError(RuntimeError):
    """No reachable solution for a phase (the caller may reset or give up)."""


# --------------------------------------------------------------------------------------------------
# Plan
# --------------------------------------------------------------------------------------------------
@dataclass
class Plan:
    times: np.ndarray                     # (N,) seconds from plan start, strictly increasing; times[0] = 0 (start state)
    q: dict                               # arm -> (N, 7)
    label: str = ''
    meta: dict = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return float(self.times[-1])

    def __len__(self):
        return len(self.times)

    def waypoints(self) -> list:
        """[(time_from_start_s, q_left (7,), q_right (7,))]."""
        return [(float(t), self.q['left'][i].copy(), self.q['right'][i].copy()) for i, t in enumerate(self.times)]

    def arm_trajectory(self, arm: str, include_start: bool = False):
        """(times, positions (N, 7)) for one arm's JointTrajectory (joint1..6 + gripper).

        The first waypoint (t = 0) is the state the plan was made from; by default it is dropped so that
        time_from_start is strictly positive and the streamer interpolates from the arm's actual position."""
        s = 0 if include_start else 1
        return self.times[s:].copy(), self.q[arm][s:].copy()

    def sample(self, t: float) -> dict:
        """Linear interpolation at time t (clamped to the plan)."""
        t = float(np.clip(t, 0.0, self.times[-1]))
        i = int(np.searchsorted(self.times, t, side='right'))
        if i >= len(self.times):
            return {a: self.q[a][-1].copy() for a in ARMS}
        t0, t1 = self.times[i - 1], self.times[i]
        w = (t - t0) / (t1 - t0)
        return {a: (1 - w) * self.q[a][i - 1] + w * self.q[a][i] for a in ARMS}


def _min_jerk(s):
    return s * s * s * (10 - 15 * s + 6 * s * s)


class PlanBuilder:
    """Accumulates synchronized two-arm segments from a start configuration."""

    def __init__(self, q_start: dict):
        self.t = [0.0]
        self.q = {a: [np.asarray(q_start[a], dtype=float).copy()] for a in ARMS}

    def last(self, arm):
        return self.q[arm][-1].copy()

    def _append(self, targets: dict, duration: float, profile=_min_jerk):
        start = {a: self.last(a) for a in ARMS}
        n = max(1, int(math.ceil(duration / WAYPOINT_DT)))
        for i in range(1, n + 1):
            s = profile(i / n)
            self.t.append(self.t[-1] + duration / n)
            for a in ARMS:
                self.q[a].append(start[a] + s * (targets[a] - start[a]))

    def move(self, targets: dict, duration: float | None = None, min_duration: float = 0.4, speed: float = JOINT_SPEED):
        """Joint-space move (minimum jerk) of the given arms; the others hold. Gripper included in q[6]."""
        full = {a: np.asarray(targets[a], dtype=float) if a in targets else self.last(a) for a in ARMS}
        if duration is None:
            dj = max(float(np.max(np.abs(full[a][:6] - self.last(a)[:6]))) for a in ARMS)
            dg = max(abs(full[a][6] - self.last(a)[6]) for a in ARMS)
            duration = max(min_duration, 1.875 * dj / speed, 1.875 * dg / GRIPPER_RATE)
        self._append(full, duration)
        return self

    def path(self, paths: dict, duration: float):
        """Follow per-arm joint paths (lists of (7,) waypoints, e.g. from a straight TCP line) together."""
        n = max(len(p) for p in paths.values())
        start = {a: self.last(a) for a in ARMS}
        for i in range(1, n + 1):
            self.t.append(self.t[-1] + duration / n)
            for a in ARMS:
                if a in paths:
                    p = paths[a]
                    self.q[a].append(np.asarray(p[min(i, len(p)) - 1], dtype=float).copy())
                else:
                    self.q[a].append(start[a].copy())
        return self

    def gripper(self, openings: dict, dwell: float = 0.2):
        targets = {}
        for a in ARMS:
            q = self.last(a)
            if a in openings:
                q[6] = openings[a]
            targets[a] = q
        dg = max(abs(targets[a][6] - self.last(a)[6]) for a in ARMS)
        self._append(targets, max(0.2, dg / GRIPPER_RATE), profile=lambda s: s)
        if dwell > 0:
            self.hold(dwell)
        return self

    def hold(self, duration: float):
        self._append({a: self.last(a) for a in ARMS}, duration, profile=lambda s: s)
        return self

    def build(self, label: str = '', **meta) -> Plan:
        return Plan(np.array(self.t), {a: np.array(self.q[a]) for a in ARMS}, label, meta)


# --------------------------------------------------------------------------------------------------
# geometry helpers
# --------------------------------------------------------------------------------------------------
def _rodrigues(axis, angle):
    axis = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * K + (1 - math.cos(angle)) * K @ K


def grasp_rotation(closing, approach):
    """Flange rotation with y = closing axis, z = approach axis (orthonormalised)."""
    z = np.asarray(approach, dtype=float)
    z = z / np.linalg.norm(z)
    y = np.asarray(closing, dtype=float)
    y = y - z * float(y @ z)
    y /= np.linalg.norm(y)
    return np.column_stack([np.cross(y, z), y, z])


def quat_to_mat(q_xyzw):
    return kin.quat_xyzw_to_mat(q_xyzw)


def yaw_of(q_xyzw):
    R = quat_to_mat(q_xyzw)
    return math.atan2(R[1, 0], R[0, 0])


def box_face_normals(q_xyzw):
    """The box's horizontal-most face normals (unit), 4 directions (+-x, +-y of the body frame)."""
    R = quat_to_mat(q_xyzw)
    return [R[:, 0], R[:, 1], -R[:, 0], -R[:, 1]]


class ArmIK:
    """World-frame IK for one arm (base offset, firmware flag)."""

    def __init__(self, base, old_firmware=False):
        self.base = np.asarray(base, dtype=float)
        self.old_firmware = old_firmware

    def solve(self, p_world, R, seed=None, tol=2e-3):
        r = kin.ik(np.asarray(p_world) - self.base, R, q0=seed, old_firmware=self.old_firmware, max_iter=100,
                   pos_tol=tol, rot_tol=0.02)
        if not r.success and seed is not None:
            r2 = kin.ik(np.asarray(p_world) - self.base, R, q0=None, old_firmware=self.old_firmware, max_iter=100,
                        pos_tol=tol, rot_tol=0.02)
            if r2.success:
                r = r2
        return r.q if r.success else None

    def tcp(self, q):
        T = kin.tcp_pose(q[:6], self.old_firmware)
        return T[:3, 3] + self.base, T[:3, :3]

    def line(self, q_start, p_from, p_to, R, step=0.01):
        """Joint waypoints along a straight TCP line (constant orientation); None if unreachable/jumpy."""
        n = max(2, int(math.ceil(np.linalg.norm(np.asarray(p_to) - p_from) / step)))
        out, q = [], np.asarray(q_start[:6], dtype=float)
        for i in range(1, n + 1):
            p = p_from + (np.asarray(p_to) - p_from) * (i / n)
            qn = kin.ik(p - self.base, R, q0=q, old_firmware=self.old_firmware, max_iter=60, pos_tol=2e-3,
                        rot_tol=0.02, seeds=[])
            if not qn.success or np.max(np.abs(qn.q - q)) > 0.35:
                return None
            q = qn.q
            out.append(q.copy())
        return out


def _with_grip(qs, g):
    return [np.r_[q[:6], g] for q in qs]


# --------------------------------------------------------------------------------------------------
# Experts
# --------------------------------------------------------------------------------------------------
class Expert:
    """Base: phases, retries, IK per arm. Subclasses implement ``_plan_<phase>`` returning (Plan, next_phase)."""
    task = ''
    max_retries = 2

    def __init__(self, old_firmware: bool = False, bases=None):
        from .mjcf import ARM_BASES
        bases = bases or ARM_BASES
        self.ik = {a: ArmIK(bases[a], old_firmware) for a in ARMS}
        self.reset()

    def reset(self):
        self.phase = 'start'
        self.retries = 0
        self.mem = {}

    @property
    def done(self) -> bool:
        return self.phase in ('done', 'failed')

    def next_plan(self, state: dict):
        """Plan the next phase from the current state; None when finished (success or given up)."""
        st = state.get('status')
        if st is not None and getattr(st, 'success', False) and self.phase not in ('start',):
            self.phase = 'done'
        while not self.done:
            fn = getattr(self, f'_plan_{self.phase}')
            try:
                plan, nxt = fn(state)
            except PlanningError as e:
                self.mem['error'] = str(e)
                self.phase = 'failed'
                return None
            self.phase = nxt
            if plan is not None:
                plan.label = plan.label or nxt
                return plan
        return None

    # -- shared pieces ------------------------------------------------------------------------------
    def _search_grasp(self, arm, center, normals, depth, tilts_deg, lift=0.08, pre=0.08, tilt_toward=None,
                      q_seed=None, pre_vertical=False):
        """Find (closing, approach, q_pre, q_grasp, lift joint path) for a tilted top grasp of a box.

        normals: candidate closing axes (horizontal face normals); the approach is -z rotated about the
        closing axis by the tilt; TCP = center - depth * approach. tilt_toward: optional horizontal
        direction the approach should lean toward (sign of the tilt)."""
        ik = self.ik[arm]
        for tilt in tilts_deg:
            cands = []
            for c in normals:
                c = np.array([c[0], c[1], 0.0])
                c /= np.linalg.norm(c)
                for sgn in ((1.0, -1.0) if tilt else (1.0,)):
                    a = _rodrigues(c, sgn * math.radians(tilt)) @ np.array([0.0, 0.0, -1.0])
                    if tilt_toward is not None and tilt and float(a[:2] @ tilt_toward) < 0:
                        continue
                    R = grasp_rotation(c, a)
                    p_g = np.asarray(center) - depth * a
                    q_g = ik.solve(p_g, R, seed=q_seed)
                    if q_g is None:
                        continue
                    cost = float(np.sum(np.abs(q_g[3:6]))) + 0.5 * float(np.abs(q_g[0]))
                    cands.append((cost, c, a, R, p_g, q_g))
            # verify the cheapest candidates first (pre-grasp, straight descent, straight lift)
            for cost, c, a, R, p_g, q_g in sorted(cands, key=lambda x: x[0]):
                p_pre = p_g + np.array([0.0, 0.0, pre]) if pre_vertical else p_g - pre * a
                q_pre = ik.solve(p_pre, R, seed=q_g)
                if q_pre is None:
                    continue
                down = ik.line(q_pre, p_pre, p_g, R)
                if down is None:
                    continue
                up = ik.line(q_g, p_g, p_g + np.array([0, 0, lift]), R) if lift > 0 else []
                if up is None:
                    continue
                return dict(closing=c, approach=a, R=R, p_grasp=p_g, p_pre=p_pre, q_pre=q_pre, q_grasp=q_g,
                            down=down, up=up)
        raise PlanningError(f'{arm}: no reachable grasp at {np.round(center, 3)}')

    def _holding(self, state, arm, width):
        return float(state['q'][arm][6]) > 0.6 * width

    def _in_hand(self, state, arm, obj):
        """Object centre and rotation expressed in the arm's TCP frame (from FK of the measured joints)."""
        p_t, R_t = self.ik[arm].tcp(state['q'][arm])
        p_o, q_o = state['objects'][obj]
        R_o = quat_to_mat(q_o)
        return R_t.T @ (np.asarray(p_o) - p_t), R_t.T @ R_o

    def _place_pose(self, arm, offset, R_rel, target_xy, bottom_z, half, q_seed, tilts=(0, 20, 35, 50, 65)):
        """TCP pose that puts the held object's centre over target_xy with its lowest corner at bottom_z."""
        ik = self.ik[arm]
        corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]) * half
        for tilt in tilts:
            cands = []
            for yaw in np.radians(np.arange(-180, 180, 30)):
                c = np.array([math.cos(yaw), math.sin(yaw), 0.0])
                a = _rodrigues(c, math.radians(tilt)) @ np.array([0.0, 0.0, -1.0])
                R = grasp_rotation(c, a)
                obj_c_rel = R @ offset                      # object centre relative to the TCP (world axes)
                low = float(np.min((R @ R_rel @ corners.T)[2]))
                p_obj = np.array([target_xy[0], target_xy[1], bottom_z - low])
                p_tcp = p_obj - obj_c_rel
                q = ik.solve(p_tcp, R, seed=q_seed)
                if q is None:
                    continue
                cost = float(np.abs(q[3:6]).sum())
                if q_seed is not None:
                    cost += 0.3 * abs(float(q[0] - q_seed[0]))
                cands.append((cost, R, p_tcp, q))
            for cost, R, p_tcp, q in sorted(cands, key=lambda x: x[0]):
                q_up = ik.solve(p_tcp + np.array([0, 0, 0.08]), R, seed=q)
                if q_up is None:
                    continue
                down = ik.line(q_up, p_tcp + np.array([0, 0, 0.08]), p_tcp, R)
                if down is None:
                    continue
                return dict(R=R, p=p_tcp, q=q, q_up=q_up, down=down)
        raise PlanningError(f'{arm}: no reachable place pose over {np.round(target_xy, 3)}')


class LiftBoxExpert(Expert):
    task = 'lift_box'
    GRASP_OFFSETS = (0.115, 0.10, 0.125, 0.085)   # grasp points from the box centre along its long axis
    GRASP_Z = 0.035          # TCP height at the grasp (box 5 cm tall)
    LIFT = 0.095

    def _plan_start(self, state):
        return None, 'grasp'

    def _box(self, state):
        p, q = state['objects']['box']
        R = quat_to_mat(q)
        long_axis = R[:, 1] if R[1, 1] >= 0 else -R[:, 1]   # points to +y (the left arm)
        return np.asarray(p), R, long_axis

    def _plan_grasp(self, state):
        p, R, u = self._box(state)
        short = np.array([R[0, 0], R[1, 0], 0.0])
        plans = {}
        for arm, sgn in (('left', 1.0), ('right', -1.0)):
            err = None
            for off in self.GRASP_OFFSETS:     # slide the grasp along the box if the first point is out of reach
                end = p + sgn * off * u
                center = np.array([end[0], end[1], self.GRASP_Z])
                try:
                    plans[arm] = self._search_grasp(arm, center, [short, -short], depth=0.0,
                                                    tilts_deg=(40, 30, 50, 60, 20), lift=self.LIFT, pre=0.05,
                                                    tilt_toward=-sgn * u[:2], pre_vertical=True)
                    break
                except PlanningError as e:
                    err = e
            else:
                raise err
        self.mem['grasp'] = plans
        b = PlanBuilder(state['q'])
        b.move({a: np.r_[plans[a]['q_pre'], OPEN] for a in ARMS})
        b.path({a: _with_grip(plans[a]['down'], OPEN) for a in ARMS}, duration=0.9)
        b.gripper({'left': 0.0, 'right': 0.0}, dwell=0.4)
        return b.build('grasp'), 'lift'

    def _plan_lift(self, state):
        width = 0.04
        if not all(self._holding(state, a, width) for a in ARMS):
            return self._retry(state)
        plans = self.mem['grasp']
        b = PlanBuilder(state['q'])
        b.path({a: _with_grip(plans[a]['up'], 0.0) for a in ARMS}, duration=1.6)
        b.hold(1.8)
        return b.build('lift'), 'done'

    def _retry(self, state):
        if self.retries >= self.max_retries:
            raise PlanningError('grasp failed too often')
        self.retries += 1
        b = PlanBuilder(state['q'])
        b.gripper({'left': OPEN, 'right': OPEN}, dwell=0.1)
        back = {}
        for a in ARMS:
            p_t, R_t = self.ik[a].tcp(state['q'][a])
            q_up = self.ik[a].solve(p_t + np.array([0, 0, 0.06]), R_t, seed=state['q'][a][:6])
            back[a] = np.r_[q_up if q_up is not None else self.mem['grasp'][a]['q_pre'], OPEN]
        b.move(back)
        return b.build('retry'), 'grasp'


class PickExpertMixin:
    def _pick(self, state, arm, obj, size, depth, lift=0.08, tilts=(0, 15, 30, 45), others=None):
        p, q = state['objects'][obj]
        normals = box_face_normals(q)
        g = self._search_grasp(arm, np.asarray(p), normals, depth=depth, tilts_deg=tilts, lift=lift,
                               q_seed=None)
        b = PlanBuilder(state['q'])
        b.move({arm: np.r_[g['q_pre'], OPEN], **(others or {})})
        b.path({arm: _with_grip(g['down'], OPEN)}, duration=0.8)
        b.gripper({arm: 0.0}, dwell=0.3)
        b.path({arm: _with_grip(g['up'], 0.0)}, duration=0.9)
        return b, g


class HandoverCubeExpert(Expert, PickExpertMixin):
    """Left: tilted top grasp near the fingertips (the cube sticks out); in the air the right grasps the
    protruding half on the same pair of faces, the left lets go and backs off, the right places it."""
    task = 'handover_cube'
    SIZE = 0.05
    # hand-over frames (x, z, yaw deg, roll about x deg, pitch deg) found reachable for both arms
    FRAMES = ((0.34, 0.25, -30, 60, 0), (0.28, 0.15, -30, 40, 20), (0.34, 0.15, -30, 40, 20),
              (0.28, 0.25, -30, 60, 20), (0.34, 0.20, -30, 40, 0))
    DEPTH = 0.023            # TCP behind the cube centre: tips stop 3 mm short of the centre
    RIGHT_SHIFT = 0.013      # right TCP beyond the cube centre along the left approach axis

    def _plan_start(self, state):
        return None, 'pick'

    def _plan_pick(self, state):
        b, g = self._pick(state, 'left', 'cube', self.SIZE, depth=self.DEPTH, lift=0.08,
                          others={'right': np.r_[0.0, 0.6, -0.6, 0.0, 0.0, 0.0, OPEN]})
        return b.build('pick'), 'to_handover'

    def _plan_to_handover(self, state):
        if not self._holding(state, 'left', self.SIZE):
            return self._retry_pick(state)
        off, R_rel = self._in_hand(state, 'left', 'cube')
        for hx, hz, yaw, roll, pitch in self.FRAMES:
            F = kin.rot_z(math.radians(yaw)) @ kin.rot_y(math.radians(pitch)) @ kin.rot_x(math.radians(roll))
            aL, c = F[:, 0], F[:, 1]
            H = np.array([hx, 0.0, hz])
            RL = grasp_rotation(c, aL)
            qL = self.ik['left'].solve(H - RL @ off, RL, seed=state['q']['left'][:6])
            if qL is None:
                RL = grasp_rotation(-c, aL)
                qL = self.ik['left'].solve(H - RL @ off, RL, seed=state['q']['left'][:6])
            if qL is None:
                continue
            # right: approach perpendicular to the left approach and the closing axis
            aR = -np.cross(aL, c)
            pR = H + self.RIGHT_SHIFT * aL
            for cR in (c, -c):
                RR = grasp_rotation(cR, aR)
                qR = self.ik['right'].solve(pR, RR)
                if qR is None:
                    continue
                qR_pre = self.ik['right'].solve(pR - 0.08 * aR, RR, seed=qR)
                if qR_pre is None:
                    continue
                b = PlanBuilder(state['q'])
                b.move({'left': np.r_[qL, 0.0], 'right': np.r_[qR_pre, OPEN]}, min_duration=1.2, speed=1.0)
                b.hold(0.3)
                return b.build('to_handover'), 'right_grasp'
        raise PlanningError('no reachable hand-over frame')

    def _plan_right_grasp(self, state):
        if not self._holding(state, 'left', self.SIZE):
            raise PlanningError('left dropped the cube before the hand-over')
        p_obj = np.asarray(state['objects']['cube'][0])
        _, RL = self.ik['left'].tcp(state['q']['left'])
        aL, c = RL[:, 2], RL[:, 1]
        aR = -np.cross(aL, c)
        pR = p_obj + self.RIGHT_SHIFT * aL
        qR_now = state['q']['right'][:6]
        best = None
        for cR in (c, -c):
            RR = grasp_rotation(cR, aR)
            qR = self.ik['right'].solve(pR, RR, seed=qR_now)
            if qR is not None and (best is None or np.abs(qR - qR_now).sum() < np.abs(best[1] - qR_now).sum()):
                best = (RR, qR)
        if best is None:
            raise PlanningError('right cannot reach the cube in the left hand')
        RR, qR = best
        q_pre = self.ik['right'].solve(pR - 0.08 * aR, RR, seed=qR)
        line = self.ik['right'].line(q_pre, pR - 0.08 * aR, pR, RR) if q_pre is not None else None
        if line is None:
            raise PlanningError('right approach path unreachable')
        b = PlanBuilder(state['q'])
        b.move({'right': np.r_[q_pre, OPEN]}, min_duration=0.3)
        b.path({'right': _with_grip(line, OPEN)}, duration=0.8)
        b.gripper({'right': 0.0}, dwell=0.3)
        self.mem['aL'] = aL
        return b.build('right_grasp'), 'release'

    def _plan_release(self, state):
        if not self._holding(state, 'right', self.SIZE):
            raise PlanningError('right did not get the cube')
        b = PlanBuilder(state['q'])
        b.gripper({'left': OPEN}, dwell=0.3)
        qL = state['q']['left']
        p_t, R_t = self.ik['left'].tcp(qL)
        back = self.ik['left'].line(qL, p_t, p_t - 0.08 * R_t[:, 2], R_t)
        if back is not None:
            b.path({'left': _with_grip(back, OPEN)}, duration=0.7)
        b.move({'left': np.r_[0.0, 0.6, -0.6, 0.0, 0.0, 0.0, OPEN]}, min_duration=0.5)
        return b.build('release'), 'place'

    def _plan_place(self, state):
        if not self._holding(state, 'right', self.SIZE):
            raise PlanningError('right lost the cube')
        off, R_rel = self._in_hand(state, 'right', 'cube')
        zone = np.asarray(state['objects']['zone'][0])
        pp = self._place_pose('right', off, R_rel, zone[:2], 0.006, 0.5 * self.SIZE, state['q']['right'][:6])
        b = PlanBuilder(state['q'])
        b.move({'right': np.r_[pp['q_up'], 0.0]}, min_duration=0.8, speed=1.0)
        b.path({'right': _with_grip(pp['down'], 0.0)}, duration=0.8)
        b.gripper({'right': OPEN}, dwell=0.2)
        up = self.ik['right'].line(pp['q'], pp['p'], pp['p'] + np.array([0, 0, 0.06]), pp['R'])
        if up is not None:
            b.path({'right': _with_grip(up, OPEN)}, duration=0.6)
        b.hold(0.6)
        return b.build('place'), 'done'

    def _retry_pick(self, state):
        if self.retries >= self.max_retries:
            raise PlanningError('pick failed too often')
        self.retries += 1
        b = PlanBuilder(state['q'])
        b.gripper({'left': OPEN}, dwell=0.1)
        b.move({'left': np.r_[0.0, 0.6, -0.6, 0.0, 0.0, 0.0, OPEN]})
        return b.build('retry'), 'pick'


class PlaceCubeInBowlExpert(Expert, PickExpertMixin):
    task = 'place_cube_in_bowl'
    SIZE = 0.04
    DEPTH = 0.008

    def _arm(self, state):
        side = state.get('layout_side')
        if side in ARMS:
            return side
        return 'left' if state['objects']['cube'][0][1] >= 0 else 'right'

    def _plan_start(self, state):
        return None, 'pick'

    def _plan_pick(self, state):
        arm = self._arm(state)
        b, _ = self._pick(state, arm, 'cube', self.SIZE, depth=self.DEPTH, lift=0.08)
        return b.build('pick'), 'place'

    def _plan_place(self, state):
        arm = self._arm(state)
        if not self._holding(state, arm, self.SIZE):
            if self.retries >= self.max_retries:
                raise PlanningError('pick failed too often')
            self.retries += 1
            b = PlanBuilder(state['q'])
            b.gripper({arm: OPEN}, dwell=0.1)
            b.move({arm: np.r_[0.0, 0.6, -0.6, 0.0, 0.0, 0.0, OPEN]})
            return b.build('retry'), 'pick'
        off, R_rel = self._in_hand(state, arm, 'cube')
        bowl = np.asarray(state['objects']['bowl'][0])
        pp = self._place_pose(arm, off, R_rel, bowl[:2], bowl[2] + 0.006 + 0.012, 0.5 * self.SIZE,
                              state['q'][arm][:6], tilts=(0, 20, 35, 50))
        b = PlanBuilder(state['q'])
        b.move({arm: np.r_[pp['q_up'], 0.0]}, min_duration=0.6, speed=1.0)
        b.path({arm: _with_grip(pp['down'], 0.0)}, duration=0.7)
        b.gripper({arm: OPEN}, dwell=0.2)
        up = self.ik[arm].line(pp['q'], pp['p'], pp['p'] + np.array([0, 0, 0.07]), pp['R'])
        if up is not None:
            b.path({arm: _with_grip(up, OPEN)}, duration=0.6)
        b.hold(0.6)
        return b.build('place'), 'done'


EXPERTS = {cls.task: cls for cls in (LiftBoxExpert, HandoverCubeExpert, PlaceCubeInBowlExpert)}


def make_expert(task: str, old_firmware: bool = False) -> Expert:
    if task not in EXPERTS:
        raise ValueError(f'no scripted expert for task {task!r}; known: {", ".join(sorted(EXPERTS))}')
    return EXPERTS[task](old_firmware=old_firmware)
