"""ActionExecutor: the action DiT that denoises one 16 x 14 chunk attending to the planner context.

Per layer i the chunk tokens self-attend over [routed planner K/V of layer i ; own chunk K/V] (chunk-local:
no other chunk, no future video), then cross-attend to [task tokens ; one proprio token (chunk-start
state)]. Action positions are 1-D RoPE over the full head at chunk_index * chunk + (0..chunk-1), relative
to the planner frame. One timestep per chunk (or per token) drives AdaLN. The output head is a bare
Linear on the residual stream (`executor.head: linear`, official) or LayerNorm + AdaLN first ('adaln').

Inference is split so that the denoise loop is pure tensors with static shapes:
  prepare(context_kv, obs_latent, proprio, task_tokens, chunk_index) -> PreparedChunk   once per update:
      OVCR routing/editing, per-layer context K/V in head layout, cross-attn K/V of task+proprio, RoPE tables
  velocity(x, sigma, prepared) / denoise(prepared, noise, sigmas)                         per step: 16 tokens
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from aha_wam.config import AhaWamConfig
from aha_wam.models.flow import euler_sample, step_sizes
from aha_wam.models.layers import (CrossAttention, FeedForward, RMSNorm, TextProjection, TimestepConditioner,
                                   init_linear_xavier, merge_heads, modulate, split_heads)
from aha_wam.models.ovcr import OvcrRouter
from aha_wam.models.rope import apply_rope, pair_swap_matrix, rope_1d


class PreparedChunk(NamedTuple):
    """Loop-invariant tensors of one executor update (a pytree of tensors, export friendly)."""

    ctx_k: torch.Tensor      # [L, B, H, T, D]  OVCR-edited planner keys (post-RoPE)
    ctx_v: torch.Tensor      # [L, B, H, T, D]
    cross_k: torch.Tensor    # [L, B, H, Nc, D] cross-attention keys of [task tokens ; proprio token]
    cross_v: torch.Tensor    # [L, B, H, Nc, D]
    rope_cos: torch.Tensor   # [B, 1, chunk, D] action positions (full-width RoPE tables)
    rope_sin: torch.Tensor   # [B, 1, chunk, D]


class ExecutorBlock(nn.Module):
    """Like the planner block, with q/k/v as one fused projection: the denoise loop runs 16 tokens, so each
    saved kernel launch counts (weights are initialised as three separate Xavier blocks)."""

    def __init__(self, dim: int, num_heads: int, head_dim: int, ffn_dim: int, eps: float):
        super().__init__()
        width = num_heads * head_dim
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(dim, eps=eps, elementwise_affine=False)
        self.qkv = nn.Linear(dim, 3 * width)
        self.o = nn.Linear(width, dim)
        self.norm_q = RMSNorm(width, eps)
        self.norm_k = RMSNorm(width, eps)
        self.norm3 = nn.LayerNorm(dim, eps=eps, elementwise_affine=True)
        self.cross = CrossAttention(dim, dim, num_heads, head_dim, eps)
        self.norm2 = nn.LayerNorm(dim, eps=eps, elementwise_affine=False)
        self.ffn = FeedForward(dim, ffn_dim)
        self.modulation = nn.Parameter(torch.randn(1, 1, 6, dim) / dim ** 0.5)

    def forward(self, x, mod, cos, sin, swap, ctx_k, ctx_v, cross_k, cross_v):
        """x [B, n, d]; mod [B, 1|n, 6, d]; cos/sin [B, 1, n, D] and swap [D, D] (RoPE);
        ctx_k/v [B, H, T, D] planner context of this layer; cross_k/v [B, H, Nc, D] task + proprio."""
        shift_a, scale_a, gate_a, shift_f, scale_f, gate_f = (self.modulation + mod).unbind(2)
        q, k, v = self.qkv(modulate(self.norm1(x), shift_a, scale_a)).chunk(3, dim=-1)
        q = apply_rope(split_heads(self.norm_q(q), self.num_heads), cos, sin, swap)
        k = apply_rope(split_heads(self.norm_k(k), self.num_heads), cos, sin, swap)
        v = split_heads(v, self.num_heads)
        attn = F.scaled_dot_product_attention(q, torch.cat([ctx_k, k], 2), torch.cat([ctx_v, v], 2))
        x = torch.addcmul(x, gate_a, self.o(merge_heads(attn)))
        x = x + self.cross(self.norm3(x), cross_k, cross_v)
        return torch.addcmul(x, gate_f, self.ffn(modulate(self.norm2(x), shift_f, scale_f)))


class ActionExecutor(nn.Module):
    def __init__(self, config: AhaWamConfig):
        super().__init__()
        self.config = config
        e, task = config.executor, config.task
        self.chunk = e.chunk_size
        self.action_dim = e.action_dim
        self.num_heads, self.head_dim, self.num_layers = e.num_heads, e.head_dim, e.num_layers
        self.tokens_per_frame = config.tokens_per_frame
        self.action_in = nn.Linear(e.action_dim, e.hidden)
        self.branch = nn.Parameter(torch.randn(e.hidden) * 0.02)     # marks action tokens (as AHA-WAM)
        self.proprio_in = nn.Linear(e.action_dim, task.text_dim)      # chunk-start state -> one text-space token
        self.text_embed = TextProjection(task.text_dim, e.hidden)
        self.official_numerics = config.flow.numerics == 'official'
        self.time = TimestepConditioner(e.freq_dim, e.hidden, official=self.official_numerics)
        self.blocks = nn.ModuleList(ExecutorBlock(e.hidden, e.num_heads, e.head_dim, e.ffn_dim, e.eps)
                                    for _ in range(e.num_layers))
        self.adaln_head = e.head == 'adaln'
        if self.adaln_head:
            self.head_norm = nn.LayerNorm(e.hidden, eps=e.eps, elementwise_affine=False)
            self.head_modulation = nn.Parameter(torch.randn(1, 1, 2, e.hidden) / e.hidden ** 0.5)
        self.head = nn.Linear(e.hidden, e.action_dim)
        init_linear_xavier(self)
        for block in self.blocks:
            for part in block.qkv.weight.data.chunk(3, dim=0):   # as three separate q, k, v projections
                nn.init.xavier_uniform_(part)
        for m in list(self.text_embed.modules()) + list(self.time.modules()):
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.register_buffer('rope_swap', pair_swap_matrix(e.head_dim), persistent=False)
        # Built after the generic init so its zero-initialised delta layer stays zero.
        self.ovcr = OvcrRouter(config) if config.ovcr.enabled else None

    def prepare(self, context_kv: torch.Tensor, obs_latent: torch.Tensor, proprio: torch.Tensor,
                task_tokens: torch.Tensor, chunk_index: torch.Tensor, route: bool = True) -> PreparedChunk:
        """context_kv [B, L, 2, T, H*D]; obs_latent [B, C, h, w] (latest image); proprio [B, A] normalised
        chunk-start state; task_tokens [B, Nt, text_dim]; chunk_index [B] long (chunks since the frame).
        route=False reads the planner context unedited (the no-OVCR ablation; the weights stay as they are)."""
        b = context_kv.shape[0]
        width = self.num_heads * self.head_dim
        if tuple(context_kv.shape[1:]) != (self.num_layers, 2, self.tokens_per_frame, width):
            raise ValueError(f'context_kv must be [B, {self.num_layers}, 2, {self.tokens_per_frame}, {width}], '
                             f'got {tuple(context_kv.shape)}')
        if tuple(proprio.shape) != (b, self.action_dim):
            raise ValueError(f'proprio must be [{b}, {self.action_dim}], got {tuple(proprio.shape)}')
        dtype = self.action_in.weight.dtype
        kv = context_kv.to(dtype)
        if self.ovcr is not None and route:
            kv = self.ovcr(kv, obs_latent.to(dtype))
        # Contiguous once here, so that every denoise step concatenates from dense per-layer slices.
        heads = kv.unflatten(-1, (self.num_heads, self.head_dim)).permute(1, 2, 0, 4, 3, 5).contiguous()  # L2BHTD
        cond = torch.cat([task_tokens.to(dtype), self.proprio_in(proprio.to(dtype)).unsqueeze(1)], dim=1)
        cond = self.text_embed(cond)
        cross = [block.cross.context_kv(cond) for block in self.blocks]
        positions = chunk_index.to(kv.device).view(b, 1) * self.chunk + torch.arange(self.chunk, device=kv.device)
        cos, sin = rope_1d(positions, self.head_dim, self.config.executor.rope_theta)
        return PreparedChunk(heads[:, 0], heads[:, 1], torch.stack([c[0] for c in cross]),
                             torch.stack([c[1] for c in cross]), cos.unsqueeze(1).to(dtype), sin.unsqueeze(1).to(dtype))

    def velocity(self, x: torch.Tensor, sigma: torch.Tensor, prepared: PreparedChunk) -> torch.Tensor:
        """x [B, chunk, A] noisy normalised actions; sigma [B] (per chunk) or [B, chunk] (per token)."""
        t = sigma.unsqueeze(-1) if sigma.dim() == 1 else sigma
        return self._velocity(x, *self.time(t), prepared)

    def _velocity(self, x, emb, mod, prepared: PreparedChunk) -> torch.Tensor:
        """emb [B|1, 1|chunk, d], mod [B|1, 1|chunk, 6, d]: timestep conditioning (see `time`)."""
        h = self.action_in(x.to(self.action_in.weight.dtype)) + self.branch
        cos, sin, swap = prepared.rope_cos, prepared.rope_sin, self.rope_swap
        for i, block in enumerate(self.blocks):
            h = block(h, mod, cos, sin, swap, prepared.ctx_k[i], prepared.ctx_v[i], prepared.cross_k[i],
                      prepared.cross_v[i])
        if not self.adaln_head:
            return self.head(h)
        shift, scale = (self.head_modulation + emb.unsqueeze(2)).unbind(2)
        return self.head(modulate(self.head_norm(h), shift, scale))

    def step_schedule(self, sigmas: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor,
                                                                               torch.Tensor]:
        """Per-step inputs of the Euler loop for one sigma grid [S+1]: timestep conditioning emb [S, 1, 1, d],
        mod [S, 1, 1, 6, d] and step sizes ds [S] in `dtype`, as `denoise` uses them (exporters and graph
        backends should take them from here so their bf16 step sizes match)."""
        emb, mod = self.time(sigmas[:-1].view(-1, 1, 1))
        if self.official_numerics:
            ds = step_sizes(sigmas, dtype)
        else:
            s = sigmas.to(dtype)
            ds = s[1:] - s[:-1]
        return emb, mod, ds

    def denoise(self, prepared: PreparedChunk, noise: torch.Tensor, sigmas: torch.Tensor,
                capture=()) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """Euler from noise (sigmas[0] = 1) to sigmas[-1] = 0; only the chunk tokens run per step (the
        timestep conditioning of the whole schedule is computed once, before the loop). With official
        numerics the step sizes are fp32 differences rounded once to the noise dtype."""
        emb, mod = self.time(sigmas[:-1].to(noise.device).view(-1, 1, 1))     # [S, 1, 1, d], [S, 1, 1, 6, d]
        steps = list(zip(emb.unbind(0), mod.unbind(0)))
        deltas = step_sizes(sigmas.to(noise.device), noise.dtype) if self.official_numerics else None
        return euler_sample(lambda x, s, cond: self._velocity(x, cond[0], cond[1], prepared), noise,
                            sigmas.to(noise), capture, step_inputs=steps, deltas=deltas)
