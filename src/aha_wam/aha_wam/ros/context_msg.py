"""`ContextDescriptor` <-> `aha_wam_msgs/PlannerContext`, plus the topic's name and QoS.

The payload goes through the buffer-protocol fast path in both directions: an `array.array('B')` filled by
`frombytes` (one memcpy) is assigned to the `uint8[]` field, and received payloads (array.array) are handed
on as is, to be viewed with `np.frombuffer`; no per-element Python loop anywhere (rclpy's slow paths cost
seconds per MB, see ../shared/notes/ros2.md section 1).
"""
from __future__ import annotations

import array

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from aha_wam.context.descriptor import ContextDescriptor
from aha_wam_msgs.msg import PlannerContext as PlannerContextMsg

CONTEXT_TOPIC = '/aha_wam/planner/context'

_SCALARS = ('session_id', 'version', 'transport', 'segment_name', 'slot', 'num_slots', 'slot_sequence', 'dtype',
            'num_layers', 'tokens_per_frame', 'num_heads', 'head_dim', 'memory_entries', 'nbytes', 'frame_index',
            'frame_period', 'video_stride', 'video_horizon', 'control_period', 'checksum_type', 'checksum')
_FLOATS = ('frame_period', 'control_period')
_BITS = {'transport': 8, 'checksum_type': 8, 'slot': 32, 'num_slots': 32, 'num_layers': 32, 'tokens_per_frame': 32,
         'num_heads': 32, 'head_dim': 32, 'memory_entries': 32, 'video_stride': 32, 'video_horizon': 32,
         'session_id': 64, 'version': 64, 'slot_sequence': 64, 'nbytes': 64, 'checksum': 64}
_STRINGS = ('segment_name', 'dtype')


# Descriptors an executor's subscription keeps (and its ContextInbox holds) between two control updates.
CONTEXT_QUEUE_DEPTH = 32


def context_qos() -> QoSProfile:
    """Planner side: reliable, keep last 1, transient local (a late-joining executor gets the newest at once)."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


def context_subscription_qos(depth: int = CONTEXT_QUEUE_DEPTH) -> QoSProfile:
    """Executor side: as `context_qos` but keeping `depth` descriptors. Anyone on the domain can publish on
    the topic; with depth 1, junk arriving between the planner's descriptor and the executor's next look
    replaced it (flooding). Every queued descriptor is handed to a ContextInbox, which examines them all."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(depth), reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


def _as_byte_array(payload) -> array.array:
    if payload is None:
        return array.array('B')
    if isinstance(payload, array.array) and payload.typecode == 'B':
        return payload                       # already the fast-path type: no copy
    out = array.array('B')
    out.frombytes(memoryview(payload).cast('B'))   # any C-contiguous buffer: one memcpy
    return out


def descriptor_to_msg(desc: ContextDescriptor, msg: PlannerContextMsg | None = None) -> PlannerContextMsg:
    """Fill (or create) a PlannerContext message from a descriptor. Raises ValueError on unencodable values."""
    msg = PlannerContextMsg() if msg is None else msg
    try:
        for name in _SCALARS:
            value = getattr(desc, name)
            if name in _FLOATS:
                value = float(value)
            elif name in _STRINGS:
                value = str(value)
            else:
                value = int(value)
                if name in _BITS and not 0 <= value < (1 << _BITS[name]):
                    raise ValueError(f'{name}={value} does not fit uint{_BITS[name]}')
                if name == 'frame_index' and not -(1 << 63) <= value < (1 << 63):
                    raise ValueError(f'frame_index={value} does not fit int64')
            setattr(msg, name, value)
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(desc.stamp_ns), 1_000_000_000)
        msg.header.frame_id = str(desc.frame_id)
        payload = _as_byte_array(desc.payload)
        if hasattr(msg, '_payload'):
            # The generated setter copies with array.array('B', value) unless ROS_PYTHON_CHECK_FIELDS is on
            # (50-80 ms at 44 MB); with checks on it stores an array.array('B') as is. Store it as is always:
            # same result as the checked path, without the copy.
            msg._payload = payload
        else:  # pragma: no cover - other rosidl generators
            msg.payload = payload
    except (TypeError, ValueError, AssertionError, OverflowError) as e:
        raise ValueError(f'descriptor cannot be encoded as aha_wam_msgs/PlannerContext: {e}') from e
    return msg


def msg_to_descriptor(msg: PlannerContextMsg) -> ContextDescriptor:
    """A descriptor from a received message; the payload stays the message's buffer (no copy)."""
    desc = ContextDescriptor(**{name: getattr(msg, name) for name in _SCALARS})
    desc.stamp_ns = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
    desc.frame_id = msg.header.frame_id
    desc.payload = msg.payload if len(msg.payload) else None
    return desc
