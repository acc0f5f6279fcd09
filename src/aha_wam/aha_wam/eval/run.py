"""`aha-wam eval-sim`: variants (full, ablations, Flash) x tasks x seeds through `harness.evaluate`.

Ablations are applied at inference to the same trained weights:
    no-ovcr      the executor reads the planner context unedited (OVCR router removed)
    no-offset    the phase offset is forced to 0 (the context is treated as if taken with the newest image)
    no-memory    the planner keeps no past K/V (memory capacity 0)
    synchronous  the planner refreshes on the executor's image right before every update (no staleness,
                 its latency adds to the executor's)
    flash-N      the distilled Flash checkpoint with N denoising steps
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time

import torch

from aha_wam.eval.harness import ExpertController, PolicyController, Schedule, evaluate


def _load(path):
    from aha_wam.checkpoint import load_checkpoint
    policy, prov = load_checkpoint(path)
    tasks = (prov.get('extra') or {}).get('tasks')
    return policy, ({name: i for i, name in enumerate(tasks)} if tasks else None)


def variant_controller(name: str, args, schedule: Schedule):
    """-> (factory of a controller, schedule, description)."""
    if name.startswith('flash-'):
        if not args.flash:
            raise SystemExit(f'aha-wam eval-sim: {name} needs --flash <checkpoint>')
        steps = int(name.split('-')[1])
        policy, tasks = _load(args.flash)
        return (lambda: PolicyController(policy, steps, schedule, tasks)), schedule, f'Flash, {steps} step(s)'
    if not args.checkpoint:
        raise SystemExit('aha-wam eval-sim: --checkpoint is required (or --expert)')
    policy, tasks = _load(args.checkpoint)
    steps, desc = args.steps, f'teacher, {args.steps} steps'
    if name == 'no-ovcr':
        policy.executor.ovcr = None
    elif name == 'no-memory':
        from aha_wam.models.memory import KVMemory
        policy.planner.memory = KVMemory(0)
    elif name == 'no-offset':
        schedule = dataclasses.replace(schedule, zero_offset=True)
    elif name == 'synchronous':
        schedule = dataclasses.replace(schedule, synchronous=True)
    elif name != 'full':
        raise SystemExit(f'unknown variant {name!r}')
    return (lambda: PolicyController(policy, steps, schedule, tasks)), schedule, desc


def run_evaluation(args) -> dict:
    torch.set_num_threads(max(1, int(args.threads)))
    seeds = list(range(args.first_seed, args.first_seed + args.episodes))
    schedule = Schedule(camera_every=args.camera_every, planner_every=args.planner_every,
                        executor_every=args.executor_every)
    log = None
    if args.verbose:
        def log(r):
            print(json.dumps(r.summary()), file=sys.stderr, flush=True)
    variants = ['expert'] if args.expert else list(args.ablate)
    report = {'seeds': [seeds[0], seeds[-1]], 'episodes_per_task': len(seeds), 'level': args.level,
              'checkpoint': args.checkpoint, 'flash': args.flash, 'variants': {}}
    for name in variants:
        t0 = time.perf_counter()
        if name == 'expert':
            make, sched, desc = ExpertController, schedule, 'scripted IK expert'
        else:
            make, sched, desc = variant_controller(name, args, schedule)
        per_task = evaluate(make, args.tasks, seeds, sched, level=args.level, log=log)
        ok = sum(r['successes'] for r in per_task.values())
        n = sum(r['episodes'] for r in per_task.values())
        report['variants'][name] = {'description': desc, 'schedule': dataclasses.asdict(sched), 'tasks': per_task,
                                    'overall_rate': ok / max(n, 1), 'wall_s': round(time.perf_counter() - t0, 1)}
    return report


def ablation_table(report: dict) -> str:
    """Markdown table (variant x task success with Wilson 95% interval, control rate) of one report."""
    variants = report['variants']
    tasks = list(next(iter(variants.values()))['tasks'])
    head = '| variant | ' + ' | '.join(tasks) + ' | all | control rate (sim) | update wall p50 |'
    lines = [head, '|' + '---|' * (len(tasks) + 4)]
    for name, v in variants.items():
        cells = []
        for t in tasks:
            r = v['tasks'][t]
            lo, hi = r['ci95']
            cells.append(f"{100 * r['rate']:.0f}% ({r['successes']}/{r['episodes']}, {100 * lo:.0f}-{100 * hi:.0f})")
        rates = [v['tasks'][t]['control_rate_hz'] for t in tasks]
        walls = [v['tasks'][t]['update_wall_ms_p50'] for t in tasks if v['tasks'][t]['update_wall_ms_p50']]
        wall = f'{sum(walls) / len(walls):.1f} ms' if walls else '-'
        lines.append(f"| {name} | " + ' | '.join(cells) + f" | {100 * v['overall_rate']:.0f}% | "
                     f"{sum(rates) / len(rates):.1f} Hz | {wall} |")
    return '\n'.join(lines)
