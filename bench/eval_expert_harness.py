#!/usr/bin/env python3
"""The scripted expert scored by the ClosedLoop that evaluates policies (aha_wam.runtime.loop: sim clock,
the deployed schedule, streamer semantics), 50 seeded episodes per task by default. Prints the eval-sim JSON.

Usage: python bench/eval_expert_harness.py [--episodes 50] [--tasks ...]
"""
import sys

from aha_wam.cli import main

if __name__ == '__main__':
    sys.exit(main(['eval-sim', '--expert', *(sys.argv[1:] or ['--episodes', '50'])]))
