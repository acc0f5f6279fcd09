"""End to end: `aha-wam up sim checkpoint:=...` = simulator + streamer + planner + executor as separate
processes for more than 20 s; the test process only listens."""
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.serialization import deserialize_message
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState

from aha_wam.runtime.faults import Fault
from aha_wam.runtime.safety import PIPER_LOWER, PIPER_UPPER
from aha_wam_msgs.msg import ExecutorStatus

CONTROL_RATE = 20.0
RUN_S = 45.0
SENSOR = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)


def shm_segments():
    """This test session's context segments (named per ROS domain: other sessions on the machine differ)."""
    domain = os.environ.get('ROS_DOMAIN_ID', '0')
    return {p.name for p in Path('/dev/shm').iterdir() if p.name.startswith('aha_wam') and p.name.endswith(f'.d{domain}')}


def descendants(pid):
    out = subprocess.run(['ps', '-o', 'pid=', '--ppid', str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


@pytest.mark.ros
def test_sim_profile_runs_closed_loop_for_20s(tiny_checkpoint):
    before = shm_segments()
    context = rclpy.Context()          # private: independent of any other test's rclpy state
    rclpy.init(context=context)
    node = rclpy.create_node('closed_loop_listener', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    up = subprocess.Popen([sys.executable, '-m', 'aha_wam.cli', 'up', 'sim', f'checkpoint:={tiny_checkpoint}',
                           '--duration', str(RUN_S)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    status, joints = [], {'left': [], 'right': []}
    node.create_subscription(ExecutorStatus, '/aha_wam/executor/status', lambda m: status.append((time.monotonic(), m)), 100)
    counts = {'left': 0, 'right': 0}

    def on_joints(raw, arm):
        # 200 Hz per arm: keep the listener cheap (raw CDR, every 10th deserialised) so that it does not
        # starve and miss executor status messages on a loaded 2-core machine.
        counts[arm] += 1
        if counts[arm] % 10 == 0:
            joints[arm].append(np.array(deserialize_message(raw, JointState).position))

    for arm in joints:
        node.create_subscription(JointState, f'/{arm}/joint_states_single',
                                 lambda raw, arm=arm: on_joints(raw, arm), SENSOR, raw=True)
    children = []
    try:
        deadline = time.monotonic() + RUN_S + 20
        while up.poll() is None and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
            if not children:
                children = descendants(up.pid)
    finally:
        if up.poll() is None:
            up.send_signal(2)
        node.destroy_node()
        rclpy.shutdown(context=context)
    out, _ = up.communicate(timeout=60)
    assert up.returncode == 0, out[-4000:]
    assert 'ran for the requested' in out

    moving = [(t, m) for t, m in status if m.context_version > 0 and not m.holding]
    assert moving, 'the executor never ran on a context: ' + out[-4000:]
    t_first = moving[0][0]
    window = [(t, m) for t, m in status if t >= t_first + 2.0]          # after start-up
    span = window[-1][0] - window[0][0]
    assert span >= 20.0, f'only {span:.1f} s of steady closed loop'
    rate = (len(window) - 1) / span
    own = float(np.median([m.control_rate_hz for _, m in window]))
    stamps = [m.header.stamp.sec + 1e-9 * m.header.stamp.nanosec for _, m in window]
    chunk_rate = (window[-1][1].chunk_index - window[0][1].chunk_index) / (stamps[-1] - stamps[0])
    import collections
    print(collections.Counter((m.fault_flags, m.detail[:60]) for _, m in window).most_common(5))
    print(f'received {rate:.2f} Hz, executor-measured {own:.2f} Hz, chunks {chunk_rate:.2f} Hz, {len(window)} msgs')
    assert abs(rate - CONTROL_RATE) <= 0.15 * CONTROL_RATE, f'executor rate {rate:.1f} Hz (own {own:.1f}, chunks {chunk_rate:.1f})'
    assert not any(m.fault_flags & Fault.CONTEXT_REJECTED for _, m in status), 'a context was rejected'
    versions = [m.context_version for _, m in window]
    assert versions[-1] > versions[0] + 10, 'contexts did not keep flowing'
    assert sum(m.holding for _, m in window) <= 0.1 * len(window), 'held too often'

    lower, upper = PIPER_LOWER - 0.01, PIPER_UPPER + 0.01
    for arm, states in joints.items():
        q = np.array(states)
        assert len(q) > 50
        assert np.abs(q[-1] - q[0]).max() > 0.1, f'{arm} arm did not move'
        assert ((q >= lower) & (q <= upper)).all(), f'{arm} arm left its joint limits'

    assert shm_segments() - before == set(), 'a shared-memory segment was left behind'
    assert all(not os.path.exists(f'/proc/{pid}') for pid in children), 'orphan node processes'


@pytest.mark.ros
def test_live_episode_starts_after_the_policy_is_active(tiny_checkpoint, tmp_path):
    """The path of `aha-wam demo` / `eval-live`: policy_manager reports the policy active, then a seeded episode
    is started on request (executor holds, sim reset with the seed, planner memory reset, executor active)."""
    from aha_wam.ros.live import LiveSystem
    live = LiveSystem(tiny_checkpoint, 'lift_box', seed=0, log_path=tmp_path / 'nodes.log', backend='torch', steps=2)
    try:
        active_s = live.wait_active(180)
        episode = live.run_episode(7, max_seconds=6.0)
    finally:
        live.close()
    assert 0 < active_s < 180
    assert live.client.policy_state['state'] == 'active' and live.client.policy_state['episode'] >= 2
    assert episode['outcome'].get('stage') and episode['outcome'].get('time') is not None
    assert episode['updates'] > 20 and episode['context_versions'] >= 3, episode
    assert episode['rejected_updates'] == 0
