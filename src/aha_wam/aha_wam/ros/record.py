"""`aha-wam record --ros`: record expert episodes from live ROS topics into one MCAP bag per episode.

The only rclpy user of the learning code. For each episode it
  1. sets the piper_sim `task` / `seed` / `level` parameters and calls `sim/reset`;
  2. plans the scripted expert on a ROS-free twin of the same seeded scene (aha_wam.runtime.recording on the
     ClosedLoop, the same streamer semantics) and streams its 50 Hz command trajectory to `<arm>/joint_trajectory` with one common
     start stamp for both arms (the trajectory_streamer interpolates it at 200 Hz, as for the policy);
  3. records every message of the episode topics as it arrives (CDR bytes straight from rclpy, so the bag
     holds exactly what was on the wire): ego image, both arms' joint states, the commands the streamer sent
     (`joint_ctrl_single`), task status and the instruction;
  4. stops at success (+0.5 s), when the plan has run out (+1.5 s) or at the task timeout, and closes the
     bag with metadata {task, seed, level, success, instruction, control_hz} (bag custom data).

`--start-sim` starts piper_sim and trajectory_streamer processes first (otherwise they must be running).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import rclpy
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import serialize_message
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
from builtin_interfaces.msg import Duration

from aha_wam.data.bag import (ARMS, COMMAND_TOPICS, IMAGE_TOPIC, INSTRUCTION_TOPIC, JOINT_NAMES, JOINT_TOPICS,
                              STATUS_TOPIC, BagWriter)
from aha_wam.ros.convert import ns_to_stamp

CONTROL_HZ = 50.0


class EpisodeRecorder(Node):
    def __init__(self, **node_kwargs):
        super().__init__('aha_wam_recorder', **node_kwargs)
        self._lock = threading.Lock()
        self.writer: BagWriter | None = None
        self.status: dict = {}
        self.counts: dict[str, int] = {}
        sensor = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
        reliable = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(Image, IMAGE_TOPIC, lambda m: self._on(IMAGE_TOPIC, m), sensor)
        for arm in ARMS:
            self.create_subscription(JointState, JOINT_TOPICS[arm], lambda m, t=JOINT_TOPICS[arm]: self._on(t, m),
                                     sensor)
            # joint_ctrl_single: what the streamer commands (reliable, as the driver subscribes)
            self.create_subscription(JointState, COMMAND_TOPICS[arm],
                                     lambda m, t=COMMAND_TOPICS[arm]: self._on(t, m), reliable)
        self.create_subscription(String, STATUS_TOPIC, self._on_status, reliable)
        self.traj_pubs = {arm: self.create_publisher(JointTrajectory, f'/{arm}/joint_trajectory', QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=2, reliability=ReliabilityPolicy.RELIABLE)) for arm in ARMS}
        self.reset_client = self.create_client(Trigger, '/sim/reset')
        self.param_client = self.create_client(SetParameters, '/piper_sim/set_parameters')

    def _on(self, topic: str, msg) -> None:
        with self._lock:
            if self.writer is None:
                return
            stamp = int(msg.header.stamp.sec) * 10**9 + int(msg.header.stamp.nanosec)
            self.writer.writer.write(self.writer.connections[topic], stamp, serialize_message(msg))
            self.writer.counts[topic] += 1

    def _on_status(self, msg: String) -> None:
        try:
            status = json.loads(msg.data)
        except ValueError:
            return
        with self._lock:
            self.status = status
            if self.writer is not None:
                now = self.get_clock().now().nanoseconds
                self.writer.writer.write(self.writer.connections[STATUS_TOPIC], now, serialize_message(msg))
                self.writer.counts[STATUS_TOPIC] += 1

    def now_ns(self) -> int:
        return self.get_clock().now().nanoseconds


def _call(node, client, request, timeout=30.0):
    if not client.wait_for_service(timeout_sec=timeout):
        raise RuntimeError(f'service {client.srv_name} is not available')
    future = client.call_async(request)
    deadline = time.monotonic() + timeout
    while not future.done() and time.monotonic() < deadline:
        time.sleep(0.01)
    if not future.done():
        raise RuntimeError(f'service {client.srv_name} did not answer within {timeout} s')
    return future.result()


def _param(name, value) -> Parameter:
    if isinstance(value, str):
        v = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
    else:
        v = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=int(value))
    return Parameter(name=name, value=v)


def twin_plan(task: str, seed: int, level: str):
    """The expert's 50 Hz command trajectory on a ROS-free twin of the seeded scene: actions [T, 14]."""
    from aha_wam.runtime.recording import record_expert
    result, episode = record_expert(task, seed, level=level, camera_rate=1.0, post_success_s=0.3)
    return episode.actions, result


