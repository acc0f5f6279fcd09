"""Inline payload codec: the context tensor as the bytes of the message's `uint8[]` field.

Used when planner and executor run on different hosts and for bag recording. Every conversion is one
memcpy through the buffer protocol (never a per-element Python loop): rclpy copies `uint8[]` fields via the
buffer protocol only for array.array / numpy inputs, and `byte[]` would take the slow path
(ros2/ros2#1151), which is why the message uses `uint8[]`.
"""
from __future__ import annotations

import array

import numpy as np
import torch

from aha_wam.context.layout import ContextLayout


def tensor_bytes(kv: torch.Tensor) -> np.ndarray:
    """Flat uint8 numpy view of a tensor's bytes (moved to CPU / made contiguous only if needed)."""
    t = kv.detach()
    if t.device.type != 'cpu':
        t = t.cpu()
    t = t.contiguous()
    return t.view(torch.uint8).reshape(-1).numpy()


def encode_payload(kv: torch.Tensor) -> array.array:
    """The payload for the ROS message: an `array.array('B')` filled by one `frombytes` memcpy."""
    out = array.array('B')
    out.frombytes(tensor_bytes(kv))   # frombytes takes any buffer: one copy, no Python-level iteration
    return out


def payload_view(payload) -> np.ndarray:
    """Zero-copy uint8 view of a received payload (array.array, bytes, memoryview, numpy)."""
    if payload is None:
        return np.empty(0, np.uint8)
    if isinstance(payload, np.ndarray):
        return payload.reshape(-1).view(np.uint8)
    return np.frombuffer(payload, dtype=np.uint8)


def bytes_to_tensor(data: np.ndarray, layout: ContextLayout) -> torch.Tensor:
    """Interpret `layout.nbytes` uint8 bytes as the [L, 2, T, H*D] context (shares memory with `data`)."""
    if data.size != layout.nbytes:
        raise ValueError(f'payload has {data.size} bytes, layout needs {layout.nbytes}')
    if not data.flags.writeable:
        data = data.copy()   # torch.from_numpy refuses (warns on) read-only arrays; happens for bytes payloads
    return torch.from_numpy(data).view(layout.torch_dtype).reshape(layout.shape)


def decode_payload(payload, layout: ContextLayout, copy: bool = True) -> torch.Tensor:
    """The context tensor from a payload; `copy=False` shares memory with the payload buffer."""
    data = payload_view(payload)
    if copy:
        data = data.copy()
    return bytes_to_tensor(data, layout)
