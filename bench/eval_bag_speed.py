"""eval-bag speed: N recorded episodes as MCAP bags through `aha-wam eval-bag` with a `small` checkpoint.

    python bench/eval_bag_speed.py [--demos /work/data_aha/demos] [--episodes 20] [--checkpoint DIR]

Episodes (`*.npz` from `aha-wam record`, taken round-robin over tasks) are written as bags in the recorder's
format (aha_wam.data.bag.write_episode_bag) unless they exist. Without --checkpoint an untrained `small`
policy is saved with save_checkpoint (normalisation statistics from --stats, else mid-range) and used.
Prints one JSON line: recorded seconds, replay and total wall seconds, and their ratios (> 1 = faster than
real time).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def make_bags(demos: Path, n: int, out: Path) -> list[Path]:
    from aha_wam.data.bag import write_episode_bag
    from aha_wam.data.episode import load_episode
    by_task: dict[str, list[Path]] = {}
    for p in sorted(demos.glob('episode_*.npz')):
        by_task.setdefault(p.stem.rsplit('_', 1)[0], []).append(p)
    picked, i = [], 0
    while len(picked) < n and any(i < len(v) for v in by_task.values()):
        picked += [v[i] for v in by_task.values() if i < len(v)]
        i += 1
    out.mkdir(parents=True, exist_ok=True)
    bags = []
    for p in picked[:n]:
        bag = out / f'bag_{p.stem}'
        if not (bag / 'metadata.yaml').exists():
            write_episode_bag(load_episode(p), bag)
        bags.append(bag)
    return bags


def small_checkpoint(path: Path, stats: str | None) -> Path:
    import numpy as np
    import torch
    from aha_wam.checkpoint import save_checkpoint
    from aha_wam.config import get_config
    from aha_wam.data.episode import TASKS
    from aha_wam.policy import AhaWamPolicy
    from aha_wam.runtime.safety import PIPER_LOWER, PIPER_UPPER
    if (path / 'provenance.json').exists():
        return path
    torch.manual_seed(0)
    policy = AhaWamPolicy(get_config('small'))
    if stats:
        policy.normalizer.set_stats(json.loads(Path(stats).read_text()))
    else:
        mid = np.tile((PIPER_LOWER + PIPER_UPPER) / 2, 2)
        policy.normalizer.set_stats({'state_mean': mid, 'state_std': np.ones(14), 'action_mean': mid,
                                     'action_std': np.full(14, 1e-3)})   # chunks pass the guard
    return save_checkpoint(policy, path, data='untrained small (eval-bag speed bench)', extra={'tasks': list(TASKS)})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--demos', default='/work/data_aha/demos')
    ap.add_argument('--episodes', type=int, default=20)
    ap.add_argument('--bags', default='runs/bench/eval_bag/bags')
    ap.add_argument('--checkpoint', default=None)
    ap.add_argument('--stats', default=None, help='normalization.json for the untrained small checkpoint')
    ap.add_argument('--out', default='runs/bench/eval_bag/report')
    ap.add_argument('--no-plots', action='store_true')
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--backend', default='torch', help='executor backend (torch, onnxruntime, ...)')
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    from aha_wam.offline.evaluate import evaluate_bags
    bags = make_bags(Path(args.demos), args.episodes, Path(args.bags))
    ckpt = args.checkpoint or str(small_checkpoint(Path('runs/bench/eval_bag/small_untrained'), args.stats))
    t0, c0 = time.perf_counter(), time.process_time()
    s = evaluate_bags(bags, ckpt, out=args.out, plots=not args.no_plots, backend=args.backend,
                      log=lambda line: print(line, file=sys.stderr, flush=True))
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    t = s['timing']
    print(json.dumps({'bags': len(bags), 'checkpoint': ckpt, 'config': s['checkpoint_config'],
                      'denoise_steps': s['denoise_steps'], 'backend': args.backend, 'threads': args.threads,
                      'recorded_s': t['bag_s'],
                      'read_s': t['read_s'], 'replay_s': t['replay_s'], 'report_s': t.get('report_s'),
                      'total_s': round(total, 2), 'realtime_factor_replay': t['realtime_factor_replay'],
                      'realtime_factor_total': round(t['bag_s'] / total, 3),
                      # CPU seconds of this process: the cost without waiting for a core on a shared machine
                      'cpu_s': round(cpu, 2), 'realtime_factor_cpu': round(t['bag_s'] / cpu, 3),
                      'load_average': [round(x, 2) for x in __import__('os').getloadavg()],
                      'executor_update_wall_ms_p50': t['executor_update_wall_ms'].get('p50'),
                      'planner_refresh_wall_ms_p50': t['planner_refresh_wall_ms'].get('p50')}))
    return 0


if __name__ == '__main__':
    sys.exit(main())
