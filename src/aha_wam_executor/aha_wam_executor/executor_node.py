"""executor_node: latest context + image + both arms' joint states -> action chunk -> two JointTrajectories.

Thin ROS I/O around `aha_wam.runtime.ExecutorRuntime`. Subscription callbacks only fill latest-value
caches; a control thread runs at `control_rate` with absolute deadlines: read the newest context through
the channel, run one update (phase offset, OVCR, denoise, safety guard, hand-over at the action now due)
and publish both arms' `JointTrajectory` with ONE common start stamp, an `ExecutorStatus`, predicted
end-effector paths (MarkerArray) and diagnostics. When the policy cannot be trusted (no/stale context,
stale image or joints, NaN or out-of-limit chunk, inference error) the arms hold their position.
"""
from __future__ import annotations

import sys
import threading
import time

import numpy as np
import torch
from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Point
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
from visualization_msgs.msg import Marker, MarkerArray

from aha_wam.checkpoint import load_checkpoint
from aha_wam.context.channel import ContextReader, Rejection
from aha_wam.export import make_backend
from aha_wam.ros.context_msg import CONTEXT_TOPIC, context_qos, msg_to_descriptor
from aha_wam.ros.convert import diagnostic_array, image_to_rgb, ns_to_stamp, stamp_to_ns
from ros_node_kit import declare_table as declare
from ros_node_kit import run_node
from aha_wam.runtime.executor_runtime import ExecutorRuntime, Freshness, Observation, Update
from aha_wam.runtime.faults import Fault
from aha_wam.runtime.rate import FrameClock, LatencyStats, RateMeter
from aha_wam.runtime.safety import ChunkGuard
from aha_wam_msgs.msg import ExecutorStatus, PlannerContext

from piper_core.layout import JOINT_NAMES  # noqa: E402

PARAMETERS = {
    'checkpoint': ('', 'policy checkpoint directory (config, model.safetensors, norm stats); required'),
    'device': ('cpu', "torch device: 'cpu', 'cuda', 'cuda:N'"),
    'torch_threads': (1, 'CPU threads for torch intra-op parallelism (0 = torch default: all cores); planner, '
                         'executor and simulator share the CPU, and idle OpenMP workers spin'),
    'denoise_steps': (10, 'flow-matching Euler steps per chunk (1..64); Flash checkpoints use 1..4'),
    'backend': ('torch', "executor inference backend: 'torch' (eager), 'torch_compile', 'cudagraph' (CUDA), "
                        "'onnxruntime', 'tensorrt' (CUDA + tensorrt package); one that cannot run here "
                        'refuses at start, naming the missing package or device'),
    'control_rate': (20.0, 'executor updates per second, Hz (1..200)'),
    'max_frame_wait': (0.015, 's, 0..0.05: when the next camera frame is due within this, an update waits for '
                              'it (phase lock to the camera: lower image-to-trajectory latency); 0 = never wait'),
    'max_context_age': (1.0, 's (> 0): hold when the newest valid context is older'),
    'max_image_age': (0.5, 's (> 0): hold when the newest image is older'),
    'max_joint_state_age': (0.25, 's (> 0): hold when either arm state is older'),
    'arms': (['left', 'right'], 'arm namespaces, left first (action dims 0..6 and 7..13)'),
    'image_topic': ('/camera/ego/image_raw', 'ego camera, sensor_msgs/Image rgb8 or bgr8'),
    'context_topic': (CONTEXT_TOPIC, 'planner descriptor topic, aha_wam_msgs/PlannerContext'),
    'joint_state_topic': ('joint_states_single', 'per-arm joint states (relative to the arm namespace)'),
    'trajectory_topic': ('joint_trajectory', 'per-arm trajectory output (relative to the arm namespace)'),
    'limit_tolerance': (0.06, 'rad, 0..0.2: chunks this close outside an arm joint limit are clamped to it; '
                              'further out they are discarded and the arms hold'),
    'gripper_limit_tolerance': (0.07, 'm, 0..0.1: gripper targets this far outside 0..0.07 m are clamped (the '
                                      'driver clamps them too); further out the chunk is discarded'),
    'task': (0, 'task id of the checkpoint task table (>= 0)'),
    'seed': (0, 'seed of the denoising noise (reproducible runs)'),
    'publish_markers': (True, 'publish predicted end-effector paths on /aha_wam/markers'),
    'marker_rate': (5.0, 'Hz (> 0), at most this many marker updates per second (rviz needs few; FK costs CPU)'),
    'marker_frames': (['left_base_link', 'right_base_link'], 'frame_id of each arm base for the markers'),
    'diagnostics_period': (1.0, 's (> 0) between /diagnostics messages'),
}


