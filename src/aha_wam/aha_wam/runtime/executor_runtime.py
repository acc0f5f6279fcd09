"""One executor update, ROS-free: freshness checks -> phase offset -> OVCR + denoise -> guard -> hand-over.

The executor node only gathers the inputs (latest context, image, joint states, clock) and publishes what
`ExecutorRuntime.update` returns, so every decision below is unit-testable without a ROS graph.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from aha_wam.context.layout import PlannerContext
from aha_wam.preprocess import model_image
from aha_wam.runtime.faults import BLOCKING, Fault
from aha_wam.runtime.handover import HandOver, hand_over
from aha_wam.runtime.safety import ChunkGuard


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


@dataclasses.dataclass
class Observation:
    image: np.ndarray                    # [h, w, 3] uint8 RGB, any size (resized by model_image)
    image_stamp_ns: int                  # capture time
    proprio: np.ndarray                  # (14,) left j1..j6 rad, gripper m, then right
    joint_stamps_ns: tuple[int, ...]     # one stamp per arm


@dataclasses.dataclass
class Update:
    faults: Fault = Fault.NONE
    detail: str = ''
    handover: HandOver | None = None     # set when a chunk may be executed
    chunk: np.ndarray | None = None      # the full predicted chunk [H, 14] (also when rejected), robot units
    phase_offset: int = 0                # control steps between the context's observation and this one
    context_age_ms: float = float('nan')
    context_version: int = 0
    context_session_id: int = 0
    ovcr_ms: float = 0.0
    denoise_ms: float = 0.0

    @property
    def holding(self) -> bool:
        return bool(self.faults & BLOCKING)


class ExecutorRuntime:
    """Turns (context, observation, now) into an executable chunk or a fault, with stage timings."""

    def __init__(self, policy, *, steps: int, freshness: Freshness = Freshness(),
                 guard: ChunkGuard | None = None, seed: int = 0, task: int = 0, min_actions: int = 2,
                 backend=None):
        if steps < 1:
            raise ValueError(f'denoise steps must be >= 1, got {steps}')
        self.policy = policy
        # prepare/denoise run on `backend` (aha_wam.export.make_backend: cudagraph, onnxruntime, tensorrt, ...)
        # with the policy's semantics; by default on the policy itself (eager torch).
        self.backend = policy if backend is None else backend
        self.steps = int(steps)
        self.min_actions = int(min_actions)    # fewest still-future actions worth sending
        self.freshness = freshness
        self.guard = guard or ChunkGuard()
        cfg = policy.config
        self.period_ns = int(round(1e9 / cfg.timing.control_hz))
        self.chunk_size = cfg.executor.chunk_size
        self.image_hw = (cfg.encoder.image_height, cfg.encoder.image_width)
        self.generator = torch.Generator().manual_seed(seed)
        self.set_task(task)

    def set_task(self, task: int) -> None:
        """Task id of the policy's task table; the executor conditions on it like the planner."""
        self.policy.set_task(int(task))

    def check_inputs(self, context: PlannerContext | None, obs: Observation | None, now_ns: int) -> tuple[Fault, str]:
        """Freshness of everything the update needs; returns the blocking faults and why."""
        fault, why = Fault.NONE, []
        f = self.freshness
        if context is None:
            fault |= Fault.NO_CONTEXT
            why.append('no planner context yet')
        elif (now_ns - context.stamp_ns) * 1e-9 > f.max_context_age:
            fault |= Fault.STALE_CONTEXT
            why.append(f'context {(now_ns - context.stamp_ns) * 1e-6:.0f} ms old > {f.max_context_age * 1e3:.0f} ms')
        if obs is None or obs.image is None:
            fault |= Fault.STALE_IMAGE
            why.append('no image yet')
        else:
            if (now_ns - obs.image_stamp_ns) * 1e-9 > f.max_image_age:
                fault |= Fault.STALE_IMAGE
                why.append(f'image {(now_ns - obs.image_stamp_ns) * 1e-6:.0f} ms old > {f.max_image_age * 1e3:.0f} ms')
            oldest = min(obs.joint_stamps_ns) if obs.joint_stamps_ns else None
            if obs.proprio is None or oldest is None or (now_ns - oldest) * 1e-9 > f.max_joint_state_age:
                fault |= Fault.STALE_JOINTS
                why.append('joint states missing' if oldest is None else
                           f'joint states {(now_ns - oldest) * 1e-6:.0f} ms old > {f.max_joint_state_age * 1e3:.0f} ms')
        return fault, '; '.join(why)

    def update(self, context: PlannerContext | None, obs: Observation | None, now_ns: int | None = None,
               clock_ns=time.monotonic_ns) -> Update:
        """One update. `now_ns` is the time on the inputs' clock (ROS time); `clock_ns` times the stages and
        gives the hand-over time if `now_ns` is None."""
        now_ns = clock_ns() if now_ns is None else now_ns
        fault, detail = self.check_inputs(context, obs, now_ns)
        out = Update(faults=fault, detail=detail)
        if context is not None:
            out.context_version, out.context_session_id = context.version, context.session_id
            out.context_age_ms = (now_ns - context.stamp_ns) * 1e-6
        if fault & BLOCKING:
            return out
        # Phase offset: control steps between the planner's observation and ours (>= 0); the executor was
        # trained on such offsets (horizon-adaptive) and the policy maps it to chunk index + phase.
        out.phase_offset = max(0, int(round((obs.image_stamp_ns - context.stamp_ns) / self.period_ns)))
        t0 = clock_ns()
        try:
            with torch.no_grad():
                image = model_image(obs.image, *self.image_hw)
                prepared = self.backend.prepare(context, image, obs.proprio, out.phase_offset)
                t1 = clock_ns()
                noise = torch.randn(1, self.chunk_size, self.policy.config.executor.action_dim,
                                    generator=self.generator).to(self.policy.device)
                x = self.backend.denoise(prepared, noise.to(self.policy.executor.action_in.weight.dtype), self.steps)
                chunk = self.policy.normalizer.unnormalize_action(x.float())[0].cpu().numpy().astype(np.float64)
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
        handover = hand_over(self.guard.clamp(chunk), obs.image_stamp_ns, now_ns + elapsed, self.period_ns)
        if handover.actions.shape[0] < self.min_actions:
            # Too late to be useful (a trajectory whose end is already due is rejected downstream): keep
            # executing the previous chunk and report the overrun instead of sending it.
            out.faults |= Fault.OVERRUN
            out.detail = (f'chunk late: {handover.first} of {chunk.shape[0]} actions already due '
                          f'(observation {(now_ns + elapsed - obs.image_stamp_ns) * 1e-6:.0f} ms old)')
            return out
        out.handover = handover
        return out
