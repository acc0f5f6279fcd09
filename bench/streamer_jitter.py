#!/usr/bin/env python3
"""ROS part of the simulator benchmark: piper_sim + trajectory_streamer as real processes over DDS.
Prints one JSON object.

Starts ``piper_sim`` (both arms, camera, defaults: 200 Hz joint states, 96x96 @ 15 Hz) and
``trajectory_streamer`` (200 Hz), sends both arms the same slow sinusoidal joint trajectories on a
common stamp (re-sent every 2 s, as an executor streaming chunks would), and measures for ``--seconds``:

  streamer.period_ms           p50/p99/max of the joint_ctrl_single header-stamp periods (tick wake
                               times on the ROS clock; nominal 5 ms) and jitter_ms = |period - 5 ms|
  streamer.arrival_jitter_ms   same from receive times in this process (includes DDS + this process)
  streamer.rate_hz             messages per second per arm
  streamer.arm_stamp_skew_ms   max |left stamp - right stamp| of commands of the same tick (0: one loop)
  streamer.start_skew_ms       |first moving command left - right| after a common-stamp trajectory
  sim.real_time_factor         simulated s / wall s (from /sim/task_status sim_time over the window)
  sim.joint_state_rate_hz      received /left/joint_states_single per second
  sim.camera_rate_hz           received images per second
  cpu_share                    fraction of ONE core used by each process over the window (/proc/<pid>/stat)

Usage: python bench/streamer_jitter.py [--seconds 10] [--task lift_box]
Needs the workspace environment (source scripts/env.sh).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time

os.environ.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(102, 200)))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image, JointState  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint  # noqa: E402
from builtin_interfaces.msg import Duration  # noqa: E402

NAMES = ['joint1', 'joint2', 'joint3', 'joint4', 'joint5', 'joint6', 'gripper']
CLK_TCK = os.sysconf('SC_CLK_TCK')


def cpu_seconds(pid: int) -> float:
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK     # utime + stime


def pct(a, qs=(50, 99)):
    a = np.asarray(a, dtype=float)
    out = {f'p{q}': round(float(np.percentile(a, q)), 3) for q in qs}
    out['max'] = round(float(a.max()), 3)
    return out


def stamp(m) -> float:
    return m.header.stamp.sec + m.header.stamp.nanosec * 1e-9


def trajectory(start: float, t0: float, arm_sign: float, horizon: float = 3.0, dt: float = 0.1) -> JointTrajectory:
    msg = JointTrajectory()
    ns = int(round(start * 1e9))
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(ns, 1_000_000_000)
    msg.joint_names = NAMES
    for k in range(1, int(horizon / dt) + 1):
        t = k * dt
        ph = 2 * np.pi * 0.25 * (t0 + t)
        q = [arm_sign * 0.4 * np.sin(ph), 1.0 + 0.3 * np.sin(ph), -0.9 + 0.3 * np.cos(ph), 0.0,
             0.4 + 0.2 * np.sin(ph), 0.5 * np.sin(ph), 0.035 + 0.03 * np.sin(ph)]
        p = JointTrajectoryPoint()
        p.positions = [float(v) for v in q]
        sec, nsec = divmod(int(round(t * 1e9)), 1_000_000_000)
        p.time_from_start = Duration(sec=sec, nanosec=nsec)
        msg.points.append(p)
    return msg


def run(seconds: float, task: str) -> dict:
    procs = {
        'piper_sim': subprocess.Popen([sys.executable, '-m', 'piper_bringup.piper_sim', '--ros-args', '-p', f'task:={task}'],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
        'trajectory_streamer': subprocess.Popen([sys.executable, '-m', 'piper_bringup.trajectory_streamer'],
                                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
    }
    rclpy.init()
    node = rclpy.create_node('streamer_jitter_bench')
    lock = threading.Lock()
    rec = {k: [] for k in ('left', 'right', 'js', 'img', 'task')}
    recording = threading.Event()

    def cb(key):
        def f(m):
            if recording.is_set() or key == 'task':
                with lock:
                    rec[key].append((time.monotonic(), m))
        return f
    rel = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    be = QoSProfile(depth=50, reliability=ReliabilityPolicy.BEST_EFFORT)
    node.create_subscription(JointState, '/left/joint_ctrl_single', cb('left'), rel)
    node.create_subscription(JointState, '/right/joint_ctrl_single', cb('right'), rel)
    node.create_subscription(JointState, '/left/joint_states_single', cb('js'), be)
    node.create_subscription(Image, '/camera/ego/image_raw', cb('img'), be)
    node.create_subscription(String, '/sim/task_status', cb('task'), QoSProfile(depth=10))
    pubs = {a: node.create_publisher(JointTrajectory, f'/{a}/joint_trajectory', 10) for a in ('left', 'right')}
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    stopping = threading.Event()

    def spin_loop():
        while not stopping.is_set():
            ex.spin_once(timeout_sec=0.05)
    spin = threading.Thread(target=spin_loop, daemon=True)
    spin.start()
    try:
        # wait until the streamer publishes for both arms (it holds the measured pose)
        recording.set()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with lock:
                if len(rec['left']) > 20 and len(rec['right']) > 20 and rec['img']:
                    break
            time.sleep(0.1)
        else:
            raise RuntimeError('nodes did not come up')
        time.sleep(1.0)
        # common-stamp start, then chunks every 2 s (each replaces the previous from its start)
        now = node.get_clock().now().nanoseconds * 1e-9
        first_start = now + 0.5
        t_rel = 0.0
        next_send = time.monotonic()
        with lock:
            for k in rec:
                if k != 'task':
                    rec[k].clear()
        c0 = {k: cpu_seconds(p.pid) for k, p in procs.items()}
        c0['bench'] = time.process_time()
        w0 = time.monotonic()
        start = first_start
        while time.monotonic() - w0 < seconds:
            if time.monotonic() >= next_send:
                for a, sign in (('left', 1.0), ('right', -1.0)):
                    pubs[a].publish(trajectory(start, t_rel, sign))
                next_send += 2.0
                t_rel += 2.0
                start = first_start + t_rel
            time.sleep(0.02)
        wall = time.monotonic() - w0
        c1 = {k: cpu_seconds(p.pid) for k, p in procs.items()}
        c1['bench'] = time.process_time()
        recording.clear()
        with lock:
            data = {k: list(v) for k, v in rec.items()}
    finally:
        stopping.set()
        spin.join(2)
        outs = {}
        for k, p in procs.items():
            p.send_signal(2)
            try:
                outs[k] = p.communicate(timeout=10)[0]
            except subprocess.TimeoutExpired:
                p.kill()
                outs[k] = p.communicate()[0]
        node.destroy_node()
        rclpy.try_shutdown()

    res = {'seconds': round(wall, 2), 'streamer': {}, 'sim': {}, 'cpu_share': {}}
    st = {a: np.array([stamp(m) for _, m in data[a]]) for a in ('left', 'right')}
    rt = {a: np.array([t for t, _ in data[a]]) for a in ('left', 'right')}
    per = np.diff(st['left']) * 1e3
    res['streamer']['period_ms'] = pct(per, (1, 50, 99))
    res['streamer']['jitter_ms'] = pct(np.abs(per - 5.0))
    res['streamer']['arrival_jitter_ms'] = pct(np.abs(np.diff(rt['left']) * 1e3 - 5.0))
    res['streamer']['rate_hz'] = {a: round((len(st[a]) - 1) / (st[a][-1] - st[a][0]), 2) for a in ('left', 'right')}
    common = np.intersect1d(np.round(st['left'], 6), np.round(st['right'], 6))
    res['streamer']['same_tick_fraction'] = round(len(common) / max(len(st['left']), 1), 4)
    pos = {a: np.array([m.position for _, m in data[a]]) for a in ('left', 'right')}
    firsts = {}
    for a in ('left', 'right'):
        moved = np.nonzero(np.abs(pos[a][:, 1] - pos[a][0, 1]) > 1e-6)[0]
        firsts[a] = st[a][moved[0]] if len(moved) else float('nan')
    res['streamer']['start_skew_ms'] = round(abs(firsts['left'] - firsts['right']) * 1e3, 3)
    res['streamer']['start_vs_stamp_ms'] = round((firsts['left'] - first_start) * 1e3, 3)
    task = [(t, json.loads(m.data)) for t, m in data['task'] if w0 <= t <= w0 + wall]
    if len(task) >= 2:
        (ta, a), (tb, b) = task[0], task[-1]
        res['sim']['real_time_factor'] = round((b['sim_time'] - a['sim_time']) / (tb - ta), 4)
        res['sim']['node_reported_rtf'] = b['real_time_factor']
    js = np.array([t for t, _ in data['js']])
    res['sim']['joint_state_rate_hz'] = round((len(js) - 1) / (js[-1] - js[0]), 2) if len(js) > 1 else 0.0
    im = np.array([t for t, _ in data['img']])
    res['sim']['camera_rate_hz'] = round((len(im) - 1) / (im[-1] - im[0]), 2) if len(im) > 1 else 0.0
    for k in c0:
        res['cpu_share'][k] = round((c1[k] - c0[k]) / wall, 3)
    res['host'] = {'cpus': os.cpu_count(), 'loadavg_1m': os.getloadavg()[0]}
    errors = {k: o[-2000:] for k, o in outs.items() if 'Traceback' in o}
    if errors:
        res['errors'] = errors
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description='piper_sim + trajectory_streamer jitter / RTF / CPU benchmark')
    ap.add_argument('--seconds', type=float, default=10.0)
    ap.add_argument('--task', default='lift_box')
    args = ap.parse_args(argv)
    out = run(args.seconds, args.task)
    print(json.dumps(out))
    return out


if __name__ == '__main__':
    main()
