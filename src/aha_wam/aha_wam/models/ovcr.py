"""OVCR: observation-conditioned editing of the planner's current-frame K/V (identity at initialisation).

1. `ObservationQueryEncoder`: the latest observation latent [C, h, w] -> h*w tokens (no pooling) -> LN +
   MLP to `query_dim`; `num_queries` learned queries do one softmax cross-attention over them (keys LN +
   Linear, values LN + MLP, output LN + MLP) -> routing queries [Nq, query_dim]. The output is the MLP
   alone (official `query_proj`), or with `ovcr.query_residual` the learned queries plus it (legacy).
2. `LayerwiseKVEditor` (per planner layer, batched over layers): q = LN + Linear(query_dim -> H*D) per head;
   read  = softmax_T(q K0^T / sqrt(D)) V0                  (each query gathers from the planner tokens)
   write = softmax_Nq(K0 read^T / sqrt(D)) read            (each planner token gathers from the queries)
   dK, dV = LN -> Linear -> GELU -> Linear(-> 2 H*D)(write), last Linear zero-initialised
   K' = K0 + sigmoid(g) dK, V' = V0 + sigmoid(g) dV        (g initialised to -4)
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from aha_wam.config import AhaWamConfig


class _Mlp(nn.Module):
    def __init__(self, dim_in: int, hidden: int, dim_out: int):
        super().__init__()
        self.fc1 = nn.Linear(dim_in, hidden)
        self.fc2 = nn.Linear(hidden, dim_out)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class ObservationQueryEncoder(nn.Module):
    def __init__(self, latent_channels: int, query_dim: int, num_queries: int, residual: bool = False):
        super().__init__()
        self.query_dim = query_dim
        self.residual = bool(residual)
        self.obs_norm = nn.LayerNorm(latent_channels)
        self.obs_proj = _Mlp(latent_channels, query_dim, query_dim)
        self.queries = nn.Parameter(torch.randn(num_queries, query_dim) / query_dim ** 0.5)
        self.key_norm = nn.LayerNorm(query_dim)
        self.key = nn.Linear(query_dim, query_dim)
        self.value_norm = nn.LayerNorm(query_dim)
        self.value = _Mlp(query_dim, query_dim, query_dim)
        self.out_norm = nn.LayerNorm(query_dim)
        self.out = _Mlp(query_dim, query_dim, query_dim)

    def forward(self, obs_latent: torch.Tensor) -> torch.Tensor:
        """obs_latent [B, C, h, w] -> routing queries [B, Nq, query_dim]."""
        tokens = self.obs_proj(self.obs_norm(obs_latent.flatten(2).transpose(1, 2)))
        k = self.key(self.key_norm(tokens))
        v = self.value(self.value_norm(tokens))
        weights = torch.softmax(self.queries @ k.transpose(1, 2) / self.query_dim ** 0.5, dim=-1)
        gathered = weights @ v
        routed = self.out(self.out_norm(gathered))
        return self.queries + routed if self.residual else routed


class LayerwiseKVEditor(nn.Module):
    """The per-layer editors of all L planner layers, with stacked [L, ...] parameters so that one batched
    pass edits every layer (one update runs this once; per-layer modules would cost L times the kernels).
    Layer i only ever touches layer i's K/V and its own parameter slice [i]."""

    def __init__(self, num_layers: int, query_dim: int, num_heads: int, head_dim: int, hidden: int,
                 gate_init: float):
        super().__init__()
        width = num_heads * head_dim
        self.num_layers, self.num_heads, self.head_dim = num_layers, num_heads, head_dim

        def param(*shape):
            return nn.Parameter(torch.empty(num_layers, *shape))
        self.query_norm_weight, self.query_norm_bias = param(query_dim), param(query_dim)
        self.query_weight, self.query_bias = param(query_dim, width), param(width)
        self.delta_norm_weight, self.delta_norm_bias = param(width), param(width)
        self.delta_in_weight, self.delta_in_bias = param(width, hidden), param(hidden)
        self.delta_out_weight, self.delta_out_bias = param(hidden, 2 * width), param(2 * width)
        self.gate = nn.Parameter(torch.full((num_layers,), float(gate_init)))
        with torch.no_grad():
            for w in (self.query_norm_weight, self.delta_norm_weight):
                nn.init.ones_(w)
            for b in (self.query_norm_bias, self.query_bias, self.delta_norm_bias, self.delta_in_bias):
                nn.init.zeros_(b)
            for w in (self.query_weight, self.delta_in_weight):      # Xavier per layer slice
                bound = (6.0 / (w.shape[1] + w.shape[2])) ** 0.5
                nn.init.uniform_(w, -bound, bound)
            nn.init.zeros_(self.delta_out_weight)   # identity at init: dK = dV = 0 exactly
            nn.init.zeros_(self.delta_out_bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """[B, L, N, H*D] -> [B, L, H, N, D]."""
        return x.unflatten(-1, (self.num_heads, self.head_dim)).transpose(2, 3)

    def forward(self, context_kv: torch.Tensor, routing: torch.Tensor) -> torch.Tensor:
        """context_kv [B, L, 2, T, H*D] (K post-RoPE); routing [B, Nq, query_dim] -> edited, same shape."""
        scale = self.head_dim ** -0.5
        k0, v0 = context_kv[:, :, 0], context_kv[:, :, 1]                                   # B L T W
        r = F.layer_norm(routing, routing.shape[-1:]).unsqueeze(1)                          # B 1 Nq Dq
        r = torch.addcmul(self.query_norm_bias[:, None], r, self.query_norm_weight[:, None])  # B L Nq Dq
        q = self._heads(r @ self.query_weight + self.query_bias[:, None])                  # B L H Nq D
        kh, vh = self._heads(k0), self._heads(v0)                                          # B L H T D
        read = torch.softmax(q @ kh.transpose(-1, -2) * scale, dim=-1) @ vh               # queries read tokens
        write = torch.softmax(kh @ read.transpose(-1, -2) * scale, dim=-1) @ read         # tokens read queries
        decoded = write.transpose(2, 3).flatten(-2)                                        # B L T W
        d = F.layer_norm(decoded, decoded.shape[-1:])
        d = torch.addcmul(self.delta_norm_bias[:, None], d, self.delta_norm_weight[:, None])
        d = F.gelu(d @ self.delta_in_weight + self.delta_in_bias[:, None])
        dk, dv = (d @ self.delta_out_weight + self.delta_out_bias[:, None]).chunk(2, dim=-1)
        g = torch.sigmoid(self.gate).view(1, -1, 1, 1)
        return torch.stack([torch.addcmul(k0, g, dk), torch.addcmul(v0, g, dv)], dim=2)


class OvcrRouter(nn.Module):
    """Query encoder + the layer-wise editor. forward(context_kv [B, L, 2, T, H*D], obs [B, C, h, w])."""

    def __init__(self, config: AhaWamConfig):
        super().__init__()
        o, p = config.ovcr, config.planner
        hidden = o.delta_hidden or p.num_heads * p.head_dim
        self.query_encoder = ObservationQueryEncoder(config.encoder.latent_channels, o.query_dim, o.num_queries,
                                                     residual=o.query_residual)
        self.editor = LayerwiseKVEditor(p.num_layers, o.query_dim, p.num_heads, p.head_dim, hidden, o.gate_init)

    def forward(self, context_kv: torch.Tensor, obs_latent: torch.Tensor) -> torch.Tensor:
        return self.editor(context_kv, self.query_encoder(obs_latent.to(context_kv.dtype)))
