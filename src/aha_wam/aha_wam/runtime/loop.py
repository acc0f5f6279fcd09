"""`ClosedLoop`: the deployed schedule driving an environment on a simulated clock.

    env = SimEnvironment('lift_box')
    agent = PolicyAgent(planner_session, executor_session, schedule)      # or ExpertAgent(...)
    result = ClosedLoop(env, agent, schedule, hooks=[Recorder()]).run_episode('lift_box', seed=0)

Time advances in physics steps (2 ms). On that clock, like the ROS graph does in wall time:

    camera          a frame every 1/camera_rate (the simulator node's camera timer)
    agent           PolicyAgent: the PlannerSession refreshes every 1/refresh_rate on the newest image; its context
                    reaches the ExecutorSession's queue when the prefill has finished (its measured or modelled
                    latency later, as over DDS); the ExecutorSession ticks every 1/control_rate, phase-locked
                    to a camera frame due within max_frame_wait, and its commands reach the streamers when the
                    update has finished. ExpertAgent: the scripted expert's plans.
    streamers       piper_core.trajectory.ArmStreamer per arm (the trajectory_streamer node's core) every
                    1/stream_rate -> MOVE J commands to the arms

The loop itself holds no policy logic: that is in the sessions, which the planner and executor nodes drive
too. Hooks observe (record an episode, collect metrics) and never change what happens.
"""
from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from piper_core.layout import ARMS, arm_slice
from piper_core.trajectory import ArmStreamer, Limits, Trajectory, TrajectoryError

from aha_wam.runtime.commands import ArmCommand
from aha_wam.runtime.executor_session import ExecutorSession, Observation, Update
from aha_wam.runtime.planner_session import PlannerSession
from aha_wam.runtime.schedule import LoopSchedule


@dataclasses.dataclass
class EpisodeResult:
    task: str
    seed: int
    success: bool = False
    sim_time: float = 0.0
    stage: str = ''
    updates: int = 0
    refreshes: int = 0
    holds: int = 0                 # updates that held (a blocking fault)
    late: int = 0                  # updates whose chunk came too late to send (LATE_CHUNK)
    overruns: int = 0              # updates longer than the control period (OVERRUN)
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
class LoopState:
    """What the environment shows the agent now (the newest of each stream, as a node's caches hold it)."""

    now_ns: int = 0
    image: np.ndarray | None = None
    image_stamp_ns: int = 0
    next_frame_ns: int = 0
    proprio: np.ndarray | None = None
    joint_stamps_ns: tuple = ()

    def observation(self) -> Observation:
        return Observation(image=self.image, image_stamp_ns=self.image_stamp_ns, proprio=self.proprio,
                           joint_stamps_ns=self.joint_stamps_ns if self.proprio is not None else ())


class Hook:
    """Observer of an episode; every method is optional."""

    def episode_start(self, loop: 'ClosedLoop', task: str, seed: int) -> None: ...
    def frame(self, now_ns: int, image: np.ndarray) -> None: ...
    def control_step(self, now_ns: int, proprio: np.ndarray, commands: np.ndarray) -> None: ...
    def update(self, now_ns: int, update: Update) -> None: ...
    def episode_end(self, result: EpisodeResult) -> None: ...


class _WallClock:
    """Sim time that advances with this machine's wall clock while a computation runs (measured latency)."""

    def __init__(self, sim_now_ns: int):
        self.sim_now_ns, self.wall0 = int(sim_now_ns), time.monotonic_ns()

    def __call__(self) -> int:
        return self.sim_now_ns + (time.monotonic_ns() - self.wall0)


class _ModelledClock:
    """Sim time of the executor's stages from fixed latencies: start, context read, then `fixed` after the
    start (OVCR + encode done), then `total` (denoising done) -- reproducible for a seed."""

    def __init__(self, start_ns: int, fixed_ns: int, total_ns: int):
        self._times = [start_ns, start_ns, start_ns + fixed_ns, start_ns + total_ns]
        self._i = 0

    def __call__(self) -> int:
        t = self._times[min(self._i, len(self._times) - 1)]
        self._i += 1
        return t


