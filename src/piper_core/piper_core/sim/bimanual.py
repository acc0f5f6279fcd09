"""Bimanual AgileX Piper simulator core (MuJoCo, ROS-free).

``BimanualPiperSim`` is the contract the ROS node (``piper_sim``) wraps: per arm it behaves like the
real arm in CAN MOVE J mode — a position target per joint that the arm reaches at ``speed_pct`` % of
3 rad/s, targets outside the joint limits clamped (and reported), the gripper as a total opening in
metres, and a disabled arm going limp under gravity. Everything here is in the arm's own units; the ROS
layer only maps names, topics and messages.
"""
from __future__ import annotations

import atexit
import math
import weakref

import numpy as np

import mujoco

from ..layout import ARM_JOINT_NAMES as JOINT_NAMES  # the simulator's joints are the 6 arm joints
from ..layout import ARMS, JOINT_SPEED_MAX, LOWER7, UPPER7
from . import mjcf
from .kinematics import mat_to_quat_xyzw
from .tasks import TaskStatus, make_task
GRIPPER_SPEED = 0.2          # m/s of total opening
GRIPPER_EFFORT_RANGE = (0.1, 5.0)
MONITOR_PERIOD = 0.02        # s between task-monitor updates while stepping


_LIVE_RENDERERS: 'weakref.WeakSet' = weakref.WeakSet()


@atexit.register
def _close_renderers():  # free GL contexts before interpreter teardown (avoids noisy __del__ errors)
    for r in list(_LIVE_RENDERERS):
        try:
            r.close()
        except Exception:  # noqa: BLE001
            pass


def _arm_index(arm: str) -> int:
    try:
        return ARMS.index(arm)
    except ValueError:
        raise ValueError(f'unknown arm {arm!r}; arms are {ARMS}') from None


