"""Replay one recorded bag through the deployed planner + executor on the ClosedLoop, open loop.

The loop is the one `aha-wam eval-sim`, the demo and the nodes' sessions share (aha_wam.runtime.loop): the
PlannerSession refreshes at the planner's rate on the newest recorded frame, its context reaches the
ExecutorSession when the prefill is done, the executor ticks at the deployed control rate with the phase
offset between the context's frame and the newest frame, and its chunks go through the trajectory streamer's
core (`piper_core.trajectory.ArmStreamer`) -- so the predicted commands are what the deployed stack would have
sent to the arms. The observations are the recorded ones (`BagEnvironment`).

Control step k (the policy's action grid, 50 Hz) is at k / control_hz from loop time 0 = the first moment the
ego camera and both arms' joint states exist; the recorded action of step k is the newest command of each arm
at or before it (NaN before its first). With `latency='modelled'` (the eval-bag default) a replay is
deterministic; measured wall times are reported beside it.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from aha_wam.data.rosbag import BagError, RecordedBag  # noqa: F401  (re-exported for callers)
from aha_wam.runtime.environment import BagEnvironment
from aha_wam.runtime.loop import ClosedLoop, Hook


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


class ReplayLog(Hook):
    """Collects, on the action grid, the streamers' output next to the recorded commands, and every update."""

    def __init__(self, env: BagEnvironment, control_hz: float):
        self.env, self.control_hz = env, control_hz
        self.t, self.proprio, self.recorded, self.predicted = [], [], [], []
        self.updates, self.chunks = [], []

    def control_step(self, now_ns: int, proprio: np.ndarray, commands: np.ndarray) -> None:
        self.t.append(now_ns * 1e-9)
        self.proprio.append(np.array(proprio, dtype=float))
        self.recorded.append(self.env.recorded_command(now_ns))
        self.predicted.append(np.array(commands, dtype=float))

    def update(self, now_ns: int, u) -> None:
        h = u.handover if u.kind == 'chunk' else None
        self.updates.append({'t': now_ns * 1e-9, 'faults': u.faults.names, 'detail': u.detail,
                             'context_age_ms': None if np.isnan(u.context_age_ms) else float(u.context_age_ms),
                             'phase_offset': int(u.phase_offset), 'delay_steps': None if h is None else int(h.first),
                             'latency_ms': float(u.total_ms), 'coasting': bool(u.coasting)})
        if h is not None:
            self.chunks.append({'t_ready': now_ns * 1e-9 + u.total_ms * 1e-3, 't_start': h.start_ns * 1e-9,
                                'period': h.period_ns * 1e-9, 'actions': np.asarray(h.actions, dtype=np.float64)})


def replay_bag(rec: RecordedBag, agent, task: str, schedule, seed: int = 0, task_ids: dict | None = None) -> Replay:
    """Replay `rec` through `agent` (a PolicyAgent) on `schedule`; the agent's sessions are reset first."""
    wall0 = time.perf_counter()
    env = BagEnvironment(rec)
    hz = float(agent.executor.policy.config.timing.control_hz)
    log = ReplayLog(env, hz)
    torch.manual_seed(int(seed))
    loop = ClosedLoop(env, agent, schedule, hooks=[log], task_ids=task_ids)
    result = loop.run_episode(task, int(seed), record_hz=hz)
    # the loop times inferring updates only (a coasting tick, execute_actions > 0, has no latency to report)
    for u, wall in zip([u for u in log.updates if not u['coasting']], result.update_wall_ms):
        u['wall_ms'] = float(wall)
    t = np.asarray(log.t)
    recorded, predicted = np.stack(log.recorded), np.stack(log.predicted)
    active = np.zeros(t.size, dtype=bool)
    if log.chunks:
        active = (t >= log.chunks[0]['t_start'] - 1e-9) & np.all(np.isfinite(recorded), axis=1)
    return Replay(name=rec.name, task=task, control_hz=hz, t=t, proprio=np.stack(log.proprio), recorded=recorded,
                  predicted=predicted, active=active, updates=log.updates, chunks=log.chunks,
                  refresh_wall_ms=list(result.refresh_wall_ms), update_wall_ms=list(result.update_wall_ms),
                  wall_s=time.perf_counter() - wall0,
                  counts={'refreshes': result.refreshes, 'updates': result.updates, 'holds': result.holds,
                          'late': result.late})