class PolicyAgent:
    """The planner and executor sessions on the loop's clock (see the module docstring)."""

    def __init__(self, planner: PlannerSession, executor: ExecutorSession, schedule: LoopSchedule):
        self.planner, self.executor, self.schedule = planner, executor, schedule
        self.period_ns = schedule.period_ns('control_rate')
        self.max_wait_ns = int(round(schedule.max_frame_wait * 1e9))

    def reset(self, env, task: str, task_id: int, seed: int) -> None:
        self.planner.reset(task=task_id)
        self.executor.reset(task=task_id, seed=seed, forget_context=True)   # new episode, its own contexts
        self._contexts: list[tuple[int, object]] = []     # (ready_ns, descriptor) in flight
        self._next_tick_ns = 0

    def _refresh(self, state: LoopState, now_ns: int, result: EpisodeResult) -> int:
        """Prefill on the newest image; the descriptor reaches the executor when the prefill is done."""
        t0 = time.perf_counter()
        descriptor = self.planner.refresh(state.image, state.image_stamp_ns, now_ns)
        wall_ms = (time.perf_counter() - t0) * 1e3
        result.refresh_wall_ms.append(wall_ms)
        result.refreshes += 1
        lat_ms = wall_ms if self.schedule.latency == 'measured' else self.schedule.planner_latency_ms
        ready = now_ns + int(round(lat_ms * 1e6))
        self._contexts.append((ready, descriptor))
        return ready

    def advance(self, state: LoopState, result: EpisodeResult, hooks) -> list:
        """Called every physics step; returns [(ready_ns, {arm: ArmCommand})] that became due."""
        now = state.now_ns
        if state.image is None:
            return []
        if not self.schedule.synchronous and self.planner.due(now) and self.planner.usable(state.image_stamp_ns, now):
            self._refresh(state, now, result)
        while self._contexts and self._contexts[0][0] <= now:
            self.executor.offer(self._contexts.pop(0)[1])
        if now < self._next_tick_ns:
            return []
        # Phase lock to the camera (executor node, max_frame_wait): a frame due within the wait is awaited.
        due_in = state.next_frame_ns - now
        if 0 < due_in <= self.max_wait_ns:
            return []
        self._next_tick_ns += self.period_ns
        if now - self._next_tick_ns > self.period_ns:      # more than a whole period behind: drop, never burst
            self._next_tick_ns = now + self.period_ns
        start = now
        if self.schedule.synchronous:   # planner then executor on the same image, one after the other
            ready = self._refresh(state, now, result)
            while self._contexts:
                self.executor.offer(self._contexts.pop(0)[1])
            start = ready
        steps = self.executor.options.steps
        if self.schedule.latency == 'measured':
            clock = _WallClock(start)
        else:
            clock = _ModelledClock(start, int(round(self.schedule.executor_fixed_ms * 1e6)),
                                   self.schedule.modelled_executor_ns(steps))
        wall0 = time.perf_counter()
        update = self.executor.step(state.observation(), now_ns=start, clock_ns=clock)
        if not update.coasting:         # as the executor node: a tick without inference is not an update's latency
            result.update_wall_ms.append((time.perf_counter() - wall0) * 1e3)
        result.updates += 1
        for hook in hooks:
            hook.update(now, update)
        if update.handover is not None:
            result.phase_offsets.append(update.phase_offset)
            result.delays.append(update.handover.first)
        if update.holding:
            result.holds += 1
        if 'LATE_CHUNK' in update.faults.names:
            result.late += 1
        if 'OVERRUN' in update.faults.names:
            result.overruns += 1
        if update.commands is None:
            return []
        ready = start + int(round(update.total_ms * 1e6)) if self.schedule.latency == 'measured' else clock()
        return [(max(ready, now), update.commands)]

    def close(self) -> None:
        self.executor.close()
        self.planner.close()


