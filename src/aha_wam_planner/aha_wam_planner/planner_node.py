"""planner_node: a managed (lifecycle) node around `aha_wam.runtime.PlannerSession`.

    configure   load the checkpoint, build the session (context channel writer: shared-memory ring, CUDA IPC or
                inline; prefill on torch or onnxruntime, its ONNX graph cached next to the checkpoint), one
                warm-up prefill, subscribe and advertise
    activate    start refreshing at `refresh_rate` on the newest fresh image
    deactivate  stop refreshing (the executor holds once the last context ages out)
    cleanup     close the session (unlinks the shared-memory segment)

The image callback only stores the newest frame; a worker thread refreshes (never inside a callback) and
publishes the small `aha_wam_msgs/PlannerContext` descriptor. Service `~/reset_episode` (std_srvs/Trigger)
clears the rolling memory for a new episode. The ClosedLoop of `aha-wam eval-sim` drives the same session.
"""
from __future__ import annotations

import os
import sys
import threading
import time

import numpy as np
import torch
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.lifecycle import State, TransitionCallbackReturn
from std_srvs.srv import Trigger

from aha_wam.ros.context_msg import CONTEXT_TOPIC, context_qos, descriptor_to_msg
from aha_wam.interop.contract import check_contract
from aha_wam.ros.cameras import CameraSet, camera_topics
from aha_wam.ros.convert import diagnostic_array, ns_to_stamp
from aha_wam.runtime.planner_session import PlannerOptions
from aha_wam.runtime.rate import LatencyStats, RateMeter
from aha_wam_msgs.msg import PlannerContext
from ros_node_kit import ParameterError, declare_table, run_node
from ros_node_kit.managed import FAILURE, SUCCESS, ManagedLoopNode

PARAMETERS = {
    'checkpoint': ('', 'policy checkpoint directory (config, model.safetensors, norm stats); required'),
    'device': ('cpu', "torch device: 'cpu', 'cuda', 'cuda:N'"),
    'torch_threads': (1, 'CPU threads for torch intra-op parallelism (0 = torch default: all cores); planner, '
                         'executor and simulator share the CPU, and idle OpenMP workers spin', (0, 256)),
    'backend': ('torch', "prefill inference: 'torch' (eager) or 'onnxruntime' (CPU fast path, graph cached)"),
    'refresh_rate': (2.0, 'planner refreshes per second, Hz; the paper refreshes every 2 chunks', (0.1, 30.0)),
    'memory_size': (-1, 'past frames kept in the rolling K/V memory; -1 = the checkpoint config', (-1, 16)),
    'transport': ('shm', "context transport: 'shm' (shared-memory ring), 'cuda_ipc' (same GPU), 'inline' (other host / bags)"),
    'num_slots': (3, 'ring slots; >= 3 keeps torn-read retries rare', (3, 16)),
    'camera_topics': ([''], "sensor_msgs/Image topics (rgb8 or bgr8) of the camera views the checkpoint's "
                            "embodiment contract composes, in its order; [''] = the contract's own topics"),
    'context_topic': (CONTEXT_TOPIC, 'descriptor topic, aha_wam_msgs/PlannerContext'),
    'max_image_age': (0.5, 's: images older than this are not used for a refresh', (0.001, 60.0)),
    'task': ('lift_box', "task name in the checkpoint's task table (or its numeric id); for a checkpoint conditioned "
                         "on instructions (official): a task name (its instruction) or the instruction itself"),
    'instruction_cache': ('', 'UMT5 instruction embeddings (aha-wam embed-instructions) for checkpoints without a '
                              "task table; '' = <checkpoint>/instructions.safetensors"),
    'diagnostics_period': (1.0, 's between /diagnostics messages', (0.05, 60.0)),
    'autostart': (False, 'configure and activate by itself at start (without a lifecycle manager)'),
}


