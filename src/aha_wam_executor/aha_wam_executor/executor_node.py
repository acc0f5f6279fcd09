"""executor_node: a managed (lifecycle) node around `aha_wam.runtime.ExecutorSession`.

    configure   load the checkpoint, build the session on its backend (exported ONNX graphs are cached next to
                the checkpoint, keyed by its content), one warm-up inference, subscribe and advertise
    activate    start the control loop at `control_rate` (absolute deadlines, phase-locked to the camera)
    deactivate  stop the loop and hold the arms at their measured position
    cleanup     release the session (the shared-memory mapping, the backend)

The node holds no model math and no schedule logic: callbacks fill latest-value caches and queue context
descriptors; each control tick hands the newest observation and the time to `ExecutorSession.step` and
publishes what it returns (both arms' JointTrajectory with one common start stamp, or a hold), plus
ExecutorStatus, markers and diagnostics. The ClosedLoop of `aha-wam eval-sim` drives the same session.
With `trace_dir` set, every tick's inputs and outputs are written there (aha_wam.runtime.trace), so a test
can replay the node's own observation stream through a fresh session and compare.
"""
from __future__ import annotations

import os
import sys
import threading
import time

import numpy as np
import torch
from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Point
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
from visualization_msgs.msg import Marker, MarkerArray

from aha_wam.context.channel import Rejection
from aha_wam.ros.context_msg import CONTEXT_TOPIC, context_subscription_qos, msg_to_descriptor
from aha_wam.interop.contract import check_contract
from aha_wam.ros.cameras import SENSOR_QOS, CameraSet, camera_topics
from aha_wam.ros.convert import diagnostic_array, ns_to_stamp, stamp_to_ns
from aha_wam.runtime.executor_session import ExecutorOptions, Freshness, Observation, Update
from aha_wam.runtime.rate import FrameClock, LatencyStats, RateMeter
from aha_wam_msgs.msg import ExecutorStatus, PlannerContext
from piper_core.joint_names import JointNameError, name_map
from piper_core.layout import ARMS, JOINT_NAMES, split_arms
from ros_node_kit import ParameterError, declare_table, run_node
from ros_node_kit.managed import FAILURE, SUCCESS, ManagedLoopNode

PARAMETERS = {
    'checkpoint': ('', 'policy checkpoint directory (config, model.safetensors, norm stats); required'),
    'device': ('cpu', "torch device: 'cpu', 'cuda', 'cuda:N'"),
    'torch_threads': (1, 'CPU threads for torch intra-op parallelism (0 = torch default: all cores); planner, '
                         'executor and simulator share the CPU, and idle OpenMP workers spin', (0, 256)),
    'denoise_steps': (10, 'flow-matching Euler steps per chunk; Flash checkpoints use 1..4', (1, 64)),
    'backend': ('torch', "executor inference backend: 'torch' (eager), 'torch_compile', 'cudagraph' (CUDA), "
                        "'onnxruntime', 'tensorrt' (CUDA + tensorrt package); one that cannot run here "
                        'refuses at configure, naming the missing package or device'),
    'control_rate': (20.0, 'executor updates per second, Hz', (1.0, 200.0)),
    'execute_actions': (0, "actions of a sent chunk (the policy's action grid, counted from its observation) that "
                           'run before the next inference; 0 = a new chunk at every update (the official RoboTwin '
                           'eval runs whole 16-action chunks)', (0, 64)),
    'max_frame_wait': (0.015, 's: when the next camera frame is due within this, an update waits for it (phase '
                              'lock to the camera: lower image-to-trajectory latency); 0 = never wait', (0.0, 0.05)),
    'max_context_age': (1.0, 's: hold when the newest valid context is older', (0.001, 60.0)),
    'trusted_planner': ('/planner', "fully qualified name of the planner node whose shared-memory / CUDA IPC "
                                    "contexts are trusted (its segment name follows from it); '' = any segment of "
                                    'this user'),
    'accept_inline_context': (False, 'accept inline contexts (planner on another host); they trust the whole DDS '
                                     'domain (no ROS 2 security in this build), so they are off unless needed'),
    'max_image_age': (0.5, 's: hold when the newest image is older', (0.001, 60.0)),
    'max_joint_state_age': (0.25, 's: hold when either arm state is older', (0.001, 60.0)),
    'arms': (['left', 'right'], 'arm namespaces, left first (action dims 0..6 and 7..13)'),
    'camera_topics': ([''], "sensor_msgs/Image topics (rgb8 or bgr8) of the camera views the checkpoint's "
                            "embodiment contract composes, in its order; [''] = the contract's own topics"),
    'context_topic': (CONTEXT_TOPIC, 'planner descriptor topic, aha_wam_msgs/PlannerContext'),
    'joint_state_topic': ('joint_states_single', 'per-arm joint states (relative to the arm namespace)'),
    'joint_name_map': ('auto', "names of the arms' joint states: 'auto' (joint1..joint6, gripper, or the older "
                               "piper_ros joint0..joint6), 'identity', 'piper_ros_legacy', or 'received:expected,...'"),
    'trajectory_topic': ('joint_trajectory', 'per-arm trajectory output (relative to the arm namespace)'),
    'limit_tolerance': (0.06, 'rad: chunks this close outside an arm joint limit are clamped to it; further out '
                              'they are discarded and the arms hold', (0.0, 0.2)),
    'gripper_limit_tolerance': (0.07, 'm: gripper targets this far outside 0..0.07 m are clamped (the driver '
                                      'clamps them too); further out the chunk is discarded', (0.0, 0.1)),
    'task': ('lift_box', "task name in the checkpoint's task table (or its numeric id); for a checkpoint conditioned "
                         "on instructions (official): a task name (its instruction) or the instruction itself"),
    'instruction_cache': ('', 'UMT5 instruction embeddings (aha-wam embed-instructions) for checkpoints without a '
                              "task table; '' = <checkpoint>/instructions.safetensors"),
    'seed': (0, 'seed of the denoising noise (reproducible runs)', (0, 2**31 - 1)),
    'publish_markers': (True, 'publish predicted end-effector paths on /aha_wam/markers'),
    'marker_rate': (5.0, 'Hz, at most this many marker updates per second (rviz needs few; FK costs CPU)',
                    (0.1, 60.0)),
    'marker_frames': (['left_base_link', 'right_base_link'], 'frame_id of each arm base for the markers'),
    'diagnostics_period': (1.0, 's between /diagnostics messages', (0.05, 60.0)),
    'autostart': (False, 'configure and activate by itself at start (without a lifecycle manager)'),
    'trace_dir': ('', 'write every tick (inputs, clock, outputs) here for replay tests; empty = off'),
}


