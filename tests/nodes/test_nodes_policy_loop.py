"""planner_node + executor_node as separate processes over real DDS and real shared memory.

The test process plays camera and arms (images, joint states) and listens to trajectories and status.
"""
import os
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, JointState
from trajectory_msgs.msg import JointTrajectory

from _support import spawn_python, stop, wait_for
from aha_wam.ros.context_msg import context_qos
from aha_wam.runtime.faults import Fault
from aha_wam.runtime.safety import PIPER_LOWER, PIPER_UPPER
from aha_wam.system import NodeSpec
from aha_wam_msgs.msg import ExecutorStatus, PlannerContext

ROOT = Path(__file__).resolve().parents[2]
MID = (PIPER_LOWER + PIPER_UPPER) / 2
SENSOR = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)


def node_process(kind, checkpoint, overrides_dir, **params):
    spec = NodeSpec(package=f'aha_wam_{kind}', executable=f'{kind}_node', name=kind,
                    module=f'aha_wam_{kind}.{kind}_node', params_files=(f'config/{kind}.yaml',),
                    parameters={'checkpoint': checkpoint, 'autostart': True, **params})   # `ros2 run` alone
    return spawn_python('-u', '-m', spec.module, *spec.command_line(str(ROOT), str(overrides_dir)))


class World(Node):
    """Fake camera + both arms, and a recorder of what the executor sends."""

    def __init__(self, context):
        super().__init__('test_world', context=context)
        self.image_pub = self.create_publisher(Image, '/camera/ego/image_raw', SENSOR)
        self.joint_pubs = [self.create_publisher(JointState, f'/{a}/joint_states_single', SENSOR) for a in ('left', 'right')]
        self.trajectories = {'left': [], 'right': []}
        self.status: list[ExecutorStatus] = []
        for arm in ('left', 'right'):
            self.create_subscription(JointTrajectory, f'/{arm}/joint_trajectory',
                                     lambda m, arm=arm: self.trajectories[arm].append(m), 10)
        self.create_subscription(ExecutorStatus, '/aha_wam/executor/status', self.status.append, 50)
        self.camera_on = True
        self.joint_names = ['joint1', 'joint2', 'joint3', 'joint4', 'joint5', 'joint6', 'gripper']
        self.create_timer(0.1, self.publish_image)
        self.create_timer(0.02, self.publish_joints)

    def publish_image(self):
        if not self.camera_on:
            return
        msg = Image(height=48, width=64, encoding='rgb8', step=64 * 3)
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.data = np.random.default_rng(0).integers(0, 255, 48 * 64 * 3, dtype=np.uint8).tobytes()
        self.image_pub.publish(msg)

    def publish_joints(self):
        for pub in self.joint_pubs:
            msg = JointState(name=list(self.joint_names), position=MID.tolist())
            msg.header.stamp = self.get_clock().now().to_msg()
            pub.publish(msg)


@pytest.fixture
def world():
    context = rclpy.Context()          # private: independent of any other test's rclpy state
    rclpy.init(context=context)
    node = World(context)
    node.spin_executor = SingleThreadedExecutor(context=context)
    node.spin_executor.add_node(node)
    yield node
    node.destroy_node()
    rclpy.shutdown(context=context)


