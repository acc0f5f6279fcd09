#!/usr/bin/env python3
"""Real-time benchmark of the ROS-free bimanual Piper simulator core. Prints one JSON object.

Measures, single-threaded, the loop the ``piper_sim`` node runs: both arms commanded at 200 Hz (MOVE J,
moving targets), physics at 1/physics_dt (500 Hz), ego camera rendered at 15 Hz at the default size.

  real_time_factor    simulated seconds per wall second for the whole loop (target >= 1.0)
  physics_step_us     mean wall cost of one physics step (incl. MOVE J interpolation, task monitor)
  render_ms           mean wall cost of one camera frame
  command_us          mean wall cost of one command() call
  cpu_share_at_1x     estimated fraction of one core the loop needs when paced at real time (= 1 / RTF)

Extra sections (e.g. the trajectory streamer's 200 Hz jitter) can be added by appending a callable
returning a dict to ``SECTIONS``; each section's result is stored under its name.

Usage: python bench/sim_rt.py [--seconds 5] [--task lift_box] [--image 96 96] [--camera-hz 15]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'src', 'piper_bringup'))
from piper_core.sim import ARMS, BimanualPiperSim  # noqa: E402


def bench_sim(seconds: float = 5.0, task: str = 'lift_box', image=(96, 96), camera_hz: float = 15.0,
              command_hz: float = 200.0) -> dict:
    sim = BimanualPiperSim(task, 'clean', seed=0, image_size=tuple(image))
    sim.render()  # create the GL context outside the timing
    dt = sim.physics_dt
    n_ticks = int(seconds * command_hz)
    done_steps = 0
    base = np.array([0.0, 1.2, -1.0, 0.0, 0.6, 0.0, 0.03])
    amp = np.array([0.4, 0.3, 0.3, 0.5, 0.3, 0.5, 0.03])
    t_phys = t_render = t_cmd = 0.0
    n_render = 0
    next_frame = 0.0
    cpu0 = time.process_time()
    w0 = time.perf_counter()
    for k in range(n_ticks):
        t = k / command_hz
        a = time.perf_counter()
        for i, arm in enumerate(ARMS):
            sim.command(arm, base + amp * np.sin(2 * np.pi * 0.3 * t + i), 100.0)
        b = time.perf_counter()
        target_steps = int(round((k + 1) / (command_hz * dt)))   # exact command rate on the physics clock
        sim.step(target_steps - done_steps)
        done_steps = target_steps
        c = time.perf_counter()
        t_cmd += b - a
        t_phys += c - b
        if sim.time >= next_frame:
            sim.render()
            t_render += time.perf_counter() - c
            n_render += 1
            next_frame += 1.0 / camera_hz
    wall = time.perf_counter() - w0
    cpu = time.process_time() - cpu0
    sim_s = done_steps * dt
    rtf = sim_s / wall
    sim.close()
    return {
        'task': task, 'image_size': list(image), 'camera_hz': camera_hz, 'command_hz': command_hz,
        'physics_hz': round(1.0 / dt), 'sim_seconds': round(sim_s, 3), 'wall_seconds': round(wall, 3),
        'real_time_factor': round(rtf, 2),
        'physics_step_us': round(1e6 * t_phys / done_steps, 1),
        'render_ms': round(1e3 * t_render / max(1, n_render), 2),
        'command_us': round(1e6 * t_cmd / (2 * n_ticks), 1),
        'cpu_share_at_1x': round(min(1.0, (cpu / sim_s)), 3),
    }


SECTIONS: list = []   # extra (name, callable(args) -> dict) pairs, e.g. the streamer jitter


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--seconds', type=float, default=5.0)
    ap.add_argument('--task', default='lift_box')
    ap.add_argument('--image', type=int, nargs=2, default=[96, 96], metavar=('H', 'W'))
    ap.add_argument('--camera-hz', type=float, default=15.0)
    args = ap.parse_args(argv)
    out = {'host': {'cpus': os.cpu_count(), 'machine': platform.machine(), 'python': platform.python_version()},
           'sim': bench_sim(args.seconds, args.task, args.image, args.camera_hz)}
    for name, fn in SECTIONS:
        out[name] = fn(args)
    print(json.dumps(out))
    return out


if __name__ == '__main__':
    main()
