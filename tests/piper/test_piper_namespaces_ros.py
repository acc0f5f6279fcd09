"""Arm namespaces reach every piper_bringup node (piper_sim included), and a terminal's repeated Ctrl-C stops
them quietly: real node processes in one process group, like the foreground job of a terminal."""
import os
import signal
import subprocess
import sys
import time

import pytest
from sensor_msgs.msg import JointState

from _support import SPAWNED, spawn_python, stop, wait_for
from _piper_support import Recorder

pytestmark = pytest.mark.ros


def _start(args, log, pgid=None):
    """`python -u -m args` writing into `log`; the first one leads a new process group, the others join it."""
    proc = subprocess.Popen([sys.executable, '-u', '-m', *args], stdout=open(log, 'w'), stderr=subprocess.STDOUT,
                            env=dict(os.environ), preexec_fn=lambda: os.setpgid(0, pgid or 0))
    SPAWNED.append(proc)
    return proc


def test_sim_and_streamer_follow_the_arm_namespaces_and_stop_quietly_on_five_ctrl_c(tmp_path):
    logs = [tmp_path / 'piper_sim.log', tmp_path / 'streamer.log']
    sim = _start(['piper_bringup.piper_sim', '--ros-args', '-p', 'arms:=[a, b]', '-p', 'camera_rate:=5.0'], logs[0])
    streamer = _start(['piper_bringup.trajectory_streamer', '--ros-args', '-p', 'arms:=[a, b]'], logs[1],
                      pgid=sim.pid)
    procs = [sim, streamer]
    rec = Recorder('namespace_probe')
    try:
        for ns in ('a', 'b'):
            rec.record(JointState, f'/{ns}/joint_states_single', best_effort=True, depth=5)
            rec.record(JointState, f'/{ns}/joint_ctrl_single', best_effort=True, depth=5)
        assert wait_for(lambda: all(len(rec.get(f'/{ns}/{t}')) > 5 for ns in 'ab'
                                    for t in ('joint_states_single', 'joint_ctrl_single')), 60), \
            'no joint states / commands under /a and /b:\n' + '\n'.join(p.read_text() for p in logs)
        topics = {name for name, _ in rec.node.get_topic_names_and_types()}
        assert not {t for t in topics if t.startswith(('/left/', '/right/'))}, sorted(topics)
        assert {'/a/enable_flag', '/b/arm_status', '/a/end_pose'} <= topics
        # Ctrl-C five times: the terminal signals the whole group each time (launch would add one more per node)
        for _ in range(5):
            os.killpg(sim.pid, signal.SIGINT)
            time.sleep(0.05)
        assert wait_for(lambda: all(p.poll() is not None for p in procs), 20), 'nodes did not stop'
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        rec.close()
    for proc, log in zip(procs, logs):
        out = log.read_text()
        assert proc.returncode == 0, f'exit {proc.returncode}:\n{out}'
        assert 'Traceback' not in out and 'KeyboardInterrupt' not in out, out


def test_piper_sim_refuses_arms_that_are_not_two_distinct_namespaces():
    proc = spawn_python('-m', 'piper_bringup.piper_sim', '--ros-args', '-p', 'arms:=[a, a]')
    out = stop(proc, timeout=30) if proc.wait(30) is None else proc.stdout.read()
    assert proc.returncode == 2, out
    lines = [ln for ln in out.splitlines() if 'arms' in ln]
    assert len(lines) == 1 and 'distinct' in lines[0], out
