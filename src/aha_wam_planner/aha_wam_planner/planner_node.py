"""planner_node: ego image -> video-DiT prefill (rolling K/V memory) -> context channel + descriptor topic.

Thin ROS I/O around `aha_wam.runtime.PlannerRuntime`: the image callback only stores the newest frame; a
worker thread refreshes at `refresh_rate` (never inside a callback), writes the context through the
shared-memory ring (or CUDA IPC / inline) and publishes the small `aha_wam_msgs/PlannerContext`.
Service `~/reset_episode` (std_srvs/Trigger) clears the memory for a new episode.
"""
from __future__ import annotations

import os
import sys
import threading
import time

import torch
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from aha_wam.checkpoint import load_checkpoint
from aha_wam.models.memory import KVMemory
from aha_wam.context.channel import ContextWriter
from aha_wam.ros.context_msg import CONTEXT_TOPIC, context_qos, descriptor_to_msg
from aha_wam.ros.convert import diagnostic_array, image_to_rgb, ns_to_stamp, stamp_to_ns
from ros_node_kit import declare_table as declare
from ros_node_kit import run_node
from aha_wam.runtime.planner_runtime import PlannerRuntime
from aha_wam.runtime.rate import LatencyStats, RateMeter
from aha_wam_msgs.msg import PlannerContext

PARAMETERS = {
    'checkpoint': ('', 'policy checkpoint directory (config, model.safetensors, norm stats); required'),
    'device': ('cpu', "torch device: 'cpu', 'cuda', 'cuda:N'"),
    'torch_threads': (1, 'CPU threads for torch intra-op parallelism (0 = torch default: all cores); planner, '
                         'executor and simulator share the CPU, and idle OpenMP workers spin'),
    'backend': ('torch', "prefill inference: 'torch' (eager) or 'onnxruntime' (CPU fast path, exported at start)"),
    'refresh_rate': (2.0, 'planner refreshes per second, Hz (0.1..30); the paper refreshes every 2 chunks'),
    'memory_size': (-1, 'past frames kept in the rolling K/V memory (0..16); -1 = the checkpoint config'),
    'transport': ('shm', "context transport: 'shm' (shared-memory ring), 'cuda_ipc' (same GPU), 'inline' (other host / bags)"),
    'num_slots': (3, 'ring slots (3..16); >= 3 keeps torn-read retries rare'),
    'image_topic': ('/camera/ego/image_raw', 'ego camera, sensor_msgs/Image rgb8 or bgr8'),
    'context_topic': (CONTEXT_TOPIC, 'descriptor topic, aha_wam_msgs/PlannerContext'),
    'max_image_age': (0.5, 's (> 0): images older than this are not used for a refresh'),
    'task': (0, 'task id of the checkpoint task table (>= 0)'),
    'diagnostics_period': (1.0, 's (> 0) between /diagnostics messages'),
}


