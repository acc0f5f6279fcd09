"""Episodes through the live node set: the client behind `aha-wam demo` and `aha-wam eval-live`.

`LiveSystem` starts `aha-wam up sim checkpoint:=...` (simulator, streamer, planner, executor, policy_manager as
separate processes over DDS and shared memory), waits until policy_manager reports the policy active, and runs
seeded episodes: set the simulator's `seed` parameter, call `policy_manager/start_episode` (executor holds,
sim reset, planner memory reset, executor active), then watch `sim/task_status` until success or the task's
timeout while collecting every ExecutorStatus of the episode. Numbers from here are numbers about the
deployed loop, measured the way a user runs it.
"""
from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String
from std_srvs.srv import Trigger

from aha_wam.ros.policy_manager import STATE_TOPIC, state_qos
from aha_wam.runtime.faults import Fault
from aha_wam_msgs.msg import ExecutorStatus


class LiveError(RuntimeError):
    pass


def _stamp_ns(t) -> int:
    return int(t.sec) * 1_000_000_000 + int(t.nanosec)


class LiveClient(Node):
    """Watches the policy state, the task status and the executor status; starts episodes."""

    def __init__(self, **kwargs):
        super().__init__('aha_wam_live_client', **kwargs)
        self._lock = threading.Lock()
        self.policy_state: dict = {}
        self.task_status: dict = {}
        self.statuses: list[tuple[float, ExecutorStatus]] = []
        reliable = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(String, STATE_TOPIC, self._on_state, state_qos())
        self.create_subscription(String, '/sim/task_status', self._on_task, reliable)
        self.create_subscription(ExecutorStatus, '/aha_wam/executor/status', self._on_status, 200)
        self.start_client = self.create_client(Trigger, '/policy_manager/start_episode')
        self.param_client = self.create_client(SetParameters, '/piper_sim/set_parameters')

    def _on_state(self, msg: String) -> None:
        with self._lock:
            self.policy_state = json.loads(msg.data)
            self.policy_state['_received'] = time.monotonic()

    def _on_task(self, msg: String) -> None:
        try:
            status = json.loads(msg.data)
        except ValueError:
            return
        with self._lock:
            self.task_status = status

    def _on_status(self, msg: ExecutorStatus) -> None:
        with self._lock:
            self.statuses.append((time.monotonic(), msg))


