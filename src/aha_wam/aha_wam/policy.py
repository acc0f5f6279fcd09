"""AhaWamPolicy: the whole model (image encoder, video planner, action executor + OVCR, normaliser) with a
LeRobot-style training interface and the deployment interface used by the planner/executor nodes.

Deployment (batch 1, inside `torch.no_grad()` or under `act`):

    policy.reset(task=3)                                   # new episode: clear memory, set the task
    ctx = policy.prefill({'image': rgb_uint8_hwc, 'step': 128, 'stamp_ns': t})   # -> PlannerContext
    chunk = policy.act(ctx, rgb_uint8_hwc, proprio_14, offset=steps_since_ctx, steps=10)   # [16, 14] rad / m
    # or, split for export / CUDA graphs:
    prepared = policy.prepare(ctx, image, proprio, offset)   # once per update: encoder, OVCR, context K/V
    x = policy.denoise(prepared, noise, steps)               # pure tensors, static shapes: 16 tokens per step

Training: `loss, metrics = policy(batch)` with the batch contract below (raw units; the policy normalises
with its `normalizer` and encodes images with its (frozen by default) encoder).

Batch contract (B samples, K = timing.horizon_chunks, c = executor.chunk_size, A = 14, F =
timing.future_latent_frames, M <= memory.max_entries past frames, H x W = encoder image size):

    video_frames   uint8 [B, 1+F, H, W, 3]  frame 0 = current frame at control step `step`, frame j at
                                             step + j * video_stride * latent_stride (frames past the episode
                                             end: repeat the last frame)
      or video_latents float [B, 1+F, C, h, w]  (precomputed by the same encoder)
    step           long  [B]                 episode control step of frame 0; RoPE time = step // video_stride
    actions        float [B, K*c, A]         raw targets for steps step+offset .. step+offset+K*c-1
                                             (offset in [0, timing.max_offset], horizon-adaptive)
    action_mask    bool  [B, K*c]            optional, False = padding past the episode end
    chunk_proprio  float [B, K, A]           raw state at each chunk start step+offset+k*c
    chunk_images   uint8 [B, K, H, W, 3]     image at each chunk start (OVCR routing queries)
      or chunk_latents float [B, K, C, h, w]
    task           long  [B]                 task ids (learned table), or
      task_tokens  float [B, Nt, text_dim]   precomputed instruction embeddings (zero-padded to task.text_tokens)
    history_frames uint8 [B, M, H, W, 3]     optional past frames, oldest first, left-padded
      or history_latents float [B, M, C, h, w]
    history_steps  long  [B, M]              their control steps (absolute RoPE time)
    history_mask   bool  [B, M]              True = real frame

Action RoPE positions are k*c + i whatever the offset: the executor must infer the phase from the routed
observation and the proprio token (AHA-WAM's horizon-adaptive offsets).
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
import torch.nn as nn

from aha_wam.config import AhaWamConfig
from aha_wam.context.layout import PlannerContext
from aha_wam.models.executor import ActionExecutor, PreparedChunk
from aha_wam.models.flow import FlowMatchSchedule
from aha_wam.models.planner import VideoPlanner
from aha_wam.models.task import TaskEmbedding
from aha_wam.models.vae import build_image_encoder
from aha_wam.normalize import Normalizer


def _as_tensor(value: Any, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    raise ValueError(f'{name} must be a torch.Tensor or numpy array, got {type(value).__name__}')


def _expect(batch: Mapping[str, Any], key: str, shape: tuple, dtype_kind: str | None = None) -> torch.Tensor:
    """batch[key] with the given shape (None = any size); raises ValueError naming key, expected and got."""
    if key not in batch:
        raise ValueError(f'batch is missing {key!r} (expected shape {_fmt(shape)})')
    x = _as_tensor(batch[key], key)
    if x.dim() != len(shape) or any(s is not None and s != g for s, g in zip(shape, x.shape)):
        raise ValueError(f'batch[{key!r}] has shape {tuple(x.shape)}, expected {_fmt(shape)}')
    if dtype_kind == 'uint8' and x.dtype != torch.uint8:
        raise ValueError(f'batch[{key!r}] must be uint8 images, got {x.dtype}')
    if dtype_kind == 'int' and x.dtype not in (torch.int32, torch.int64):
        raise ValueError(f'batch[{key!r}] must be an integer tensor, got {x.dtype}')
    if dtype_kind == 'bool' and x.dtype != torch.bool:
        raise ValueError(f'batch[{key!r}] must be bool, got {x.dtype}')
    if dtype_kind == 'float' and not x.is_floating_point():
        raise ValueError(f'batch[{key!r}] must be floating point, got {x.dtype}')
    return x


def _fmt(shape: tuple) -> str:
    return '[' + ', '.join('*' if s is None else str(s) for s in shape) + ']'


class AhaWamPolicy(nn.Module):
    def __init__(self, config: AhaWamConfig):
        super().__init__()
        self.config = config
        self.encoder = build_image_encoder(config.encoder)
        self.planner = VideoPlanner(config)
        self.executor = ActionExecutor(config)
        self.normalizer = Normalizer.from_config(config.executor.action_dim, config.normalize)
        self.task_table = (TaskEmbedding(config.task.num_tasks, config.task.text_tokens, config.task.text_dim)
                           if config.task.num_tasks > 0 else None)
        self.schedule = FlowMatchSchedule.from_config(config.flow)
        self._task_tokens: torch.Tensor | None = None
        self._sigmas: dict[tuple[int, torch.device], torch.Tensor] = {}
        if not config.encoder.trainable_with_policy:
            self.encoder.requires_grad_(False)

    @property
    def device(self) -> torch.device:
        return self.planner.patch_embed.weight.device

    # ------------------------------------------------------------------------------------------- training
    def _latents(self, batch, image_key: str, latent_key: str, lead: tuple) -> torch.Tensor:
        c, h, w = self.encoder.latent_shape
        if latent_key in batch:
            return _expect(batch, latent_key, (*lead, c, h, w), 'float').to(self.device)
        enc = self.config.encoder
        images = _expect(batch, image_key, (*lead, enc.image_height, enc.image_width, 3), 'uint8').to(self.device)
        if enc.trainable_with_policy and self.training:
            return self.encoder.encode(images)
        with torch.no_grad():
            return self.encoder.encode(images)

    def _batch_task_tokens(self, batch, b: int) -> torch.Tensor:
        t = self.config.task
        if 'task_tokens' in batch:
            return _expect(batch, 'task_tokens', (b, t.text_tokens, t.text_dim), 'float').to(self.device)
        if self.task_table is None:
            raise ValueError("batch needs 'task_tokens' (this config has no task table: task.num_tasks = 0)")
        return self.task_table(_expect(batch, 'task', (b,), 'int').to(self.device))

    def prepare_batch(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """Validate the batch contract, encode images, normalise state/action. Returns model-space tensors."""
        cfg = self.config
        k, c, a = cfg.timing.horizon_chunks, cfg.executor.chunk_size, cfg.executor.action_dim
        frames = 1 + cfg.timing.future_latent_frames
        step = _expect(batch, 'step', (None,), 'int').to(self.device)
        b = step.shape[0]
        out: dict[str, torch.Tensor] = {}
        out['video_latents'] = self._latents(batch, 'video_frames', 'video_latents', (b, frames))
        base = torch.div(step, cfg.timing.video_stride, rounding_mode='floor')
        out['frame_times'] = base[:, None] + torch.arange(frames, device=self.device) * cfg.timing.latent_stride
        out['task_tokens'] = self._batch_task_tokens(batch, b)
        actions = _expect(batch, 'actions', (b, k * c, a), 'float').to(self.device)
        out['actions'] = self.normalizer.normalize_action(actions.float()).reshape(b, k, c, a)
        if 'action_mask' in batch:
            mask = _expect(batch, 'action_mask', (b, k * c), 'bool').to(self.device)
        else:
            mask = torch.ones(b, k * c, dtype=torch.bool, device=self.device)
        out['action_mask'] = mask.reshape(b, k, c)
        proprio = _expect(batch, 'chunk_proprio', (b, k, a), 'float').to(self.device)
        out['chunk_proprio'] = self.normalizer.normalize_state(proprio.float())
        out['chunk_latents'] = self._latents(batch, 'chunk_images', 'chunk_latents', (b, k))
        has_history = any(key in batch for key in ('history_frames', 'history_latents'))
        if has_history:
            hist_steps = _expect(batch, 'history_steps', (b, None), 'int').to(self.device)
            m = hist_steps.shape[1]
            if m > cfg.memory.max_entries:
                raise ValueError(f'{m} history frames exceed memory.max_entries={cfg.memory.max_entries}')
            if m > 0:
                out['history_latents'] = self._latents(batch, 'history_frames', 'history_latents', (b, m))
                out['history_times'] = torch.div(hist_steps, cfg.timing.video_stride, rounding_mode='floor')
                out['history_mask'] = _expect(batch, 'history_mask', (b, m), 'bool').to(self.device)
        return out

    def velocity_outputs(self, inputs: Mapping[str, torch.Tensor], video_sigma: torch.Tensor,
                         video_noise: torch.Tensor, action_sigma: torch.Tensor, action_noise: torch.Tensor
                         ) -> dict[str, torch.Tensor]:
        """Deterministic core of the training forward.

        video_sigma [B], video_noise [B, F, C, h, w] (future frames); action_sigma [B, K] (one per chunk),
        action_noise [B, K, c, A]. Returns video_velocity [B, F, C, h, w] (future frames), video_noisy,
        action_velocity [B, K, c, A], action_noisy, context_kv [B, L, 2, T, H*D] (frame 0, pre-OVCR).
        """
        video = inputs['video_latents']
        b, frames = video.shape[:2]
        s_v = video_sigma.view(b, 1, 1, 1, 1)
        future = FlowMatchSchedule.noisy(video[:, 1:], video_noise, s_v)
        latents = torch.cat([video[:, :1], future], dim=1)                 # frame 0 stays clean (sigma 0)
        sigmas = torch.cat([torch.zeros(b, 1, device=video.device), video_sigma.view(b, 1).expand(b, frames - 1)], 1)
        memory_kv = memory_valid = None
        if 'history_latents' in inputs:
            memory_kv, memory_valid = self.planner.history_kv(inputs['history_latents'], inputs['history_times'],
                                                              inputs['history_mask'], inputs['task_tokens'])
        video_v, context_kv = self.planner(latents, sigmas, inputs['frame_times'], inputs['task_tokens'],
                                           memory_kv=memory_kv, memory_valid=memory_valid, kv_frames=1)
        actions = inputs['actions']
        _, k, c, a = actions.shape
        noisy = FlowMatchSchedule.noisy(actions, action_noise, action_sigma.view(b, k, 1, 1))
        # Chunks are independent sequences (chunk-local attention): fold them into the batch.
        prepared = self.executor.prepare(
            context_kv.unsqueeze(1).expand(b, k, *context_kv.shape[1:]).reshape(b * k, *context_kv.shape[1:]),
            inputs['chunk_latents'].reshape(b * k, *inputs['chunk_latents'].shape[2:]),
            inputs['chunk_proprio'].reshape(b * k, a),
            inputs['task_tokens'].unsqueeze(1).expand(b, k, *inputs['task_tokens'].shape[1:]).reshape(
                b * k, *inputs['task_tokens'].shape[1:]),
            torch.arange(k, device=actions.device).repeat(b))
        action_v = self.executor.velocity(noisy.reshape(b * k, c, a), action_sigma.reshape(b * k), prepared)
        return {'video_velocity': video_v[:, 1:], 'video_noisy': future, 'action_velocity': action_v.view(b, k, c, a),
                'action_noisy': noisy, 'context_kv': context_kv}

    def forward(self, batch: Mapping[str, Any], generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, dict[str, float]]:
        """loss = lambda_action * L_action + lambda_video * L_video (flow matching, weighted per noise level)."""
        inputs = self.prepare_batch(batch)
        video, actions = inputs['video_latents'], inputs['actions']
        b, k = actions.shape[:2]
        dev = video.device
        video_sigma, video_w = self.schedule.sample((b,), generator, dev)
        action_sigma, action_w = self.schedule.sample((b, k), generator, dev)
        video_noise = torch.randn(video[:, 1:].shape, generator=generator).to(dev, video.dtype)
        action_noise = torch.randn(actions.shape, generator=generator).to(dev, actions.dtype)
        out = self.velocity_outputs(inputs, video_sigma, video_noise, action_sigma, action_noise)
        losses = self.losses(inputs, out, video_noise, action_noise, video_w, action_w)
        cfg = self.config.loss
        loss = cfg.lambda_action * losses['action'] + cfg.lambda_video * losses['video']
        metrics = {'loss': float(loss.detach()), 'loss/action': float(losses['action'].detach()),
                   'loss/video': float(losses['video'].detach())}
        return loss, metrics

    @staticmethod
    def losses(inputs, out, video_noise, action_noise, video_weight, action_weight) -> dict[str, torch.Tensor]:
        """Weighted velocity MSE. video_weight [B]; action_weight [B, K] (one noise level per chunk)."""
        video_target = FlowMatchSchedule.velocity_target(inputs['video_latents'][:, 1:], video_noise)
        video_err = (out['video_velocity'].float() - video_target.float()).pow(2).flatten(1).mean(1)
        video_loss = (video_err * video_weight).mean()
        action_target = FlowMatchSchedule.velocity_target(inputs['actions'], action_noise)
        action_err = (out['action_velocity'].float() - action_target.float()).pow(2).mean(-1)   # [B, K, c]
        mask = inputs['action_mask'].float()
        action_loss = (action_err * action_weight.unsqueeze(-1) * mask).sum() / mask.sum().clamp_min(1.0)
        return {'video': video_loss, 'action': action_loss}

    # ----------------------------------------------------------------------------------------- deployment
    def reset(self, task: int | torch.Tensor | None = None) -> None:
        """New episode: clear the planner memory; optionally set the task (id or [Nt, text_dim] tokens)."""
        self.planner.reset()
        if task is not None:
            self.set_task(task)

    def set_task(self, task: int | torch.Tensor | np.ndarray) -> None:
        t = self.config.task
        if isinstance(task, (int, np.integer)):
            if self.task_table is None:
                raise ValueError('this config has no task table (task.num_tasks = 0); pass task tokens')
            with torch.no_grad():
                self._task_tokens = self.task_table(torch.tensor([int(task)], device=self.device))
            return
        tokens = _as_tensor(task, 'task')
        if tokens.dim() == 2:
            tokens = tokens.unsqueeze(0)
        if tuple(tokens.shape) != (1, t.text_tokens, t.text_dim):
            raise ValueError(f'task tokens must be [{t.text_tokens}, {t.text_dim}], got {tuple(tokens.shape)}')
        self._task_tokens = tokens.to(self.device, self.planner.patch_embed.weight.dtype)

    def _current_task(self) -> torch.Tensor:
        if self._task_tokens is None:
            raise ValueError('no task set: call policy.reset(task=...) (or put "task" in the observation)')
        return self._task_tokens

    def encode_image(self, image: Any) -> torch.Tensor:
        """uint8 HWC RGB (numpy or tensor, optionally with a leading 1) -> latent [1, C, h, w]."""
        x = _as_tensor(image, 'image')
        if x.dim() == 3:
            x = x.unsqueeze(0)
        return self.encoder.encode(x.to(self.device))

    @torch.no_grad()
    def prefill(self, obs: Mapping[str, Any]) -> PlannerContext:
        """obs: {'image': uint8 [H, W, 3], 'step': episode control step, 'stamp_ns'?: int, 'task'?: id/tokens}.

        Encodes the frame, runs one clean planner pass over the rolling memory at RoPE time
        step // video_stride, appends the result to the memory and returns the PlannerContext.
        """
        for key in ('image', 'step'):
            if key not in obs:
                raise ValueError(f'prefill observation is missing {key!r}')
        if obs.get('task') is not None:
            self.set_task(obs['task'])
        step = int(obs['step'])
        if step < 0:
            raise ValueError(f'obs step must be >= 0, got {step}')
        latent = self.encode_image(obs['image'])
        return self.planner.prefill(latent, self._current_task(), self.config.timing.frame_index(step),
                                    stamp_ns=int(obs.get('stamp_ns', 0)))

    def _check_context(self, context: PlannerContext) -> None:
        want, got = self.planner.layout, context.layout
        for name in ('num_layers', 'tokens_per_frame', 'num_heads', 'head_dim'):
            if getattr(want, name) != getattr(got, name):
                raise ValueError(f'planner context {name}={getattr(got, name)} does not match this policy '
                                 f'({getattr(want, name)}): context from a different model config?')

    def prepare(self, context: PlannerContext, image: Any, proprio: Any, offset: int = 0,
                route: bool = True) -> PreparedChunk:
        """Everything loop-invariant for one chunk: encode the latest image, OVCR-edit the context, project
        task + proprio, action RoPE at chunk (offset // chunk). offset = control steps since the context's
        observation (>= 0). route=False skips OVCR (the no-OVCR ablation, an inference option)."""
        self._check_context(context)
        if int(offset) < 0:
            raise ValueError(f'offset must be >= 0 control steps since the context, got {offset}')
        a = self.config.executor.action_dim
        state = _as_tensor(proprio, 'proprio').to(self.device, torch.float32)
        if state.numel() != a:
            raise ValueError(f'proprio must have {a} values (left j1..j6, gripper, right ...), '
                             f'got {tuple(state.shape)}')
        state = self.normalizer.normalize_state(state.reshape(1, a))
        chunk_index = torch.tensor([int(offset) // self.config.executor.chunk_size], device=self.device)
        return self.executor.prepare(context.kv.unsqueeze(0).to(self.device), self.encode_image(image), state,
                                     self._current_task(), chunk_index, route=route)

    def inference_sigmas(self, steps: int) -> torch.Tensor:
        key = (int(steps), self.device)
        if key not in self._sigmas:
            self._sigmas[key] = self.schedule.inference_sigmas(int(steps), self.device)
        return self._sigmas[key]

    def denoise(self, prepared: PreparedChunk, noise: torch.Tensor, steps: int | None = None,
                capture=()) -> torch.Tensor | tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """Normalised chunk [B, c, A] from noise [B, c, A] in `steps` Euler steps (default flow.inference_steps).
        With `capture` (step indices) returns (chunk, {i: state after i steps}) for distillation."""
        steps = self.config.flow.inference_steps if steps is None else steps
        x, states = self.executor.denoise(prepared, noise, self.inference_sigmas(steps), capture)
        return (x, states) if capture else x

    def chunk_noise(self, offset: int = 0, generator: torch.Generator | None = None, seed: int | None = None
                    ) -> torch.Tensor:
        """Initial noise [1, c, A] (policy dtype and device) for the chunk at `offset` control steps after the
        context, in the configured `flow.noise_layout`:

        'horizon' (official): [1, max(horizon, (k+1) c), A] is drawn in fp32 on the CPU and chunk
            k = offset // c takes rows k c .. k c + c - 1. With a generator seeded with the same seed at every
            prefill (the official RoboTwin eval uses seed 0), chunk k gets exactly the official noise.
        'chunk' (legacy): [1, c, A] drawn per call.
        `seed` (if given) seeds a fresh CPU generator; otherwise `generator`, otherwise torch's global RNG."""
        c, a = self.config.executor.chunk_size, self.config.executor.action_dim
        if seed is not None:
            generator = torch.Generator(device='cpu').manual_seed(int(seed))
        if self.config.flow.noise_layout == 'horizon':
            k = max(0, int(offset)) // c
            rows = max(self.config.horizon, (k + 1) * c)
            noise = torch.randn(1, rows, a, generator=generator, dtype=torch.float32)[:, k * c:(k + 1) * c]
        else:
            noise = torch.randn(1, c, a, generator=generator)
        return noise.to(self.device, self.executor.action_in.weight.dtype)

    @torch.no_grad()
    def act(self, context: PlannerContext, image: Any, proprio: Any, offset: int = 0, steps: int | None = None,
            noise: torch.Tensor | None = None, generator: torch.Generator | None = None,
            seed: int | None = None) -> torch.Tensor:
        """One action chunk [c, 14] in the model's action units (this project's checkpoints: joint radians,
        gripper metres), float32. Without `noise`, noise comes from `chunk_noise(offset, generator, seed)`."""
        prepared = self.prepare(context, image, proprio, offset)
        c, a = self.config.executor.chunk_size, self.config.executor.action_dim
        dtype = self.executor.action_in.weight.dtype
        if noise is None:
            noise = self.chunk_noise(offset, generator, seed)
        elif tuple(noise.shape[-2:]) != (c, a):
            raise ValueError(f'noise must be [{c}, {a}] or [1, {c}, {a}], got {tuple(noise.shape)}')
        x = self.denoise(prepared, noise.reshape(1, c, a).to(self.device, dtype), steps)
        return self.normalizer.unnormalize_action(x.float())[0]