class PlannerNode(ManagedLoopNode):
    def __init__(self):
        super().__init__('planner')
        p = self.params = declare_table(self, PARAMETERS)
        if not p['checkpoint']:
            raise ParameterError('checkpoint: empty; give the policy checkpoint directory')
        self.session = None
        self.cameras: CameraSet | None = None
        self._lock = threading.Lock()     # serialises refreshes with reset_episode
        self.rate = RateMeter()
        self.latency = LatencyStats()
        if p['autostart']:
            self.enable_autostart()

    # ---------------------------------------------------------------------------------- lifecycle
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        from aha_wam.runtime.build import load_policy, make_planner_session, resolve_task
        p = self.params
        t0 = time.monotonic()
        try:
            if p['torch_threads'] > 0:
                torch.set_num_threads(p['torch_threads'])
            policy, provenance = load_policy(p['checkpoint'], device=p['device'])
            options = PlannerOptions(refresh_rate=p['refresh_rate'], task=resolve_task(provenance, p['task'], policy, p['instruction_cache']),
                                     memory_size=p['memory_size'], max_image_age=p['max_image_age'])
            self.session = make_planner_session(
                policy, provenance, options, transport=p['transport'], node_name=self.get_name(),
                namespace=self.get_namespace(), domain_id=os.environ.get('ROS_DOMAIN_ID', '0'),
                num_slots=p['num_slots'], device=p['device'], backend=p['backend'], threads=p['torch_threads'])
            topics = camera_topics(self.session.contract, p['camera_topics'])
            check_contract(self.session.contract, policy.config, camera_topics=topics)
            self._warm_up(policy)
        except Exception as exc:   # checkpoint, task, transport, contract or export problem: one line
            self.get_logger().error(f'configure failed: {type(exc).__name__}: {exc}')
            self.release()
            return FAILURE
        self.cameras = CameraSet(self, self.session.contract, topics, log=self.get_logger().warning)
        self.pub = self.keep(self.create_publisher(PlannerContext, p['context_topic'], context_qos()))
        self.diag_pub = self.keep(self.create_publisher(DiagnosticArray, '/diagnostics', 10))
        self.keep(*self.cameras.subscriptions, self.create_service(Trigger, '~/reset_episode', self._on_reset),
                  self.create_timer(p['diagnostics_period'], self._publish_diagnostics))
        w = self.session.writer
        self.get_logger().info(
            f"configured in {time.monotonic() - t0:.1f} s: checkpoint {p['checkpoint']} ({policy.config.name}, "
            f"{provenance.get('steps', 0)} steps), task {p['task']!r}, transport {p['transport']} segment "
            f"{w.segment_name or '-'}, refresh {p['refresh_rate']} Hz, prefill backend {p['backend']}, contract "
            f"{self.session.contract.name!r} (cameras {topics})")
        return SUCCESS

    def _warm_up(self, policy) -> None:
        """One prefill on a black frame (first-call allocations, graph warm-up), then a clean episode."""
        enc = policy.config.encoder
        runner = self.session.prefill_runner or policy
        with torch.no_grad():
            runner.prefill({'image': np.zeros((enc.image_height, enc.image_width, 3), np.uint8), 'step': 0})
        self.session.reset()

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        self.start_loop(self.session.options.period_ns * 1e-9, self._refresh_once, 'planner_refresh')
        self.get_logger().info('active: refreshing')
        return SUCCESS

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self.stop_loop()
        self.get_logger().info('inactive: no refreshes')
        return SUCCESS

    def release(self) -> None:
        self.cameras = None
        if self.session is not None:
            self.session.close()      # unlinks the shared-memory segment
            self.session = None

    # ---------------------------------------------------------------------------------- callbacks
    def _on_reset(self, request, response):
        with self._lock:
            if self.session is not None:     # frames captured before this moment show the old scene
                self.session.reset(not_before_ns=self.get_clock().now().nanoseconds)
        response.success, response.message = True, 'planner memory cleared; next image is episode step 0'
        return response

    # ---------------------------------------------------------------------------------- worker
    def _refresh_once(self) -> None:
        if not self.context.ok() or self.cameras is None:
            return
        rgb, stamp_ns, views = self.cameras.newest()
        if rgb is None:
            return
        now_ns = self.get_clock().now().nanoseconds
        if not self.session.usable(stamp_ns, now_ns):
            return
        try:
            with self._lock:      # serialise with reset_episode
                descriptor = self.session.refresh(rgb, stamp_ns, now_ns, images=views)
            msg = descriptor_to_msg(descriptor)
            msg.header.stamp = ns_to_stamp(stamp_ns)
            self.pub.publish(msg)
        except Exception as exc:   # one bad frame never kills the planner
            self.get_logger().error(f'refresh failed: {type(exc).__name__}: {exc}', throttle_duration_sec=2.0)
            return
        self.rate.tick()
        self.latency.add(self.session.last_latency_ms)

    def _publish_diagnostics(self) -> None:
        if self.session is None:
            return
        p50, p95 = self.latency.percentiles(50, 95)
        rate = self.rate.rate()
        level = 'ok' if rate > 0.5 * self.params['refresh_rate'] else ('warn' if rate > 0 else 'stale')
        self.diag_pub.publish(diagnostic_array(
            self.get_clock().now().to_msg(), f'aha_wam: {self.get_fully_qualified_name()}', level,
            'inactive' if not self.looping else f'{rate:.2f} Hz refresh', {
                'refresh_rate_hz': f'{rate:.2f}', 'prefill_ms_p50': f'{p50:.1f}', 'prefill_ms_p95': f'{p95:.1f}',
                'refreshes': self.session.refreshes, 'version': self.session.writer.version,
                'transport': self.params['transport'], 'segment': self.session.writer.segment_name,
                'dropped_images': self.cameras.dropped if self.cameras else 0, 'skipped_stale_images': self.session.skipped_stale}))


def main(argv=None) -> int:
    return run_node(PlannerNode, 'planner_node', argv)


if __name__ == '__main__':
    sys.exit(main())
