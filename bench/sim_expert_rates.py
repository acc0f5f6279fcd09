#!/usr/bin/env python3
"""Scripted-expert success rates in the ROS-free simulator (50 seeded episodes per task by default).

Prints one JSON object per task (episodes, successes, rate, failed seeds, mean simulated episode time,
total wall time) and a final summary line. Same as `python -m piper_core.sim.harness`.

Usage: python bench/sim_expert_rates.py [--episodes 50] [--level clean|randomized] [--tasks ...]
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'src', 'piper_bringup'))
from piper_core.sim.harness import main  # noqa: E402

if __name__ == '__main__':
    t0 = time.perf_counter()
    results = main()
    print(json.dumps({'summary': {r['task']: f"{r['successes']}/{r['episodes']}" for r in results},
                      'wall_seconds': round(time.perf_counter() - t0, 1)}))
