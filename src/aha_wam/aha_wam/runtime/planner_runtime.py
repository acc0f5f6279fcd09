"""One planner refresh, ROS-free: image -> prefill (rolling memory) -> context channel -> descriptor."""
from __future__ import annotations

import time

import numpy as np
import torch

from aha_wam.context.channel import ContextWriter
from aha_wam.context.descriptor import ContextDescriptor
from aha_wam.preprocess import model_image


class PlannerRuntime:
    """Owns the policy's planner state for one episode and the writer of the context channel.

    `task` is the task id of the policy's learned task table (the checkpoint's task list maps names to ids).

    The episode step of an image (its RoPE time after // video_stride) is counted from the first image of
    the episode at the control rate the policy was trained with, so refreshes at any cadence land on the
    physical time axis the model knows (notes/aha-wam.md §10, RoPE stride pitfall).
    """

    def __init__(self, policy, writer: ContextWriter, task: int = 0, prefill_runner=None):
        self.policy = policy
        self.writer = writer
        # Optional faster prefill path with the policy's contract and its own rolling memory
        # (aha_wam.export.OnnxRuntimePrefill); None = the policy itself.
        self.prefill_runner = prefill_runner
        self.task = task
        cfg = policy.config
        self.period_ns = int(round(1e9 / cfg.timing.control_hz))
        self.image_hw = (cfg.encoder.image_height, cfg.encoder.image_width)
        self.episode_start_ns: int | None = None
        self.last_latency_ms = 0.0
        self.refreshes = 0
        self.reset()

    def reset(self, task: int | None = None) -> None:
        """New episode: clear the rolling memory; the next image becomes step 0."""
        if task is not None:
            self.task = task
        self.policy.reset(task=self.task)
        if self.prefill_runner is not None:
            self.prefill_runner.reset()
        self.episode_start_ns = None

    def step_of(self, stamp_ns: int) -> int:
        if self.episode_start_ns is None or stamp_ns < self.episode_start_ns:
            self.episode_start_ns = stamp_ns      # first image, or the clock jumped back (bag loop)
        return int(round((stamp_ns - self.episode_start_ns) / self.period_ns))

    def refresh(self, image: np.ndarray, stamp_ns: int) -> ContextDescriptor:
        t0 = time.perf_counter()
        prefill = (self.prefill_runner or self.policy).prefill
        with torch.no_grad():
            context = prefill({'image': model_image(image, *self.image_hw),
                               'step': self.step_of(stamp_ns), 'stamp_ns': int(stamp_ns)})
        descriptor = self.writer.publish(context)
        self.last_latency_ms = (time.perf_counter() - t0) * 1e3
        self.refreshes += 1
        return descriptor
