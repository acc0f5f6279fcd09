"""ROS-free closed loop: run a scripted expert in the simulator directly (tests, benchmarks, demos).

Plans are executed exactly like the ROS trajectory streamer does it: waypoints are linearly
interpolated at ``rate_hz`` (200 Hz) and each sample is sent with ``command()`` (MOVE J, 100 %).
After every plan the expert re-plans its next phase from the current simulator state.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .bimanual import ARMS, BimanualPiperSim
from .expert import make_expert


@dataclass
class EpisodeResult:
    task: str
    seed: int
    level: str
    success: bool
    stage: str
    sim_time: float
    wall_time: float
    phases: list = field(default_factory=list)
    error: str = ''


def execute_plan(sim: BimanualPiperSim, plan, rate_hz: float = 200.0, stop=None, on_tick=None) -> bool:
    """Stream a plan into the sim at rate_hz (linear interpolation, MOVE J 100 %). Returns False if stopped."""
    period = 1.0 / rate_hz
    n = int(np.ceil(plan.duration / period - 1e-9))
    done_steps = 0
    for k in range(1, n + 1):
        q = plan.sample(k * period)
        for a in ARMS:
            sim.command(a, q[a], 100.0)
        # exact 200 Hz on a 500 Hz physics clock: 2 or 3 steps per tick, no drift
        target_steps = int(round(k * period / sim.physics_dt))
        sim.step(target_steps - done_steps)
        done_steps = target_steps
        if on_tick is not None:
            on_tick(sim)
        if stop is not None and stop(sim):
            return False
    return True


def run_episode(task: str = 'lift_box', seed: int = 0, level: str = 'clean', sim: BimanualPiperSim | None = None,
                rate_hz: float = 200.0, stop_on_success: bool = True, settle: float = 0.3,
                on_tick=None) -> EpisodeResult:
    """Reset (seeded), then plan/execute phases until the expert is done, success, or the task timeout."""
    t0 = time.perf_counter()
    if sim is None:
        sim = BimanualPiperSim(task, level, seed=seed)
    else:
        sim.reset(seed)
    expert = make_expert(task, old_firmware=sim.old_firmware)
    timeout = sim.task.spec.episode_timeout
    phases = []
    stop = (lambda s: s.task_status().success) if stop_on_success else None
    stop_fn = (lambda s: (stop is not None and stop(s)) or s.time >= timeout)
    while sim.time < timeout:
        plan = expert.next_plan(sim.scene_state())
        if plan is None:
            break
        phases.append(plan.label)
        if not execute_plan(sim, plan, rate_hz, stop_fn, on_tick):
            break
        sim.step(int(settle / sim.physics_dt))
    # let the scene settle (success predicates need the object at rest / held long enough)
    end = min(timeout, sim.time + 1.5)
    while sim.time < end and not sim.task_status().success:
        sim.step(25)
    st = sim.task_status()
    return EpisodeResult(task, seed, level, bool(st.success), st.stage, round(sim.time, 3),
                         round(time.perf_counter() - t0, 3), phases, expert.mem.get('error', ''))


def success_rate(task: str, seeds, level: str = 'clean', verbose: bool = False) -> dict:
    sim = BimanualPiperSim(task, level, seed=int(seeds[0]))
    results = []
    for s in seeds:
        r = run_episode(task, int(s), level, sim=sim)
        results.append(r)
        if verbose:
            print(json.dumps(asdict(r)), flush=True)
    ok = sum(r.success for r in results)
    return {'task': task, 'level': level, 'episodes': len(results), 'successes': ok,
            'rate': ok / max(1, len(results)), 'failed_seeds': [r.seed for r in results if not r.success],
            'mean_sim_time': float(np.mean([r.sim_time for r in results])),
            'wall_time': float(sum(r.wall_time for r in results))}


def main(argv=None):
    ap = argparse.ArgumentParser(description='Run the scripted expert in the ROS-free simulator and report success rates.')
    ap.add_argument('--tasks', nargs='+', default=['lift_box', 'handover_cube', 'place_cube_in_bowl'])
    ap.add_argument('--episodes', type=int, default=50)
    ap.add_argument('--first-seed', type=int, default=0)
    ap.add_argument('--level', default='clean')
    ap.add_argument('-v', '--verbose', action='store_true')
    args = ap.parse_args(argv)
    out = []
    for t in args.tasks:
        r = success_rate(t, list(range(args.first_seed, args.first_seed + args.episodes)), args.level, args.verbose)
        out.append(r)
        print(json.dumps(r), flush=True)
    return out


if __name__ == '__main__':
    main()
