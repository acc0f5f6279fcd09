"""``trajectory_streamer``: JointTrajectory -> ``joint_ctrl_single`` at 200 Hz for one or more Piper arms.

One process serves all arms from ONE deadline loop, so trajectories started on a common header stamp
are sampled on the same tick and stay in step. Per arm ``<arm>`` (topics relative to the node's
namespace; ``arms: ['']`` serves a single arm in the node's own namespace):

* subscribes ``<arm>/joint_trajectory`` (trajectory_msgs/JointTrajectory, joint_trajectory_controller
  semantics, see ``piper_core.trajectory``; malformed ones are rejected with a warning);
* subscribes ``<arm>/joint_states_single`` (sensor_msgs/JointState; best effort, depth 1; read at about
  50 Hz from the loop) to hold the measured position at startup and to resync the hold while idle;
* service ``~/hold_measured`` (std_srvs/Trigger): drop all trajectories and hold the first measured
  state stamped after the call (piper_sim calls it after ``sim/reset``);
* publishes ``<arm>/joint_ctrl_single`` (sensor_msgs/JointState, names joint1..joint6, gripper;
  position 7 = rad x6 + total gripper opening m; velocity 7 = zeros + speed percent at index 6; effort
  7 = zeros + gripper effort N·m at index 6; header stamp = tick time on the ROS clock). Nothing is
  published for an arm until its first joint state arrived.

Parameters: see ``config/piper/trajectory_streamer.yaml``.
"""
from __future__ import annotations

import threading
import time

import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from piper_core.piper_interface import JOINT_NAMES, LOWER7, MAX_VELOCITY7, UPPER7
from ros_node_kit import DeadlineLoop, ParameterError, PolledSubscription, declare, run_node, sec_to_stamp, stamp_to_sec
from piper_core.trajectory import ArmStreamer, Limits, TrajectoryError, parse_trajectory

QOS_CMD = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
QOS_STATE = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST)
QOS_TRAJ = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)


def _topic(arm: str, name: str) -> str:
    return f'{arm}/{name}' if arm else name


class _Arm:
    def __init__(self, name: str, limits: Limits):
        self.name = name or '(node namespace)'
        self.streamer = ArmStreamer(limits)
        self.measured: np.ndarray | None = None
        self.measured_at = 0.0          # monotonic time of the last joint state
        self.deviating_since: float | None = None
        self.hold_after: float | None = None   # hold_measured: re-init from the first state stamped after this
        self.msg = JointState()
        self.msg.name = list(JOINT_NAMES)
        self.pub = None


