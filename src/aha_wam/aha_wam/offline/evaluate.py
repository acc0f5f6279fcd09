"""`aha-wam eval-bag`: recorded bags -> replay through the deployed schedule -> metrics -> report folder."""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from aha_wam.offline import metrics as M
from aha_wam.data.rosbag import BagError, read_bag
from aha_wam.offline.replay import Replay, replay_bag
from aha_wam.data.topic_map import TopicMap


class SetupError(RuntimeError):
    """The evaluation cannot start (e.g. the executor backend is unavailable)."""


def bag_metrics(r: Replay) -> dict:
    """The deterministic metrics of one replay (no wall-clock values)."""
    m = r.active
    grip = {}
    for i, arm in enumerate(M.ARMS):
        g = 7 * i + 6
        grip[arm] = (M.gripper_timing(r.t[m], r.recorded[m, g], r.predicted[m, g]) if m.sum() >= 2 else
                     {'recorded_events': 0, 'matched': 0, 'missed': 0, 'extra': 0, 'errors_s': []})
    faults: dict = {}
    for u in r.updates:
        for f in u['faults']:
            faults[f] = faults.get(f, 0) + 1
    delays = [u['delay_steps'] for u in r.updates if u['delay_steps'] is not None]
    return {
        'bag': r.name, 'task': r.task, 'duration_s': round(r.duration_s, 6), 'control_steps': int(r.t.size),
        'evaluated_steps': int(m.sum()),
        'first_command_s': r.chunks[0]['t_start'] if r.chunks else None,
        'action_error': M.action_error(r.predicted, r.recorded, m),
        'chunk_discontinuity': M.discontinuity_summary(M.chunk_discontinuity(r.chunks)),
        'gripper_timing': grip,
        'ee_path': M.ee_path(r.predicted, r.recorded, m),
        'context_age_ms': M.distribution([u['context_age_ms'] for u in r.updates]),
        'inference_delay_steps': M.distribution(delays),
        'modelled_latency_ms': M.distribution([u['latency_ms'] for u in r.updates if u['delay_steps'] is not None]),
        'phase_offset_steps': M.distribution([u['phase_offset'] for u in r.updates if u['delay_steps'] is not None]),
        'executor': {'updates': len(r.updates), 'chunks': len(r.chunks), 'faults': dict(sorted(faults.items())),
                     **r.counts},
    }


def aggregate(replays: list[Replay], per_bag: list[dict]) -> dict:
    """Pooled over all bags: every evaluated step, chunk switch, gripper event and update counts once."""
    pred = np.concatenate([r.predicted for r in replays])
    rec = np.concatenate([r.recorded for r in replays])
    mask = np.concatenate([r.active for r in replays])
    jumps = np.concatenate([M.chunk_discontinuity(r.chunks) for r in replays])
    grip = {}
    for i, arm in enumerate(M.ARMS):
        per = [b['gripper_timing'][arm] for b in per_bag]
        errs = [e for g in per for e in g['errors_s']]
        grip[arm] = {'recorded_events': sum(g['recorded_events'] for g in per),
                     'matched': sum(g['matched'] for g in per), 'missed': sum(g['missed'] for g in per),
                     'extra': sum(g['extra'] for g in per),
                     'abs_error_s': M.distribution(np.abs(errs)) if errs else {'count': 0}}
    ee = {}
    for arm in M.ARMS:
        per = [(b['ee_path'][arm], b['evaluated_steps']) for b in per_bag]
        per = [(p, n) for p, n in per if p]
        ee[arm] = None if not per else {
            'mean_error_m': float(sum(p['mean_error_m'] * n for p, n in per) / sum(n for _, n in per)),
            'max_error_m': float(max(p['max_error_m'] for p, _ in per))}
    ups = [u for r in replays for u in r.updates]
    return {
        'bags': len(replays), 'duration_s': float(sum(r.duration_s for r in replays)),
        'evaluated_steps': int(mask.sum()),
        'action_error': M.action_error(pred, rec, mask),
        'chunk_discontinuity': M.discontinuity_summary(jumps),
        'gripper_timing': grip, 'ee_path': ee,
        'context_age_ms': M.distribution([u['context_age_ms'] for u in ups]),
        'inference_delay_steps': M.distribution([u['delay_steps'] for u in ups if u['delay_steps'] is not None]),
    }


