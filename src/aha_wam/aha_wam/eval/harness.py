"""The closed loop on a simulated clock: simulator + trajectory streamer + a controller (policy or expert).

Everything runs on sim time in 4 ms ticks (2 physics steps at 500 Hz), like the ROS graph does in wall time:

    every tick            ArmStreamer (the trajectory_streamer's ROS-free core: JTC replacement, linear
                          interpolation, velocity limits) -> sim.command (MOVE J)
    every camera period   sim.render() -> newest image, stamped with the sim time
    every control step    proprio = measured joints; the streamer command is the action of that step
    controller            PolicyController: PlannerRuntime refreshes at the planner cadence, its context becomes
                          readable `planner_latency` later (inline channel, as over DDS); ExecutorRuntime updates
                          at the executor cadence with phase offset = steps between the context's image and the
                          newest image, and its chunk reaches the streamer `executor latency` later, handed over
                          from the action due then (exactly the deployed nodes' logic)
                          ExpertController: the scripted IK expert's plans as trajectories (re-planned after
                          each phase has run and settled, as piper_core.sim.harness does)

Latencies are modelled (fixed ms, so runs are reproducible for a seed); the measured wall time of every
planner refresh and executor update is reported next to them. The same loop records demonstrations
(`record=True` returns an `Episode` on the 50 Hz control grid).
"""
from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import torch

from aha_wam.data.episode import Episode, task_id

