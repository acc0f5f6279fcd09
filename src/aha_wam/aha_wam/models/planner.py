"""VideoPlanner: the video DiT that turns the current frame (+ its rolling memory) into planner context.

Tokens: latent frames [B, F, C, h, w] are patchified (1 x p x p) frame-major; frame 0 is the current frame
(clean, sigma = 0), frames 1..F-1 are noisy future frames (training only). Attention is per-frame causal:
a token of frame i sees memory K/V (past refreshes) and frames 0..i, never later frames, so the current
frame's K/V are identical with or without future frames; video never sees actions. Per-token timesteps
drive AdaLN; task tokens enter through cross-attention. Keys are rotated with 3-D RoPE (time, h, w) at
absolute time = control step // video_stride and cached post-RoPE.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from aha_wam.config import AhaWamConfig
from aha_wam.context.layout import ContextLayout, PlannerContext
from aha_wam.models.layers import (CrossAttention, FeedForward, RMSNorm, TextProjection, TimestepConditioner,
                                   init_linear_xavier, merge_heads, modulate, split_heads)
from aha_wam.models.memory import KVMemory
from aha_wam.models.rope import apply_rope, pair_swap_matrix, rope_3d
from aha_wam.models.vae import patchify, unpatchify


class PlannerBlock(nn.Module):
    """Wan2.2 block: AdaLN self-attention (RMSNorm q/k, RoPE) -> text cross-attention -> AdaLN FFN."""

    def __init__(self, dim: int, num_heads: int, head_dim: int, ffn_dim: int, eps: float):
        super().__init__()
        width = num_heads * head_dim
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(dim, eps=eps, elementwise_affine=False)
        self.q = nn.Linear(dim, width)
        self.k = nn.Linear(dim, width)
        self.v = nn.Linear(dim, width)
        self.o = nn.Linear(width, dim)
        self.norm_q = RMSNorm(width, eps)
        self.norm_k = RMSNorm(width, eps)
        self.norm3 = nn.LayerNorm(dim, eps=eps, elementwise_affine=True)
        self.cross = CrossAttention(dim, dim, num_heads, head_dim, eps)
        self.norm2 = nn.LayerNorm(dim, eps=eps, elementwise_affine=False)
        self.ffn = FeedForward(dim, ffn_dim)
        self.modulation = nn.Parameter(torch.randn(1, 1, 6, dim) / dim ** 0.5)

    def forward(self, x, mod, cos, sin, swap, text_k, text_v, mem_k=None, mem_v=None, mask=None, kv_only=False):
        """x [B, N, d]; mod [B, N, 6, d]; cos/sin [B, 1, N, D] RoPE tables, swap [D, D]
        (rope.pair_swap_matrix); text_k/v [B, H, Nt, D];
        mem_k/v [B, H, Nm, D] (post-RoPE) or None; mask [B, 1, N, Nm + N] bool (True = attend) or None.
        Returns (x or None when kv_only, k, v) with k/v [B, H, N, D] of this call's tokens, k post-RoPE."""
        shift_a, scale_a, gate_a, shift_f, scale_f, gate_f = (self.modulation + mod).unbind(2)
        h = modulate(self.norm1(x), shift_a, scale_a)
        q = apply_rope(split_heads(self.norm_q(self.q(h)), self.num_heads), cos, sin, swap)
        k = apply_rope(split_heads(self.norm_k(self.k(h)), self.num_heads), cos, sin, swap)
        v = split_heads(self.v(h), self.num_heads)
        if kv_only:
            return None, k, v
        keys, values = (k, v) if mem_k is None else (torch.cat([mem_k, k], 2), torch.cat([mem_v, v], 2))
        attn = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
        x = x + gate_a * self.o(merge_heads(attn))
        x = x + self.cross(self.norm3(x), text_k, text_v)
        x = x + gate_f * self.ffn(modulate(self.norm2(x), shift_f, scale_f))
        return x, k, v


