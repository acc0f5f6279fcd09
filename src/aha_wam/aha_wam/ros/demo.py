"""The main end-to-end job (`make demo` / `aha-wam demo`): one simulated episode under the trained policy.

  1. `aha-wam up sim checkpoint:=... task:=... seed:=...`: simulator, streamer, planner and executor as
     separate processes (shared-memory context channel, onnxruntime executor backend on CPU);
  2. records the episode as an MCAP bag (ego image, both arms' joint states and commands, task status,
     instruction) with the recorder of `aha-wam record`;
  3. stops at success (+1 s), at the task's timeout or after --max-seconds, and prints a summary: control
     rate, latency percentiles, context transport and rejections, task outcome, bag path.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor

from aha_wam.data.bag import BagWriter, INSTRUCTION_TOPIC
from aha_wam.ros.record import EpisodeRecorder
from aha_wam.runtime.faults import Fault
from aha_wam_msgs.msg import ExecutorStatus


def percentiles(values, qs=(50, 95)):
    return [round(float(v), 1) for v in np.percentile(values, qs)] if len(values) else None


def run(args) -> dict:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / 'nodes.log'
    up = subprocess.Popen(
        [sys.executable, '-m', 'aha_wam.cli', 'up', 'sim', f'checkpoint:={args.checkpoint}', f'task:={args.task}',
         f'seed:={args.seed}', f'backend:={args.backend}', f'denoise_steps:={args.steps}'],
        stdout=open(log_path, 'w'), stderr=subprocess.STDOUT, start_new_session=True)
    context = rclpy.Context()
    rclpy.init(context=context)
    recorder = EpisodeRecorder(context=context)
    status: list[tuple[float, ExecutorStatus]] = []
    recorder.create_subscription(ExecutorStatus, '/aha_wam/executor/status',
                                 lambda m: status.append((time.monotonic(), m)), 100)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(recorder)
    # One bag per run (bags are never overwritten): a second `make demo` must not trip over the first's bag.
    bag_path = out / f"demo_{args.task}_{args.seed:06d}_{time.strftime('%Y%m%d-%H%M%S')}"
    writer = None
    outcome = {'success': False, 'stage': 'not started', 'timed_out': False}
    t0 = time.monotonic()
    success_at = None
    try:
        while time.monotonic() - t0 < args.max_seconds:
            executor.spin_once(timeout_sec=0.05)
            if up.poll() is not None:
                raise RuntimeError(f'the node set stopped early (exit {up.returncode}); see {log_path}')
            running = any(m.context_version > 0 and not m.holding for _, m in status)
            if writer is None and running:          # record from the first policy update on
                writer = BagWriter(bag_path)
                with recorder._lock:
                    recorder.writer = writer
                    writer.string(INSTRUCTION_TOPIC, str(recorder.status.get('instruction', '')), recorder.now_ns())
            with recorder._lock:
                st = dict(recorder.status)
            if st.get('seed') == args.seed:
                outcome = {k: st.get(k) for k in ('success', 'stage', 'timed_out', 'time')}
            if outcome.get('success') and success_at is None:
                success_at = time.monotonic()
            if (success_at and time.monotonic() - success_at > 1.0) or outcome.get('timed_out'):
                break
    finally:
        with recorder._lock:
            recorder.writer = None
        if writer is not None:
            writer.close({'task': args.task, 'seed': args.seed, 'success': bool(outcome.get('success')),
                          'checkpoint': str(args.checkpoint), 'source': 'demo'})
        recorder.destroy_node()
        rclpy.shutdown(context=context)
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGINT)
            try:
                up.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(up.pid, signal.SIGKILL)
    updates = [m for t, m in status if m.context_version > 0]
    chunks = [m for m in updates if m.trajectory_start.sec or m.trajectory_start.nanosec]
    span = (status[-1][0] - next(t for t, m in status if m.context_version > 0)) if updates else 0.0
    e2e = [(m.header.stamp.sec - m.observation_stamp.sec) * 1e3 + (m.header.stamp.nanosec - m.observation_stamp.nanosec) * 1e-6
           for m in chunks]
    return {
        'task': args.task, 'seed': args.seed, 'checkpoint': str(args.checkpoint),
        'outcome': outcome,
        'executor': {'updates': len(updates), 'chunks': len(chunks),
                     'rate_hz': round(len(updates) / span, 2) if span > 0 else 0.0,
                     'update_ms_p50_p95': percentiles([m.total_ms for m in updates]),
                     'denoise_ms_p50_p95': percentiles([m.denoise_ms for m in updates]),
                     'image_to_trajectory_ms_p50_p95': percentiles(e2e),
                     'holding_fraction': round(float(np.mean([m.holding for m in updates])), 3) if updates else None,
                     'faults': dict(collections.Counter(
                         '+'.join(Fault(m.fault_flags).names) or 'none' for m in updates).most_common())},
        'context': {'transport': 'shm', 'versions_used': len({m.context_version for m in updates}),
                    'age_ms_p50_p95': percentiles([m.context_age_ms for m in updates if m.context_age_ms >= 0]),
                    'rejected_updates': sum(bool(m.fault_flags & ExecutorStatus.FAULT_CONTEXT_REJECTED) for m in updates)},
        'bag': str(bag_path) if writer is not None else None,
        'log': str(log_path),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='aha-wam demo', description=__doc__.split('\n')[0])
    parser.add_argument('--checkpoint', default='checkpoints/cpu')
    parser.add_argument('--task', default='lift_box')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--backend', default='onnxruntime')
    parser.add_argument('--steps', type=int, default=10)
    parser.add_argument('--max-seconds', type=float, default=60.0)
    parser.add_argument('--out', default='runs/demo')
    args = parser.parse_args(argv)
    if not Path(args.checkpoint, 'model.safetensors').is_file():
        print(f'aha-wam demo: error: no checkpoint at {args.checkpoint} (run make train)', file=sys.stderr)
        return 2
    try:
        summary = run(args)
    except RuntimeError as exc:
        print(f'aha-wam demo: error: {exc}', file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    o, e = summary['outcome'], summary['executor']
    print(f"summary: {args.task} seed {args.seed}: {'SUCCESS' if o.get('success') else 'no success'} "
          f"(stage {o.get('stage')}); executor {e['rate_hz']} Hz, update p50/p95 {e['update_ms_p50_p95']} ms, "
          f"image->trajectory p50/p95 {e['image_to_trajectory_ms_p50_p95']} ms; contexts via shared memory: "
          f"{summary['context']['versions_used']} used, {summary['context']['rejected_updates']} rejected; "
          f"bag {summary['bag']}")
    return 0 if e['updates'] else 1


if __name__ == '__main__':
    sys.exit(main())