from piper_core.layout import ARMS, JOINT_NAMES, arm_slice  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Cadences in control steps (50 Hz) and modelled latencies. Defaults mirror config/executor.yaml and
    planner.yaml in spirit (planner 2 Hz, camera ~15 Hz) at rates this CPU can keep."""

    control_hz: float = 50.0
    tick_physics_steps: int = 2          # streamer tick = 2 x 2 ms
    camera_every: int = 3                # control steps between frames (16.7 Hz)
    planner_every: int = 25              # planner refresh period (2 Hz)
    executor_every: int = 4              # executor update period (12.5 Hz)
    planner_latency_ms: float = 40.0     # prefill + publish
    executor_fixed_ms: float = 15.0      # image encode + OVCR + context read
    executor_step_ms: float = 3.0        # per Euler step
    synchronous: bool = False            # ablation: planner refresh on the executor's image before every update
    zero_offset: bool = False            # ablation: phase offset forced to 0 (context treated as current)

    def executor_latency_ns(self, steps: int) -> int:
        return int(round((self.executor_fixed_ms + steps * self.executor_step_ms) * 1e6))


@dataclasses.dataclass
class EpisodeResult:
    task: str
    seed: int
    success: bool
    sim_time: float
    stage: str = ''
    updates: int = 0
    refreshes: int = 0
    holds: int = 0
    late: int = 0
    phase_offsets: list = dataclasses.field(default_factory=list)
    delays: list = dataclasses.field(default_factory=list)
    update_wall_ms: list = dataclasses.field(default_factory=list)
    refresh_wall_ms: list = dataclasses.field(default_factory=list)
    wall_time: float = 0.0

    def summary(self) -> dict:
        d = dataclasses.asdict(self)
        for key in ('phase_offsets', 'delays', 'update_wall_ms', 'refresh_wall_ms'):
            values = d.pop(key)
            d[f'mean_{key}'] = float(np.mean(values)) if values else None
        return d


@dataclasses.dataclass
class StepObs:
    step: int
    now_ns: int
    image: np.ndarray | None
    image_stamp_ns: int
    proprio: np.ndarray


def _trajectory(points_t, q, start_s: float, limits):
    from piper_core.trajectory import parse_trajectory
    return parse_trajectory(JOINT_NAMES, [(float(t), qi, (), ()) for t, qi in zip(points_t, q)], start_s, limits)


class ExpertController:
    """The scripted IK expert, one plan per phase, re-planned after the phase ran and settled.

    With ``perturb_std`` > 0 it records DART-style demonstrations: each phase is *executed* with a smooth random
    joint offset (per free arm, joints 1-6, N(0, perturb_std^2) rad, a sine bump that is over before the
    arm's gripper closes: `_perturbation`), while the *recorded action* is the clean plan, streamed by a shadow streamer.
    The states then leave the expert's path and the labels steer back to it: the corrections a policy needs
    once its own errors push it off the demonstrations, which clean demonstrations never show. The next
    phase is re-planned from the perturbed scene, so grasp misses become expert retries. Noise is drawn from
    the episode seed (reproducible)."""

    def __init__(self, settle_s: float = 0.3, perturb_std: float = 0.0, perturb_prob: float = 1.0):
        if not (math.isfinite(perturb_std) and perturb_std >= 0):
            raise ValueError(f'perturb_std must be a finite number >= 0 (rad), got {perturb_std}')
        if not 0.0 <= perturb_prob <= 1.0:
            raise ValueError(f'perturb_prob must be in [0, 1], got {perturb_prob}')
        self.settle_s = settle_s
        self.perturb_std, self.perturb_prob = float(perturb_std), float(perturb_prob)
        self.labels: dict | None = None

    def reset(self, sim, task: str, seed: int) -> None:
        from piper_core.sim.expert import make_expert
        from piper_core.trajectory import ArmStreamer, Limits
        self.sim, self.limits = sim, Limits()
        self.expert = make_expert(task, old_firmware=sim.old_firmware)
        self.busy_until_ns = 0
        self.done = False
        self.rng = np.random.default_rng([int(seed), 0xDA27])
        self.labels = None
        if self.perturb_std > 0:
            self.labels = {arm: ArmStreamer(self.limits) for arm in ARMS}
            for arm in ARMS:
                self.labels[arm].set_measured(sim.joint_positions(arm))

    def _perturbation(self, plan) -> dict:
        """arm -> (N, 7) joint offsets for one phase's waypoints; the gripper itself is never perturbed.

        An arm that holds something at the phase start (gripper measured between closed and open: an object
        is in it) is left alone, or the object slips and the demonstration is lost. A free arm gets a sine
        bump that starts at zero and is back to zero at 70% of the time until its gripper starts to close
        (the whole phase if it never does): the grasp itself happens where the plan puts it."""
        times, g_open = plan.times, float(self.limits.upper[6])
        out = {}
        for arm in ARMS:
            g = plan.q[arm][:, 6]
            holding = 2e-3 < g[0] < g_open - 2e-3
            closing = np.flatnonzero(np.diff(g) < -1e-5)
            window = 0.7 * float(times[closing[0]] if closing.size else times[-1])
            shape = np.where(times < window, np.sin(np.pi * times / max(window, 1e-9)), 0.0)[:, None]
            delta = np.zeros(7)
            if not holding and window > 0.2 and self.rng.random() < self.perturb_prob:
                delta[:6] = self.rng.normal(0.0, self.perturb_std, 6)
            out[arm] = shape * delta
        return out

    def action_label(self, arm: str, now_s: float) -> np.ndarray | None:
        """The clean plan's command now (what a recorded episode stores as the action); None without noise."""
        return None if self.labels is None else self.labels[arm].step(now_s)

    def step(self, obs: StepObs, result: EpisodeResult) -> list:
        if self.done or obs.now_ns < self.busy_until_ns:
            return []
        plan = self.expert.next_plan(self.sim.scene_state())
        if plan is None:
            self.done = True
            return []
        start = obs.now_ns * 1e-9
        trajs = {}
        noise = self._perturbation(plan) if self.labels is not None else None
        for arm in ARMS:
            t, q = plan.arm_trajectory(arm)
            if noise is not None:
                self.labels[arm].submit(_trajectory(t, q, start, self.limits), start)
                q = np.clip(q + noise[arm][1:], self.limits.lower, self.limits.upper)
            trajs[arm] = _trajectory(t, q, start, self.limits)
        self.busy_until_ns = obs.now_ns + int((plan.duration + self.settle_s) * 1e9)
        result.updates += 1
        return [(obs.now_ns, trajs)]


class PolicyController:
    """Planner + executor runtimes on the simulated clock (see the module docstring)."""

    def __init__(self, policy, steps: int = 10, schedule: Schedule = Schedule(), task_ids: dict | None = None,
                 guard=None):
        from aha_wam.context.channel import ContextReader, ContextWriter
        from aha_wam.runtime.executor_runtime import ExecutorRuntime, Freshness
        from aha_wam.runtime.planner_runtime import PlannerRuntime
        from piper_core.trajectory import Limits
        self.policy, self.steps, self.schedule = policy, int(steps), schedule
        self.task_ids = task_ids
        self.period_ns = int(round(1e9 / schedule.control_hz))
        self.writer = ContextWriter(policy.planner.layout, transport='inline')
        self.reader = ContextReader(expected_layout=policy.planner.layout)
        self.planner = PlannerRuntime(policy, self.writer)
        from aha_wam.runtime.safety import ChunkGuard
        self._executor_cls, self._freshness = ExecutorRuntime, Freshness()
        self.guard = guard or ChunkGuard()      # the executor node's defaults (runtime/safety.py says why)
        self.limits = Limits()

    def close(self) -> None:
        self.reader.close()
        self.writer.close()

    def reset(self, sim, task: str, seed: int) -> None:
        tid = self.task_ids[task] if self.task_ids else task_id(task)
        self.planner.reset(task=tid)
        self.executor = self._executor_cls(self.policy, steps=self.steps, freshness=self._freshness, seed=seed,
                                           task=tid, guard=self.guard)
        self.pending_contexts: list = []
        self.context = None
        self.moving = False

    def _refresh(self, image, stamp_ns, ready_ns, result: EpisodeResult) -> None:
        t0 = time.perf_counter()
        descriptor = self.planner.refresh(image, stamp_ns)
        result.refresh_wall_ms.append((time.perf_counter() - t0) * 1e3)
        result.refreshes += 1
        self.pending_contexts.append((ready_ns, descriptor))

    def _deliver(self, now_ns: int) -> None:
        while self.pending_contexts and self.pending_contexts[0][0] <= now_ns:
            _, descriptor = self.pending_contexts.pop(0)
            got = self.reader.read(descriptor)
            if got:
                self.context = got

    def step(self, obs: StepObs, result: EpisodeResult) -> list:
        s = self.schedule
        if obs.image is None:
            return []
        plan_lat = int(round(s.planner_latency_ms * 1e6))
        if not s.synchronous and obs.step % s.planner_every == 0:
            self._refresh(obs.image, obs.image_stamp_ns, obs.now_ns + plan_lat, result)
        self._deliver(obs.now_ns)
        if obs.step % s.executor_every:
            return []
        start_ns = obs.now_ns
        if s.synchronous:
            # Planner then executor on the same image, one after the other.
            self._refresh(obs.image, obs.image_stamp_ns, obs.now_ns, result)
            self._deliver(obs.now_ns)
            start_ns += plan_lat
        context = self.context
        if context is not None and s.zero_offset:
            context = dataclasses.replace(context, stamp_ns=obs.image_stamp_ns)
        from aha_wam.runtime.executor_runtime import Observation
        observation = Observation(image=obs.image, image_stamp_ns=obs.image_stamp_ns, proprio=obs.proprio,
                                  joint_stamps_ns=(obs.now_ns, obs.now_ns))
        lat = s.executor_latency_ns(self.steps)
        fixed = int(round(s.executor_fixed_ms * 1e6))
        ticks = iter((start_ns, start_ns + fixed, start_ns + lat))
        t0 = time.perf_counter()
        update = self.executor.update(context, observation, now_ns=start_ns, clock_ns=lambda: next(ticks))
        result.update_wall_ms.append((time.perf_counter() - t0) * 1e3)
        result.updates += 1
        ready = start_ns + lat
        if update.handover is not None and not update.handover.empty:
            h = update.handover
            result.phase_offsets.append(update.phase_offset)
            result.delays.append(h.first)
            times = h.times_from_start()
            self.moving = True
            return [(ready, {arm: _trajectory(times, h.actions[:, 7 * i:7 * i + 7], h.start_ns * 1e-9, self.limits)
                             for i, arm in enumerate(ARMS)})]
        if update.holding:
            result.holds += 1
            if self.moving:           # as executor_node: one hold at the measured position, starting now
                self.moving = False
                from piper_core.trajectory import TrajectoryError
                holds = {}
                for i, arm in enumerate(ARMS):
                    try:
                        holds[arm] = _trajectory([0.0], obs.proprio[None, 7 * i:7 * i + 7], 0.0, self.limits)
                    except TrajectoryError:   # measured beyond a limit: the streamer node rejects it too
                        pass
                return [(ready, holds)] if holds else []
        else:
            result.late += 1
        return []


def run_episode(sim, controller, task: str, seed: int, schedule: Schedule = Schedule(), record: bool = False,
                post_success_s: float = 0.0, timeout_s: float | None = None):
    """One seeded episode. Returns EpisodeResult, or (EpisodeResult, Episode) with `record=True`."""
    from piper_core.trajectory import ArmStreamer
    wall0 = time.perf_counter()
    sim.reset(seed)
    controller.reset(sim, task, seed)
    result = EpisodeResult(task, int(seed), False, 0.0)
    tick_ns = int(round(schedule.tick_physics_steps * sim.physics_dt * 1e9))
    period_ns = int(round(1e9 / schedule.control_hz))
    if period_ns % tick_ns:
        raise ValueError(f'control period {period_ns} ns is not a multiple of the tick {tick_ns} ns')
    per_control = period_ns // tick_ns
    streamers = {arm: ArmStreamer() for arm in ARMS}
    for arm in ARMS:
        streamers[arm].set_measured(sim.joint_positions(arm))
    timeout = float(timeout_s if timeout_s is not None else sim.task.spec.episode_timeout)
    pending: list = []
    image, image_stamp = None, 0
    proprio_log, action_log, image_steps, images = [], [], [], []
    success_at = None
    # A perturbing expert labels each step with its clean plan, not the noisy command it executes.
    label = getattr(controller, 'action_label', None) if record else None
    tick = 0
    while True:
        now_ns = tick * tick_ns
        now_s = now_ns * 1e-9
        control = tick % per_control == 0
        if control:
            k = tick // per_control
            if k % 5 == 0 and success_at is None and sim.task_status().success:
                success_at = now_ns
            if success_at is not None and now_ns - success_at >= post_success_s * 1e9:
                break
            if now_s >= timeout:
                break
            if k % schedule.camera_every == 0:
                image, image_stamp = sim.render(), now_ns
                if record:
                    image_steps.append(k)
                    images.append(image)
            proprio = np.concatenate([sim.joint_positions(arm) for arm in ARMS])
            obs = StepObs(k, now_ns, image, image_stamp, proprio)
            pending += controller.step(obs, result)
            pending.sort(key=lambda x: x[0])
        while pending and pending[0][0] <= now_ns:
            _, trajs = pending.pop(0)
            for arm, traj in trajs.items():
                try:
                    streamers[arm].submit(traj, now_s)
                except ValueError:          # TrajectoryError: already over (as the streamer node rejects it)
                    pass
        commands = [streamers[arm].step(now_s) for arm in ARMS]
        for arm, cmd in zip(ARMS, commands):
            sim.command(arm, cmd, 100.0)
        if control and record:
            labels = [label(arm, now_s) for arm in ARMS] if label is not None else [None, None]
            proprio_log.append(proprio)
            action_log.append(np.concatenate([c if lab is None else lab for c, lab in zip(commands, labels)]))
        sim.step(schedule.tick_physics_steps)
        tick += 1
    status = sim.task_status()
    result.success = bool(status.success)
    result.stage = str(status.stage)
    result.sim_time = round(now_s, 3)
    result.wall_time = round(time.perf_counter() - wall0, 3)
    if not record:
        return result
    meta = {'task': task, 'task_id': task_id(task), 'seed': int(seed), 'level': sim.level,
            'success': result.success, 'instruction': sim.instruction(), 'control_hz': schedule.control_hz,
            'source': type(controller).__name__, 'perturb_std': getattr(controller, 'perturb_std', 0.0)}
    return result, Episode(np.stack(proprio_log), np.stack(action_log), np.array(image_steps), np.stack(images), meta)


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def evaluate(make_controller, tasks, seeds, schedule: Schedule = Schedule(), level: str = 'clean',
             image_size=(96, 96), log=None) -> dict:
    """N seeded episodes per task with one controller; success with a Wilson 95% interval per task."""
    from piper_core.sim.bimanual import BimanualPiperSim
    report = {}
    for task in tasks:
        sim = BimanualPiperSim(task, level, seed=int(seeds[0]), image_size=image_size)
        controller = make_controller()
        results = []
        try:
            for seed in seeds:
                torch.manual_seed(int(seed))
                r = run_episode(sim, controller, task, int(seed), schedule)
                results.append(r)
                if log is not None:
                    log(r)
        finally:
            if hasattr(controller, 'close'):
                controller.close()
            sim.close()
        ok = sum(r.success for r in results)
        lo, hi = wilson_interval(ok, len(results))
        wall = [x for r in results for x in r.update_wall_ms]
        sim_time = sum(r.sim_time for r in results)
        report[task] = {
            'episodes': len(results), 'successes': ok, 'rate': ok / max(1, len(results)), 'ci95': [lo, hi],
            'mean_episode_s': float(np.mean([r.sim_time for r in results])),
            'mean_success_episode_s': float(np.mean([r.sim_time for r in results if r.success])) if ok else None,
            'control_rate_hz': sum(r.updates for r in results) / max(sim_time, 1e-9),
            'update_wall_ms_p50': float(np.percentile(wall, 50)) if wall else None,
            'achievable_rate_hz': 1e3 / float(np.percentile(wall, 50)) if wall else None,
            'mean_phase_offset': float(np.mean([x for r in results for x in r.phase_offsets]))
            if any(r.phase_offsets for r in results) else None,
            'holds': sum(r.holds for r in results), 'late': sum(r.late for r in results),
            'failed_seeds': [r.seed for r in results if not r.success],
            'wall_s': float(sum(r.wall_time for r in results)),
        }
    return report
