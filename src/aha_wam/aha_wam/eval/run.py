"""`aha-wam eval-sim`: variants (full, ablations, Flash) x tasks x seeds on the ClosedLoop.

The loop runs the deployed schedule (`LoopSchedule.deployed()`: the executor's control rate, the planner's
refresh rate, the camera rate and the streamer rate of the sim profile) with the executor latency measured on
the backend in use; `--latency modelled` swaps in fixed latencies for bit-reproducible runs (reported as such).

Ablations are options of the sessions and the schedule, applied to the same trained weights:
    no-ovcr      the executor reads the planner context unedited (ExecutorOptions.ovcr = False)
    no-offset    the phase offset is forced to 0 (ExecutorOptions.zero_offset)
    no-memory    the planner keeps no past K/V (PlannerOptions.memory_size = 0)
    synchronous  the planner refreshes on the executor's image right before every update (LoopSchedule)
    flash-N      the distilled Flash checkpoint with N denoising steps
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time

import numpy as np
import torch

from aha_wam.runtime.executor_session import ExecutorOptions
from aha_wam.runtime.loop import ClosedLoop, PolicyAgent, wilson_interval
from aha_wam.runtime.planner_session import PlannerOptions
from aha_wam.runtime.schedule import LoopSchedule, deployed_executor_options

VARIANTS = ('full', 'no-ovcr', 'no-offset', 'no-memory', 'synchronous', 'flash-1', 'flash-2', 'flash-4')


@dataclasses.dataclass(frozen=True)
class Variant:
    """How one evaluated variant differs from the deployed defaults."""

    name: str
    description: str
    checkpoint: str
    steps: int | None                                          # None: the checkpoint's flow.inference_steps
    planner: dict = dataclasses.field(default_factory=dict)     # PlannerOptions overrides
    executor: dict = dataclasses.field(default_factory=dict)    # ExecutorOptions overrides
    schedule: dict = dataclasses.field(default_factory=dict)    # LoopSchedule overrides


def variant(name: str, checkpoint: str | None, flash: str | None, steps: int) -> Variant:
    if name.startswith('flash-'):
        if not flash:
            raise SystemExit(f'aha-wam eval-sim: {name} needs --flash <checkpoint>')
        n = int(name.split('-')[1])
        return Variant(name, f'Flash, {n} step(s)', flash, n)
    if not checkpoint:
        raise SystemExit('aha-wam eval-sim: --checkpoint is required (or --expert)')
    base = dict(name=name, description=f'teacher, {steps} steps', checkpoint=checkpoint, steps=steps)
    if name == 'full':
        return Variant(**base)
    if name == 'no-ovcr':
        return Variant(**base, executor={'ovcr': False})
    if name == 'no-offset':
        return Variant(**base, executor={'zero_offset': True})
    if name == 'no-memory':
        return Variant(**base, planner={'memory_size': 0})
    if name == 'synchronous':
        return Variant(**base, schedule={'synchronous': True})
    raise SystemExit(f'unknown variant {name!r}; choose from {", ".join(VARIANTS)}')


class PolicyAgentFactory:
    """Loads a checkpoint once and builds a fresh PolicyAgent (sessions, backend, context channel) per task."""

    def __init__(self, v: Variant, schedule: LoopSchedule, backend: str = 'torch', transport: str = 'shm',
                 threads: int = 1):
        from aha_wam.runtime.build import load_policy
        self.schedule, self.backend, self.transport, self.threads = schedule, backend, transport, threads
        self.policy, self.provenance = load_policy(v.checkpoint)
        self.v = dataclasses.replace(v, steps=v.steps or self.policy.config.flow.inference_steps)

    @property
    def task_ids(self) -> dict:
        from aha_wam.runtime.build import task_table
        return task_table(self.provenance)

    def __call__(self) -> PolicyAgent:
        from aha_wam.runtime.build import make_executor_session, make_planner_session
        p, pv = self.policy, self.provenance
        planner = make_planner_session(p, pv, PlannerOptions(**{'refresh_rate': self.schedule.refresh_rate,
                                                                **self.v.planner}),
                                       transport=self.transport, node_name=f'eval_{id(self):x}', threads=self.threads,
                                       backend='onnxruntime' if self.backend == 'onnxruntime' else 'torch')
        try:
            executor = make_executor_session(p, pv, ExecutorOptions(**{'steps': self.v.steps,
                                                                        'control_rate': self.schedule.control_rate,
                                                                        'accept_inline': self.transport == 'inline',
                                                                        **self.v.executor}),
                                             backend=self.backend, threads=self.threads)
        except BaseException:
            planner.close()
            raise
        return PolicyAgent(planner, executor, self.schedule)


def evaluate(make_agent, tasks, seeds, schedule: LoopSchedule, level: str = 'clean', image_size=(96, 96),
             task_ids: dict | None = None, log=None) -> dict:
    """N seeded episodes per task; success with a Wilson 95% interval per task, rates and latencies."""
    from aha_wam.runtime.environment import SimEnvironment
    report = {}
    for task in tasks:
        env = SimEnvironment(task, level, seed=int(seeds[0]), image_size=image_size)
        agent = make_agent()
        results = []
        try:
            loop = ClosedLoop(env, agent, schedule, task_ids=task_ids)
            for seed in seeds:
                torch.manual_seed(int(seed))
                r = loop.run_episode(task, int(seed))
                results.append(r)
                if log is not None:
                    log(r)
        finally:
            agent.close()
            env.close()
        report[task] = summarise(results)
    return report


def summarise(results) -> dict:
    ok = sum(r.success for r in results)
    lo, hi = wilson_interval(ok, len(results))
    wall = [x for r in results for x in r.update_wall_ms]
    sim_time = sum(r.sim_time for r in results)
    return {
        'episodes': len(results), 'successes': ok, 'rate': ok / max(1, len(results)), 'ci95': [lo, hi],
        'mean_episode_s': float(np.mean([r.sim_time for r in results])),
        'mean_success_episode_s': float(np.mean([r.sim_time for r in results if r.success])) if ok else None,
        'control_rate_hz': sum(r.updates for r in results) / max(sim_time, 1e-9),
        'update_wall_ms_p50': float(np.percentile(wall, 50)) if wall else None,
        'update_wall_ms_p95': float(np.percentile(wall, 95)) if wall else None,
        'mean_phase_offset': float(np.mean([x for r in results for x in r.phase_offsets]))
        if any(r.phase_offsets for r in results) else None,
        'holds': sum(r.holds for r in results), 'late': sum(r.late for r in results),
        'overruns': sum(r.overruns for r in results),
        'outcomes': {str(r.seed): bool(r.success) for r in results},
        'failed_seeds': [r.seed for r in results if not r.success],
        'wall_s': float(sum(r.wall_time for r in results)),
    }


def _print_episode(result) -> None:
    print(json.dumps(result.summary()), file=sys.stderr, flush=True)


def run_evaluation(args) -> dict:
    from aha_wam.runtime.expert_agent import ExpertAgent
    torch.set_num_threads(max(1, int(args.threads)))
    seeds = list(range(args.first_seed, args.first_seed + args.episodes))
    overrides = {'latency': args.latency}
    for name in ('control_rate', 'camera_rate', 'refresh_rate'):
        if getattr(args, name, None):
            overrides[name] = float(getattr(args, name))
    base = LoopSchedule.deployed(**overrides)
    executor = deployed_executor_options()
    if getattr(args, 'execute_actions', None) is not None:
        executor['execute_actions'] = int(args.execute_actions)
    log = _print_episode if args.verbose else None
    variants = ['expert'] if args.expert else list(args.ablate)
    report = {'seeds': [seeds[0], seeds[-1]], 'episodes_per_task': len(seeds), 'level': args.level,
              'checkpoint': args.checkpoint, 'flash': args.flash, 'backend': args.backend,
              'latency_mode': base.latency, 'executor': executor, 'variants': {}}
    for name in variants:
        t0 = time.perf_counter()
        if name == 'expert':
            sched, desc, make, ids = base, 'scripted IK expert', ExpertAgent, None
        else:
            v = variant(name, args.checkpoint, args.flash, args.steps)
            v = dataclasses.replace(v, executor={**executor, **v.executor})
            sched, desc = dataclasses.replace(base, **v.schedule), v.description
            make = PolicyAgentFactory(v, sched, backend=args.backend, threads=args.threads)
            ids = make.task_ids
        per_task = evaluate(make, args.tasks, seeds, sched, level=args.level, task_ids=ids, log=log)
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
