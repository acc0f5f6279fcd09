"""OVCR: observation-conditioned editing of the planner's current-frame K/V (identity at initialisation).

1. `ObservationQueryEncoder`: the latest observation latent [C, h, w] -> h*w tokens (no pooling) -> LN +
   MLP to `query_dim`; `num_queries` learned queries do one softmax cross-attention over them (keys LN +
   Linear, values LN + MLP, output LN + MLP, residual on the queries) -> routing queries [Nq, query_dim].
2. `KVEditorLayer` (one per planner layer): q = LN + Linear(query_dim -> H*D) per head;
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
from aha_wam.models.layers import merge_heads, split_heads


class _Mlp(nn.Module):
    def __init__(self, dim_in: int, hidden: int, dim_out: int):
        super().__init__()
        self.fc1 = nn.Linear(dim_in, hidden)
        self.fc2 = nn.Linear(hidden, dim_out)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class ObservationQueryEncoder(nn.Module):
    def __init__(self, latent_channels: int, query_dim: int, num_queries: int):
        super().__init__()
        self.query_dim = query_dim
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
        return self.queries + self.out(self.out_norm(gathered))


class KVEditorLayer(nn.Module):
    def __init__(self, query_dim: int, num_heads: int, head_dim: int, hidden: int, gate_init: float):
        super().__init__()
        width = num_heads * head_dim
        self.num_heads, self.head_dim = num_heads, head_dim
        self.query_norm = nn.LayerNorm(query_dim)
        self.query = nn.Linear(query_dim, width)
        self.delta_norm = nn.LayerNorm(width)
        self.delta_in = nn.Linear(width, hidden)
        self.delta_out = nn.Linear(hidden, 2 * width)
        self.gate = nn.Parameter(torch.tensor(float(gate_init)))
        nn.init.zeros_(self.delta_out.weight)   # identity at init: dK = dV = 0 exactly
        nn.init.zeros_(self.delta_out.bias)

    def forward(self, k0: torch.Tensor, v0: torch.Tensor, routing: torch.Tensor):
        """k0, v0 [B, T, H*D] (k post-RoPE); routing [B, Nq, query_dim] -> edited (k, v) [B, T, H*D]."""
        scale = self.head_dim ** -0.5
        q = split_heads(self.query(self.query_norm(routing)), self.num_heads)        # B H Nq D
        kh = split_heads(k0, self.num_heads)                                           # B H T D
        vh = split_heads(v0, self.num_heads)
        read = torch.softmax(q @ kh.transpose(-1, -2) * scale, dim=-1) @ vh            # B H Nq D
        write = torch.softmax(kh @ read.transpose(-1, -2) * scale, dim=-1) @ read      # B H T D
        decoded = merge_heads(write)
        dk, dv = self.delta_out(F.gelu(self.delta_in(self.delta_norm(decoded)))).chunk(2, dim=-1)
        g = torch.sigmoid(self.gate)
        return k0 + g * dk, v0 + g * dv


class OvcrRouter(nn.Module):
    """Query encoder + one editor per layer. forward(context_kv [B, L, 2, T, H*D], obs [B, C, h, w])."""

    def __init__(self, config: AhaWamConfig):
        super().__init__()
        o, p = config.ovcr, config.planner
        hidden = o.delta_hidden or p.num_heads * p.head_dim
        self.query_encoder = ObservationQueryEncoder(config.encoder.latent_channels, o.query_dim, o.num_queries)
        self.layers = nn.ModuleList(KVEditorLayer(o.query_dim, p.num_heads, p.head_dim, hidden, o.gate_init)
                                    for _ in range(p.num_layers))

    def forward(self, context_kv: torch.Tensor, obs_latent: torch.Tensor) -> torch.Tensor:
        routing = self.query_encoder(obs_latent.to(context_kv.dtype))
        edited = [torch.stack(layer(context_kv[:, i, 0], context_kv[:, i, 1], routing), dim=1)
                  for i, layer in enumerate(self.layers)]
        return torch.stack(edited, dim=1)