class ClosedLoop:
    """Drives one agent against one environment on the schedule; see the module docstring."""

    def __init__(self, env, agent, schedule: LoopSchedule, hooks=(), limits: Limits | None = None,
                 task_ids: dict | None = None):
        self.env, self.agent, self.schedule = env, agent, schedule
        self.hooks = list(hooks)
        self.limits = limits or Limits()
        self.task_ids = task_ids or {}
        self.dt_ns = int(round(env.physics_dt * 1e9))

    def _to_trajectory(self, command) -> Trajectory | None:
        if isinstance(command, Trajectory):
            return command
        try:
            return command.trajectory(self.limits)
        except TrajectoryError:     # the streamer node rejects it the same way (e.g. measured beyond a limit)
            return None

    def run_episode(self, task: str, seed: int, *, timeout_s: float | None = None, post_success_s: float = 0.0,
                    record_hz: float | None = None) -> EpisodeResult:
        """One seeded episode until success (+ post_success_s) or the task's timeout."""
        wall0 = time.perf_counter()
        env, s = self.env, self.schedule
        env.reset(int(seed))
        task_id = self.task_ids.get(task, 0) if self.task_ids else _default_task_id(task)
        self.agent.reset(env, task, task_id, int(seed))
        for hook in self.hooks:
            hook.episode_start(self, task, int(seed))
        result = EpisodeResult(task, int(seed))
        streamers = {arm: ArmStreamer(self.limits) for arm in ARMS}
        state = LoopState(proprio=env.proprio())
        for arm in ARMS:
            streamers[arm].set_measured(state.proprio[arm_slice(arm)])
        frame_ns, stream_ns = s.period_ns('camera_rate'), s.period_ns('stream_rate')
        record_ns = int(round(1e9 / record_hz)) if record_hz else 0
        timeout_ns = int(round((timeout_s if timeout_s is not None else env.episode_timeout) * 1e9))
        check_ns = 100_000_000          # task status 10x per second
        next_frame = next_stream = next_record = next_check = 0
        pending: list = []
        commands = np.concatenate([streamers[a].step(0.0) for a in ARMS])
        success_at = None
        recorded_frames = hasattr(env, 'frame_at')
        now = 0
        while True:
            state.now_ns = now
            if now >= next_check:
                next_check += check_ns
                if success_at is None and env.task_status().success:
                    success_at = now
                if success_at is not None and now - success_at >= post_success_s * 1e9:
                    break
            if now >= timeout_ns:
                break
            state.proprio = env.proprio()
            state.joint_stamps_ns = env.joint_stamps() if recorded_frames else (now,) * len(ARMS)
            if recorded_frames:                  # a recording: frames at their own stamps
                image, stamp, next_frame = env.frame_at(now)
                if stamp != state.image_stamp_ns or state.image is None:
                    state.image, state.image_stamp_ns = image, stamp
                    for hook in self.hooks:
                        hook.frame(now, image)
            elif now >= next_frame:              # a simulator: the camera's timer
                state.image, state.image_stamp_ns = env.render(), now
                next_frame += frame_ns
                for hook in self.hooks:
                    hook.frame(now, state.image)
            state.next_frame_ns = next_frame
            for ready, cmds in self.agent.advance(state, result, self.hooks):
                pending.append((ready, cmds))
            pending.sort(key=lambda x: x[0])
            while pending and pending[0][0] <= now:
                _, cmds = pending.pop(0)
                for arm, cmd in cmds.items():
                    traj = self._to_trajectory(cmd)
                    if traj is None:
                        continue
                    try:
                        streamers[arm].submit(traj, now * 1e-9)
                    except TrajectoryError:    # already over when it arrives: the streamer node rejects it too
                        pass
            if now >= next_stream:
                next_stream += stream_ns
                commands = np.concatenate([streamers[a].step(now * 1e-9) for a in ARMS])
                for arm in ARMS:
                    env.command(arm, commands[arm_slice(arm)])
            if record_ns and now >= next_record and now <= timeout_ns:
                next_record += record_ns
                for hook in self.hooks:
                    hook.control_step(now, state.proprio, commands)
            env.step(1)
            now += self.dt_ns
        status = env.task_status()
        result.success, result.stage = bool(status.success), str(status.stage)
        result.sim_time = round(now * 1e-9, 3)
        result.wall_time = round(time.perf_counter() - wall0, 3)
        for hook in self.hooks:
            hook.episode_end(result)
        return result


def _default_task_id(task: str) -> int:
    from aha_wam.data.episode import task_id
    return task_id(task)


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


__all__ = ['ArmCommand', 'ClosedLoop', 'EpisodeResult', 'Hook', 'LoopState', 'PolicyAgent', 'wilson_interval']
