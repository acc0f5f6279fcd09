"""Building blocks shared by the planner and the executor DiTs (Wan2.2 block conventions)."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    """Root-mean-square norm with a learned scale (used on q/k over the full attention width)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32:
            # One fused call on the hot path (3x per layer and denoise step); the TorchScript ONNX exporter
            # has no rms_norm symbolic, so it gets the same formula spelled out.
            if torch.onnx.is_in_onnx_export():
                return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight
            return F.rms_norm(x, self.weight.shape, self.weight, self.eps)
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """t [...] (timesteps in [0, 1000]) -> [..., dim] as Wan: [cos | sin] of t * 10000^(-i/half), in fp32
    (the legacy numerics; `sinusoidal_embedding_f64` is the official one)."""
    half = dim // 2
    freqs = torch.pow(10000.0, -torch.arange(half, dtype=torch.float32, device=t.device) / half)
    angles = t.float().unsqueeze(-1) * freqs
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


def sinusoidal_embedding_f64(t: torch.Tensor, dim: int) -> torch.Tensor:
    """As Wan's `sinusoidal_embedding_1d`: the angles t * 10000^(-i/half) in float64 (an fp32 angle of
    t ~ 1000 is off by ~6e-5 rad), the result in t's dtype."""
    half = dim // 2
    freqs = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64, device=t.device).div(half))
    angles = t.to(torch.float64).unsqueeze(-1) * freqs
    return torch.cat([angles.cos(), angles.sin()], dim=-1).to(t.dtype)


def model_timesteps(sigma: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The official timestep input: t = sigma * 1000 computed in fp32, then rounded to the model dtype (in
    bf16 978.26 -> 980). AHA-WAM was trained only on such rounded t."""
    return (sigma.float() * 1000.0).to(dtype)


class TimestepConditioner(nn.Module):
    """sigma -> (embedding [.., d] for the output head, modulation [.., 6, d] for the blocks).

    `official=True`: t = sigma * 1000 rounded to the weight dtype, float64 sinusoid (flow.numerics
    'official'); False: the legacy fp32 sinusoid of unrounded t."""

    def __init__(self, freq_dim: int, dim: int, official: bool = True):
        super().__init__()
        self.freq_dim = freq_dim
        self.official = bool(official)
        self.embed = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.project = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(self, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dtype = self.embed[0].weight.dtype
        if self.official:
            freq = sinusoidal_embedding_f64(model_timesteps(sigma, dtype), self.freq_dim)
        else:
            # Wan feeds timesteps on a 0..1000 scale; sigma in [0, 1] is scaled the same way.
            freq = sinusoidal_embedding(sigma * 1000.0, self.freq_dim).to(dtype)
        emb = self.embed(freq)
        return emb, self.project(emb).unflatten(-1, (6, -1))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate='tanh'))


class TextProjection(nn.Module):
    """Task/instruction tokens (text_dim) -> model width, as Wan's text_embedding (Linear, GELU, Linear)."""

    def __init__(self, text_dim: int, dim: int):
        super().__init__()
        self.fc1 = nn.Linear(text_dim, dim)
        self.fc2 = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate='tanh'))


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """AdaLN: x * (1 + scale) + shift."""
    return torch.addcmul(shift, x, 1 + scale)


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """[B, N, H*D] -> [B, H, N, D]."""
    return x.unflatten(-1, (num_heads, -1)).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[B, H, N, D] -> [B, N, H*D]."""
    return x.transpose(1, 2).flatten(2)


class CrossAttention(nn.Module):
    """Queries from the stream, keys/values from a conditioning sequence (task tokens, proprio).

    `context_kv` is split out so callers can hoist the key/value projection of a fixed context.
    """

    def __init__(self, dim: int, context_dim: int, num_heads: int, head_dim: int, eps: float):
        super().__init__()
        width = num_heads * head_dim
        self.num_heads = num_heads
        self.q = nn.Linear(dim, width)
        self.k = nn.Linear(context_dim, width)
        self.v = nn.Linear(context_dim, width)
        self.o = nn.Linear(width, dim)
        self.norm_q = RMSNorm(width, eps)
        self.norm_k = RMSNorm(width, eps)

    def context_kv(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """context [B, Nc, context_dim] -> (k, v) each [B, H, Nc, D]."""
        return (split_heads(self.norm_k(self.k(context)), self.num_heads),
                split_heads(self.v(context), self.num_heads))

    def forward(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q = split_heads(self.norm_q(self.q(x)), self.num_heads)
        return self.o(merge_heads(F.scaled_dot_product_attention(q, k, v)))


def init_linear_xavier(module: nn.Module) -> None:
    """Xavier-uniform weights and zero biases for every Linear below `module` (Wan's init)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def attention_scale(head_dim: int) -> float:
    return 1.0 / math.sqrt(head_dim)
