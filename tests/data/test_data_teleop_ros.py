"""`aha-wam record --ros --teleop` against the simulator standing in for the follower arms: a scripted leader
(its own rclpy process, _teleop_leader.py) drives piper_sim the way the leader arm drives the followers in
AgileX leader/follower mode; the recorder (its own process) records one bag per episode, started, stopped and
discarded through its services. The bag's actions are exactly the leader's commands, its states exactly the
followers' joint states, and it reads back through aha_wam.data like any bag."""
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from _support import spawn_python, stop, wait_for

pytestmark = pytest.mark.ros
HERE = Path(__file__).resolve().parent


def _call(node, client, timeout=20.0):
    from std_srvs.srv import Trigger
    assert client.wait_for_service(timeout_sec=timeout), client.srv_name
    future = client.call_async(Trigger.Request())
    assert wait_for(future.done, timeout), client.srv_name
    return future.result()


def test_teleop_recorder_records_leader_commands_and_follower_states(tmp_path):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import JointState
    from std_srvs.srv import Trigger
    from aha_wam.data.rosbag import read_bag, read_bag_meta
    from aha_wam.data.timeline import to_episode

    sim = spawn_python('-m', 'piper_bringup.piper_sim', '--ros-args', '-p', 'camera_rate:=10.0',
                       '-p', 'image_width:=32', '-p', 'image_height:=32')
    rec = spawn_python('-m', 'aha_wam.cli', 'record', '--ros', '--teleop', '--out', str(tmp_path / 'bags'),
                       '--episodes', '1', '--tasks', 'lift_box')
    leader = spawn_python(str(HERE / '_teleop_leader.py'), '--seconds', '60', '--log', str(tmp_path / 'leader.json'))
    rclpy.init()
    node = Node('teleop_test_probe')
    follower = {'left': {}, 'right': {}}
    qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.BEST_EFFORT)
    for arm in follower:
        node.create_subscription(JointState, f'/{arm}/joint_states_single',
                                 lambda m, a=arm: follower[a].__setitem__(
                                     m.header.stamp.sec * 10**9 + m.header.stamp.nanosec, list(m.position)), qos)
    clients = {s: node.create_client(Trigger, f'/aha_wam_teleop_recorder/{s}') for s in ('start', 'stop', 'discard')}
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    threading.Thread(target=ex.spin, daemon=True).start()
    try:
        assert clients['start'].wait_for_service(timeout_sec=90), stop(rec)
        assert wait_for(lambda: len(follower['left']) > 50 and len(follower['right']) > 50, 90), stop(sim)
        time.sleep(1.0)                                   # the leader is driving the followers
        first = _call(node, clients['start'])
        assert first.success, first.message
        time.sleep(0.5)
        gone = _call(node, clients['discard'])            # a bad demonstration: thrown away
        assert gone.success and gone.message == first.message and not Path(first.message).exists()
        assert not _call(node, clients['stop']).success   # nothing is recording now
        started = _call(node, clients['start'])
        assert started.success and started.message != first.message
        time.sleep(3.0)
        saved = _call(node, clients['stop'])
        assert saved.success, saved.message
        assert wait_for(lambda: rec.poll() is not None, 30), 'recorder did not exit after --episodes 1'
    finally:
        ex.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
        out = stop(rec) + stop(leader) + stop(sim)
    assert rec.returncode == 0, out
    bag = Path(saved.message)
    sent = json.loads((tmp_path / 'leader.json').read_text())
    meta = read_bag_meta(bag)
    assert meta['source'] == 'teleop' and meta['actions_from'] == ['leader'] and meta['complete'] is True
    r = read_bag(bag, all_cameras=True)
    assert r.action_source == {'left': 'leader', 'right': 'leader'}
    assert list(r.cameras) == ['ego'] and r.cameras['ego'][1][0].shape == (32, 32, 3) and len(r.cameras['ego'][0]) >= 20
    for i, arm in enumerate(('left', 'right')):
        stamps, actions = r.commands[arm]
        leader_cmds = np.asarray(sent[arm])
        assert len(stamps) > 100, len(stamps)                         # ~50 Hz joint_ctrl for ~3 s
        # every recorded action is one of the leader's commands, exactly, and they come in the leader's order
        match = [np.flatnonzero(np.all(leader_cmds == a, axis=1)) for a in actions]
        assert all(m.size for m in match), 'an action that the leader never sent'
        # the leader's motion is periodic, so a value can occur in several cycles: take, for each action, the
        # first occurrence at or after the previous action's (the leader's order must hold for all of them)
        order, last = [], 0
        for m in match:
            later = m[m >= last]
            assert later.size, 'an action out of the leader\'s order'
            last = int(later[0])
            order.append(last)
        assert order[-1] - order[0] > 50, 'the actions follow the leader over time'
        # every recorded state is a follower joint state the driver published (same stamp, same values)
        s_stamps, states = r.joints[arm]
        seen = [k for k, s in enumerate(s_stamps) if int(s) in follower[arm]]
        assert len(seen) > 0.8 * len(s_stamps) and len(s_stamps) > 300       # 200 Hz for ~3 s
        for k in seen:
            assert np.array_equal(states[k], np.asarray(follower[arm][int(s_stamps[k])]))
        # the followers followed the leader (moved with it, lagging at most a little)
        assert np.ptp(states[:, 0]) > 0.1
        lag = np.abs(states[:, :6] - actions[np.clip(np.searchsorted(stamps, s_stamps) - 1, 0, None), :6])
        assert np.median(lag) < 0.05, np.median(lag)
    ep = to_episode(r)
    assert ep.meta['actions_from'] == ['leader'] and ep.length > 100 and ep.meta['task'] == 'lift_box'
    assert list((tmp_path / 'bags').iterdir()) == [bag]              # the discarded episode left nothing
