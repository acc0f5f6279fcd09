"""Task conditioning: task id -> `text_tokens` learned tokens of width `text_dim` (small/tiny configs).

It is pluggable: anything producing [B, Nt, text_dim] works (e.g. precomputed UMT5 embeddings, zero-padded
to Nt as Wan does, passed as `task_tokens` in the batch / `reset(task=tensor)`).
"""
from __future__ import annotations

import torch
import torch.nn as nn


class TaskEmbedding(nn.Module):
    def __init__(self, num_tasks: int, text_tokens: int, text_dim: int):
        super().__init__()
        self.num_tasks = num_tasks
        self.table = nn.Parameter(torch.randn(num_tasks, text_tokens, text_dim) * 0.02)

    def forward(self, task_id: torch.Tensor) -> torch.Tensor:
        """task_id [B] long -> [B, Nt, text_dim]."""
        if task_id.dtype not in (torch.int32, torch.int64):
            raise ValueError(f'task ids must be integer, got {task_id.dtype}')
        if task_id.numel() and (int(task_id.min()) < 0 or int(task_id.max()) >= self.num_tasks):
            raise ValueError(f'task id out of range [0, {self.num_tasks}): {task_id.tolist()}')
        return self.table[task_id]