class PlannerNode(Node):
    def __init__(self):
        super().__init__('planner')
        p = self.params = declare(self, PARAMETERS)
        if not p['checkpoint']:
            raise ValueError("parameter 'checkpoint' is empty: give the policy checkpoint directory")
        if not 0.1 <= p['refresh_rate'] <= 30.0:
            raise ValueError(f"refresh_rate={p['refresh_rate']} Hz is outside 0.1..30")
        if p['torch_threads'] > 0:
            torch.set_num_threads(p['torch_threads'])
        policy, provenance = load_checkpoint(p['checkpoint'], device=p['device'])
        if p['memory_size'] > 16:
            raise ValueError(f"memory_size={p['memory_size']} is outside 0..16 (-1 = checkpoint config)")
        if p['memory_size'] >= 0:      # deployment override, e.g. the no-memory ablation
            policy.planner.memory = KVMemory(p['memory_size'])
        cfg = policy.config
        domain = os.environ.get('ROS_DOMAIN_ID', '0')
        self.writer = ContextWriter(
            policy.planner.layout, node_name=self.get_name(), namespace=self.get_namespace(), domain_id=domain,
            transport=p['transport'], num_slots=p['num_slots'], device=p['device'] if p['transport'] == 'cuda_ipc' else None,
            frame_period=cfg.timing.video_stride / cfg.timing.control_hz, video_stride=cfg.timing.video_stride,
            video_horizon=cfg.timing.window_steps, control_period=1.0 / cfg.timing.control_hz)
        if p['backend'] not in ('torch', 'onnxruntime'):
            raise ValueError(f"backend={p['backend']!r}: use 'torch' or 'onnxruntime'")
        runner = None
        if p['backend'] == 'onnxruntime':
            from aha_wam.export.ort_backend import OnnxRuntimePrefill
            runner = OnnxRuntimePrefill(policy, threads=max(1, p['torch_threads']),
                                        max_entries=policy.planner.memory.max_entries)
        self.runtime = PlannerRuntime(policy, self.writer, task=p['task'], prefill_runner=runner)
        self.get_logger().info(
            f"checkpoint {p['checkpoint']} ({cfg.name}, {provenance.get('steps', 0)} steps), transport "
            f"{p['transport']} segment {self.writer.segment_name or '-'}, refresh {p['refresh_rate']} Hz, "
            f"prefill backend {p['backend']}")

        self._lock = threading.Lock()
        self._image = None            # (rgb, stamp_ns) of the newest frame
        self._used_stamp = -1
        self.rate = RateMeter()
        self.latency = LatencyStats()
        self.dropped_images = 0
        self.skipped_stale = 0
        self.pub = self.create_publisher(PlannerContext, p['context_topic'], context_qos())
        self.diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        image_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
        self.create_subscription(Image, p['image_topic'], self._on_image, image_qos)
        self.create_service(Trigger, '~/reset_episode', self._on_reset)
        self.create_timer(p['diagnostics_period'], self._publish_diagnostics)
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._run, name='planner_refresh', daemon=True)
        self._worker.start()

    # ---------------------------------------------------------------------------------- callbacks
    def _on_image(self, msg: Image) -> None:
        try:
            rgb = image_to_rgb(msg)
        except ValueError as exc:
            self.dropped_images += 1
            self.get_logger().warning(f'dropping image: {exc}', throttle_duration_sec=5.0)
            return
        with self._lock:
            self._image = (rgb, stamp_to_ns(msg.header.stamp))

    def _on_reset(self, request, response):
        with self._lock:
            self.runtime.reset()
            self._used_stamp = -1
        response.success, response.message = True, 'planner memory cleared; next image is episode step 0'
        return response

    # ---------------------------------------------------------------------------------- worker
    def _run(self) -> None:
        period = 1.0 / self.params['refresh_rate']
        deadline = time.monotonic()
        while not self._stop.is_set():
            deadline += period
            self._refresh_once()
            delay = deadline - time.monotonic()
            if delay < 0:                       # overran: restart the grid instead of bursting
                deadline = time.monotonic()
            elif self._stop.wait(delay):
                break

    def _refresh_once(self) -> None:
        with self._lock:
            frame = self._image
        if frame is None or frame[1] == self._used_stamp:
            return
        rgb, stamp_ns = frame
        age = (self.get_clock().now().nanoseconds - stamp_ns) * 1e-9
        if age > self.params['max_image_age']:
            self.skipped_stale += 1
            self.get_logger().warning(f'newest image is {age:.2f} s old: no refresh', throttle_duration_sec=5.0)
            return
        try:
            with self._lock:      # serialise with reset_episode
                descriptor = self.runtime.refresh(rgb, stamp_ns)
            msg = descriptor_to_msg(descriptor)
            msg.header.stamp = ns_to_stamp(stamp_ns)
            self.pub.publish(msg)
        except Exception as exc:   # one bad frame never kills the planner
            self.get_logger().error(f'refresh failed: {type(exc).__name__}: {exc}', throttle_duration_sec=2.0)
            return
        self._used_stamp = stamp_ns
        self.rate.tick()
        self.latency.add(self.runtime.last_latency_ms)

    def _publish_diagnostics(self) -> None:
        p50, p95 = self.latency.percentiles(50, 95)
        rate = self.rate.rate()
        level = 'ok' if rate > 0.5 * self.params['refresh_rate'] else ('warn' if rate > 0 else 'stale')
        self.diag_pub.publish(diagnostic_array(
            self.get_clock().now().to_msg(), f'aha_wam: {self.get_fully_qualified_name()}', level,
            f'{rate:.2f} Hz refresh', {
                'refresh_rate_hz': f'{rate:.2f}', 'prefill_ms_p50': f'{p50:.1f}', 'prefill_ms_p95': f'{p95:.1f}',
                'refreshes': self.runtime.refreshes, 'version': self.writer.version,
                'transport': self.params['transport'], 'segment': self.writer.segment_name,
                'dropped_images': self.dropped_images, 'skipped_stale_images': self.skipped_stale}))

    def destroy_node(self):
        self._stop.set()
        self._worker.join(5.0)
        self.writer.close()      # unlinks the shared-memory segment
        super().destroy_node()


def main(argv=None) -> int:
    return run_node(PlannerNode, 'planner_node', argv)


if __name__ == '__main__':
    sys.exit(main())
