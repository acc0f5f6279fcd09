"""piper_sim + trajectory_streamer, each in its own process, driven by JointTrajectory from this one:
both arms follow a common-stamp trajectory in step, and sim/reset leaves the arms at home (the streamer
is told to hold the new pose instead of dragging them back)."""
import json
import time

import numpy as np
import pytest
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from _support import spawn_python, stop, wait_for
from _piper_support import Recorder, duration, set_stamp, stamp

pytestmark = pytest.mark.ros
NAMES = ['joint1', 'joint2', 'joint3', 'joint4', 'joint5', 'joint6', 'gripper']


def test_closed_loop_in_step_and_reset():
    rec = Recorder('closed_loop_test_client')
    for arm in ('left', 'right'):
        rec.record(JointState, f'/{arm}/joint_states_single', best_effort=True, depth=50)
        rec.record(JointState, f'/{arm}/joint_ctrl_single', depth=50)
    rec.record(String, '/sim/task_status')
    pubs = {arm: rec.node.create_publisher(JointTrajectory, f'/{arm}/joint_trajectory', 10) for arm in ('left', 'right')}
    sim = spawn_python('-m', 'piper_bringup.piper_sim', '--ros-args', '-p', 'camera_rate:=0.0')
    streamer = spawn_python('-m', 'piper_bringup.trajectory_streamer')
    try:
        # Ready means both directions flow: the streamer commands AND the sim reports state to this process
        # (on a loaded CI box MuJoCo can start well after the streamer, or its topic match can come later).
        topics = [f'/{a}/{t}' for a in ('left', 'right') for t in ('joint_ctrl_single', 'joint_states_single')]
        assert wait_for(lambda: all(len(rec.msgs[t]) > 20 for t in topics), 60), \
            {t: len(rec.msgs[t]) for t in topics}
        target = {'left': [0.3, 1.0, -0.8, 0.0, 0.4, 0.0, 0.05], 'right': [-0.3, 1.0, -0.8, 0.0, 0.4, 0.0, 0.05]}
        start = rec.now() + 0.5
        for arm in ('left', 'right'):
            msg = JointTrajectory()
            set_stamp(msg.header, start)
            msg.joint_names = NAMES
            for t, s in ((0.5, 0.5), (1.0, 1.0)):
                p = JointTrajectoryPoint()
                p.positions = [s * v for v in target[arm]]
                p.time_from_start = duration(t)
                msg.points.append(p)
            pubs[arm].publish(msg)

        def reached():
            return all(np.allclose(rec.last(f'/{a}/joint_states_single').position, target[a], atol=0.02)
                       for a in ('left', 'right'))
        assert wait_for(reached, 10), {a: rec.last(f'/{a}/joint_states_single').position for a in ('left', 'right')}
        first = {}
        for arm in ('left', 'right'):
            cmds = [m for _, m in rec.get(f'/{arm}/joint_ctrl_single')]
            moving = [stamp(m) for m in cmds if abs(m.position[1]) > 1e-6]
            first[arm] = moving[0]
        assert abs(first['left'] - first['right']) <= 0.005
        assert -1e-6 <= first['left'] - start <= 0.025      # first tick at or after the stamp (loaded 2-core box)

        resp = None
        cli = rec.node.create_client(Trigger, '/sim/reset')
        assert cli.wait_for_service(timeout_sec=10)
        fut = cli.call_async(Trigger.Request())
        assert wait_for(fut.done, 30)
        resp = fut.result()
        assert resp.success and json.loads(resp.message)['episode'] == 1
        t0 = time.monotonic()
        time.sleep(1.5)
        for arm in ('left', 'right'):
            q = np.array([m.position for _, m in rec.get(f'/{arm}/joint_states_single', t0)])
            assert np.abs(q[:, :6]).max() < 0.03, f'{arm} left home after reset: {np.abs(q[:, :6]).max(axis=0)}'
            assert np.allclose(rec.last(f'/{arm}/joint_ctrl_single').position[:6], 0.0, atol=0.02)
    finally:
        out_streamer = stop(streamer)
        out_sim = stop(sim)
        rec.close()
    assert 'Traceback' not in out_sim + out_streamer, out_sim + out_streamer
    assert 'hold_measured' in out_streamer, out_streamer
