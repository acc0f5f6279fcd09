"""Rolling planner memory: the per-layer K/V of past current frames, oldest first, fixed capacity (FIFO).

Each entry is one refresh's context tensor `[L, 2, T, H*D]` (the PlannerContext layout), keys already
rotated at that frame's absolute RoPE time; entries are never re-rotated, so relative positions between the
current frame and its history are exactly those of training (notes/aha-wam.md §5).
"""
from __future__ import annotations

import collections
import dataclasses

import torch


@dataclasses.dataclass(frozen=True)
class MemoryEntry:
    kv: torch.Tensor          # [L, 2, T, H*D]
    frame_index: int          # absolute RoPE time (video frames) the keys were rotated at


class KVMemory:
    """FIFO of at most `max_entries` past frames; `max_entries = 0` disables memory."""

    def __init__(self, max_entries: int):
        if not isinstance(max_entries, int) or max_entries < 0:
            raise ValueError(f'KVMemory.max_entries must be a non-negative int, got {max_entries!r}')
        self.max_entries = max_entries
        self._entries: collections.deque[MemoryEntry] = collections.deque(maxlen=max_entries or None)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def entries(self) -> list[MemoryEntry]:
        return list(self._entries)

    @property
    def frame_indices(self) -> list[int]:
        return [e.frame_index for e in self._entries]

    def append(self, kv: torch.Tensor, frame_index: int) -> None:
        """Store a detached copy; the oldest entry is evicted when full."""
        if self.max_entries == 0:
            return
        if kv.dim() != 4 or kv.shape[1] != 2:
            raise ValueError(f'memory entries must be [L, 2, T, H*D], got {tuple(kv.shape)}')
        if self._entries and kv.shape != self._entries[0].kv.shape:
            raise ValueError(f'memory entry shape {tuple(kv.shape)} differs from stored '
                             f'{tuple(self._entries[0].kv.shape)}')
        self._entries.append(MemoryEntry(kv.detach().clone(), int(frame_index)))

    def stacked(self) -> torch.Tensor | None:
        """All entries concatenated along tokens, oldest first: [L, 2, M*T, H*D], or None when empty."""
        if not self._entries:
            return None
        return torch.cat([e.kv for e in self._entries], dim=2)

    def reset(self) -> None:
        self._entries.clear()

    @property
    def nbytes(self) -> int:
        return sum(e.kv.numel() * e.kv.element_size() for e in self._entries)