def spin_until(node, predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        node.spin_executor.spin_once(timeout_sec=0.05)
        if predicate():
            return True
    return predicate()


def spin_for(node, seconds):
    spin_until(node, lambda: False, seconds)


def shm_segments():
    """This test session's context segments (named per ROS domain: other sessions on the machine differ)."""
    domain = os.environ.get('ROS_DOMAIN_ID', '0')
    return {p.name for p in Path('/dev/shm').iterdir() if p.name.startswith('aha_wam') and p.name.endswith(f'.d{domain}')}


@pytest.mark.ros
def test_closed_policy_loop_faults_and_recovery(world, tiny_checkpoint, tmp_path):
    before = shm_segments()
    planner = node_process('planner', tiny_checkpoint, tmp_path, refresh_rate=4.0)
    executor = node_process('executor', tiny_checkpoint, tmp_path, denoise_steps=2, control_rate=10.0,
                            max_context_age=1.0, max_image_age=0.5)
    procs = [planner, executor]
    try:
        # 1. Contexts flow through shared memory; both arms get trajectories with one common start stamp.
        assert spin_until(world, lambda: len(world.trajectories['right']) >= 10, 60), \
            'no trajectories: ' + stop(executor)[-3000:] + stop(planner)[-3000:]
        left, right = world.trajectories['left'][-5:], world.trajectories['right'][-5:]
        assert [m.header.stamp for m in left][-1] in [m.header.stamp for m in right]
        assert all(len(m.points) >= 1 and list(m.joint_names)[-1] == 'gripper' for m in left + right)
        ok = [s for s in world.status if not s.holding]
        assert ok and all(s.fault_flags & ~Fault.OVERRUN == 0 for s in ok[-5:]) and ok[-1].context_version >= 2
        assert len(shm_segments() - before) == 1

        # 2. Malformed descriptors from a foreign publisher are rejected; the loop continues.
        foreign = world.create_publisher(PlannerContext, '/aha_wam/planner/context', context_qos())
        for bad in (dict(segment_name='../etc/passwd'), dict(segment_name='aha_wam_nope_1', transport=0),
                    dict(transport=2, payload=b'xx', nbytes=3)):
            msg = PlannerContext(version=10**6, session_id=42, num_layers=2, tokens_per_frame=36, num_heads=2,
                                 head_dim=32, dtype='float32', num_slots=3, slot_sequence=2, **bad)
            foreign.publish(msg)
            spin_for(world, 0.3)
        assert spin_until(world, lambda: any(s.fault_flags & Fault.CONTEXT_REJECTED for s in world.status), 5)
        n = len(world.trajectories['left'])
        assert spin_until(world, lambda: len(world.trajectories['left']) >= n + 3, 10), \
            f'loop stopped after bad input: {[(s.fault_flags, s.detail) for s in world.status[-5:]]}'
        assert executor.poll() is None

        # 3. Camera stops -> the executor holds (stale image), resumes when images return.
        world.camera_on = False
        assert spin_until(world, lambda: world.status[-1].holding and world.status[-1].fault_flags & Fault.STALE_IMAGE, 5)
        world.camera_on = True
        assert spin_until(world, lambda: not world.status[-1].holding, 10)

        # 4. Planner killed -> hold after max_context_age; a new planner -> resume with a new session.
        planner.kill()
        planner.wait(10)
        session = [s for s in world.status if not s.holding][-1].context_session_id
        assert spin_until(world, lambda: world.status[-1].fault_flags & Fault.STALE_CONTEXT, 5)
        held = len(world.trajectories['left'])
        spin_for(world, 1.0)
        assert len(world.trajectories['left']) <= held + 1        # at most the one hold trajectory
        planner = node_process('planner', tiny_checkpoint, tmp_path, refresh_rate=4.0)
        procs[0] = planner
        assert spin_until(world, lambda: not world.status[-1].holding and
                          world.status[-1].context_session_id not in (0, session), 60)
        assert executor.poll() is None
    finally:
        logs = [stop(p) for p in procs]
    # 5. Clean shutdown: the planner's segment is gone (the SIGKILLed one was reclaimed on restart).
    assert shm_segments() - before == set(), logs


@pytest.mark.ros
def test_executor_node_runs_exactly_the_session(world, tiny_checkpoint, tmp_path):
    """Parity: the executor node's own observation stream (images, joint states, context descriptors as it
    received them, its ROS time and stage clock), replayed through a fresh ExecutorSession by the call the
    ClosedLoop's PolicyAgent makes, yields identical commands and fault flags on every tick."""
    import torch
    from aha_wam.runtime.build import load_policy, make_executor_session
    from aha_wam.runtime.trace import options_from, read_trace, replay_trace
    trace = tmp_path / 'trace'
    planner = node_process('planner', tiny_checkpoint, tmp_path, refresh_rate=4.0, transport='inline')
    executor = node_process('executor', tiny_checkpoint, tmp_path, denoise_steps=2, control_rate=10.0, seed=3,
                            accept_inline_context=True, trace_dir=str(trace))
    try:
        assert spin_until(world, lambda: len(world.trajectories['left']) >= 15, 90), \
            'no trajectories: ' + stop(executor)[-3000:] + stop(planner)[-3000:]
        world.camera_on = False                        # a fault episode too: stale image -> one hold
        spin_for(world, 1.0)
        world.camera_on = True
        spin_for(world, 1.0)
    finally:
        logs = stop(executor) + stop(planner)
    options, ticks, _ = read_trace(trace)
    node_out = [(t['faults'], t['kind'], t['commands']) for t in ticks if 'reset' not in t]
    assert 'reset' in ticks[0]                         # activation starts an episode: recorded, replayed
    assert sum(k == 'chunk' for _, k, _ in node_out) >= 10 and any(k == 'hold' for _, k, _ in node_out), logs[-3000:]
    torch.set_num_threads(1)
    policy, provenance = load_policy(tiny_checkpoint)
    session = make_executor_session(policy, provenance, options_from(options), backend='torch')
    try:
        replayed = [(r['faults'], r['kind'], r['commands']) for r in replay_trace(trace, session)]
    finally:
        session.close()
    assert len(replayed) == len(node_out)
    for i, (got, want) in enumerate(zip(replayed, node_out)):
        assert got == want, f'tick {i}: session {got[:2]} vs node {want[:2]}'


@pytest.mark.ros
def test_joint_name_mismatch_refuses_activation_with_one_line(world, tiny_checkpoint, tmp_path):
    """An older piper_ros publishes joint0..joint6: mapped automatically. Names nothing maps (here a driver
    with 'j1'..) refuse activation with one line naming what was received and what is expected."""
    world.joint_names = ['j1', 'j2', 'j3', 'j4', 'j5', 'j6', 'grip']
    executor = node_process('executor', tiny_checkpoint, tmp_path, denoise_steps=1, control_rate=10.0)
    try:
        spin_for(world, 12.0)
        assert not world.trajectories['left'] and not world.status     # never active, never moved
        assert executor.poll() is None                                  # inactive, not crashed
    finally:
        out = stop(executor)
    lines = [ln for ln in out.splitlines() if "'j1'" in ln and 'joint1' in ln]
    assert lines, out[-3000:]
    assert 'grip' in lines[0] and 'gripper' in lines[0]


@pytest.mark.ros
def test_legacy_piper_ros_joint_names_are_mapped(world, tiny_checkpoint, tmp_path):
    world.joint_names = [f'joint{i}' for i in range(7)]                 # joint0..joint5 motors, joint6 gripper
    planner = node_process('planner', tiny_checkpoint, tmp_path, refresh_rate=4.0)
    executor = node_process('executor', tiny_checkpoint, tmp_path, denoise_steps=1, control_rate=10.0)
    try:
        assert spin_until(world, lambda: len(world.trajectories['left']) >= 3, 60), \
            stop(executor)[-3000:] + stop(planner)[-2000:]
    finally:
        stop(executor)
        stop(planner)
