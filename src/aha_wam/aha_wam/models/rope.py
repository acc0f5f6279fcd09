"""Rotary position embeddings as real cos/sin tables (no complex tensors, so ONNX/CUDA-graph friendly).

Channel pairs (2j, 2j+1) of a head are rotated by angle pos * theta^(-2j/dim) (Wan's complex-pair layout).
The video planner splits a head into (time | height | width) parts (Wan: 128 -> 44/42/42) with time =
physical time in video frames; the executor rotates the full head by its 1-D action position.
"""
from __future__ import annotations

import torch

from aha_wam.config import rope_split


def rope_frequencies(dim: int, theta: float, device=None) -> torch.Tensor:
    """[dim/2] inverse frequencies, float64 for exact angles of large positions."""
    if dim % 2:
        raise ValueError(f'RoPE dim must be even, got {dim}')
    exponent = torch.arange(0, dim, 2, dtype=torch.float64, device=device) / dim
    return theta ** (-exponent)


def rope_1d(positions: torch.Tensor, dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """positions [..., N] (any int/float) -> (cos, sin) each [..., N, dim/2] float32."""
    freqs = rope_frequencies(dim, theta, positions.device)
    angles = positions.to(torch.float64).unsqueeze(-1) * freqs
    return angles.cos().float(), angles.sin().float()


def rope_3d(time: torch.Tensor, height: torch.Tensor, width: torch.Tensor, head_dim: int, theta: float
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token (t, h, w) positions, each [..., N] -> (cos, sin) [..., N, head_dim/2]."""
    dt, dh, dw = rope_split(head_dim)
    parts = [rope_1d(time, dt, theta), rope_1d(height, dh, theta), rope_1d(width, dw, theta)]
    cos = torch.cat([p[0] for p in parts], dim=-1)
    sin = torch.cat([p[1] for p in parts], dim=-1)
    return cos, sin


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [B, H, N, D]; cos/sin broadcastable to [B, H, N, D/2] (e.g. [N, D/2] or [B, 1, N, D/2])."""
    pairs = x.float().unflatten(-1, (-1, 2))
    x0, x1 = pairs[..., 0], pairs[..., 1]
    out = torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1)
    return out.flatten(-2).to(x.dtype)
