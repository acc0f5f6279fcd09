"""The planner's schedule logic, ROS-free: `PlannerSession`.

Refresh cadence (`due`), the episode clock (which RoPE step an image is), the rolling K/V memory of the
episode, and the context channel writer. The planner node and the ClosedLoop both drive exactly this.

    session = PlannerSession(policy, writer, PlannerOptions(refresh_rate=2.0))
    if session.due(now_ns) and image is fresh:  descriptor = session.refresh(image, stamp_ns, now_ns)
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from aha_wam.context.channel import ContextWriter
from aha_wam.context.descriptor import ContextDescriptor
from aha_wam.models.memory import KVMemory
from aha_wam.runtime.views import model_view


@dataclasses.dataclass(frozen=True)
class PlannerOptions:
    """The planner node's behaviour, ROS-free."""

    refresh_rate: float = 2.0       # Hz: prefills per second
    task: int = 0                   # task id of the checkpoint's task table
    memory_size: int = -1           # past frames in the rolling memory; -1 = the checkpoint config (0 = ablation)
    max_image_age: float = 0.5      # s: an older newest image is not used for a refresh

    def __post_init__(self):
        if not 0.1 <= float(self.refresh_rate) <= 30.0:
            raise ValueError(f'refresh_rate={self.refresh_rate} Hz is outside 0.1..30')
        if not -1 <= int(self.memory_size) <= 16:
            raise ValueError(f'memory_size={self.memory_size} is outside 0..16 (-1 = checkpoint config)')
        if not self.max_image_age > 0:
            raise ValueError(f'max_image_age must be > 0 s, got {self.max_image_age}')

    @property
    def period_ns(self) -> int:
        return int(round(1e9 / self.refresh_rate))


class PlannerSession:
    """Owns the planner's episode state (memory, episode clock) and the writer of the context channel.

    The episode step of an image (its RoPE time after // video_stride) is counted from the first image of
    the episode at the control rate the policy was trained with, so refreshes at any cadence land on the
    physical time axis the model knows (notes/aha-wam.md §10, RoPE stride pitfall).
    """

    def __init__(self, policy, writer: ContextWriter, options: PlannerOptions = PlannerOptions(), *,
                 prefill_runner=None, contract=None):
        from aha_wam.interop.contract import piper_native_contract
        self.policy = policy
        self.contract = contract or piper_native_contract(policy.config)   # the cameras the model sees
        self.writer = writer
        self.options = options
        # The rolling memory is the session's: its capacity is an option (the no-memory ablation is
        # memory_size 0), never a change made to the checkpoint's model from outside.
        size = policy.config.memory.max_entries if options.memory_size < 0 else int(options.memory_size)
        self.memory = KVMemory(size)
        policy.planner.memory = self.memory
        # Optional faster prefill path with the policy's contract and its own rolling memory
        # (aha_wam.export.OnnxRuntimePrefill); None = the policy itself.
        self.prefill_runner = prefill_runner
        cfg = policy.config
        self.action_period_ns = int(round(1e9 / cfg.timing.control_hz))
        self.last_latency_ms = 0.0
        self.refreshes = 0
        self.skipped_stale = 0
        self.reset(options.task)

    def reset(self, task: int | None = None, not_before_ns: int | None = None) -> None:
        """New episode: clear the rolling memory; the next image becomes step 0. With `not_before_ns` (the
        episode's start on the images' clock) a frame captured before it -- the scene before a reset -- is never
        used: it would open the new episode's memory with the old episode's scene."""
        self.not_before_ns = not_before_ns
        if task is not None:     # a task id, or instruction tokens (checkpoints without a task table)
            self.task = int(task) if isinstance(task, (int, np.integer)) else task
        self.policy.reset(task=self.task)
        self.memory.reset()
        if self.prefill_runner is not None:
            self.prefill_runner.reset()
        self.episode_start_ns: int | None = None
        self._next_due_ns: int | None = None
        self._used_stamp = -1

    def due(self, now_ns: int) -> bool:
        """Whether a refresh is due at `now_ns` (a fixed grid from the first call; an overrun restarts the
        grid instead of bursting)."""
        if self._next_due_ns is None or now_ns - self._next_due_ns > self.options.period_ns:
            self._next_due_ns = now_ns
        return now_ns >= self._next_due_ns

    def step_of(self, stamp_ns: int) -> int:
        if self.episode_start_ns is None or stamp_ns < self.episode_start_ns:
            self.episode_start_ns = stamp_ns      # first image, or the clock jumped back (bag loop)
        return int(round((stamp_ns - self.episode_start_ns) / self.action_period_ns))

    def usable(self, stamp_ns: int, now_ns: int) -> bool:
        """A new image (not refreshed on before) that is fresh enough."""
        if stamp_ns == self._used_stamp or (self.not_before_ns is not None and stamp_ns < self.not_before_ns):
            return False
        if (now_ns - stamp_ns) * 1e-9 > self.options.max_image_age:
            self.skipped_stale += 1
            return False
        return True

    def refresh(self, image: np.ndarray, stamp_ns: int, now_ns: int | None = None,
                images: dict | None = None) -> ContextDescriptor:
        """Prefill on `image` (or the contract's composite of `images`, by view name) and publish the context;
        advances the cadence grid."""
        t0 = time.perf_counter()
        prefill = (self.prefill_runner or self.policy).prefill
        with torch.no_grad():
            context = prefill({'image': model_view(self.contract, image, images),
                               'step': self.step_of(stamp_ns), 'stamp_ns': int(stamp_ns)})
        descriptor = self.writer.publish(context)
        self.last_latency_ms = (time.perf_counter() - t0) * 1e3
        self.refreshes += 1
        self._used_stamp = int(stamp_ns)
        if now_ns is not None:
            if self._next_due_ns is None:
                self._next_due_ns = int(now_ns)
            self._next_due_ns += self.options.period_ns
        return descriptor

    def close(self) -> None:
        self.writer.close()