class TrajectoryStreamer(Node):
    def __init__(self, **kwargs):
        super().__init__('trajectory_streamer', **kwargs)
        arms = declare(self, 'arms', ['left', 'right'],
                       'Arm namespaces served by this process (topics <arm>/joint_trajectory, ...); [""] = node namespace.',
                       read_only=True)
        rate = declare(self, 'rate', 200.0, 'Command rate, Hz (1..1000); one loop for all arms.', read_only=True)
        lower = declare(self, 'position_lower', LOWER7.tolist(),
                        'Lower position limits joint1..joint6 rad, gripper total opening m (7 values).', read_only=True)
        upper = declare(self, 'position_upper', UPPER7.tolist(),
                        'Upper position limits joint1..joint6 rad, gripper total opening m (7 values).', read_only=True)
        vmax = declare(self, 'max_velocity', MAX_VELOCITY7.tolist(),
                       'Velocity limits joint1..joint6 rad/s, gripper m/s (7 values > 0); the output is rate-limited to them.',
                       read_only=True)
        tol = declare(self, 'position_tolerance', [0.02] * 6 + [0.005],
                      'Trajectory points further outside the limits than this (rad x6, m) are rejected; closer ones are clamped.',
                      read_only=True)
        self.speed_percent = declare(self, 'speed_percent', 100.0,
                                     'Arm speed percent sent in velocity[6] of joint_ctrl_single (1..100).')
        self.gripper_effort = declare(self, 'gripper_effort', 1.0,
                                      'Gripper effort N·m sent in effort[6] of joint_ctrl_single (0.5..3).')
        self.resync_threshold = declare(self, 'resync_threshold', 0.1,
                                        'While idle, if a measured arm joint differs from the held command by more than '
                                        'this (rad) for resync_after s, hold the measured position instead (e.g. after a '
                                        'simulator reset or a disable-drop). 0 disables.')
        self.resync_after = declare(self, 'resync_after', 1.0, 'See resync_threshold, s (>= 0).')
        if not (1.0 <= rate <= 1000.0):
            raise ParameterError(f'rate must be within 1..1000 Hz, got {rate}')
        if not (1.0 <= self.speed_percent <= 100.0):
            raise ParameterError(f'speed_percent must be within 1..100, got {self.speed_percent}')
        if not (0.5 <= self.gripper_effort <= 3.0):
            raise ParameterError(f'gripper_effort must be within 0.5..3 N·m, got {self.gripper_effort}')
        if self.resync_threshold < 0 or self.resync_after < 0:
            raise ParameterError('resync_threshold and resync_after must be >= 0')
        if len(set(arms)) != len(arms) or not arms:
            raise ParameterError(f'arms must be a non-empty list of distinct names, got {arms}')
        try:
            self.limits = Limits(lower=np.array(lower, float), upper=np.array(upper, float),
                                 max_velocity=np.array(vmax, float), position_tolerance=np.array(tol, float))
        except ValueError as exc:
            raise ParameterError(str(exc)) from exc

        self._lock = threading.Lock()
        self.arms: dict[str, _Arm] = {}
        for arm in arms:
            a = _Arm(arm, self.limits)
            a.msg.velocity = [0.0] * 6 + [float(self.speed_percent)]
            a.msg.effort = [0.0] * 6 + [float(self.gripper_effort)]
            a.pub = self.create_publisher(JointState, _topic(arm, 'joint_ctrl_single'), QOS_CMD)
            self.create_subscription(JointTrajectory, _topic(arm, 'joint_trajectory'),
                                     lambda msg, a=a: self._on_trajectory(a, msg), QOS_TRAJ)
            # polled from the loop (50 Hz) instead of a 200 Hz executor callback per arm: see PolledSubscription
            a.state_sub = PolledSubscription(self, JointState, _topic(arm, 'joint_states_single'), QOS_STATE)
            self.arms[arm] = a
        self.create_service(Trigger, '~/hold_measured', self._on_hold_measured)
        self._tick_count = 0
        self._state_every = max(1, int(round(rate / 50.0)))     # read joint states at about 50 Hz
        self._loop = DeadlineLoop(1.0 / rate, self._tick, name='streamer').start()
        self.get_logger().info(f'streaming {list(arms)} at {rate:g} Hz')

    # --- callbacks (executor thread; _on_state from the loop) ----------------------------------------------
    def _on_state(self, a: _Arm, msg: JointState):
        pos = msg.position
        if len(pos) < 7:
            return
        q = np.array(pos[:7], dtype=float)
        if not np.all(np.isfinite(q)):
            return
        with self._lock:
            a.measured = q
            a.measured_at = time.monotonic()
            if a.hold_after is not None:
                st = stamp_to_sec(msg.header.stamp)
                if st == 0.0 or st >= a.hold_after:
                    a.hold_after = None
                    a.streamer.set_measured(q)
                    self.get_logger().info(f'{a.name}: hold_measured: holding {np.round(q, 4).tolist()}')
            elif not a.streamer.initialized:
                a.streamer.set_measured(q)
                self.get_logger().info(f'{a.name}: holding measured position {np.round(q, 4).tolist()}')

    def _on_trajectory(self, a: _Arm, msg: JointTrajectory):
        try:
            points = [(stamp_to_sec(p.time_from_start), p.positions, p.velocities, p.accelerations)
                      for p in msg.points]
            traj = parse_trajectory(msg.joint_names, points, stamp_to_sec(msg.header.stamp), self.limits)
            now = self.get_clock().now().nanoseconds * 1e-9
            with self._lock:
                start = a.streamer.submit(traj, now)
        except (TrajectoryError, ValueError) as exc:
            a.streamer.rejected += 1
            self.get_logger().warning(f'{a.name}: rejected joint_trajectory: {exc}')
            return
        if traj.peak_velocity_ratio > 1.0 + 1e-6:
            self.get_logger().warning(
                f'{a.name}: trajectory asks for {traj.peak_velocity_ratio:.2f}x the velocity limit; '
                'the command is rate-limited and will lag', throttle_duration_sec=2.0)
        self.get_logger().debug(f'{a.name}: accepted {len(points)} points, start {start:.3f}, '
                                f'duration {traj.duration:.3f} s')

    def _on_hold_measured(self, req, resp):
        now = self.get_clock().now().nanoseconds * 1e-9
        with self._lock:
            for a in self.arms.values():
                a.hold_after = now
        resp.success = True
        resp.message = f'dropping trajectories; holding the first joint state stamped after {now:.3f}'
        return resp

    # --- deadline loop (one thread, all arms) ---------------------------------------------------------
    def _tick(self):
        self._tick_count += 1
        if self._tick_count % self._state_every == 1 or self._state_every == 1:
            for a in self.arms.values():
                m = a.state_sub.take_latest()
                if m is not None:
                    self._on_state(a, m)
        now_msg = self.get_clock().now()
        now = now_msg.nanoseconds * 1e-9
        if now <= 0.0:      # sim time before the first /clock
            return
        mono = time.monotonic()
        out = []
        with self._lock:
            for a in self.arms.values():
                q = a.streamer.step(now)
                if q is None:
                    continue
                self._maybe_resync(a, mono)
                out.append((a, a.streamer.command.tolist()))
        for a, q in out:
            msg = a.msg
            sec_to_stamp(now, msg.header.stamp)
            msg.position = q
            a.pub.publish(msg)

    def _maybe_resync(self, a: _Arm, mono: float):
        if self.resync_threshold <= 0 or a.measured is None or mono - a.measured_at > 0.5 or a.streamer.busy:
            a.deviating_since = None
            return
        dev = float(np.max(np.abs(a.measured[:6] - a.streamer.command[:6])))
        if dev <= self.resync_threshold:
            a.deviating_since = None
        elif a.deviating_since is None:
            a.deviating_since = mono
        elif mono - a.deviating_since >= self.resync_after:
            a.streamer.resync_arm_joints(a.measured)
            a.deviating_since = None
            self.get_logger().info(f'{a.name}: idle and {dev:.3f} rad away from the held command; '
                                   'now holding the measured position')

    def close(self):
        self._loop.stop()
        for a in self.arms.values():
            a.state_sub.destroy()


def main(args=None):
    return run_node(TrajectoryStreamer, 'trajectory_streamer', args)


if __name__ == '__main__':
    raise SystemExit(main())
