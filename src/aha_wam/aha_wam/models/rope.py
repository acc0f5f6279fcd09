"""Rotary position embeddings as real cos/sin tables (no complex tensors, so ONNX/CUDA-graph friendly).

Channel pairs (2j, 2j+1) of a head are rotated by angle pos * theta^(-2j/dim) (Wan's complex-pair layout).
Tables are full head width (each pair's cos/sin repeated twice), and applying them is
x * cos + (x @ R) * sin with R the fixed signed pair swap (a, b) -> (-b, a): four ops and one tiny matmul
per call, which matters because the executor runs it twice per layer and denoise step.
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


def _angles(positions: torch.Tensor, dim: int, theta: float) -> torch.Tensor:
    freqs = rope_frequencies(dim, theta, positions.device)
    return positions.to(torch.float64).unsqueeze(-1) * freqs                # [..., N, dim/2]


def _tables(angles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return angles.cos().repeat_interleave(2, dim=-1).float(), angles.sin().repeat_interleave(2, dim=-1).float()


def pair_swap_matrix(dim: int) -> torch.Tensor:
    """[dim, dim] R with x @ R mapping every channel pair (a, b) to (-b, a). Models keep it as a
    non-persistent buffer (`rope_swap`) so it follows .to(device, dtype) and is a constant when exported."""
    r = torch.zeros(dim, dim)
    idx = torch.arange(0, dim, 2)
    r[idx + 1, idx] = -1.0      # output a' = -b
    r[idx, idx + 1] = 1.0       # output b' = a
    return r


def rope_1d(positions: torch.Tensor, dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """positions [..., N] (any int/float) -> (cos, sin) tables each [..., N, dim] float32."""
    return _tables(_angles(positions, dim, theta))


def rope_3d(time: torch.Tensor, height: torch.Tensor, width: torch.Tensor, head_dim: int, theta: float
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token (t, h, w) positions, each [..., N] -> (cos, sin) tables [..., N, head_dim]."""
    dt, dh, dw = rope_split(head_dim)
    angles = torch.cat([_angles(time, dt, theta), _angles(height, dh, theta), _angles(width, dw, theta)], dim=-1)
    return _tables(angles)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, swap: torch.Tensor) -> torch.Tensor:
    """x [B, H, N, D]; cos/sin tables broadcastable to it (e.g. [N, D] or [B, 1, N, D]); swap =
    pair_swap_matrix(D) in x's dtype. Pair (a, b) -> (a cos - b sin, b cos + a sin), in x's dtype."""
    return x * cos + (x @ swap) * sin
