"""Replay one recorded bag through the deployed planner + executor schedule on a clock that follows the bag.

The scheduling is `aha_wam.eval.harness.PolicyController` itself (the closed-loop SIM evaluation uses the same
object): PlannerRuntime refreshes every `planner_every` control steps and its context becomes readable
`planner_latency_ms` later (inline context channel); ExecutorRuntime updates every `executor_every` steps
with the phase offset between the context's image and the newest image, its freshness checks and its
hand-over of the chunk `executor latency` later. The chunks go through the trajectory streamer's ROS-free
core (`piper_core.trajectory.ArmStreamer`, ticking at `stream_hz`), so the predicted commands are exactly
what the deployed stack would have sent to the arms. Open loop: the observations are the recorded ones.

Control step k is at t_start + k / control_hz with t_start = the first time an image and both arms' joint
states exist; the observation of step k is the newest image and joint state stamped at or before it, the
recorded action of step k the newest command of each arm stamped at or before it (NaN before the first).
Bag times are rebased to `BASE_NS` + (stamp - t_start) so streamer seconds keep full float precision.
The modelled latencies make a replay deterministic; measured wall times are reported beside them.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from aha_wam.eval.harness import ARMS, EpisodeResult, PolicyController, Schedule, StepObs
from aha_wam.data.rosbag import BagError, RecordedBag
from aha_wam.data.timeline import latest_index as _latest

BASE_NS = 10 * 10**9


class ReplayController(PolicyController):
    """PolicyController that also keeps every executor Update (with its time) for the metrics, and runs the
    executor on `backend` (aha_wam.export.make_backend, as the executor node's `backend` parameter) if set."""

    backend = None

    def reset(self, sim, task: str, seed: int) -> None:
        super().reset(sim, task, seed)
        if self.backend is not None:
            self.executor.backend = self.backend
        self.log: list = []
        inner = self.executor.update

        def update(context, obs, now_ns=None, clock_ns=time.monotonic_ns):
            out = inner(context, obs, now_ns=now_ns, clock_ns=clock_ns)
            self.log.append((int(now_ns), out))
            return out

        self.executor.update = update


@dataclasses.dataclass
class Replay:
    name: str
    task: str
    control_hz: float
    t: np.ndarray                 # [T] s from t_start
    proprio: np.ndarray           # [T, 14] recorded measured joints
    recorded: np.ndarray          # [T, 14] recorded commands (NaN before an arm's first command)
    predicted: np.ndarray         # [T, 14] streamer output driven by the policy's chunks
    active: np.ndarray            # [T] bool: the policy's first chunk has started and a recorded command exists
    updates: list                 # per executor update: dict(t, faults, context_age_ms, phase_offset, delay, ...)
    chunks: list                  # per handed-over chunk: dict(t_start, period, actions [n, 14])
    refresh_wall_ms: list
    update_wall_ms: list
    wall_s: float = 0.0
    counts: dict = dataclasses.field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return float(self.t[-1] + 1.0 / self.control_hz) if self.t.size else 0.0


def control_grid(rec: RecordedBag, period_ns: int) -> np.ndarray:
    start = max(int(rec.image_stamps[0]), *(int(s[0]) for s, _ in rec.joints.values()))
    end = min(int(rec.image_stamps[-1]), *(int(s[-1]) for s, _ in (*rec.joints.values(), *rec.commands.values())))
    if end < start:
        raise BagError(f'{rec.path}: the image, joint-state and command streams do not overlap in time '
                       f'(streams start by {start * 1e-9:.3f} s, one ends at {end * 1e-9:.3f} s)')
    steps = int((end - start) // period_ns) + 1
    return start + np.arange(steps, dtype=np.int64) * period_ns


def replay_bag(rec: RecordedBag, controller: ReplayController, task: str, seed: int = 0,
               stream_hz: float = 200.0) -> Replay:
    from piper_core.trajectory import ArmStreamer
    wall0 = time.perf_counter()
    schedule: Schedule = controller.schedule
    period_ns = int(round(1e9 / schedule.control_hz))
    tick_ns = int(round(1e9 / stream_hz))
    if period_ns % tick_ns:
        raise ValueError(f'control period {period_ns} ns is not a multiple of the streamer tick {tick_ns} ns')
    per_control = period_ns // tick_ns
    grid = control_grid(rec, period_ns)
    T = grid.size
    img_idx = _latest(rec.image_stamps, grid)
    proprio = np.concatenate([rec.joints[a][1][_latest(rec.joints[a][0], grid)] for a in ARMS], axis=1)
    recorded = np.full((T, 14), np.nan)
    for i, a in enumerate(ARMS):
        idx = _latest(rec.commands[a][0], grid)
        ok = idx >= 0
        recorded[ok, 7 * i:7 * i + 7] = rec.commands[a][1][idx[ok]]
    rebase = BASE_NS - int(grid[0])
    torch.manual_seed(int(seed))
    controller.reset(None, task, int(seed))
    result = EpisodeResult(task, int(seed), False, 0.0)
    streamers = {a: ArmStreamer() for a in ARMS}
    for i, a in enumerate(ARMS):
        streamers[a].set_measured(proprio[0, 7 * i:7 * i + 7])
    predicted = np.empty((T, 14))
    pending: list = []
    for k in range(T):
        now_k = int(grid[k]) + rebase
        for j in range(per_control):
            now = now_k + j * tick_ns
            if j == 0:
                obs = StepObs(k, now, rec.images[img_idx[k]], int(rec.image_stamps[img_idx[k]]) + rebase, proprio[k])
                pending += controller.step(obs, result)
                pending.sort(key=lambda x: x[0])
            while pending and pending[0][0] <= now:
                _, trajs = pending.pop(0)
                for arm, traj in trajs.items():
                    try:
                        streamers[arm].submit(traj, now * 1e-9)
                    except ValueError:       # already over: the streamer node rejects it the same way
                        pass
            cmd = [streamers[a].step(now * 1e-9) for a in ARMS]
            if j == 0:
                predicted[k] = np.concatenate(cmd)
    lat = schedule.executor_latency_ns(controller.steps)
    updates, chunks = [], []
    for (now_ns, u), wall in zip(controller.log, result.update_wall_ms):
        h = u.handover if (u.handover is not None and not u.handover.empty) else None
        updates.append({'t': (now_ns - BASE_NS) * 1e-9, 'faults': u.faults.names, 'detail': u.detail,
                        'context_age_ms': None if np.isnan(u.context_age_ms) else float(u.context_age_ms),
                        'phase_offset': int(u.phase_offset), 'delay_steps': None if h is None else int(h.first),
                        'latency_ms': lat * 1e-6, 'wall_ms': float(wall)})
        if h is not None:
            chunks.append({'t_ready': (now_ns + lat - BASE_NS) * 1e-9, 't_start': (h.start_ns - BASE_NS) * 1e-9,
                           'period': h.period_ns * 1e-9, 'actions': np.asarray(h.actions, dtype=np.float64)})
    t = (grid - grid[0]) * 1e-9
    active = np.zeros(T, dtype=bool)
    if chunks:
        active = (t >= chunks[0]['t_start'] - 1e-9) & np.all(np.isfinite(recorded), axis=1)
    return Replay(name=rec.name, task=task, control_hz=schedule.control_hz, t=t, proprio=proprio,
                  recorded=recorded, predicted=predicted, active=active, updates=updates, chunks=chunks,
                  refresh_wall_ms=list(result.refresh_wall_ms), update_wall_ms=list(result.update_wall_ms),
                  wall_s=time.perf_counter() - wall0,
                  counts={'refreshes': result.refreshes, 'updates': result.updates, 'holds': result.holds,
                          'late': result.late})