class ArmCache:
    """Newest joint state of one arm: positions (7,) joint1..6 rad + gripper m, and its stamp."""

    def __init__(self):
        self.position: np.ndarray | None = None
        self.stamp_ns: int | None = None


class ExecutorNode(Node):
    def __init__(self):
        super().__init__('executor')
        p = self.params = declare(self, PARAMETERS)
        if not p['checkpoint']:
            raise ValueError("parameter 'checkpoint' is empty: give the policy checkpoint directory")
        if len(p['arms']) != 2:
            raise ValueError(f"arms must name two namespaces (left, right), got {p['arms']}")
        if not 1.0 <= p['control_rate'] <= 200.0:
            raise ValueError(f"control_rate={p['control_rate']} Hz is outside 1..200")
        if not 0.0 <= p['limit_tolerance'] <= 0.2:
            raise ValueError(f"limit_tolerance={p['limit_tolerance']} is outside 0..0.2")
        if not 0.0 <= p['gripper_limit_tolerance'] <= 0.1:
            raise ValueError(f"gripper_limit_tolerance={p['gripper_limit_tolerance']} is outside 0..0.1")
        if not 0.0 <= p['max_frame_wait'] <= 0.05:
            raise ValueError(f"max_frame_wait={p['max_frame_wait']} s is outside 0..0.05")
        if not p['marker_rate'] > 0:
            raise ValueError(f"marker_rate={p['marker_rate']} Hz must be > 0")
        if not 1 <= p['denoise_steps'] <= 64:
            raise ValueError(f"denoise_steps={p['denoise_steps']} is outside 1..64")
        if p['torch_threads'] > 0:
            torch.set_num_threads(p['torch_threads'])
        self.policy, provenance = load_checkpoint(p['checkpoint'], device=p['device'])
        # Export / capture / engine build happen here, before the first update (BackendUnavailable if not here).
        backend = make_backend(self.policy, p['backend'], steps=p['denoise_steps'])
        self.runtime = ExecutorRuntime(
            self.policy, steps=p['denoise_steps'], seed=p['seed'], task=p['task'], backend=backend,
            guard=ChunkGuard(tolerance=p['limit_tolerance'], gripper_tolerance=p['gripper_limit_tolerance']),
            freshness=Freshness(p['max_context_age'], p['max_image_age'], p['max_joint_state_age']))
        self.reader = ContextReader(max_age_s=p['max_context_age'], expected_layout=self.policy.planner.layout)
        self.reader.prepare(self.policy.planner.layout)
        self.get_logger().info(f"checkpoint {p['checkpoint']} ({self.policy.config.name}, "
                               f"{provenance.get('steps', 0)} steps), backend {backend.describe()}, "
                               f"{p['denoise_steps']} steps at {p['control_rate']} Hz, arms {p['arms']}")

        self._lock = threading.Lock()
        self._image: tuple[np.ndarray, int] | None = None
        self._arms = [ArmCache() for _ in p['arms']]
        self._descriptor: PlannerContext | None = None
        self._planner_context = None
        self._read_key = None                 # (session, version) of the descriptor last read
        self._rejected_detail = ''
        self._moving = False                  # a chunk was sent since the last hold
        self.chunk_index = 0
        self.rate = RateMeter()
        self.frames = FrameClock(p['max_frame_wait'])
        self._next_marker = 0.0
        self.total_ms = LatencyStats()
        self.e2e_ms = LatencyStats()
        self.last_update: Update | None = None
        self.dropped = {'image': 0, 'joint_state': 0}

        sensor_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
        cmd_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=2, reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(Image, p['image_topic'], self._on_image, sensor_qos)
        self.create_subscription(PlannerContext, p['context_topic'], self._on_context, context_qos())
        self.traj_pubs = []
        for i, arm in enumerate(p['arms']):
            self.create_subscription(JointState, f"{arm}/{p['joint_state_topic']}",
                                     lambda msg, i=i: self._on_joint_state(i, msg), sensor_qos)
            self.traj_pubs.append(self.create_publisher(JointTrajectory, f"{arm}/{p['trajectory_topic']}", cmd_qos))
        self.status_pub = self.create_publisher(ExecutorStatus, '/aha_wam/executor/status', 10)
        self.marker_pub = self.create_publisher(MarkerArray, '/aha_wam/markers', 10)
        self.diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_timer(p['diagnostics_period'], self._publish_diagnostics)
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._control_loop, name='executor_control', daemon=True)
        self._worker.start()

    # ---------------------------------------------------------------------------------- callbacks
    def _on_image(self, msg: Image) -> None:
        try:
            rgb = image_to_rgb(msg)
        except ValueError as exc:
            self.dropped['image'] += 1
            self.get_logger().warning(f'dropping image: {exc}', throttle_duration_sec=5.0)
            return
        with self._lock:
            self._image = (rgb, stamp_to_ns(msg.header.stamp))
        self.frames.arrived()

    def _on_joint_state(self, index: int, msg: JointState) -> None:
        # piper_ros: names joint1..joint6, gripper; position[6] = total gripper opening (m).
        try:
            by_name = dict(zip(msg.name, msg.position))
            position = np.array([by_name[n] for n in JOINT_NAMES], dtype=float)
        except KeyError as exc:
            self.dropped['joint_state'] += 1
            self.get_logger().warning(f'dropping joint state without {exc}', throttle_duration_sec=5.0)
            return
        with self._lock:
            arm = self._arms[index]
            arm.position, arm.stamp_ns = position, stamp_to_ns(msg.header.stamp)

    def _on_context(self, msg: PlannerContext) -> None:
        with self._lock:
            self._descriptor = msg          # read in the control thread, not here

    # ---------------------------------------------------------------------------------- control loop
    def _control_loop(self) -> None:
        period = 1.0 / self.params['control_rate']
        deadline = time.monotonic()
        while not self._stop.is_set():
            self.frames.wait_if_imminent()        # phase lock: compute on a frame that is about to arrive
            started = time.monotonic()
            try:
                self._update_once(period)
            except Exception as exc:   # the loop must survive anything; the arms hold via staleness
                if not self.context.ok():
                    break              # shutting down (Ctrl-C / SIGTERM): publishers are gone
                self.get_logger().error(f'control update failed: {type(exc).__name__}: {exc}',
                                        throttle_duration_sec=2.0)
            now = time.monotonic()
            self.total_ms.add((now - started) * 1e3)
            # Absolute deadlines: one late update is absorbed by starting the next one at once (the rate
            # holds); more than a whole period behind, the missed tick is dropped instead of bursting.
            deadline += period
            if now - deadline > period:
                deadline = now
            elif self._stop.wait(max(0.0, deadline - now)):
                break

    def _read_context(self) -> tuple[Fault, str, float]:
        with self._lock:
            msg = self._descriptor
        if msg is None:
            return Fault.NONE, '', 0.0
        key = (msg.session_id, msg.version)
        if key == self._read_key:
            return Fault.NONE, '', 0.0
        t0 = time.perf_counter()
        try:
            result = self.reader.read(msg_to_descriptor(msg))
        except Exception as exc:    # malformed message content: reject, keep the last good context
            result = Rejection('bad_descriptor', f'{type(exc).__name__}: {exc}')
        read_ms = (time.perf_counter() - t0) * 1e3
        self._read_key = key
        if isinstance(result, Rejection):
            self._rejected_detail = str(result)
            self.get_logger().warning(f'context rejected: {result}', throttle_duration_sec=2.0)
            return Fault.CONTEXT_REJECTED, str(result), read_ms
        self._planner_context = result
        return Fault.NONE, '', read_ms

    def _observation(self) -> Observation | None:
        with self._lock:
            image, arms = self._image, [(a.position, a.stamp_ns) for a in self._arms]
        if image is None:
            return None
        ok = all(pos is not None for pos, _ in arms)
        return Observation(image=image[0], image_stamp_ns=image[1],
                           proprio=np.concatenate([pos for pos, _ in arms]) if ok else None,
                           joint_stamps_ns=tuple(stamp for _, stamp in arms) if ok else ())

    def _update_once(self, period: float) -> None:
        t_start = time.perf_counter()
        read_fault, read_detail, read_ms = self._read_context()
        obs = self._observation()
        now_ns = self.get_clock().now().nanoseconds
        update = self.runtime.update(self._planner_context, obs, now_ns)
        update.faults |= read_fault
        if read_detail:
            update.detail = '; '.join(filter(None, [update.detail, read_detail]))
        t_pub = time.perf_counter()
        start_ns = 0
        if update.handover is not None and not update.handover.empty:
            start_ns = self._publish_chunk(update)
            self.chunk_index += 1
            self._moving = True
            self.e2e_ms.add((self.get_clock().now().nanoseconds - obs.image_stamp_ns) * 1e-6)
        elif update.holding and self._moving:
            self._publish_hold(obs)           # once per fault episode: stop where the arms are
            self._moving = False
        publish_ms = (time.perf_counter() - t_pub) * 1e3
        total_ms = (time.perf_counter() - t_start) * 1e3
        if total_ms > period * 1e3:
            update.faults |= Fault.OVERRUN
        self.last_update = update
        self.rate.tick()
        self._publish_status(update, obs, start_ns, read_ms, publish_ms, total_ms)

    # ---------------------------------------------------------------------------------- publishing
    def _publish_chunk(self, update: Update) -> int:
        h = update.handover
        stamp = ns_to_stamp(h.start_ns)                    # one start stamp for both arms: they stay in step
        times = h.times_from_start()
        for i, pub in enumerate(self.traj_pubs):
            msg = JointTrajectory(joint_names=list(JOINT_NAMES))
            msg.header.stamp = stamp
            for t, q in zip(times, h.actions[:, 7 * i:7 * (i + 1)]):
                sec = int(t)
                msg.points.append(JointTrajectoryPoint(positions=q.tolist(), time_from_start=Duration(
                    sec=sec, nanosec=int(round((t - sec) * 1e9)))))
            pub.publish(msg)
        now = time.monotonic()
        if self.params['publish_markers'] and now >= self._next_marker:
            self._next_marker = now + 1.0 / self.params['marker_rate']
            self._publish_markers(h.actions)
        return h.start_ns

    def _publish_hold(self, obs: Observation | None) -> None:
        """A one-point trajectory at the measured position, starting now (stamp 0): the arms stop."""
        if obs is None or obs.proprio is None:
            return     # nothing measured: the streamer already holds its last command
        for i, pub in enumerate(self.traj_pubs):
            msg = JointTrajectory(joint_names=list(JOINT_NAMES))
            msg.points.append(JointTrajectoryPoint(positions=obs.proprio[7 * i:7 * (i + 1)].tolist(),
                                                   time_from_start=Duration(sec=0, nanosec=0)))
            pub.publish(msg)

    def _publish_markers(self, actions: np.ndarray) -> None:
        try:
            from piper_core.sim.kinematics import fk_frames
        except ImportError:
            return
        markers = MarkerArray(markers=[Marker(action=Marker.DELETEALL)])
        for i, frame in enumerate(self.params['marker_frames'][:2]):
            m = Marker(ns=f'predicted_path/{self.params["arms"][i]}', id=i, type=Marker.LINE_STRIP,
                       action=Marker.ADD)
            m.header.frame_id = frame
            m.scale.x = 0.005
            m.color.r, m.color.g, m.color.b, m.color.a = (0.1, 0.6, 1.0, 1.0) if i == 0 else (1.0, 0.5, 0.1, 1.0)
            m.pose.orientation.w = 1.0
            for q in actions[:, 7 * i:7 * i + 6]:
                x, y, z = fk_frames(q)[-1][:3, 3]
                m.points.append(Point(x=float(x), y=float(y), z=float(z)))
            markers.markers.append(m)
        self.marker_pub.publish(markers)

    def _publish_status(self, u: Update, obs, start_ns: int, read_ms: float, publish_ms: float,
                        total_ms: float) -> None:
        s = ExecutorStatus()
        s.header.stamp = self.get_clock().now().to_msg()
        if obs is not None:
            s.observation_stamp = ns_to_stamp(obs.image_stamp_ns)
        s.trajectory_start = ns_to_stamp(start_ns)
        s.context_read_ms, s.ovcr_ms, s.denoise_ms = float(read_ms), float(u.ovcr_ms), float(u.denoise_ms)
        s.publish_ms, s.total_ms = float(publish_ms), float(total_ms)
        s.context_version, s.context_session_id = int(u.context_version), int(u.context_session_id)
        s.context_age_ms = float(u.context_age_ms) if np.isfinite(u.context_age_ms) else -1.0
        s.phase_offset = int(u.phase_offset)
        s.inference_delay = int(u.handover.first) if u.handover is not None else 0
        s.denoise_steps = int(self.runtime.steps)
        s.chunk_index = int(self.chunk_index)
        s.control_rate_hz = float(self.rate.rate())
        s.holding = bool(u.holding)
        s.fault_flags = int(u.faults)
        s.detail = u.detail
        self.status_pub.publish(s)

    def _publish_diagnostics(self) -> None:
        u = self.last_update
        p50, p95 = self.total_ms.percentiles(50, 95)
        e50, e95 = self.e2e_ms.percentiles(50, 95)
        stats = self.reader.stats()
        level = 'stale' if u is None else ('warn' if u.holding else 'ok')
        self.diag_pub.publish(diagnostic_array(
            self.get_clock().now().to_msg(), f'aha_wam: {self.get_fully_qualified_name()}', level,
            'no update yet' if u is None else (u.detail or f'{self.rate.rate():.1f} Hz'), {
                'control_rate_hz': f'{self.rate.rate():.2f}', 'update_ms_p50': f'{p50:.1f}',
                'update_ms_p95': f'{p95:.1f}', 'image_to_trajectory_ms_p50': f'{e50:.1f}',
                'image_to_trajectory_ms_p95': f'{e95:.1f}', 'chunks': self.chunk_index,
                'faults': '' if u is None else ','.join(u.faults.names),
                'contexts_accepted': stats['accepted'], 'contexts_rejected': stats['rejected'],
                'rejections': {k: v for k, v in stats['rejections'].items() if v},
                'dropped_images': self.dropped['image'], 'dropped_joint_states': self.dropped['joint_state']}))

    def destroy_node(self):
        self._stop.set()
        self._worker.join(5.0)
        self.reader.close()
        super().destroy_node()


def main(argv=None) -> int:
    return run_node(ExecutorNode, 'executor_node', argv)


if __name__ == '__main__':
    sys.exit(main())
