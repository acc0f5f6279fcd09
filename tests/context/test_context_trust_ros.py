"""Forged, flooded and poisoned contexts against the real planner and executor nodes, over real DDS.

The planner and the executor run as separate processes (tiny checkpoint, shared-memory transport); this test
process plays camera and arms and watches what the executor does; a separate attacker process
(_context_attacker.py) publishes on the context topic what any participant of the ROS domain can:

  (a) the poisoning descriptor: inline, the planner's session id, version 2**62, valid CRC, zeros and NaN
  (b) NaN inline contexts under a foreign and under the planner's session id (plus finite zeros under a
      foreign one: inline contexts are opt-in, because nothing proves where they come from)
  (c) 20 Hz and 100 Hz floods of plausible descriptors: the planner's own, with the next versions, guessed
      slots and sequences, forged stamps and frame indices, older versions replayed

For each attack, measured over >= 10 s: no trajectory comes from a forged context (every executed context is
a version the planner published, with the planner's session and stamp, and no chunk is non-finite), the
executor holds in < 5 % of its updates, and its diagnostics count every rejection under a named reason.
Then the executor is restarted with inline contexts enabled (planner on another host) and (a) and (b) are
repeated: impersonating the planner's session and NaN payloads are still rejected.
"""
from __future__ import annotations

import ast
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, JointState
from trajectory_msgs.msg import JointTrajectory

from _context_support import JsonLines
from _support import spawn_python, stop
from aha_wam.ros.context_msg import CONTEXT_TOPIC, context_subscription_qos
from aha_wam.runtime.faults import Fault
from aha_wam.runtime.safety import PIPER_LOWER, PIPER_UPPER
from aha_wam.system import NodeSpec
from aha_wam_msgs.msg import ExecutorStatus, PlannerContext

pytestmark = pytest.mark.ros
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
MID = (PIPER_LOWER + PIPER_UPPER) / 2
SENSOR = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
WINDOW = 10.0          # s of attack measured per case (the issue asks for >= 10 s)
CONTROL_RATE = 10.0    # Hz
EXECUTOR = dict(denoise_steps=2, control_rate=CONTROL_RATE, max_context_age=1.0, publish_markers=False,
                diagnostics_period=0.5, autostart=True,
                # Image and joint staleness are not under test: generous limits keep a busy CI machine from
                # adding holds that have nothing to do with the context channel.
                max_image_age=2.0, max_joint_state_age=2.0)
FLOOD_REASONS = {'implausible_version', 'metadata_mismatch', 'slot_overwritten', 'bad_sequence', 'stale_version',
                 'slot_busy'}


def node_process(kind, checkpoint, overrides_dir, **params):
    spec = NodeSpec(package=f'aha_wam_{kind}', executable=f'{kind}_node', name=kind,
                    module=f'aha_wam_{kind}.{kind}_node', params_files=(f'config/{kind}.yaml',),
                    parameters={'checkpoint': checkpoint, **params})
    return spawn_python('-u', '-m', spec.module, *spec.command_line(str(ROOT), str(overrides_dir)))