class ArmCache:
    """Newest joint state of one arm: positions (7,) joint1..6 rad + gripper m, its stamp, and the joint order
    worked out for the names it publishes (or why they cannot be used)."""

    def __init__(self):
        self.position: np.ndarray | None = None
        self.stamp_ns: int | None = None
        self.names: tuple = ()
        self.order: tuple = ()
        self.error = ''


class ExecutorNode(ManagedLoopNode):
    def __init__(self):
        super().__init__('executor')
        p = self.params = declare_table(self, PARAMETERS)
        if not p['checkpoint']:
            raise ParameterError("checkpoint: empty; give the policy checkpoint directory")
        if len(p['arms']) != len(ARMS):
            raise ParameterError(f"arms: must name {len(ARMS)} namespaces (left, right), got {p['arms']}")
        try:
            self.joint_names = name_map(p['joint_name_map'])
        except ValueError as exc:
            raise ParameterError(f'joint_name_map: {exc}') from None
        self.session = None
        self.cameras: CameraSet | None = None
        self._lock = threading.Lock()
        self._arms = [ArmCache() for _ in p['arms']]
        self.rate = RateMeter()
        self.frames = FrameClock(p['max_frame_wait'])
        self.total_ms = LatencyStats()
        self.e2e_ms = LatencyStats()
        self.last_update: Update | None = None
        self.dropped = {'joint_state': 0}
        self._next_marker = 0.0
        self.trace = None
        # Cameras, then joint states, from the start (not from configure). The order matters: rclpy serves ready
        # subscriptions in creation order, and a frame waiting behind two 200 Hz joint-state streams adds its wait
        # to the image-to-trajectory latency (measured: p95 47-53 ms when the joint states came first, 33 ms
        # now). From the start, because by activation time every arm has shown its joint names, and names the
        # policy cannot map refuse activation with one line.
        self.cameras = self._subscribe_cameras()
        for i, arm in enumerate(p['arms']):
            self.create_subscription(JointState, f"{arm}/{p['joint_state_topic']}",
                                     lambda msg, i=i: self._on_joint_state(i, msg), SENSOR_QOS)
        if p['autostart']:
            self.enable_autostart()

    # ---------------------------------------------------------------------------------- lifecycle
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        p = self.params
        t0 = time.monotonic()
        try:
            self._build_session()
        except Exception as exc:   # a checkpoint, backend, task or contract problem: one line, stay unconfigured
            self.get_logger().error(f'configure failed: {type(exc).__name__}: {exc}')
            self.release()
            return FAILURE
        cmd_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=2, reliability=ReliabilityPolicy.RELIABLE)
        if self.cameras is None:    # the contract could not be read at start: subscribe now
            self.cameras = CameraSet(self, self.session.contract, self._camera_topics, on_first=self.frames.arrived,
                                     log=self.get_logger().warning)
        self.keep(self.create_subscription(PlannerContext, p['context_topic'], self._on_context,
                                           context_subscription_qos()))
        self.traj_pubs = [self.keep(self.create_publisher(JointTrajectory, f"{arm}/{p['trajectory_topic']}", cmd_qos))
                          for arm in p['arms']]
        self.status_pub = self.keep(self.create_publisher(ExecutorStatus, '/aha_wam/executor/status', 10))
        self.marker_pub = self.keep(self.create_publisher(MarkerArray, '/aha_wam/markers', 10))
        self.diag_pub = self.keep(self.create_publisher(DiagnosticArray, '/diagnostics', 10))
        self.keep(self.create_timer(p['diagnostics_period'], self._publish_diagnostics))
        self.get_logger().info(f'configured in {time.monotonic() - t0:.1f} s: {self._describe}')
        return SUCCESS

    def _build_session(self) -> None:
        from aha_wam.context.inbox import planner_segment_name
        from aha_wam.runtime.build import load_policy, make_executor_session, resolve_task
        p = self.params
        if p['torch_threads'] > 0:
            torch.set_num_threads(p['torch_threads'])
        policy, provenance = load_policy(p['checkpoint'], device=p['device'])
        options = ExecutorOptions(
            steps=p['denoise_steps'], control_rate=p['control_rate'], seed=p['seed'],
            execute_actions=p['execute_actions'],
            task=resolve_task(provenance, p['task'], policy, p['instruction_cache']),
            freshness=Freshness(p['max_context_age'], p['max_image_age'], p['max_joint_state_age']),
            limit_tolerance=p['limit_tolerance'], gripper_limit_tolerance=p['gripper_limit_tolerance'],
            trusted_segments=(planner_segment_name(p['trusted_planner'], os.environ.get('ROS_DOMAIN_ID', '0')),)
            if p['trusted_planner'] else None, accept_inline=p['accept_inline_context'])
        self.session = make_executor_session(policy, provenance, options, backend=p['backend'],
                                             threads=p['torch_threads'], log=self.get_logger().warning)
        contract = self.session.contract
        self._camera_topics = camera_topics(contract, p['camera_topics'])
        check_contract(contract, policy.config, camera_topics=self._camera_topics)
        if p['trace_dir']:
            from aha_wam.runtime.trace import TraceWriter
            self.trace = TraceWriter(p['trace_dir'], options)
        self._describe = (f"checkpoint {p['checkpoint']} ({policy.config.name}, {provenance.get('steps', 0)} steps), "
                          f"backend {self.session.backend.describe()}, task {p['task']!r}, "
                          f"{p['denoise_steps']} steps at {p['control_rate']} Hz, arms {p['arms']}, contract "
                          f"{contract.name!r} (cameras {self._camera_topics})")

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        mismatch = self._joint_name_mismatch()
        if mismatch:
            self.get_logger().error(mismatch)
            return FAILURE
        # Activation starts an episode: nothing from before it (context, frames) may drive the arms.
        episode = dict(forget_context=True, not_before_ns=self.get_clock().now().nanoseconds)
        self.session.reset(**episode)
        if self.trace is not None:
            self.trace.reset(**episode)
        self.start_loop(1.0 / self.params['control_rate'], self._tick, 'executor_control')
        self.get_logger().info('active: control loop running')
        return SUCCESS

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self.stop_loop()
        self._publish_hold(self._observation())
        self.get_logger().info('inactive: arms hold')
        return SUCCESS

    def release(self) -> None:
        if self.trace is not None:
            self.trace.close()
            self.trace = None
        if self.session is not None:
            self.session.close()
            self.session = None

    def _subscribe_cameras(self) -> CameraSet | None:
        """The contract's camera views, read from the checkpoint directory (config + embodiment.yaml, no weights);
        None when it cannot be read yet (configure then says why and subscribes)."""
        from aha_wam.interop.contract import contract_for_checkpoint
        try:
            contract = contract_for_checkpoint(self.params['checkpoint'])
        except Exception:  # noqa: BLE001 - a missing/bad checkpoint is reported by configure, with its reason
            return None
        try:
            topics = camera_topics(contract, self.params['camera_topics'])
        except ValueError as exc:
            raise ParameterError(f'camera_topics: {exc}') from None
        return CameraSet(self, contract, topics, on_first=self.frames.arrived, log=self.get_logger().warning)

    def ready_to_activate(self) -> bool:
        """Autostart waits (bounded) until every arm has published, so its joint names are checked."""
        return all(cache.names for cache in self._arms)

    def _joint_name_mismatch(self) -> str:
        """One line naming both name lists when an arm publishes names the policy cannot map, else ''."""
        for arm, cache in zip(self.params['arms'], self._arms):
            if cache.error:
                return f"{arm}/{self.params['joint_state_topic']}: {cache.error}"
        return ''

    # ---------------------------------------------------------------------------------- callbacks
    def _on_joint_state(self, index: int, msg: JointState) -> None:
        # piper_ros: joint1..joint6, gripper; position[6] = total gripper opening (m). The order is worked out
        # once per arm (joint_name_map), then reused while the names stay the same.
        cache = self._arms[index]
        names = tuple(msg.name)
        try:
            if names != cache.names:
                cache.order, cache.names, cache.error = self.joint_names.order(names), names, ''
            position = np.asarray(msg.position, dtype=float)[list(cache.order)]
        except (JointNameError, IndexError) as exc:
            cache.names, cache.error = names, str(exc)
            self.dropped['joint_state'] += 1
            # One line naming both lists; while it lasts the arm has no usable state, so the executor holds.
            self.get_logger().error(f"{self.params['arms'][index]}/{self.params['joint_state_topic']}: {exc}",
                                    throttle_duration_sec=5.0)
            return
        with self._lock:
            cache.position, cache.stamp_ns = position, stamp_to_ns(msg.header.stamp)

    def _on_context(self, msg: PlannerContext) -> None:
        try:
            descriptor = msg_to_descriptor(msg)
        except Exception as exc:   # malformed message content: counted, never raised
            descriptor = Rejection('bad_descriptor', f'{type(exc).__name__}: {exc}')
        session = self.session
        if session is not None:
            session.offer(descriptor)            # examined by the control thread at its next tick

    # ---------------------------------------------------------------------------------- control tick
    def _observation(self) -> Observation | None:
        image, stamp, views = self.cameras.newest() if self.cameras is not None else (None, 0, None)
        with self._lock:
            arms = [(a.position, a.stamp_ns) for a in self._arms]
        ok = all(pos is not None for pos, _ in arms)
        return Observation(image=image, image_stamp_ns=stamp, images=views,
                           proprio=np.concatenate([pos for pos, _ in arms]) if ok else None,
                           joint_stamps_ns=tuple(stamp for _, stamp in arms) if ok else ())

    def _tick(self) -> None:
        if not self.context.ok() or self.session is None:
            return
        self.frames.wait_if_imminent()        # phase lock: compute on a frame that is about to arrive
        obs = self._observation()
        now_ns = self.get_clock().now().nanoseconds
        clock = time.monotonic_ns if self.trace is None else self.trace.clock()
        update = self.session.step(obs, now_ns=now_ns, clock_ns=clock)
        if self.trace is not None:
            self.trace.tick(obs, now_ns, update, self.session.delivered)
        start_ns = 0
        if update.kind == 'chunk':
            start_ns = self._publish_chunk(update)
            self.e2e_ms.add((self.get_clock().now().nanoseconds - obs.image_stamp_ns) * 1e-6)
        elif update.kind == 'hold':
            self._publish_commands(update.commands)
        if not update.coasting:           # a tick without inference (execute_actions) is not an update's latency
            self.total_ms.add(update.total_ms)
        self.last_update = update
        self.rate.tick()
        self._publish_status(update, obs, start_ns)

    # ---------------------------------------------------------------------------------- publishing
    def _publish_commands(self, commands) -> None:
        """One JointTrajectory per arm; all arms carry the same header stamp, so they stay in step."""
        for arm, pub in zip(ARMS, self.traj_pubs):
            cmd = commands[arm]
            msg = JointTrajectory(joint_names=list(JOINT_NAMES))
            msg.header.stamp = ns_to_stamp(cmd.start_ns)
            for t, q in zip(cmd.times_s, cmd.positions):
                sec = int(t)
                msg.points.append(JointTrajectoryPoint(positions=[float(x) for x in q], time_from_start=Duration(
                    sec=sec, nanosec=int(round((float(t) - sec) * 1e9)))))
            pub.publish(msg)

    def _publish_chunk(self, update: Update) -> int:
        self._publish_commands(update.commands)
        now = time.monotonic()
        if self.params['publish_markers'] and now >= self._next_marker:
            self._next_marker = now + 1.0 / self.params['marker_rate']
            self._publish_markers(update.handover.actions)
        return update.handover.start_ns

    def _publish_hold(self, obs: Observation | None) -> None:
        if obs is not None and obs.proprio is not None and getattr(self, 'traj_pubs', None):
            from aha_wam.runtime.commands import hold_commands
            self._publish_commands(hold_commands(obs.proprio))

    def _publish_markers(self, actions: np.ndarray) -> None:
        from piper_core.sim.kinematics import fk_frames
        markers = MarkerArray(markers=[Marker(action=Marker.DELETEALL)])
        for i, (arm, q7) in enumerate(split_arms(actions).items()):
            m = Marker(ns=f'predicted_path/{self.params["arms"][i]}', id=i, type=Marker.LINE_STRIP, action=Marker.ADD)
            m.header.frame_id = self.params['marker_frames'][i]
            m.scale.x = 0.005
            m.color.r, m.color.g, m.color.b, m.color.a = (0.1, 0.6, 1.0, 1.0) if i == 0 else (1.0, 0.5, 0.1, 1.0)
            m.pose.orientation.w = 1.0
            for q in q7[:, :6]:
                x, y, z = fk_frames(q)[-1][:3, 3]
                m.points.append(Point(x=float(x), y=float(y), z=float(z)))
            markers.markers.append(m)
        self.marker_pub.publish(markers)

    def _publish_status(self, u: Update, obs, start_ns: int) -> None:
        s = ExecutorStatus()
        s.header.stamp = self.get_clock().now().to_msg()
        if obs is not None and obs.image is not None:
            s.observation_stamp = ns_to_stamp(obs.image_stamp_ns)
        s.trajectory_start = ns_to_stamp(start_ns)
        s.context_read_ms, s.ovcr_ms, s.denoise_ms = float(u.read_ms), float(u.ovcr_ms), float(u.denoise_ms)
        s.publish_ms, s.total_ms = 0.0, float(u.total_ms)
        s.context_version, s.context_session_id = int(u.context_version), int(u.context_session_id)
        s.context_age_ms = float(u.context_age_ms) if np.isfinite(u.context_age_ms) else -1.0
        s.phase_offset = int(u.phase_offset)
        s.inference_delay = int(u.handover.first) if u.handover is not None else 0
        s.denoise_steps = int(self.session.options.steps)
        s.chunk_index = int(self.session.chunks)
        s.control_rate_hz = float(self.rate.rate())
        s.holding = bool(u.holding)
        s.fault_flags = int(u.faults)
        s.detail = u.detail
        self.status_pub.publish(s)

    def _publish_diagnostics(self) -> None:
        if self.session is None:
            return
        u = self.last_update
        p50, p95 = self.total_ms.percentiles(50, 95)
        e50, e95 = self.e2e_ms.percentiles(50, 95)
        stats = self.session.reader.stats()
        level = 'stale' if u is None else ('warn' if u.holding else 'ok')
        self.diag_pub.publish(diagnostic_array(
            self.get_clock().now().to_msg(), f'aha_wam: {self.get_fully_qualified_name()}', level,
            'inactive' if not self.looping else ('no update yet' if u is None else (u.detail or f'{self.rate.rate():.1f} Hz')), {
                'control_rate_hz': f'{self.rate.rate():.2f}', 'update_ms_p50': f'{p50:.1f}',
                'update_ms_p95': f'{p95:.1f}', 'image_to_trajectory_ms_p50': f'{e50:.1f}',
                'image_to_trajectory_ms_p95': f'{e95:.1f}', 'chunks': self.session.chunks,
                'faults': '' if u is None else ','.join(u.faults.names),
                'contexts_accepted': stats['accepted'], 'contexts_rejected': stats['rejected'],
                'rejections': {k: v for k, v in stats['rejections'].items() if v},
                'dropped_images': self.cameras.dropped if self.cameras else 0,
                'dropped_joint_states': self.dropped['joint_state']}))


def main(argv=None) -> int:
    return run_node(ExecutorNode, 'executor_node', argv)


if __name__ == '__main__':
    sys.exit(main())
