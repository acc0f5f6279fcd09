"""`aha-wam eval-live`: N seeded episodes through the real node set; the number the README quotes as "live".

Each episode starts only after the policy is active (policy_manager), in the same processes a user runs with
`aha-wam up sim checkpoint:=...`: simulator, streamer, planner, executor over DDS and shared memory.
Prints one JSON report: success with a Wilson 95 % interval, per-episode outcomes, live executor rate,
update and image-to-trajectory latency percentiles, holding fraction and faults.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from aha_wam.ros.live import LiveError, LiveSystem
from aha_wam.runtime.loop import wilson_interval


def run(args) -> dict:
    seeds = list(range(args.first_seed, args.first_seed + args.episodes))
    live = LiveSystem(args.checkpoint, args.task, seeds[0], Path(args.out) / 'nodes.log', backend=args.backend,
                      steps=args.steps)
    episodes = []
    try:
        active_s = live.wait_active()
        for seed in seeds:
            e = live.run_episode(seed, post_success_s=0.0, max_seconds=args.max_seconds)
            episodes.append(e)
            if args.verbose:
                print(json.dumps({k: e.get(k) for k in ('seed', 'success', 'outcome', 'rate_hz', 'holding_fraction')}),
                      file=sys.stderr, flush=True)
    finally:
        live.close()
    ok = sum(e['success'] for e in episodes)
    lo, hi = wilson_interval(ok, len(episodes))

    def pooled(key, i):
        vals = [e[key][i] for e in episodes if e.get(key)]
        return round(float(np.median(vals)), 1) if vals else None
    return {
        'task': args.task, 'checkpoint': args.checkpoint, 'backend': args.backend, 'denoise_steps': args.steps,
        'episodes': len(episodes), 'successes': ok, 'rate': ok / max(1, len(episodes)), 'ci95': [lo, hi],
        'launch_to_active_s': round(active_s, 2),
        'outcomes': {str(e['seed']): e['success'] for e in episodes},
        'live': {'rate_hz_median': round(float(np.median([e.get('rate_hz', 0.0) for e in episodes])), 2),
                 'update_ms_p50_median': pooled('update_ms_p50_p95', 0),
                 'update_ms_p95_median': pooled('update_ms_p50_p95', 1),
                 'image_to_trajectory_ms_p50_median': pooled('image_to_trajectory_ms_p50_p95', 0),
                 'image_to_trajectory_ms_p95_median': pooled('image_to_trajectory_ms_p50_p95', 1),
                 'holding_fraction_mean': round(float(np.mean([e.get('holding_fraction', 1.0) for e in episodes])), 3)},
        'per_episode': episodes,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog='aha-wam eval-live', description=__doc__.split('\n')[0])
    p.add_argument('--checkpoint', default='checkpoints/cpu')
    p.add_argument('--task', default='lift_box')
    p.add_argument('--episodes', type=int, default=20)
    p.add_argument('--first-seed', type=int, default=0)
    p.add_argument('--backend', default='onnxruntime')
    p.add_argument('--steps', type=int, default=10)
    p.add_argument('--max-seconds', type=float, default=40.0, help='wall-clock limit of one episode')
    p.add_argument('--out', default='runs/eval_live')
    p.add_argument('--json', default=None, help='also write the report here')
    p.add_argument('-v', '--verbose', action='store_true')
    args = p.parse_args(argv)
    if not Path(args.checkpoint, 'model.safetensors').is_file():
        print(f'aha-wam eval-live: error: no checkpoint at {args.checkpoint}', file=sys.stderr)
        return 2
    try:
        report = run(args)
    except LiveError as exc:
        print(f'aha-wam eval-live: error: {exc}', file=sys.stderr)
        return 1
    text = json.dumps(report, indent=1)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text)
    print(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
