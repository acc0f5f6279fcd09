"""The executor's whole schedule logic, ROS-free: `ExecutorSession`.

Per control tick the owner (the executor node, or the ClosedLoop) hands in the newest observation and the
time; the session

1. examines every context descriptor queued since the last tick (newest valid one wins, duplicates skipped,
   each rejection counted by reason) -- *delivery*;
2. checks that context, image and joint states are fresh -- *staleness*;
3. computes the phase offset, runs OVCR + denoising on its backend, guards the chunk against NaN and the
   joint limits, and hands over the part of the chunk still in the future -- *update*;
4. turns that into per-arm commands with one common start stamp, or, once per fault episode, a hold at the
   measured position -- *the hold state machine*.

Every fault flag has one meaning (runtime/faults.py). Nothing here knows about ROS or the simulator, so the
node and the ClosedLoop run exactly this code, and a number measured in evaluation is one about the
deployed loop. Ablations are options of the session, never edits of the model.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from aha_wam.context.channel import ContextReader
from aha_wam.context.inbox import ContextInbox
from aha_wam.context.layout import PlannerContext
from aha_wam.runtime.commands import ArmCommand, chunk_commands, hold_commands
from aha_wam.runtime.faults import BLOCKING, Fault
from aha_wam.runtime.handover import HandOver, hand_over
from aha_wam.runtime.safety import ChunkGuard
from aha_wam.runtime.views import ModelUnits, model_view


@dataclasses.dataclass(frozen=True)
class Freshness:
    """Maximum ages, s, beyond which an input is stale and the arms hold."""

    max_context_age: float = 1.0
    max_image_age: float = 0.5
    max_joint_state_age: float = 0.25

    def __post_init__(self):
        for name, value in dataclasses.asdict(self).items():
            if not value > 0:
                raise ValueError(f'{name} must be > 0 s, got {value}')


@dataclasses.dataclass(frozen=True)
class ExecutorOptions:
    """Everything that shapes the executor's behaviour (the executor node's parameters, ROS-free)."""

    steps: int = 10                      # Euler steps per chunk
    control_rate: float = 20.0           # Hz: updates per second (an update longer than 1/rate is an OVERRUN)
    seed: int = 0                        # seed of the denoising noise
    task: int = 0                        # task id of the checkpoint's task table
    freshness: Freshness = Freshness()
    limit_tolerance: float = 0.06        # rad (see ChunkGuard)
    gripper_limit_tolerance: float = 0.07  # m
    min_actions: int = 2                 # fewest still-future actions worth sending
    execute_actions: int = 0             # actions of a sent chunk (counted from its observation) executed before
                                         #   the next inference; 0 = a new chunk at every update
    queue_depth: int = 32                # descriptors kept between ticks (all examined)
    trusted_segments: tuple | None = None  # planner segment names whose contexts are trusted; None: any of this user
    accept_inline: bool = False          # inline contexts trust the whole DDS domain: opt-in (planner on another host)
    # ablations (aha-wam eval-sim --ablate): the trained weights stay as they are
    zero_offset: bool = False            # treat every context as taken with the newest image (phase offset 0)
    ovcr: bool = True                    # False: read the planner context unedited (no OVCR routing)

    def __post_init__(self):
        if not 1 <= int(self.steps) <= 64:
            raise ValueError(f'denoise steps must be in 1..64, got {self.steps}')
        if not 1.0 <= float(self.control_rate) <= 200.0:
            raise ValueError(f'control_rate={self.control_rate} Hz is outside 1..200')
        if not 0 <= int(self.execute_actions) <= 64:
            raise ValueError(f'execute_actions must be in 0..64, got {self.execute_actions}')
        if self.queue_depth < 1:
            raise ValueError(f'queue_depth must be >= 1, got {self.queue_depth}')
        if self.trusted_segments is not None:     # a tuple whatever came in (YAML and JSON give lists)
            object.__setattr__(self, 'trusted_segments', tuple(str(s) for s in self.trusted_segments))

    @property
    def period_ns(self) -> int:
        return int(round(1e9 / self.control_rate))


@dataclasses.dataclass
class Observation:
    image: np.ndarray | None             # [h, w, 3] uint8 RGB of the first (head / ego) camera, any size
    image_stamp_ns: int                  # capture time
    proprio: np.ndarray | None           # (14,) left j1..j6 rad, gripper m, then right
    joint_stamps_ns: tuple[int, ...]     # one stamp per arm (empty when an arm has no state yet)
    images: dict | None = None           # every camera view by name, when the contract composes several


@dataclasses.dataclass
class Update:
    """What one tick decided, with stage timings (ExecutorStatus carries all of it)."""

    faults: Fault = Fault.NONE
    detail: str = ''
    handover: HandOver | None = None     # set when a chunk may be executed
    chunk: np.ndarray | None = None      # the full predicted chunk [H, 14] (also when rejected), robot units
    commands: dict[str, ArmCommand] | None = None   # per-arm commands to send now (chunk or hold), or None
    kind: str = ''                       # 'chunk' | 'hold' | '' (nothing sent)
    coasting: bool = False               # no inference: the last chunk runs on (ExecutorOptions.execute_actions)
    phase_offset: int = 0                # control steps between the context's observation and this one
    context_age_ms: float = float('nan')
    context_version: int = 0
    context_session_id: int = 0
    read_ms: float = 0.0
    ovcr_ms: float = 0.0
    denoise_ms: float = 0.0
    total_ms: float = 0.0

    @property
    def holding(self) -> bool:
        return bool(self.faults & BLOCKING)


class ExecutorSession:
    """Context delivery + staleness + update + hold state machine; see the module docstring."""

    def __init__(self, policy, options: ExecutorOptions = ExecutorOptions(), *, backend=None,
                 reader: ContextReader | None = None, log=None, contract=None):
        from aha_wam.interop.contract import piper_native_contract
        self.policy = policy
        self.options = options
        # What the model sees and in which units (the checkpoint's embodiment contract; Piper-native: identity).
        self.contract = contract or piper_native_contract(policy.config)
        self.units = ModelUnits(self.contract)
        self.commanded: np.ndarray | None = None     # the last chunk sent (state source 'commanded')
        # prepare/denoise run on `backend` (aha_wam.export.make_backend: cudagraph, onnxruntime, tensorrt, ...)
        # with the policy's semantics; by default on the policy itself (eager torch).
        self.backend = policy if backend is None else backend
        if not options.ovcr and self.backend is not policy and getattr(self.backend, 'name', '') != 'torch':
            raise ValueError('the no-OVCR ablation (ovcr=False) runs on the eager torch backend only: the exported '
                             'graphs contain the OVCR router')
        self.guard = ChunkGuard(tolerance=options.limit_tolerance, gripper_tolerance=options.gripper_limit_tolerance)
        self.reader = reader or ContextReader(max_age_s=options.freshness.max_context_age,
                                              expected_layout=policy.planner.layout)
        cfg = policy.config
        self.action_period_ns = int(round(1e9 / cfg.timing.control_hz))   # the policy's action grid
        if options.execute_actions > cfg.executor.chunk_size:
            raise ValueError(f'execute_actions={options.execute_actions} is longer than the checkpoint\'s chunk of '
                             f'{cfg.executor.chunk_size} actions')
        # Every descriptor offered is examined at the next tick, newest valid wins (aha_wam.context.inbox).
        self.inbox = ContextInbox(self.reader, capacity=options.queue_depth, log=log)
        self.context: PlannerContext | None = None
        self.delivered: list = []
        self.reset(options.task, options.seed)

    # ------------------------------------------------------------------------------------------ episode
    def reset(self, task: int | None = None, seed: int | None = None, forget_context: bool = False,
              not_before_ns: int | None = None) -> None:
        """New episode: task, noise seed, no motion yet. `forget_context` drops the current context (a context
        from before the episode describes another scene). `not_before_ns`: images captured before it (the scene
        before a reset) count as no image."""
        if forget_context:
            self.context = None
        self.not_before_ns = not_before_ns
        if task is not None:     # a task id, or instruction tokens (checkpoints without a task table)
            self.task = int(task) if isinstance(task, (int, np.integer)) else task
        self.policy.set_task(self.task)
        self.generator = torch.Generator().manual_seed(int(self.options.seed if seed is None else seed))
        self.moving = False             # a chunk was sent since the last hold
        self.chunks = 0
        self.commanded = None

    # ------------------------------------------------------------------------------------------ delivery
    def offer(self, descriptor) -> None:
        """Queue a context descriptor, or a Rejection for a message that did not decode (any thread may call;
        examined at the next tick)."""
        self.inbox.put(descriptor)

    def _deliver(self) -> tuple[Fault, str]:
        """Examine every queued descriptor, newest first; the newest valid one becomes the context."""
        got = self.inbox.take()
        self.delivered = list(got.items)            # what this tick examined, in arrival order (traces)
        if got.new:      # only a newly accepted context replaces ours: a reset (new episode) stays cleared
            self.context = got.context
        if got.rejections:                          # informational: the newest valid context is still used
            return Fault.CONTEXT_REJECTED, str(got.last_rejection)
        return Fault.NONE, ''

    # ------------------------------------------------------------------------------------------ checks
    def check_inputs(self, context: PlannerContext | None, obs: Observation | None, now_ns: int) -> tuple[Fault, str]:
        """Freshness of everything the update needs; returns the blocking faults and why."""
        fault, why = Fault.NONE, []
        f = self.options.freshness
        if context is None:
            fault |= Fault.NO_CONTEXT
            why.append('no planner context yet')
        elif (now_ns - context.stamp_ns) * 1e-9 > f.max_context_age:
            fault |= Fault.STALE_CONTEXT
            why.append(f'context {(now_ns - context.stamp_ns) * 1e-6:.0f} ms old > {f.max_context_age * 1e3:.0f} ms')
        if obs is None or obs.image is None:
            fault |= Fault.STALE_IMAGE
            why.append('no image yet')
        elif self.not_before_ns is not None and obs.image_stamp_ns < self.not_before_ns:
            fault |= Fault.STALE_IMAGE
            why.append('no image of this episode yet')
        elif (now_ns - obs.image_stamp_ns) * 1e-9 > f.max_image_age:
            fault |= Fault.STALE_IMAGE
            why.append(f'image {(now_ns - obs.image_stamp_ns) * 1e-6:.0f} ms old > {f.max_image_age * 1e3:.0f} ms')
        oldest = min(obs.joint_stamps_ns) if (obs is not None and obs.joint_stamps_ns) else None
        if obs is None or obs.proprio is None or oldest is None:
            fault |= Fault.STALE_JOINTS
            why.append('joint states missing')
        elif (now_ns - oldest) * 1e-9 > f.max_joint_state_age:
            fault |= Fault.STALE_JOINTS
            why.append(f'joint states {(now_ns - oldest) * 1e-6:.0f} ms old > {f.max_joint_state_age * 1e3:.0f} ms')
        return fault, '; '.join(why)

    # ------------------------------------------------------------------------------------------ the tick
    def step(self, obs: Observation | None, now_ns: int | None = None, clock_ns=time.monotonic_ns) -> Update:
        """One control tick. `now_ns` is the time on the inputs' clock (ROS time / sim time); `clock_ns`
        times the stages and places the hand-over (the ClosedLoop passes a clock that runs on sim time)."""
        t_start = clock_ns()
        now_ns = t_start if now_ns is None else int(now_ns)
        read_fault, read_detail = self._deliver()
        t_read = clock_ns()
        out = self._update(self.context, obs, now_ns, clock_ns, t_read)
        out.read_ms = (t_read - t_start) * 1e-6
        out.faults |= read_fault
        if read_detail:
            out.detail = '; '.join(filter(None, [out.detail, read_detail]))
        if out.handover is not None and not out.handover.empty:
            out.commands, out.kind = chunk_commands(out.handover), 'chunk'
            self.commanded = out.handover
            self.moving = True
            self.chunks += 1
        elif out.holding and self.moving and obs is not None and obs.proprio is not None:
            out.commands, out.kind = hold_commands(obs.proprio), 'hold'   # once per fault episode
            self.moving = False
        out.total_ms = (clock_ns() - t_start) * 1e-6
        if out.total_ms * 1e6 > self.options.period_ns:
            out.faults |= Fault.OVERRUN
        return out

    def _update(self, context: PlannerContext | None, obs: Observation | None, now_ns: int, clock_ns,
                t0: int) -> Update:
        fault, detail = self.check_inputs(context, obs, now_ns)
        out = Update(faults=fault, detail=detail)
        if context is not None:
            out.context_version, out.context_session_id = context.version, context.session_id
            out.context_age_ms = (now_ns - context.stamp_ns) * 1e-6
        if fault & BLOCKING:
            return out
        if self._coasting(now_ns):
            out.coasting = True
            return out
        # Phase offset: control steps between the planner's observation and ours (>= 0); the executor was
        # trained on such offsets (horizon-adaptive) and the policy maps it to chunk index + phase.
        if self.options.zero_offset:
            out.phase_offset = 0
        else:
            out.phase_offset = max(0, int(round((obs.image_stamp_ns - context.stamp_ns) / self.action_period_ns)))
        try:
            with torch.no_grad():
                image = model_view(self.contract, obs.image, obs.images)
                state = self.units.to_model(self._state(obs, now_ns))
                if self.options.ovcr:
                    prepared = self.backend.prepare(context, image, state, out.phase_offset)
                else:
                    prepared = self.policy.prepare(context, image, state, out.phase_offset, route=False)
                t1 = clock_ns()
                # the checkpoint's noise layout ('horizon': the official per-chunk rows; 'chunk': legacy)
                noise = self.policy.chunk_noise(out.phase_offset, generator=self.generator)
                x = self.backend.denoise(prepared, noise, self.options.steps)
                chunk = self.policy.normalizer.unnormalize_action(x.float())[0].cpu().numpy().astype(np.float64)
                chunk = self.units.to_robot(chunk)
        except Exception as exc:   # never let one bad input kill the control loop: hold and report
            out.faults |= Fault.INFERENCE_ERROR
            out.detail = f'inference failed: {type(exc).__name__}: {exc}'
            return out
        t2 = clock_ns()
        out.ovcr_ms, out.denoise_ms = (t1 - t0) * 1e-6, (t2 - t1) * 1e-6
        out.chunk = chunk
        verdict = self.guard.check(chunk)
        if not verdict.ok:
            out.faults |= Fault.NONFINITE_ACTION if verdict.nonfinite else Fault.JOINT_LIMIT
            out.detail = f'chunk discarded: {verdict.detail}'
            return out
        # The chunk's first action belongs to the observation time; hand over from the action due now.
        elapsed = t2 - t0
        handover = hand_over(self.guard.clamp(chunk), obs.image_stamp_ns, now_ns + elapsed, self.action_period_ns)
        if handover.actions.shape[0] < self.options.min_actions:
            # Too late to be useful (a trajectory whose end is already due is rejected downstream): keep
            # executing the previous chunk and report it instead of sending this one.
            out.faults |= Fault.LATE_CHUNK
            out.detail = (f'chunk late: {handover.first} of {chunk.shape[0]} actions already due '
                          f'(observation {(now_ns + elapsed - obs.image_stamp_ns) * 1e-6:.0f} ms old)')
            return out
        out.handover = handover
        return out

    def _coasting(self, now_ns: int) -> bool:
        """Whether the chunk last sent has executed fewer than `execute_actions` actions since its observation
        (its first `first` actions were already due when it was sent), so it runs on without a new inference."""
        h = self.commanded
        if not self.options.execute_actions or h is None or not self.moving:
            return False
        observed_ns = h.start_ns - h.first * h.period_ns
        return now_ns - observed_ns < self.options.execute_actions * h.period_ns

    def _state(self, obs: Observation, now_ns: int) -> np.ndarray:
        """The chunk-start state the model was trained on: the measured joints, or (state source 'commanded',
        the official RoboTwin checkpoints) the action the last sent chunk commands now."""
        h = self.commanded
        if self.contract.state_source != 'commanded' or h is None:
            return obs.proprio
        i = int(np.clip(round((now_ns - h.start_ns) / h.period_ns), 0, h.actions.shape[0] - 1))
        return h.actions[i]

    def close(self) -> None:
        self.reader.close()