class BimanualPiperSim:
    """Two Piper arms on a table with an ego camera and a task scene.

    Units: joints rad, gripper = total finger opening m (0..0.07), efforts N·m (gripper N), poses in
    the arm's base frame (x forward, z up). ``physics_dt`` is the MuJoCo step (default 2 ms = 500 Hz).
    """

    def __init__(self, task: str = 'lift_box', level: str = 'clean', seed: int = 0,
                 image_size: tuple = (96, 96), physics_dt: float = 0.002, old_firmware: bool = False):
        self.task = make_task(task, level)
        self.task_name = task
        self.level = level
        self.old_firmware = bool(old_firmware)
        self.physics_dt = float(physics_dt)
        if not 0 < self.physics_dt <= 0.002:
            raise ValueError(f'physics_dt must be in (0, 0.002] s (>= 500 Hz), got {physics_dt}')
        self.image_size = (int(image_size[0]), int(image_size[1]))
        spec = self.task.spec
        objects = list(spec.objects.values())
        off = (max(640, self.image_size[1]), max(480, self.image_size[0]))
        self.xml = mjcf.scene_xml(objects, self.task.level_spec.distractors, self.old_firmware, self.physics_dt, off)
        self.model = mujoco.MjModel.from_xml_string(self.xml)
        self.data = mujoco.MjData(self.model)
        m = self.model
        jid = lambda n: mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n)  # noqa: E731
        aid = lambda n: mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_ACTUATOR, n)  # noqa: E731
        bid = lambda n: mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, n)  # noqa: E731
        gid = lambda n: mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, n)  # noqa: E731
        names8 = [*JOINT_NAMES, 'finger_a', 'finger_b']
        self._qadr = np.array([[m.jnt_qposadr[jid(f'{a}_{n}')] for n in names8] for a in ARMS])
        self._dadr = np.array([[m.jnt_dofadr[jid(f'{a}_{n}')] for n in names8] for a in ARMS])
        self._act = np.array([[aid(f'{a}_{n}') for n in names8] for a in ARMS])
        self._flange_site = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, f'{a}_flange') for a in ARMS]
        self._tcp_site = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, f'{a}_tcp') for a in ARMS]
        self._base_pos = np.array([mjcf.ARM_BASES[a] for a in ARMS], dtype=float)
        # bodies of each arm (for gravcomp toggling)
        self._arm_bodies = []
        for a in ARMS:
            root = bid(f'{a}_base_link')
            self._arm_bodies.append(np.array([b for b in range(m.nbody) if self._is_descendant(b, root) and b != root]))
        self._gain0 = m.actuator_gainprm.copy()
        self._bias0 = m.actuator_biasprm.copy()
        self._gravcomp0 = m.body_gravcomp.copy()
        # contact ownership: gripper geoms (per arm: 0 pad_a, 1 pad_b, 2 other) and object geoms
        self._geom_grip = np.full(m.ngeom, -1, dtype=np.int64)
        for k, a in enumerate(ARMS):
            for g in range(m.ngeom):
                b = m.geom_bodyid[g]
                if m.geom_contype[g] and any(b == x for x in self._arm_bodies[k]):
                    self._geom_grip[g] = 3 * k + 2
            self._geom_grip[gid(f'{a}_pad_a')] = 3 * k + 0
            self._geom_grip[gid(f'{a}_pad_b')] = 3 * k + 1
        self.object_names = list(spec.objects) + self.task.distractor_names
        self._obj_body = {n: bid(f'obj_{n}') for n in self.object_names}
        self._geom_obj = np.full(m.ngeom, -1, dtype=np.int64)
        self._obj_geoms = {}
        for i, n in enumerate(self.object_names):
            gs = [g for g in range(m.ngeom) if m.geom_bodyid[g] == self._obj_body[n]]
            self._obj_geoms[n] = gs
            self._geom_obj[gs] = i
        self._obj_qadr = {}
        self._obj_dadr = {}
        for n in self.object_names:
            b = self._obj_body[n]
            if m.body_mocapid[b] >= 0:
                continue
            j = m.body_jntadr[b]
            self._obj_qadr[n] = m.jnt_qposadr[j]
            self._obj_dadr[n] = m.jnt_dofadr[j]
        self._renderer = None
        self._contact_cache_t = -1.0
        self._contacts = set()
        self._seed = int(seed)
        self.reset(seed)

    def _is_descendant(self, b, root):
        while b > 0:
            if b == root:
                return True
            b = self.model.body_parentid[b]
        return b == root

    # ------------------------------------------------------------------------------------------------
    # lifecycle
    # ------------------------------------------------------------------------------------------------
    @property
    def time(self) -> float:
        return float(self.data.time)

    @property
    def seed(self) -> int:
        return self._seed

    def reset(self, seed: int | None = None) -> None:
        """Arms at home (all zeros, gripper closed, enabled), objects re-laid out from the seed."""
        if seed is not None:
            self._seed = int(seed)
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        self._target = np.zeros((2, 7))
        self._ref = np.zeros((2, 7))
        self._rate = np.tile(np.r_[np.full(6, JOINT_SPEED_MAX), GRIPPER_SPEED], (2, 1))
        self._enabled = [True, True]
        self._speed_pct = [100.0, 100.0]
        self._effort = [None, None]
        self._limit_flags = np.zeros((2, 6), dtype=bool)
        for k in range(2):
            self._apply_enable(k, True)
            self.set_gripper_effort(ARMS[k], 1.0)
        rng = np.random.default_rng(self._seed)
        layout = self.task.sample_layout(rng)
        self.task.reset_monitor()
        for n in self.object_names:
            x, y, yaw = layout.poses[n]
            b = self._obj_body[n]
            if m.body_mocapid[b] >= 0:
                d.mocap_pos[m.body_mocapid[b]] = (x, y, 0.0)
            else:
                a = self._obj_qadr[n]
                d.qpos[a:a + 3] = (x, y, m.body_pos[b][2])
                d.qpos[a + 3:a + 7] = (np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2))
            for g in self._obj_geoms[n]:
                m.geom_rgba[g] = layout.rgba[n]
        d.ctrl[:] = 0.0
        mujoco.mj_forward(m, d)
        self._last_monitor = -1.0
        self._contact_cache_t = -1.0
        self.task.update(self)

    # ------------------------------------------------------------------------------------------------
    # stepping and control
    # ------------------------------------------------------------------------------------------------
    def step(self, n: int = 1) -> None:
        """Advance n physics steps (MOVE J target interpolation, servos, contacts, task monitor)."""
        m, d = self.model, self.data
        remaining = int(n)
        dt = self.physics_dt
        steps_per_mon = max(1, int(round(MONITOR_PERIOD / dt)))
        while remaining > 0:
            chunk = min(remaining, steps_per_mon)
            diff = self._target - self._ref
            if diff.any():
                # MOVE J interpolation for the whole chunk at once: the commanded position moves toward the
                # target at the per-joint rate, then servos track it (one ctrl row per physics step)
                k = np.arange(1, chunk + 1, dtype=float)[:, None, None] * (self._rate * dt)
                refs = self._ref + np.clip(diff, -k, k)                   # (chunk, 2, 7)
                rows = np.empty((chunk, m.nu))
                rows[:] = d.ctrl
                for a in range(2):
                    if self._enabled[a]:
                        rows[:, self._act[a, :6]] = refs[:, a, :6]
                        rows[:, self._act[a, 6]] = rows[:, self._act[a, 7]] = 0.5 * refs[:, a, 6]
                self._ref = refs[-1].copy()
                done = np.flatnonzero(np.all(refs == self._target, axis=(1, 2)))
                last = int(done[0]) + 1 if done.size else chunk
                for i in range(last):
                    d.ctrl[:] = rows[i]
                    mujoco.mj_step(m, d)
                if last < chunk:
                    mujoco.mj_step(m, d, chunk - last)
            else:
                mujoco.mj_step(m, d, chunk)
            remaining -= chunk
            if d.time - self._last_monitor >= MONITOR_PERIOD - 1e-9:
                self._last_monitor = d.time
                self._contact_cache_t = -1.0
                self.task.update(self)

    def _write_ctrl(self):
        d = self.data
        ref = self._ref
        for k in range(2):
            if self._enabled[k]:
                a = self._act[k]
                d.ctrl[a[:6]] = ref[k, :6]
                d.ctrl[a[6]] = d.ctrl[a[7]] = 0.5 * ref[k, 6]

    def command(self, arm: str, q, speed_pct: float = 100.0, gripper_effort: float = 1.0) -> bool:
        """MOVE J: set the position targets (7,) = joint1..6 rad + gripper total opening m.

        The internal commanded position moves toward the target at speed_pct % of 3 rad/s per joint
        (gripper at its own rate). Out-of-limit targets are clamped and the call returns False (the
        real arm reports arm_status 4, "target over limit"). A disabled arm ignores the command (the
        limit check is still reported). Fewer than 7 values keep the remaining targets."""
        k = _arm_index(arm)
        q = np.asarray(q, dtype=float).ravel()
        n = q.size
        if n not in (6, 7):
            raise ValueError(f'command for {arm}: expected 6 or 7 values, got {n}')
        if not np.isfinite(q).all():
            raise ValueError(f'command for {arm}: non-finite target {q}')
        clamped = np.minimum(np.maximum(q, LOWER7[:n]), UPPER7[:n])
        over = clamped != q
        ok = not over.any()
        self._limit_flags[k] = over[:6]
        if not self._enabled[k]:
            return ok
        self._target[k, :n] = clamped
        pct = 100.0 if not math.isfinite(speed_pct) else min(100.0, max(1.0, float(speed_pct)))
        if pct != self._speed_pct[k]:
            self._speed_pct[k] = pct
            self._rate[k, :6] = JOINT_SPEED_MAX * pct / 100.0
        if n == 7 and gripper_effort != self._effort[k]:
            self.set_gripper_effort(arm, gripper_effort)
        return ok

    def limit_flags(self, arm: str) -> np.ndarray:
        """Per-joint 'angle over limit' flags of the last command (PiperStatusMsg joint_i_angle_limit)."""
        return self._limit_flags[_arm_index(arm)].copy()

    def set_gripper_effort(self, arm: str, effort: float) -> None:
        """Gripper effort (N·m in the SDK); here the finger force limit = 10 N per unit effort."""
        k = _arm_index(arm)
        self._effort[k] = effort
        e = float(np.clip(effort if np.isfinite(effort) else 1.0, *GRIPPER_EFFORT_RANGE))
        f = mjcf.FINGER_FORCE_PER_EFFORT * e
        for a in self._act[k, 6:]:
            self.model.actuator_forcerange[a] = (-f, f)

    def set_enabled(self, arm: str, enabled: bool) -> None:
        """Enable (servos hold the current position) or disable (motors off: the arm goes limp and drops)."""
        k = _arm_index(arm)
        enabled = bool(enabled)
        if enabled == self._enabled[k]:
            return
        self._enabled[k] = enabled
        if enabled:
            cur = self.joint_positions(arm)
            self._target[k] = cur
            self._ref[k] = cur
        self._apply_enable(k, enabled)
        self._write_ctrl()

    def _apply_enable(self, k: int, enabled: bool):
        m = self.model
        a = self._act[k]
        if enabled:
            m.actuator_gainprm[a] = self._gain0[a]
            m.actuator_biasprm[a] = self._bias0[a]
            m.body_gravcomp[self._arm_bodies[k]] = self._gravcomp0[self._arm_bodies[k]]
        else:
            m.actuator_gainprm[a] = 0.0
            m.actuator_biasprm[a] = 0.0
            m.body_gravcomp[self._arm_bodies[k]] = 0.0

    def enabled(self, arm: str) -> bool:
        return self._enabled[_arm_index(arm)]

    # ------------------------------------------------------------------------------------------------
    # state
    # ------------------------------------------------------------------------------------------------
    def joint_positions(self, arm: str) -> np.ndarray:
        k = _arm_index(arm)
        q = self.data.qpos[self._qadr[k]]
        return np.r_[q[:6], q[6] + q[7]]

    def joint_velocities(self, arm: str) -> np.ndarray:
        k = _arm_index(arm)
        return self.data.qvel[self._dadr[k, :6]].copy()

    def joint_efforts(self, arm: str) -> np.ndarray:
        """Joint torques N·m (servo + gravity compensation, i.e. what the motors deliver); gripper: squeeze force N."""
        k = _arm_index(arm)
        d = self.data
        tau = d.actuator_force[self._act[k, :6]] + d.qfrc_gravcomp[self._dadr[k, :6]] * self._enabled[k]
        grip = 0.5 * (abs(d.actuator_force[self._act[k, 6]]) + abs(d.actuator_force[self._act[k, 7]]))
        return np.r_[tau, grip]

    def commanded_positions(self, arm: str) -> np.ndarray:
        """The MOVE J target of the last accepted command (7,) (what joint_ctrl echoes)."""
        return self._target[_arm_index(arm)].copy()

    def moving(self, arm: str, tol: float = 0.01) -> bool:
        """motion_status: True while the arm has not reached its target."""
        k = _arm_index(arm)
        err = np.abs(self._target[k, :6] - self.joint_positions(arm)[:6])
        return bool(np.any(err > tol) or np.any(self._ref[k] != self._target[k]))

    def end_pose(self, arm: str):
        """Flange (link6) position (m) and quaternion (x, y, z, w) in the arm's base frame."""
        k = _arm_index(arm)
        s = self._flange_site[k]
        pos = self.data.site_xpos[s] - self._base_pos[k]
        R = self.data.site_xmat[s].reshape(3, 3)
        return pos.copy(), mat_to_quat_xyzw(R)

    def tcp_pose(self, arm: str):
        """Tool centre point (between the pads) position and rotation matrix, in the arm's base frame."""
        k = _arm_index(arm)
        s = self._tcp_site[k]
        return self.data.site_xpos[s] - self._base_pos[k], self.data.site_xmat[s].reshape(3, 3).copy()

    def base_position(self, arm: str) -> np.ndarray:
        return self._base_pos[_arm_index(arm)].copy()

    # ------------------------------------------------------------------------------------------------
    # objects, contacts (SimView for the task monitors)
    # ------------------------------------------------------------------------------------------------
    def object_pos(self, name: str) -> np.ndarray:
        return self.data.xpos[self._obj_body[name]].copy()

    def object_quat(self, name: str) -> np.ndarray:
        """(x, y, z, w) world orientation."""
        w, x, y, z = self.data.xquat[self._obj_body[name]]
        return np.array([x, y, z, w])

    def object_speed(self, name: str) -> float:
        if name not in self._obj_dadr:
            return 0.0
        a = self._obj_dadr[name]
        return float(np.linalg.norm(self.data.qvel[a:a + 3]))

    def _contact_pairs(self):
        if self._contact_cache_t != self.data.time:
            d = self.data
            pairs = set()
            if d.ncon:
                g = d.contact.geom[:d.ncon]
                o1, o2 = self._geom_grip[g[:, 0]], self._geom_grip[g[:, 1]]
                b1, b2 = self._geom_obj[g[:, 0]], self._geom_obj[g[:, 1]]
                for gg, ob in ((o1, b2), (o2, b1)):
                    sel = (gg >= 0) & (ob >= 0)
                    pairs.update(zip(gg[sel].tolist(), ob[sel].tolist()))
            self._contacts = pairs
            self._contact_cache_t = d.time
        return self._contacts

    def grasping(self, arm: str, name: str) -> bool:
        k, i = _arm_index(arm), self.object_names.index(name)
        c = self._contact_pairs()
        return (3 * k, i) in c and (3 * k + 1, i) in c

    def touching(self, arm: str, name: str) -> bool:
        k, i = _arm_index(arm), self.object_names.index(name)
        c = self._contact_pairs()
        return any((3 * k + j, i) in c for j in range(3))

    # ------------------------------------------------------------------------------------------------
    # camera, task
    # ------------------------------------------------------------------------------------------------
    def render(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB image of the ego (head) camera."""
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, self.image_size[0], self.image_size[1])
            _LIVE_RENDERERS.add(self._renderer)
        self._renderer.update_scene(self.data, camera='ego')
        return self._renderer.render()

    def camera_intrinsics(self):
        """(fx, fy, cx, cy) of the ego camera in pixels (pinhole, MuJoCo fovy is vertical)."""
        h, w = self.image_size
        fovy = np.deg2rad(self.model.cam_fovy[0])
        f = 0.5 * h / np.tan(0.5 * fovy)
        return f, f, 0.5 * w, 0.5 * h

    def task_status(self) -> TaskStatus:
        self._contact_cache_t = -1.0
        self.task.update(self)
        return self.task.status(self)

    def instruction(self) -> str:
        return self.task.spec.instruction

    def scene_state(self) -> dict:
        """Snapshot for the scripted expert (plain arrays; serialisable)."""
        return {
            'task': self.task_name,
            'time': self.time,
            'q': {a: self.joint_positions(a) for a in ARMS},
            'base': {a: self.base_position(a) for a in ARMS},
            'objects': {n: (self.object_pos(n), self.object_quat(n)) for n in self.object_names},
            'layout_side': self.task.layout.side,
            'old_firmware': self.old_firmware,
            'status': self.task_status(),
        }

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass
