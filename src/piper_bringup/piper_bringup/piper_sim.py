"""``piper_sim``: ONE MuJoCo process simulating two AgileX Piper arms behind the exact piper_ros
(humble) interface, plus the ego camera and the task.

All topic names are relative to the node's namespace (root by default). Per arm ``<arm>`` (the namespaces in
the ``arms`` parameter, default ``left``, ``right``: the simulated left and right arm, in that order) it behaves
like ``piper_single_ctrl`` started in namespace ``<arm>/``:

publishes (depth 1, reliable, like the driver)
  ``<arm>/joint_states_single``, ``<arm>/joint_states_feedback``  sensor_msgs/JointState at
      ``joint_state_rate`` (200 Hz): names joint1..joint6, gripper; position 7 (rad x6, gripper total
      opening m), velocity 6 (rad/s), effort 7 (N·m x6, gripper squeeze force)
  ``<arm>/joint_ctrl``        sensor_msgs/JointState: the last accepted command target (status_rate)
  ``<arm>/arm_status``        piper_msgs/PiperStatusMsg (status_rate): arm_status 4 + joint_N_angle_limit
      when the last command's target was over a limit; ctrl_mode 1 (CAN) while enabled, 0 disabled;
      mode_feedback 1 (MOVE J); motion_status 1 while moving; err_code bits 0-5 = angle-limit flags
  ``<arm>/end_pose``          geometry_msgs/Pose, flange (link6) in the arm base frame, m (status_rate)
  ``<arm>/end_pose_stamped``  geometry_msgs/PoseStamped, same, frame ``pose_frame_id`` (status_rate)
subscribes
  ``<arm>/joint_ctrl_single`` sensor_msgs/JointState (semantics: ``piper_core.piper_interface``;
      ignored while the arm is disabled)
  ``<arm>/enable_flag``       std_msgs/Bool (true: enable; false: disable -> the arm goes limp and drops)
services
  ``<arm>/enable_srv``        piper_msgs/srv/Enable (answers after the simulator applied it)

plus
  ``camera/ego/image_raw``    sensor_msgs/Image rgb8 (best effort, depth 1), ``camera_rate`` Hz
  ``camera/ego/camera_info``  sensor_msgs/CameraInfo (same stamp and QoS)
  ``sim/task_status``         std_msgs/String, JSON object (reliable, depth 10, ``task_status_rate`` Hz
      and after every reset): {"task", "level", "seed", "episode", "instruction", "success", "stage",
      "time" (episode s), "timed_out", "detail", "sim_time", "real_time_factor"}
  ``sim/reset``               std_srvs/Trigger: re-lays out the task with the ``seed`` parameter (and
      the ``task``/``level`` parameters, rebuilding the scene if they changed); arms go home (zeros,
      enabled). Set ``seed`` first (parameter service) for a given episode. The response message is the
      JSON {"task", "level", "seed", "episode", "instruction"}.
  ``/clock``                  rosgraph_msgs/Clock when ``publish_clock`` (then every stamp is sim time)

Stepping: one worker thread wakes at absolute deadlines (``loop_rate``), applies queued commands,
advances the physics to wall time x ``real_time_factor`` (physics at 1/``physics_dt`` >= 500 Hz) and
publishes what is due. Parameters: ``config/piper/piper_sim.yaml``.
"""
from __future__ import annotations

import array
import json
import math
import threading
import time
from collections import deque

import numpy as np
import rclpy
from geometry_msgs.msg import Pose, PoseStamped
from piper_msgs.msg import PiperStatusMsg
from piper_msgs.srv import Enable
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger

from piper_core import piper_interface as pi
from piper_core.layout import ARMS
from ros_node_kit import DeadlineLoop, ParameterError, PolledSubscription, declare, run_node, sec_to_stamp

QOS_DRIVER = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
QOS_CAMERA = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST)
QOS_STATUS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)


class _Due:
    """Decimates a stream to ``rate`` Hz inside the faster loop, on the loop's scheduled tick times
    (absolute schedule, no drift; a stream at the loop rate is due on every tick)."""

    def __init__(self, rate: float):
        self.period = 1.0 / rate if rate > 0 else math.inf
        self.next = 0.0

    def __call__(self, now: float) -> bool:
        if now + 1e-6 < self.next:
            return False
        self.next = self.next + self.period if now - self.next < self.period else now + self.period
        return True


class _ArmIO:
    def __init__(self, arm: str, ns: str):
        self.arm = arm                        # the simulator's arm ('left' / 'right')
        self.ns = ns                          # its topic namespace (the `arms` parameter)
        self.events: deque = deque()          # ('enable', bool, Event|None) from the executor thread
        self.enabled = True                   # last requested enable state
        self.state = JointState()
        self.state.name = list(pi.JOINT_NAMES)
        self.ctrl = JointState()
        self.ctrl.name = list(pi.JOINT_NAMES)
        self.ctrl.velocity = [0.0] * 6 + [pi.SPEED_PCT_DEFAULT]
        self.ctrl.effort = [0.0] * 6 + [pi.GRIPPER_EFFORT_DEFAULT]
        self.status = PiperStatusMsg()
        self.status.mode_feedback = pi.MODE_FEEDBACK_MOVE_J
        self.pose = Pose()
        self.pose_stamped = PoseStamped()
        self.rejected = 0
        self.ignored_disabled = 0
        self.last_warn = -1e9


class PiperSim(Node):
    def __init__(self, **kwargs):
        super().__init__('piper_sim', **kwargs)
        p = {}
        p['arms'] = declare(self, 'arms', list(ARMS),
                            'Topic namespaces of the simulated left and right arm, in this order (<ns>/joint_states_single, '
                            '...), like the driver started in namespace <ns>/; read-only.', read_only=True)
        p['task'] = declare(self, 'task', 'lift_box', 'Task name (config/tasks/<task>.yaml); applied at sim/reset.')
        p['level'] = declare(self, 'level', 'clean', "Task level: 'clean' or 'randomized'; applied at sim/reset.")
        p['seed'] = declare(self, 'seed', 0, 'Layout seed (int >= 0) used by the next sim/reset (and at startup).')
        p['old_firmware'] = declare(self, 'old_firmware', False,
                                    'Kinematics of firmware < S-V1.6-3 (joint 2/3 zeros 2 deg off).', read_only=True)
        p['physics_dt'] = declare(self, 'physics_dt', 0.002, 'MuJoCo step, s (0 < dt <= 0.002, i.e. >= 500 Hz).',
                                  read_only=True)
        p['real_time_factor'] = declare(self, 'real_time_factor', 1.0,
                                        'Simulated s per wall s (0.05..10); 1 = real time.', read_only=True)
        p['loop_rate'] = declare(self, 'loop_rate', 200.0,
                                 'Worker loop rate, Hz (50..1000): commands are applied and physics advanced per tick; '
                                 'raised to joint_state_rate if lower.', read_only=True)
        p['joint_state_rate'] = declare(self, 'joint_state_rate', 200.0,
                                        'joint_states_single / joint_states_feedback rate, Hz (1..1000; driver: 200).',
                                        read_only=True)
        p['status_rate'] = declare(self, 'status_rate', 50.0,
                                   'arm_status, end_pose, end_pose_stamped, joint_ctrl rate, Hz (0 = off, <= joint_state_rate).',
                                   read_only=True)
        p['camera_rate'] = declare(self, 'camera_rate', 15.0, 'Ego camera rate, Hz (0 = off, <= 60).', read_only=True)
        p['image_width'] = declare(self, 'image_width', 96, 'Ego camera width, px (16..1280).', read_only=True)
        p['image_height'] = declare(self, 'image_height', 96, 'Ego camera height, px (16..960).', read_only=True)
        p['camera_frame_id'] = declare(self, 'camera_frame_id', 'ego_camera_optical_frame',
                                       'frame_id of image_raw / camera_info.', read_only=True)
        p['pose_frame_id'] = declare(self, 'pose_frame_id', 'base_link',
                                     'frame_id of end_pose_stamped (the arm base frame).', read_only=True)
        p['task_status_rate'] = declare(self, 'task_status_rate', 5.0, 'sim/task_status rate, Hz (0 = only after resets, <= 50).',
                                        read_only=True)
        p['publish_clock'] = declare(self, 'publish_clock', False,
                                     'Publish /clock (sim time) and stamp everything with sim time.', read_only=True)
        p['auto_enable'] = declare(self, 'auto_enable', True,
                                   'Arms start enabled (the driver launch files set auto_enable true). false: start '
                                   'disabled, enable via enable_flag / enable_srv.', read_only=True)
        p['gripper_val_mutiple'] = declare(self, 'gripper_val_mutiple', 1,
                                           'Gripper command multiplier (int 0..10; spelling as in piper_ros).', read_only=True)
        p['reset_holdoff'] = declare(self, 'reset_holdoff', 0.25,
                                     'After sim/reset, ignore joint_ctrl_single for this long, s (>= 0), so a streamer '
                                     'still holding the pre-reset pose cannot drag the arms back.')
        p['streamer_hold_service'] = declare(self, 'streamer_hold_service', '/trajectory_streamer/hold_measured',
                                             'After sim/reset, call this std_srvs/Trigger (if it exists) so the streamer '
                                             'holds the new measured pose; "" = off.', read_only=True)
        self._check_params(p)
        self.arm_namespaces = [ns.strip('/') for ns in p['arms']]
        self.p = p
        self.loop_rate = max(p['loop_rate'], p['joint_state_rate'])

        from piper_core.sim.bimanual import BimanualPiperSim   # heavy import (mujoco) after parameter checks
        self._Sim = BimanualPiperSim
        self.sim = self._make_sim(p['task'], p['level'], p['seed'])
        self.episode = 0
        self._sim_lock = threading.Lock()   # guards the sim against the reset service / enable waits
        self._pending_reset = None          # (Event, dict) posted by the reset service
        self._holdoff_until = -1.0
        self.clock_mode = p['publish_clock']

        self.io = {}
        for arm, ns in zip(ARMS, self.arm_namespaces):
            io = _ArmIO(arm, ns)
            io.pub_single = self.create_publisher(JointState, f'{ns}/joint_states_single', QOS_DRIVER)
            io.pub_feedback = self.create_publisher(JointState, f'{ns}/joint_states_feedback', QOS_DRIVER)
            io.pub_ctrl = self.create_publisher(JointState, f'{ns}/joint_ctrl', QOS_DRIVER)
            io.pub_status = self.create_publisher(PiperStatusMsg, f'{ns}/arm_status', QOS_DRIVER)
            io.pub_pose = self.create_publisher(Pose, f'{ns}/end_pose', QOS_DRIVER)
            io.pub_pose_stamped = self.create_publisher(PoseStamped, f'{ns}/end_pose_stamped', QOS_DRIVER)
            io.pose_stamped.header.frame_id = p['pose_frame_id']
            # polled once per loop tick (newest wins, like the driver's depth-1 subscriber) instead of a 200 Hz
            # executor callback per arm: see PolledSubscription
            io.cmd_sub = PolledSubscription(self, JointState, f'{ns}/joint_ctrl_single', QOS_DRIVER)
            self.create_subscription(Bool, f'{ns}/enable_flag', lambda m, io=io: self._on_enable_flag(io, m),
                                     QOS_DRIVER)
            self.create_service(Enable, f'{ns}/enable_srv', lambda req, resp, io=io: self._on_enable_srv(io, req, resp))
            io.enabled = bool(p['auto_enable'])
            if not io.enabled:
                self.sim.set_enabled(arm, False)
            self.io[arm] = io

        self.pub_image = self.create_publisher(Image, 'camera/ego/image_raw', QOS_CAMERA)
        self.pub_info = self.create_publisher(CameraInfo, 'camera/ego/camera_info', QOS_CAMERA)
        self.pub_task = self.create_publisher(String, 'sim/task_status', QOS_STATUS)
        self.pub_clock = self.create_publisher(Clock, '/clock', QOS_STATUS) if self.clock_mode else None
        self.create_service(Trigger, 'sim/reset', self._on_reset)
        self._hold_client = (self.create_client(Trigger, p['streamer_hold_service'])
                             if p['streamer_hold_service'] else None)
        self._image = Image()
        self._image.header.frame_id = p['camera_frame_id']
        self._image.encoding = 'rgb8'
        self._image.height, self._image.width = p['image_height'], p['image_width']
        self._image.step = 3 * p['image_width']
        self._info = self._camera_info()
        self._clock_msg = Clock()

        self._due_js = _Due(p['joint_state_rate'])
        self._due_status = _Due(p['status_rate'])
        self._due_cam = _Due(p['camera_rate'])
        self._due_task = _Due(p['task_status_rate'])
        self._mono0 = None
        self._sim_t0 = 0.0
        self._rtf_window = deque(maxlen=int(self.loop_rate * 5))   # (mono, sim time) samples
        self.lag_steps = 0
        self._publish_task_status()
        self._loop = DeadlineLoop(1.0 / self.loop_rate, self._tick, name='piper_sim_physics').start()
        self.get_logger().info(
            f"piper_sim: task {p['task']} ({p['level']}, seed {p['seed']}), physics {1 / self.sim.physics_dt:.0f} Hz, "
            f"loop {self.loop_rate:g} Hz, joint states {p['joint_state_rate']:g} Hz, status {p['status_rate']:g} Hz, "
            f"camera {p['image_width']}x{p['image_height']} @ {p['camera_rate']:g} Hz, arms "
            f"{', '.join(self.arm_namespaces)} {'enabled' if p['auto_enable'] else 'disabled'}{', /clock' if self.clock_mode else ''}")

    # ------------------------------------------------------------------------------------------------
    def _check_params(self, p):
        def need(cond, msg):
            if not cond:
                raise ParameterError(msg)
        need(0 < p['physics_dt'] <= 0.002, f"physics_dt must be in (0, 0.002] s, got {p['physics_dt']}")
        need(0.05 <= p['real_time_factor'] <= 10, f"real_time_factor must be 0.05..10, got {p['real_time_factor']}")
        need(50 <= p['loop_rate'] <= 1000, f"loop_rate must be 50..1000 Hz, got {p['loop_rate']}")
        need(1 <= p['joint_state_rate'] <= 1000, f"joint_state_rate must be 1..1000 Hz, got {p['joint_state_rate']}")
        need(0 <= p['status_rate'] <= max(p['joint_state_rate'], p['loop_rate']),
             f"status_rate must be 0..joint_state_rate Hz, got {p['status_rate']}")
        need(0 <= p['camera_rate'] <= 60, f"camera_rate must be 0..60 Hz, got {p['camera_rate']}")
        need(16 <= p['image_width'] <= 1280 and 16 <= p['image_height'] <= 960,
             f"image size must be 16..1280 x 16..960 px, got {p['image_width']}x{p['image_height']}")
        need(0 <= p['task_status_rate'] <= 50, f"task_status_rate must be 0..50 Hz, got {p['task_status_rate']}")
        need(isinstance(p['gripper_val_mutiple'], int) and 0 <= p['gripper_val_mutiple'] <= 10,
             f"gripper_val_mutiple must be an int 0..10, got {p['gripper_val_mutiple']!r}")
        arms = [ns.strip('/') for ns in p['arms']]
        need(len(arms) == len(ARMS) and all(arms) and len(set(arms)) == len(arms),
             f"arms must be {len(ARMS)} distinct non-empty namespaces (left, right), got {p['arms']!r}")
        need(p['seed'] >= 0, f"seed must be >= 0, got {p['seed']}")
        need(p['level'] in ('clean', 'randomized'), f"level must be 'clean' or 'randomized', got {p['level']!r}")
        need(p['reset_holdoff'] >= 0, f"reset_holdoff must be >= 0, got {p['reset_holdoff']}")
        from piper_core.sim.tasks import available_tasks
        need(p['task'] in available_tasks(), f"unknown task {p['task']!r}; available: {available_tasks()}")

    def _make_sim(self, task, level, seed):
        return self._Sim(task=task, level=level, seed=int(seed),
                         image_size=(self.p['image_height'], self.p['image_width']),
                         physics_dt=self.p['physics_dt'], old_firmware=self.p['old_firmware'])

    def _camera_info(self) -> CameraInfo:
        fx, fy, cx, cy = self.sim.camera_intrinsics()
        info = CameraInfo()
        info.header.frame_id = self.p['camera_frame_id']
        info.height, info.width = self.p['image_height'], self.p['image_width']
        info.distortion_model = 'plumb_bob'
        info.d = [0.0] * 5
        info.k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
        info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        info.p = [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
        return info

    # --- commands (worker thread): gate, parse, apply ---------------------------------------------------
    def _on_cmd(self, io: _ArmIO, msg: JointState):
        if not self.sim.enabled(io.arm):
            io.ignored_disabled += 1
            self._warn(io, f'{io.ns}: arm disabled, joint_ctrl_single ignored (enable via enable_flag / enable_srv)')
            return
        if time.monotonic() < self._holdoff_until:
            return
        try:
            cmd = pi.parse_joint_ctrl_single(msg.name, msg.position, msg.velocity, msg.effort,
                                             self.p['gripper_val_mutiple'])
        except (pi.CommandError, ValueError, TypeError) as exc:
            io.rejected += 1
            self._warn(io, f'{io.ns}: joint_ctrl_single ignored: {exc}')
            return
        q = cmd.q if cmd.gripper is None else np.append(cmd.q, cmd.gripper)
        self.sim.command(io.arm, q, cmd.speed_pct, cmd.gripper_effort)
        io.ctrl.velocity[6] = cmd.speed_pct
        io.ctrl.effort[6] = cmd.gripper_effort

    # --- callbacks (executor thread) --------------------------------------------------------------------
    def _warn(self, io, text):
        now = time.monotonic()
        if now - io.last_warn > 2.0:
            io.last_warn = now
            self.get_logger().warning(text)

    def _on_enable_flag(self, io: _ArmIO, msg: Bool):
        io.enabled = bool(msg.data)
        io.events.append(('enable', bool(msg.data), None))

    def _on_enable_srv(self, io: _ArmIO, req, resp):
        done = threading.Event()
        io.enabled = bool(req.enable_request)
        io.events.append(('enable', bool(req.enable_request), done))
        ok = done.wait(2.0)
        resp.enable_response = bool(ok and self.sim.enabled(io.arm) == bool(req.enable_request))
        self.get_logger().info(f"{io.ns}: enable_srv({req.enable_request}) -> {resp.enable_response}")
        return resp

    def _on_reset(self, req, resp):
        done = threading.Event()
        info = {}
        self._pending_reset = (done, info)
        if not done.wait(60.0):
            resp.success, resp.message = False, 'reset timed out'
            return resp
        resp.success = 'error' not in info
        resp.message = json.dumps(info)
        if resp.success and self._hold_client is not None and self._hold_client.service_is_ready():
            self._hold_client.call_async(Trigger.Request())
        return resp

    # --- worker thread -------------------------------------------------------------------------------
    def _apply_events(self):
        for io in self.io.values():
            while io.events:                       # enable / disable first, in arrival order
                ev = io.events.popleft()
                self.sim.set_enabled(io.arm, ev[1])
                if ev[2] is not None:
                    ev[2].set()
            msg = io.cmd_sub.take_latest()
            if msg is not None:
                self._on_cmd(io, msg)

    def _do_reset(self):
        done, info = self._pending_reset
        self._pending_reset = None
        try:
            task = self.get_parameter('task').value
            level = self.get_parameter('level').value
            seed = int(self.get_parameter('seed').value)
            from piper_core.sim.tasks import available_tasks
            if task not in available_tasks() or level not in ('clean', 'randomized') or seed < 0:
                raise ValueError(f'bad task/level/seed parameters: {task!r}, {level!r}, {seed}')
            if task != self.sim.task_name or level != self.sim.level:
                old = self.sim
                self.sim = self._make_sim(task, level, seed)
                old.close()
            else:
                self.sim.reset(seed)
            self.episode += 1
            for io in self.io.values():
                for ev in io.events:                  # a reset re-enables both arms
                    if ev[2] is not None:
                        ev[2].set()
                io.events.clear()
                io.cmd_sub.take_latest()           # drop commands queued before the reset
                io.enabled = True
                io.ctrl.velocity[6] = pi.SPEED_PCT_DEFAULT
                io.ctrl.effort[6] = pi.GRIPPER_EFFORT_DEFAULT
            self._holdoff_until = time.monotonic() + self.p['reset_holdoff']
            self._sim_t0 = self.sim.time
            self._mono0 = time.monotonic()
            self._rtf_window.clear()
            info.update(task=task, level=level, seed=seed, episode=self.episode, instruction=self.sim.instruction())
            self.get_logger().info(f'reset: {info}')
        except Exception as exc:  # never take the node down for a bad reset request
            info['error'] = str(exc)
            self.get_logger().error(f'reset failed: {exc}')
        done.set()
        self._publish_task_status()

    def _tick(self):
        mono = time.monotonic()
        sched = self._loop.deadline if hasattr(self, '_loop') else mono
        if self._pending_reset is not None:
            self._do_reset()
        sim = self.sim
        self._apply_events()
        if self._mono0 is None:
            self._mono0, self._sim_t0 = mono, sim.time
        target = self._sim_t0 + (mono - self._mono0) * self.p['real_time_factor']
        n = int((target - sim.time) / sim.physics_dt + 1e-6)
        max_n = int(0.1 / sim.physics_dt)          # never try to catch up more than 100 ms at once
        if n > max_n:
            self.lag_steps += n - max_n
            n = max_n
            self._mono0, self._sim_t0 = mono, sim.time + n * sim.physics_dt
        if n > 0:
            sim.step(n)
        self._rtf_window.append((mono, sim.time))
        if self.clock_mode:
            t = sim.time
            sec_to_stamp(t, self._clock_msg.clock)
            self.pub_clock.publish(self._clock_msg)
        else:
            t = self.get_clock().now().nanoseconds * 1e-9
        if self._due_js(sched):
            self._publish_joint_states(t)
        if self._due_status(sched):
            self._publish_status(t)
        if self._due_cam(sched):
            self._publish_camera(t)
        if self._due_task(sched):
            self._publish_task_status()

    def _publish_joint_states(self, t):
        sim = self.sim
        for io in self.io.values():
            msg = io.state
            sec_to_stamp(t, msg.header.stamp)
            msg.position = sim.joint_positions(io.arm).tolist()
            msg.velocity = sim.joint_velocities(io.arm).tolist()
            msg.effort = sim.joint_efforts(io.arm).tolist()
            io.pub_single.publish(msg)
            io.pub_feedback.publish(msg)

    def _publish_status(self, t):
        sim = self.sim
        for io in self.io.values():
            arm = io.arm
            enabled = sim.enabled(arm)
            flags = sim.limit_flags(arm)
            st = io.status
            st.ctrl_mode = pi.CTRL_MODE_CAN if enabled else pi.CTRL_MODE_STANDBY
            st.arm_status = pi.ARM_STATUS_TARGET_OVER_LIMIT if flags.any() else pi.ARM_STATUS_OK
            st.motion_status = pi.MOTION_MOVING if (enabled and sim.moving(arm)) else pi.MOTION_REACHED
            st.err_code = pi.err_code_from_flags(flags)
            (st.joint_1_angle_limit, st.joint_2_angle_limit, st.joint_3_angle_limit, st.joint_4_angle_limit,
             st.joint_5_angle_limit, st.joint_6_angle_limit) = (bool(f) for f in flags)
            io.pub_status.publish(st)
            pos, quat = sim.end_pose(arm)
            pose = io.pose
            pose.position.x, pose.position.y, pose.position.z = (float(v) for v in pos)
            (pose.orientation.x, pose.orientation.y, pose.orientation.z,
             pose.orientation.w) = (float(v) for v in quat)
            io.pub_pose.publish(pose)
            io.pose_stamped.pose = pose
            sec_to_stamp(t, io.pose_stamped.header.stamp)
            io.pub_pose_stamped.publish(io.pose_stamped)
            sec_to_stamp(t, io.ctrl.header.stamp)
            io.ctrl.position = sim.commanded_positions(arm).tolist()
            io.pub_ctrl.publish(io.ctrl)

    def _publish_camera(self, t):
        img = self.sim.render()
        buf = array.array('B')
        buf.frombytes(np.ascontiguousarray(img).tobytes())
        self._image.data = buf
        sec_to_stamp(t, self._image.header.stamp)
        self._info.header.stamp = self._image.header.stamp
        self.pub_image.publish(self._image)
        self.pub_info.publish(self._info)

    def real_time_factor(self) -> float:
        w = self._rtf_window
        if len(w) < 2 or w[-1][0] - w[0][0] <= 0:
            return 0.0
        return (w[-1][1] - w[0][1]) / (w[-1][0] - w[0][0])

    def _publish_task_status(self):
        st = self.sim.task_status()
        payload = {
            'task': self.sim.task_name, 'level': self.sim.level, 'seed': self.sim.seed, 'episode': self.episode,
            'instruction': self.sim.instruction(), 'success': bool(st.success), 'stage': str(st.stage),
            'time': float(st.time), 'timed_out': bool(st.timed_out), 'detail': st.detail,
            'sim_time': self.sim.time, 'real_time_factor': round(self.real_time_factor(), 4),
        }
        self.pub_task.publish(String(data=json.dumps(payload, default=_jsonable)))

    def close(self):
        self._loop.stop(timeout=5.0)
        for io in self.io.values():
            io.cmd_sub.destroy()
        if self._loop.alive:
            # a tick still renders or steps: freeing MuJoCo/OSMesa under it would crash the process; exit frees it
            self.get_logger().warning('physics loop still running at shutdown; leaving the simulator to process exit')
            return
        try:
            self.sim.close()
        except Exception:
            pass


def _jsonable(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.floating, np.integer, np.bool_)):
        return v.item()
    return str(v)


def main(args=None):
    return run_node(PiperSim, 'piper_sim', args)


if __name__ == '__main__':
    raise SystemExit(main())