def evaluate_bags(bags, checkpoint: str, out: str | None = None, topic_map: TopicMap | None = None,
                  steps: int | None = None, task: str | None = None, seed: int = 0, schedule=None,
                  plots: bool = True, log=None, backend: str = 'torch') -> dict:
    """The whole `eval-bag` job. Raises BagError / TopicMapError / CheckpointError with a one-line message.

    `schedule` (aha_wam.runtime.schedule.LoopSchedule) defaults to the deployed one with modelled latency, so
    the metrics are deterministic; the planner and executor are the sessions the nodes run."""
    import torch
    from aha_wam.data.episode import TASKS
    from aha_wam.eval.run import PolicyAgentFactory, Variant
    from aha_wam.runtime.schedule import LoopSchedule
    wall0 = time.perf_counter()
    tmap = topic_map or TopicMap()
    schedule = schedule or LoopSchedule.deployed(latency='modelled')
    factory = PolicyAgentFactory(Variant('full', 'eval-bag', str(checkpoint), steps), schedule, backend=backend)
    policy, steps = factory.policy, factory.v.steps
    task_ids = factory.task_ids
    known = list(task_ids) if task_ids else list(TASKS)
    hw = (policy.config.encoder.image_height, policy.config.encoder.image_width)
    try:
        agent = factory()
    except Exception as exc:      # BackendUnavailable, unknown name, export failure: one line
        raise SetupError(f'executor backend {backend!r}: {type(exc).__name__}: {exc}') from None
    replays, per_bag, read_s = [], [], 0.0
    try:
        for path in bags:
            t0 = time.perf_counter()
            rec = read_bag(path, tmap, image_hw=hw)
            read_s += time.perf_counter() - t0
            name = task or rec.meta.get('task') or known[0]
            if name not in known:
                raise BagError(f'{path}: task {name!r} is not in the checkpoint task table {known} (use --task)')
            with torch.no_grad():
                r = replay_bag(rec, agent, name, schedule, seed=seed, task_ids=task_ids)
            replays.append(r)
            metrics = bag_metrics(r)
            per_bag.append(metrics)
            if log:
                ae = metrics['action_error']['per_arm']
                log(json.dumps({'bag': r.name, 'steps': metrics['control_steps'],
                                'evaluated': metrics['evaluated_steps'],
                                'joints_mse': {a: round(v['joints_mse'], 6) for a, v in ae.items()},
                                'replay_s': round(r.wall_s, 2), 'bag_s': round(r.duration_s, 2)}))
    finally:
        agent.close()
    replay_s = sum(r.wall_s for r in replays)
    bag_s = sum(r.duration_s for r in replays)
    summary = {
        'format': 'aha_wam.eval_bag', 'version': 1,
        'checkpoint': str(checkpoint), 'checkpoint_config': policy.config.name,
        'denoise_steps': steps, 'backend': backend, 'seed': seed, 'latency_mode': schedule.latency,
        'schedule': dataclasses.asdict(schedule), 'topic_map': tmap.describe(),
        'aggregate': aggregate(replays, per_bag), 'bags': per_bag,
        'timing': {   # wall clock of this machine: the only non-deterministic section
            'executor_update_wall_ms': M.distribution([x for r in replays for x in r.update_wall_ms]),
            'planner_refresh_wall_ms': M.distribution([x for r in replays for x in r.refresh_wall_ms]),
            'read_s': round(read_s, 3), 'replay_s': round(replay_s, 3), 'bag_s': round(bag_s, 3),
            'realtime_factor_replay': round(bag_s / replay_s, 3) if replay_s else None,
        },
    }
    if out:
        from aha_wam.offline.report import write_report
        t0 = time.perf_counter()
        write_report(Path(out), summary, replays, plots=plots)
        summary['timing']['report_s'] = round(time.perf_counter() - t0, 3)
    total = time.perf_counter() - wall0
    summary['timing']['total_s'] = round(total, 3)
    summary['timing']['realtime_factor_total'] = round(bag_s / total, 3) if total else None
    if out:
        (Path(out) / 'summary.json').write_text(json.dumps(summary, indent=1))
    return summary