class World(Node):
    """Camera + both arms; records executor status, trajectories, diagnostics and the genuine descriptors."""

    def __init__(self, context):
        super().__init__('trust_test_world', context=context)
        self.image_pub = self.create_publisher(Image, '/camera/ego/image_raw', SENSOR)
        self.joint_pubs = [self.create_publisher(JointState, f'/{a}/joint_states_single', SENSOR)
                           for a in ('left', 'right')]
        self.status: list[tuple[float, ExecutorStatus]] = []
        self.trajectories: list[float] = []
        self.rejections: dict[str, int] = {}
        self.genuine: dict[tuple[int, int], int] = {}     # (session, version) -> stamp_ns, as the planner sent it
        self.create_subscription(JointTrajectory, '/left/joint_trajectory',
                                 lambda m: self.trajectories.append(time.monotonic()), 50)
        self.create_subscription(ExecutorStatus, '/aha_wam/executor/status',
                                 lambda m: self.status.append((time.monotonic(), m)), 100)
        self.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 20)
        self.create_subscription(PlannerContext, CONTEXT_TOPIC, self._on_context, context_subscription_qos())
        self.image = np.random.default_rng(0).integers(0, 255, 48 * 64 * 3, dtype=np.uint8).tobytes()
        self.create_timer(0.1, self.publish_image)
        self.create_timer(0.02, self.publish_joints)
        self.spinner = SingleThreadedExecutor(context=context)
        self.spinner.add_node(self)

    def _on_context(self, msg):
        # The attacker tags what it forges (a real one would not): that is how this test knows the truth.
        if not msg.header.frame_id.startswith('forged') and msg.transport == PlannerContext.TRANSPORT_SHM:
            self.genuine[(msg.session_id, msg.version)] = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec

    def _on_diagnostics(self, msg):
        for s in msg.status:
            if s.name.endswith('/executor'):
                values = {kv.key: kv.value for kv in s.values}
                if 'rejections' in values:
                    self.rejections = ast.literal_eval(values['rejections'])

    def publish_image(self):
        msg = Image(height=48, width=64, encoding='rgb8', step=64 * 3)
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.data = self.image
        self.image_pub.publish(msg)

    def publish_joints(self):
        for pub in self.joint_pubs:
            msg = JointState(name=['joint1', 'joint2', 'joint3', 'joint4', 'joint5', 'joint6', 'gripper'],
                             position=MID.tolist())
            msg.header.stamp = self.get_clock().now().to_msg()
            pub.publish(msg)

    def spin_until(self, predicate, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.spinner.spin_once(timeout_sec=0.02)
            if predicate():
                return True
        return predicate()

    def spin_for(self, seconds):
        self.spin_until(lambda: False, seconds)


@pytest.fixture
def world():
    context = rclpy.Context()
    rclpy.init(context=context)
    node = World(context)
    yield node
    node.destroy_node()
    rclpy.shutdown(context=context)


def attack(world, modes, expect: set[str], allowed: set[str]) -> dict:
    """Run the attackers for WINDOW s and check the executor over that window; returns the measurements."""
    before = dict(world.rejections)
    attackers = [JsonLines(spawn_python(str(HERE / '_context_attacker.py'), mode, '--rate', str(rate),
                                        '--duration', str(WINDOW + 1.5))) for mode, rate in modes]
    try:
        def started():
            return all(any(e.get('event') in ('ready', 'error') for e in a.events) or a.proc.poll() is not None
                       for a in attackers)
        world.spin_until(started, 90)              # the world keeps running (camera, arms) meanwhile
        assert all(any(e.get('event') == 'ready' for e in a.events) for a in attackers), \
            [a.output()[-2000:] for a in attackers]
        t0 = time.monotonic()
        world.spin_for(WINDOW)
        t1 = time.monotonic()
        world.spin_until(lambda: all(any(e.get('event') == 'done' for e in a.events) for a in attackers), 30)
        done = [a.wait(lambda e: e.get('event') == 'done', timeout=1) for a in attackers]
        world.spin_for(1.2)                    # the last diagnostics of the window
    finally:
        for a in attackers:
            a.stop()
    window = [s for t, s in world.status if t0 <= t <= t1]
    holding = [s for s in window if s.holding]
    moved = [s for s in window if not s.holding]
    delta = {k: v - before.get(k, 0) for k, v in world.rejections.items() if v - before.get(k, 0) > 0}
    result = {'updates': len(window), 'holding_fraction': len(holding) / max(1, len(window)),
              'trajectories': sum(t0 <= t <= t1 for t in world.trajectories), 'rejections': delta,
              'sent': {d['mode']: d['sent'] for d in done},
              'hold_reasons': sorted({s.detail for s in holding})[:5]}
    print(f'\nattack {[m for m, _ in modes]}: {result}')
    # The attack really ran, and the executor kept its rate.
    for (mode, rate), d in zip(modes, done):
        assert d['sent'] >= 0.8 * rate * WINDOW, d
    assert len(window) >= 0.7 * CONTROL_RATE * WINDOW, result
    # No trajectory from a forged context: every context that moved the arms is one the planner published
    # (its session, a version it sent, the stamp it sent), and no chunk was NaN.
    for s in moved:
        key = (s.context_session_id, s.context_version)
        assert key in world.genuine, (key, 'is not a context the planner published')
        status_ns = s.header.stamp.sec * 10**9 + s.header.stamp.nanosec
        slack_ms = (status_ns - world.genuine[key]) * 1e-6 - s.context_age_ms   # >= 0: the update's own time
        # A stamp forged 1 s fresher (what the attacker tries) would show up as ~1000 ms of extra slack.
        assert -5.0 <= slack_ms <= s.total_ms + 300.0, (key, slack_ms, s.total_ms, 'context stamp was not the planner\'s')
    assert not any(s.fault_flags & Fault.NONFINITE_ACTION for s in window)
    # The executor keeps using the planner's contexts.
    assert result['holding_fraction'] < 0.05, result
    assert result['trajectories'] >= 0.7 * CONTROL_RATE * WINDOW, result
    # Every rejection is counted under a named reason.
    assert expect <= set(delta), result
    assert set(delta) <= allowed, result
    # (The attacker's publisher keeps only its newest message, so under load DDS may replace a few unsent ones.)
    assert sum(delta.values()) >= 0.5 * sum(d['sent'] for d in done), result
    return result


def test_forged_flooded_and_poisoned_contexts_neither_move_the_arms_nor_lock_them_out(world, tiny_checkpoint,
                                                                                      tmp_path):
    planner = node_process('planner', tiny_checkpoint, tmp_path, refresh_rate=2.0, autostart=True)
    executor = node_process('executor', tiny_checkpoint, tmp_path, **EXECUTOR)
    procs = [planner, executor]
    try:
        assert world.spin_until(lambda: len(world.trajectories) >= 10 and world.genuine, 90), \
            'no trajectories: ' + stop(executor)[-3000:] + stop(planner)[-3000:]
        world.spin_for(1.0)
        inline = {'transport_disabled'}
        attack(world, [('poison', 10.0), ('nan', 10.0), ('foreign', 5.0)], inline, inline)
        attack(world, [('flood', 20.0)], {'implausible_version', 'metadata_mismatch'}, FLOOD_REASONS)
        attack(world, [('flood', 100.0)], {'implausible_version', 'metadata_mismatch'}, FLOOD_REASONS)
        assert executor.poll() is None and planner.poll() is None

        # Planner on "another host": the executor opts into inline contexts. Impersonation and NaN still fail.
        stop(executor)
        executor = procs[1] = node_process('executor', tiny_checkpoint, tmp_path, accept_inline_context=True,
                                           **EXECUTOR)
        n = len(world.trajectories)
        world.rejections = {}
        assert world.spin_until(lambda: len(world.trajectories) >= n + 10, 90), stop(executor)[-3000:]
        world.spin_for(1.0)
        attack(world, [('poison', 10.0), ('nan', 10.0)], {'session_conflict', 'non_finite'},
               {'session_conflict', 'non_finite'})
        assert executor.poll() is None and planner.poll() is None
    finally:
        logs = [stop(p) for p in procs]
    assert 'Traceback' not in logs[1], logs[1][-3000:]


SECURITY_PROBE = '''
import rclpy
rclpy.init()
try:
    rclpy.create_node('security_probe')
    print('SECURITY AVAILABLE')
except Exception as exc:
    print('SECURITY UNAVAILABLE', exc)
'''


def test_ros2_security_is_unavailable_in_these_wheels_so_inline_stays_opt_in(tmp_path):
    """README (Context trust) says inline contexts trust the DDS domain because SROS2 cannot run here: the
    Fast DDS of the PyPI wheels is built without security. If that ever changes, this test says so."""
    (tmp_path / 'enclaves').mkdir()          # an (empty) keystore: the root enclave's directory exists
    proc = spawn_python('-c', SECURITY_PROBE, env={'ROS_SECURITY_ENABLE': 'true', 'ROS_SECURITY_STRATEGY': 'Permissive',
                                                   'ROS_SECURITY_KEYSTORE': str(tmp_path)})
    out, _ = proc.communicate(timeout=60)
    assert 'SECURITY UNAVAILABLE' in out and "doesn't have the security libraries" in out, \
        'Fast DDS may support security now: test SROS2 enclaves for inline contexts and update the README\n' + out