class VideoPlanner(nn.Module):
    def __init__(self, config: AhaWamConfig):
        super().__init__()
        self.config = config
        p, enc = config.planner, config.encoder
        self.latent_channels = enc.latent_channels
        self.latent_hw = (enc.latent_height, enc.latent_width)
        self.patch = p.patch_size
        self.grid_hw = (enc.latent_height // p.patch_size, enc.latent_width // p.patch_size)
        self.tokens_per_frame = self.grid_hw[0] * self.grid_hw[1]
        self.num_heads, self.head_dim, self.num_layers = p.num_heads, p.head_dim, p.num_layers
        patch_dim = enc.latent_channels * p.patch_size ** 2
        self.patch_embed = nn.Linear(patch_dim, p.hidden)
        self.text_embed = TextProjection(config.task.text_dim, p.hidden)
        self.time = TimestepConditioner(p.freq_dim, p.hidden, official=config.flow.numerics == 'official')
        self.blocks = nn.ModuleList(PlannerBlock(p.hidden, p.num_heads, p.head_dim, p.ffn_dim, p.eps)
                                    for _ in range(p.num_layers))
        self.head_norm = nn.LayerNorm(p.hidden, eps=p.eps, elementwise_affine=False)
        self.head_modulation = nn.Parameter(torch.randn(1, 1, 2, p.hidden) / p.hidden ** 0.5)
        self.head = nn.Linear(p.hidden, patch_dim)
        self._init_weights()
        self.register_buffer('rope_swap', pair_swap_matrix(p.head_dim), persistent=False)
        self.memory = KVMemory(config.memory.max_entries)

    def _init_weights(self):
        init_linear_xavier(self)
        for m in list(self.text_embed.modules()) + list(self.time.modules()):
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
        nn.init.zeros_(self.head.weight)    # velocity 0 at init, as Wan
        nn.init.zeros_(self.head.bias)

    @property
    def layout(self) -> ContextLayout:
        dtype = ContextLayout.dtype_name(self.patch_embed.weight.dtype)
        return ContextLayout(self.num_layers, self.tokens_per_frame, self.num_heads, self.head_dim, dtype)

    # ------------------------------------------------------------------------------------------------ core
    def _rope(self, frame_times: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """frame_times [B, F] -> cos/sin [B, 1, F*T, D] for (time, row, col) of every token."""
        gh, gw = self.grid_hw
        dev = frame_times.device
        rows = torch.arange(gh, device=dev).repeat_interleave(gw)
        cols = torch.arange(gw, device=dev).repeat(gh)
        b, f = frame_times.shape
        time = frame_times.repeat_interleave(self.tokens_per_frame, dim=1)
        cos, sin = rope_3d(time, rows.repeat(f).expand(b, -1), cols.repeat(f).expand(b, -1),
                           self.head_dim, self.config.planner.rope_theta)
        dtype = self.rope_swap.dtype
        return cos.unsqueeze(1).to(dtype), sin.unsqueeze(1).to(dtype)

    def _mask(self, batch: int, frames: int, memory_valid, frame_valid, device):
        """Per-frame causal boolean mask [B, 1, N, Nm + N], or None when everything may attend."""
        if frames == 1 and frame_valid is None and (memory_valid is None or bool(memory_valid.all())):
            return None
        t = self.tokens_per_frame
        frame_of = torch.arange(frames, device=device).repeat_interleave(t)
        causal = frame_of[None, :] <= frame_of[:, None]                       # [N, N] key frame <= query frame
        own = frame_of[None, :] == frame_of[:, None]
        mask = causal.expand(batch, -1, -1)
        if frame_valid is not None:
            key_ok = frame_valid.repeat_interleave(t, dim=1)[:, None, :]      # padded frames are never keys ...
            mask = mask & (key_ok | own)                                       # ... except for themselves
        if memory_valid is not None:
            mem = memory_valid[:, None, :].expand(-1, frames * t, -1)
            mask = torch.cat([mem, mask], dim=2)
        return mask.unsqueeze(1)

    def forward(self, latents: torch.Tensor, sigmas: torch.Tensor, frame_times: torch.Tensor,
                task_tokens: torch.Tensor, memory_kv: torch.Tensor | None = None,
                memory_valid: torch.Tensor | None = None, frame_valid: torch.Tensor | None = None,
                kv_frames: int = 0, kv_only: bool = False):
        """latents [B, F, C, h, w]; sigmas [B, F] (0 = clean); frame_times [B, F] (absolute RoPE time);
        task_tokens [B, Nt, text_dim]; memory_kv [B, L, 2, Nm, H*D] (post-RoPE) with memory_valid [B, Nm];
        frame_valid [B, F] marks padded frames (history pass).

        Returns (velocity [B, F, C, h, w] or None if kv_only, kv [B, L, 2, kv_frames*T, H*D] or None):
        kv holds the K (post-RoPE) and V of the first `kv_frames` frames at every layer. With kv_only the
        last block stops after its K/V projection and no velocity is computed (prefill / history pass).
        """
        b, f, c, h, w = latents.shape
        if (c, h, w) != (self.latent_channels, *self.latent_hw):
            raise ValueError(f'planner latents must be [B, F, {self.latent_channels}, {self.latent_hw[0]}, '
                             f'{self.latent_hw[1]}], got {tuple(latents.shape)}')
        if tuple(sigmas.shape) != (b, f) or tuple(frame_times.shape) != (b, f):
            raise ValueError(f'sigmas {tuple(sigmas.shape)} and frame_times {tuple(frame_times.shape)} '
                             f'must be [{b}, {f}]')
        t = self.tokens_per_frame
        n_kv = kv_frames * t
        x = self.patch_embed(patchify(latents, self.patch).to(self.patch_embed.weight.dtype))
        emb, mod = self.time(sigmas.repeat_interleave(t, dim=1))             # per-token timesteps
        cos, sin = self._rope(frame_times)
        text = self.text_embed(task_tokens.to(x.dtype))
        mask = self._mask(b, f, memory_valid, frame_valid, x.device)
        kvs = []
        for i, block in enumerate(self.blocks):
            mem_k = mem_v = None
            if memory_kv is not None:
                mem_k = split_heads(memory_kv[:, i, 0].to(x.dtype), self.num_heads)
                mem_v = split_heads(memory_kv[:, i, 1].to(x.dtype), self.num_heads)
            text_k, text_v = block.cross.context_kv(text)
            last_kv_only = kv_only and i == len(self.blocks) - 1
            x, k, v = block(x, mod, cos, sin, self.rope_swap, text_k, text_v, mem_k, mem_v, mask,
                            kv_only=last_kv_only)
            if n_kv:
                kvs.append(torch.stack([merge_heads(k[:, :, :n_kv]), merge_heads(v[:, :, :n_kv])], dim=1))
        kv = torch.stack(kvs, dim=1) if n_kv else None
        if kv_only:
            return None, kv
        shift, scale = (self.head_modulation + emb.unsqueeze(2)).unbind(2)
        out = self.head(modulate(self.head_norm(x), shift, scale))
        return unpatchify(out, f, c, h, w, self.patch), kv

    # ------------------------------------------------------------------------------------------ inference
    def reset(self) -> None:
        """New episode: forget the rolling memory."""
        self.memory.reset()

    @torch.no_grad()
    def prefill(self, latent: torch.Tensor, task_tokens: torch.Tensor, frame_index: int, stamp_ns: int = 0
                ) -> PlannerContext:
        """One clean pass of the current frame over its memory; returns its context and appends it to memory.

        latent [C, h, w] (or [1, C, h, w]); task_tokens [Nt, text_dim] (or [1, Nt, text_dim]);
        frame_index = absolute RoPE time in video frames (control step // video_stride).
        """
        if latent.dim() == 3:
            latent = latent.unsqueeze(0)
        if task_tokens.dim() == 2:
            task_tokens = task_tokens.unsqueeze(0)
        if latent.shape[0] != 1 or task_tokens.shape[0] != 1:
            raise ValueError('prefill takes one frame (batch 1); use forward(...) for batches')
        if int(frame_index) < 0:
            raise ValueError(f'frame_index must be >= 0, got {frame_index}')
        dev = latent.device
        memory = self.memory.stacked()
        if memory is not None:
            memory = memory.unsqueeze(0)
        _, kv = self.forward(latent.unsqueeze(1), torch.zeros(1, 1, device=dev),
                             torch.full((1, 1), int(frame_index), dtype=torch.long, device=dev), task_tokens,
                             memory_kv=memory, kv_frames=1, kv_only=True)
        kv = kv[0].contiguous()
        context = PlannerContext(kv=kv, layout=self.layout, frame_index=int(frame_index),
                                 memory_entries=len(self.memory), stamp_ns=int(stamp_ns))
        self.memory.append(kv, int(frame_index))
        return context

    @torch.no_grad()
    def history_kv(self, latents: torch.Tensor, frame_times: torch.Tensor, valid: torch.Tensor,
                   task_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training-time memory: past frames [B, M, C, h, w] (oldest first, left-padded, `valid` [B, M]) run
        clean and per-frame causal, exactly as M consecutive prefills would. Returns (memory_kv
        [B, L, 2, M*T, H*D], memory_valid [B, M*T])."""
        m = latents.shape[1]
        _, kv = self.forward(latents, torch.zeros(latents.shape[:2], device=latents.device), frame_times,
                             task_tokens, frame_valid=valid, kv_frames=m, kv_only=True)
        return kv, valid.repeat_interleave(self.tokens_per_frame, dim=1)
