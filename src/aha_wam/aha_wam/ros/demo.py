"""The main end-to-end job (`make demo` / `aha-wam demo`): one simulated episode under the trained policy.

  1. `aha-wam up sim checkpoint:=... task:=... seed:=...`: simulator, streamer, planner, executor and
     policy_manager as separate processes (shared-memory context channel, onnxruntime backend on CPU);
  2. waits until policy_manager reports the policy active (checkpoint loaded, inference graphs loaded from the
     cache next to the checkpoint or exported once, one warm-up inference) and only then starts the episode,
     so start-up never eats episode time;
  3. records the episode as an MCAP bag (ego image, both arms' joint states and commands, task status,
     instruction) with the recorder of `aha-wam record --ros`;
  4. stops at success (+1 s) or at the task's timeout and prints a summary: time from launch to policy active,
     control rate, latency percentiles, context transport and rejections, outcome, bag path.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from aha_wam.data.bag import INSTRUCTION_TOPIC, BagWriter
from aha_wam.ros.live import LiveError, LiveSystem
from aha_wam.ros.record import EpisodeRecorder


def run(args) -> dict:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    live = LiveSystem(args.checkpoint, args.task, args.seed, out / 'nodes.log', backend=args.backend, steps=args.steps)
    recorder = EpisodeRecorder(context=live.context)
    live.executor.add_node(recorder)
    # One bag per run (bags are never overwritten): a second `make demo` must not trip over the first's bag.
    bag_path = out / f"demo_{args.task}_{args.seed:06d}_{time.strftime('%Y%m%d-%H%M%S')}"
    writer = None

    def start_recording():
        nonlocal writer
        writer = BagWriter(bag_path)
        with recorder._lock:
            recorder.writer = writer
            writer.string(INSTRUCTION_TOPIC, str(recorder.status.get('instruction', '')), recorder.now_ns())
    try:
        active_s = live.wait_active(args.max_seconds * 5)
        episode = live.run_episode(args.seed, max_seconds=args.max_seconds, on_start=start_recording)
    finally:
        with recorder._lock:
            recorder.writer = None
        if writer is not None:
            writer.close({'task': args.task, 'seed': args.seed, 'success': bool(locals().get('episode', {}).get('success')),
                          'checkpoint': str(args.checkpoint), 'source': 'demo'})
        recorder.destroy_node()
        live.close()
    return {'task': args.task, 'seed': args.seed, 'checkpoint': str(args.checkpoint),
            'launch_to_active_s': round(active_s, 2), **episode, 'transport': 'shm',
            'bag': str(bag_path) if writer is not None else None, 'log': str(live.log_path)}


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
        s = run(args)
    except LiveError as exc:
        print(f'aha-wam demo: error: {exc}', file=sys.stderr)
        return 1
    print(json.dumps(s, indent=2))
    o = s.get('outcome', {})
    print(f"summary: {args.task} seed {args.seed}: {'SUCCESS' if s['success'] else 'no success'} "
          f"(stage {o.get('stage')}, {o.get('time')} s); policy active {s['launch_to_active_s']} s after launch; "
          f"executor {s.get('rate_hz')} Hz, update p50/p95 {s.get('update_ms_p50_p95')} ms, "
          f"image->trajectory p50/p95 {s.get('image_to_trajectory_ms_p50_p95')} ms, holding "
          f"{s.get('holding_fraction')}; contexts via shared memory: {s.get('context_versions')} used, "
          f"{s.get('rejected_updates')} rejected; bag {s['bag']}")
    return 0 if s.get('updates') else 1


if __name__ == '__main__':
    sys.exit(main())