def _trajectory_msgs(actions, start_ns: int) -> dict:
    out = {}
    for i, arm in enumerate(ARMS):
        msg = JointTrajectory(joint_names=list(JOINT_NAMES))
        msg.header.stamp = ns_to_stamp(start_ns)
        for k, q in enumerate(actions[1:, 7 * i:7 * i + 7], start=1):
            t = k / CONTROL_HZ
            sec = int(t)
            msg.points.append(JointTrajectoryPoint(positions=[float(x) for x in q],
                                                   time_from_start=Duration(sec=sec, nanosec=int(round((t - sec) * 1e9)))))
        out[arm] = msg
    return out


def record_episode(node: EpisodeRecorder, out_dir: Path, task: str, seed: int, level: str = 'clean',
                   timeout_s: float | None = None, log=print) -> Path:
    res = _call(node, node.param_client, SetParameters.Request(parameters=[
        _param('task', task), _param('seed', seed), _param('level', level)]))
    if not all(r.successful for r in res.results):
        raise RuntimeError(f'piper_sim rejected task/seed/level: {[r.reason for r in res.results]}')
    reply = _call(node, node.reset_client, Trigger.Request(), timeout=60.0)
    if not reply.success:
        raise RuntimeError(f'sim/reset failed: {reply.message}')
    info = json.loads(reply.message or '{}')
    actions, twin = twin_plan(task, seed, level)
    time.sleep(0.5)                                   # reset holdoff; the streamer holds the new home pose
    path = out_dir / f'bag_{task}_{seed:06d}'
    writer = BagWriter(path)
    instruction = str(info.get('instruction', ''))
    with node._lock:
        node.status = {}
        node.writer = writer
        writer.string(INSTRUCTION_TOPIC, instruction, node.now_ns())
    start_ns = node.now_ns() + 300_000_000
    for arm, msg in _trajectory_msgs(actions, start_ns).items():
        node.traj_pubs[arm].publish(msg)
    plan_end = start_ns + int(actions.shape[0] / CONTROL_HZ * 1e9)
    limit = timeout_s if timeout_s is not None else actions.shape[0] / CONTROL_HZ + 5.0
    deadline = time.monotonic() + limit
    success_at = None
    while time.monotonic() < deadline:
        with node._lock:
            ok = bool(node.status.get('success')) and node.status.get('seed') == seed
        if ok and success_at is None:
            success_at = time.monotonic()
        if success_at is not None and time.monotonic() - success_at > 0.5:
            break
        if node.now_ns() > plan_end + 1_500_000_000:
            break
        time.sleep(0.02)
    with node._lock:
        node.writer = None
        status = dict(node.status)
    meta = {'task': task, 'seed': seed, 'level': level, 'success': bool(status.get('success', False)),
            'instruction': instruction, 'control_hz': CONTROL_HZ, 'source': 'ros', 'twin_success': twin.success}
    writer.close(meta)
    if log:
        log(json.dumps({'bag': str(path), **meta, 'messages': writer.counts}))
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description='Record expert episodes from live ROS topics (one MCAP bag each).')
    ap.add_argument('--out', default='runs/bags')
    ap.add_argument('--task', default='lift_box')
    ap.add_argument('--episodes', type=int, default=1)
    ap.add_argument('--first-seed', type=int, default=0)
    ap.add_argument('--level', default='clean')
    ap.add_argument('--timeout', type=float, default=None, help='s per episode (default: plan length + 5 s)')
    ap.add_argument('--start-sim', action='store_true', help='start piper_sim + trajectory_streamer processes')
    args = ap.parse_args(argv)
    procs = []
    if args.start_sim:
        procs.append(subprocess.Popen([sys.executable, '-m', 'piper_bringup.piper_sim', '--ros-args',
                                       '-p', f'task:={args.task}', '-p', f'seed:={args.first_seed}']))
        procs.append(subprocess.Popen([sys.executable, '-m', 'piper_bringup.trajectory_streamer']))
    rclpy.init()
    node = EpisodeRecorder()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    code = 0
    try:
        for seed in range(args.first_seed, args.first_seed + args.episodes):
            record_episode(node, out, args.task, seed, args.level, args.timeout)
    except (RuntimeError, KeyboardInterrupt) as exc:
        print(f'aha-wam record: {exc}', file=sys.stderr, flush=True)
        code = 1
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
        for p in procs:
            p.send_signal(2)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
    return code


if __name__ == '__main__':
    sys.exit(main())
