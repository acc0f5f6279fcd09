"""`ContextDescriptor`: a ROS-free mirror of `aha_wam_msgs/PlannerContext`.

The channel code (writer, reader, codecs) speaks only this dataclass, so it is unit-testable without a ROS
graph; `aha_wam.ros.context_msg` converts it to and from the ROS message. Field names and meanings are those
of the .msg file (see src/aha_wam_msgs/msg/PlannerContext.msg); the header becomes `stamp_ns` + `frame_id`.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from aha_wam.context.layout import ContextLayout

# Transport and checksum codes: identical to the constants of aha_wam_msgs/PlannerContext.
TRANSPORT_SHM = 0
TRANSPORT_CUDA_IPC = 1
TRANSPORT_INLINE = 2
TRANSPORT_NAMES = {TRANSPORT_SHM: 'shm', TRANSPORT_CUDA_IPC: 'cuda_ipc', TRANSPORT_INLINE: 'inline'}

CHECKSUM_NONE = 0
CHECKSUM_CRC32 = 1
CHECKSUM_CRC32_SAMPLED = 2
CHECKSUM_NAMES = {CHECKSUM_NONE: 'none', CHECKSUM_CRC32: 'crc32', CHECKSUM_CRC32_SAMPLED: 'crc32_sampled'}


@dataclasses.dataclass
class ContextDescriptor:
    """Everything the ROS message carries, as plain Python values.

    `payload` is only set for the inline transport; it is any buffer (bytes, memoryview, array.array('B'),
    a uint8 numpy array) and is never copied element by element.
    """

    session_id: int = 0
    version: int = 0
    transport: int = TRANSPORT_SHM
    segment_name: str = ''
    slot: int = 0
    num_slots: int = 1
    slot_sequence: int = 0
    dtype: str = 'float32'
    num_layers: int = 0
    tokens_per_frame: int = 0
    num_heads: int = 0
    head_dim: int = 0
    memory_entries: int = 0
    nbytes: int = 0
    frame_index: int = 0
    frame_period: float = 0.0
    video_stride: int = 0
    video_horizon: int = 0
    control_period: float = 0.0
    payload: Any = None
    checksum_type: int = CHECKSUM_NONE
    checksum: int = 0
    stamp_ns: int = 0                 # header.stamp: capture time of the encoded observation, ns
    frame_id: str = ''                # header.frame_id

    def layout(self) -> ContextLayout:
        """The tensor layout this descriptor announces; raises ValueError if its fields are not a valid layout."""
        return ContextLayout(int(self.num_layers), int(self.tokens_per_frame), int(self.num_heads),
                             int(self.head_dim), str(self.dtype))

    def set_layout(self, layout: ContextLayout) -> None:
        self.dtype = layout.dtype
        self.num_layers = layout.num_layers
        self.tokens_per_frame = layout.tokens_per_frame
        self.num_heads = layout.num_heads
        self.head_dim = layout.head_dim
        self.nbytes = layout.nbytes

    @property
    def transport_name(self) -> str:
        return TRANSPORT_NAMES.get(self.transport, f'unknown({self.transport})')

    def summary(self) -> str:
        """One line for logs (never includes the payload)."""
        return (f'{self.transport_name} v{self.version} session={self.session_id:#x} seg={self.segment_name!r} '
                f'slot={self.slot}/{self.num_slots} seq={self.slot_sequence} '
                f'layout={self.num_layers}x2x{self.tokens_per_frame}x{self.num_heads}*{self.head_dim} '
                f'{self.dtype} nbytes={self.nbytes} frame={self.frame_index}')
