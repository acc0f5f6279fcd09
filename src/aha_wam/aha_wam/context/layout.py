"""Tensor contract of the planner context, shared by the model, the channel and the ROS descriptor.

One refresh of the planner yields, for every transformer layer, the keys (post-RoPE) and values of the
current frame's video tokens. They are stored as ONE contiguous tensor

    kv[layer, 0 = K | 1 = V, token, head * head_dim + channel]      shape [L, 2, T, H * D]

so that a shared-memory slot, a CUDA IPC buffer and an inline `uint8[]` payload are all a single memcpy.
"""
from __future__ import annotations

import dataclasses

import torch

DTYPES: dict[str, torch.dtype] = {
    'float32': torch.float32,
    'float16': torch.float16,
    'bfloat16': torch.bfloat16,
}


@dataclasses.dataclass(frozen=True)
class ContextLayout:
    """Shape and element type of a planner context (mirrors the layout fields of the ROS descriptor)."""

    num_layers: int
    tokens_per_frame: int
    num_heads: int
    head_dim: int
    dtype: str = 'float32'

    def __post_init__(self):
        for name in ('num_layers', 'tokens_per_frame', 'num_heads', 'head_dim'):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f'ContextLayout.{name} must be a positive int, got {value!r}')
        if self.dtype not in DTYPES:
            raise ValueError(f'ContextLayout.dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}')

    @property
    def width(self) -> int:
        """Channels per token: heads * head_dim."""
        return self.num_heads * self.head_dim

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.num_layers, 2, self.tokens_per_frame, self.width)

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @property
    def itemsize(self) -> int:
        return torch.empty((), dtype=self.torch_dtype).element_size()

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def nbytes(self) -> int:
        return self.numel * self.itemsize

    def check(self, kv: torch.Tensor) -> None:
        """Raise ValueError naming the mismatch if `kv` does not follow this layout."""
        if not isinstance(kv, torch.Tensor):
            raise ValueError(f'context kv must be a torch.Tensor, got {type(kv).__name__}')
        if tuple(kv.shape) != self.shape:
            raise ValueError(f'context kv has shape {tuple(kv.shape)}, layout expects {self.shape} '
                             '[layers, K/V, tokens, heads*head_dim]')
        if kv.dtype != self.torch_dtype:
            raise ValueError(f'context kv has dtype {kv.dtype}, layout expects {self.dtype}')

    @staticmethod
    def dtype_name(dtype: torch.dtype) -> str:
        for name, value in DTYPES.items():
            if value == dtype:
                return name
        raise ValueError(f'unsupported context dtype {dtype}; use one of {sorted(DTYPES)}')


@dataclasses.dataclass
class PlannerContext:
    """One planner refresh: the current frame's per-layer K/V plus what the executor needs to use it.

    `kv` follows `layout` ([L, 2, T, H*D], keys already rotated at `frame_index`); the constructor checks it.
    `stamp_ns` is the capture time of the observation the planner encoded (ROS time, ns).
    """

    kv: torch.Tensor
    layout: ContextLayout
    frame_index: int                 # RoPE time of the current frame, in video frames
    memory_entries: int = 0          # past frames the prefill attended to
    stamp_ns: int = 0                # observation capture time, ns
    version: int = 0                 # refresh counter (assigned by the channel writer when 0)
    session_id: int = 0              # planner process identity (assigned by the channel writer when 0)

    def __post_init__(self):
        self.layout.check(self.kv)

    def keys(self, layer: int) -> torch.Tensor:
        """[T, H*D] post-RoPE keys of one layer."""
        return self.kv[layer, 0]

    def values(self, layer: int) -> torch.Tensor:
        """[T, H*D] values of one layer."""
        return self.kv[layer, 1]