class LiveSystem:
    """The sim profile with a checkpoint, started as a user would (`aha-wam up sim ...`), plus a LiveClient."""

    def __init__(self, checkpoint: str, task: str = 'lift_box', seed: int = 0, log_path: str | Path = 'runs/live/nodes.log',
                 backend: str = 'onnxruntime', steps: int = 10, extra: dict | None = None):
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        args = {'checkpoint': checkpoint, 'task': task, 'seed': str(seed), 'backend': backend,
                'denoise_steps': str(steps), **(extra or {})}
        # Without the nodes' DDS profile, the client itself could learn that the policy is active up to 3 s late
        # and the launch->active figure would include that.
        from aha_wam.supervisor import adopt_node_environment
        adopt_node_environment()
        self.launched_at = time.monotonic()
        self.up = subprocess.Popen([sys.executable, '-m', 'aha_wam.cli', 'up', 'sim', *(f'{k}:={v}' for k, v in args.items())],
                                   stdout=open(self.log_path, 'w'), stderr=subprocess.STDOUT, start_new_session=True)
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.client = LiveClient(context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.client)

    # ---------------------------------------------------------------------------------- waiting
    def spin_until(self, predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.05)
            if self.up.poll() is not None:
                raise LiveError(f'the node set stopped (exit {self.up.returncode}); see {self.log_path}: '
                                f'{self.last_error()}')
            if predicate():
                return True
        return False

    def last_error(self) -> str:
        try:
            lines = [ln for ln in self.log_path.read_text().splitlines() if 'ERROR' in ln or 'error' in ln]
        except OSError:
            return ''
        return lines[-1] if lines else ''

    def wait_active(self, timeout: float = 300.0) -> float:
        """Seconds from launch until policy_manager reported the policy active."""
        c = self.client
        if not self.spin_until(lambda: c.policy_state.get('state') in ('active', 'failed'), timeout):
            raise LiveError(f'the policy did not become active within {timeout:.0f} s; see {self.log_path}')
        if c.policy_state['state'] == 'failed':
            raise LiveError(f"policy bring-up failed: {c.policy_state.get('detail')}")
        return c.policy_state['_received'] - self.launched_at

    def _call(self, client, request, timeout: float = 60.0):
        if not client.wait_for_service(timeout_sec=timeout):
            raise LiveError(f'service {client.srv_name} is not available')
        future = client.call_async(request)
        if not self.spin_until(future.done, timeout):
            raise LiveError(f'service {client.srv_name} did not answer within {timeout:.0f} s')
        return future.result()

    # ---------------------------------------------------------------------------------- episodes
    def start_episode(self, seed: int) -> None:
        value = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=int(seed))
        res = self._call(self.client.param_client, SetParameters.Request(parameters=[Parameter(name='seed', value=value)]))
        if not all(r.successful for r in res.results):
            raise LiveError(f'piper_sim rejected seed {seed}: {[r.reason for r in res.results]}')
        reply = self._call(self.client.start_client, Trigger.Request(), timeout=120.0)
        if not reply.success:
            raise LiveError(f'start_episode failed: {reply.message}')

    def run_episode(self, seed: int, post_success_s: float = 1.0, max_seconds: float = 60.0,
                    on_start=None) -> dict:
        """One seeded episode; returns outcome and live statistics of the executor during it."""
        c = self.client
        self.start_episode(seed)
        t0 = time.monotonic()
        with c._lock:
            c.statuses.clear()
        if on_start:
            on_start()
        self.spin_until(lambda: c.task_status.get('seed') == seed and c.task_status.get('time', 1e9) < 1.0, 10.0)
        success_at = None
        outcome = {}
        while time.monotonic() - t0 < max_seconds:
            self.spin_until(lambda: False, 0.05)
            st = dict(c.task_status)
            if st.get('seed') != seed:
                continue
            outcome = {k: st.get(k) for k in ('success', 'stage', 'timed_out', 'time')}
            if st.get('success') and success_at is None:
                success_at = time.monotonic()
            if (success_at and time.monotonic() - success_at >= post_success_s) or st.get('timed_out'):
                break
        with c._lock:
            statuses = list(c.statuses)
        return {'seed': seed, 'success': bool(outcome.get('success')), 'outcome': outcome,
                'wall_s': round(time.monotonic() - t0, 2), **executor_stats(statuses)}

    def close(self) -> None:
        try:
            self.client.destroy_node()
            rclpy.shutdown(context=self.context)
        finally:
            if self.up.poll() is None:
                os.killpg(self.up.pid, signal.SIGINT)
                try:
                    self.up.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(self.up.pid, signal.SIGKILL)
                    self.up.wait(10)


def _pct(values, qs=(50, 95)):
    return [round(float(v), 1) for v in np.percentile(values, qs)] if len(values) else None


def executor_stats(statuses) -> dict:
    """Rate, latencies, holds and faults of a list of (receive time, ExecutorStatus)."""
    updates = [(t, m) for t, m in statuses if m.context_version > 0 or m.holding]
    if len(updates) < 2:
        return {'updates': len(updates), 'rate_hz': 0.0}
    msgs = [m for _, m in updates]
    span = updates[-1][0] - updates[0][0]
    chunks = [m for m in msgs if _stamp_ns(m.trajectory_start)]
    e2e = [(_stamp_ns(m.header.stamp) - _stamp_ns(m.observation_stamp)) * 1e-6 for m in chunks]
    return {
        'updates': len(msgs), 'chunks': len(chunks), 'rate_hz': round((len(msgs) - 1) / span, 2) if span > 0 else 0.0,
        'update_ms_p50_p95': _pct([m.total_ms for m in msgs]),
        'image_to_trajectory_ms_p50_p95': _pct(e2e),
        'holding_fraction': round(float(np.mean([m.holding for m in msgs])), 3),
        'faults': dict(collections.Counter('+'.join(Fault(m.fault_flags).names) or 'none' for m in msgs).most_common()),
        'context_versions': len({m.context_version for m in msgs}),
        'rejected_updates': sum(bool(m.fault_flags & ExecutorStatus.FAULT_CONTEXT_REJECTED) for m in msgs),
    }
