"""Context probe: two processes exchange aha_wam_msgs/PlannerContext over DDS and check every field.

    python -m aha_wam.ros.context_probe talk   --count 20 --payload-bytes 1048576
    python -m aha_wam.ros.context_probe listen --count 20 --payload-bytes 1048576

Both sides build message i deterministically from (seed, i), so the listener can compare every field of
what arrived against what must have been sent, bit for bit, including an inline payload. The listener
prints one JSON line with the outcome and the publish-to-receive latency. It is the smallest end-to-end
check that the ROS toolchain, the custom interfaces and DDS work (`aha-wam probe`, the foundation tests).
"""
from __future__ import annotations

import argparse
import array
import json
import statistics
import sys
import time
import zlib

import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from aha_wam_msgs.msg import PlannerContext

TOPIC = '/aha_wam/probe/context'
# Keep every message: the probe checks each one (the real context topic keeps only the latest).
QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.RELIABLE,
                 durability=DurabilityPolicy.TRANSIENT_LOCAL)

# Scalar fields of PlannerContext besides header/payload, and how to fill them for message i.
_SCALARS = {
    'session_id': lambda rng, i: int(rng.integers(1, 2**63)),
    'version': lambda rng, i: i + 1,
    'transport': lambda rng, i: PlannerContext.TRANSPORT_INLINE,
    'segment_name': lambda rng, i: f'aha_wam_probe_{i:04d}_ü',   # non-ASCII survives the round trip
    'slot': lambda rng, i: int(rng.integers(0, 2**32)),
    'num_slots': lambda rng, i: int(rng.integers(1, 2**32)),
    'slot_sequence': lambda rng, i: int(rng.integers(0, 2**64, dtype=np.uint64)),
    'dtype': lambda rng, i: ['float32', 'float16', 'bfloat16'][i % 3],
    'num_layers': lambda rng, i: int(rng.integers(1, 64)),
    'tokens_per_frame': lambda rng, i: int(rng.integers(1, 512)),
    'num_heads': lambda rng, i: int(rng.integers(1, 64)),
    'head_dim': lambda rng, i: int(rng.integers(1, 256)),
    'memory_entries': lambda rng, i: int(rng.integers(0, 16)),
    'nbytes': lambda rng, i: int(rng.integers(0, 2**63)),
    'frame_index': lambda rng, i: int(rng.integers(-2**62, 2**62)),
    'frame_period': lambda rng, i: float(rng.normal()),
    'video_stride': lambda rng, i: int(rng.integers(1, 64)),
    'video_horizon': lambda rng, i: int(rng.integers(1, 1024)),
    'control_period': lambda rng, i: float(rng.random()),
    'checksum_type': lambda rng, i: PlannerContext.CHECKSUM_CRC32,
}


def expected_message(seed: int, index: int, payload_bytes: int) -> PlannerContext:
    """Message `index` of a probe run: every field set to a value derived from (seed, index)."""
    rng = np.random.default_rng([seed, index])
    msg = PlannerContext()
    msg.header.frame_id = f'probe_camera_{index}'
    msg.header.stamp.sec = int(rng.integers(0, 2**31))
    msg.header.stamp.nanosec = int(rng.integers(0, 10**9))
    for name, make in _SCALARS.items():
        setattr(msg, name, make(rng, index))
    data = rng.integers(0, 256, payload_bytes, dtype=np.uint8).tobytes()
    payload = array.array('B')
    payload.frombytes(data)          # one memcpy: the rclpy fast path for uint8[]
    msg.payload = payload
    msg.checksum = zlib.crc32(data)
    return msg


def field_mismatches(got: PlannerContext, want: PlannerContext) -> list[str]:
    """Names of the fields that differ (payload compared byte for byte)."""
    bad = [name for name in _SCALARS if getattr(got, name) != getattr(want, name)]
    if (got.header.frame_id, got.header.stamp.sec, got.header.stamp.nanosec) != \
            (want.header.frame_id, want.header.stamp.sec, want.header.stamp.nanosec):
        bad.append('header')
    if got.checksum != want.checksum:
        bad.append('checksum')
    if memoryview(got.payload).tobytes() != memoryview(want.payload).tobytes():
        bad.append('payload')
    return bad


def talk(args) -> int:
    node = Node('context_probe_talker')
    pub = node.create_publisher(PlannerContext, TOPIC, QOS)
    # Wait for the listener so that the test measures delivery, not discovery.
    deadline = time.monotonic() + args.timeout
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    if pub.get_subscription_count() == 0:
        print(json.dumps({'role': 'talker', 'ok': False, 'error': 'no listener discovered'}), flush=True)
        return 1
    messages = [expected_message(args.seed, i, args.payload_bytes) for i in range(args.count)]
    for msg in messages:
        pub.publish(msg)
        time.sleep(args.period)
    # Keep the publisher alive until the listener has everything (transient local + reliable).
    end = time.monotonic() + args.linger
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    print(json.dumps({'role': 'talker', 'ok': True, 'sent': args.count}), flush=True)
    return 0


def listen(args) -> int:
    node = Node('context_probe_listener')
    received: dict[int, tuple[float, PlannerContext]] = {}
    node.create_subscription(PlannerContext, TOPIC, lambda m: received.setdefault(m.version, (time.time(), m)), QOS)
    print(json.dumps({'role': 'listener', 'ready': True}), flush=True)
    deadline = time.monotonic() + args.timeout
    while len(received) < args.count and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    errors = {}
    for i in range(args.count):
        if i + 1 not in received:
            errors[i] = ['missing']
            continue
        bad = field_mismatches(received[i + 1][1], expected_message(args.seed, i, args.payload_bytes))
        if bad:
            errors[i] = bad
    arrivals = sorted(t for t, _ in received.values())
    report = {
        'role': 'listener',
        'ok': not errors,
        'received': len(received),
        'expected': args.count,
        'payload_bytes': args.payload_bytes,
        'mismatches': {str(k): v for k, v in errors.items()},
        'mean_interarrival_ms': round(1e3 * statistics.mean(np.diff(arrivals)), 3) if len(arrivals) > 2 else None,
    }
    print(json.dumps(report), flush=True)
    return 0 if report['ok'] else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='context_probe', description=__doc__.split('\n')[0])
    parser.add_argument('role', choices=['talk', 'listen'])
    parser.add_argument('--count', type=int, default=10, help='messages to exchange')
    parser.add_argument('--payload-bytes', type=int, default=1 << 20, help='inline payload size, bytes')
    parser.add_argument('--seed', type=int, default=7, help='content seed (both sides must agree)')
    parser.add_argument('--period', type=float, default=0.02, help='seconds between messages')
    parser.add_argument('--timeout', type=float, default=30.0, help='discovery / receive timeout, s')
    parser.add_argument('--linger', type=float, default=2.0, help='talker keeps serving this long, s')
    args, ros_args = parser.parse_known_args(argv)
    rclpy.init(args=[sys.argv[0], *ros_args])
    try:
        return talk(args) if args.role == 'talk' else listen(args)
    finally:
        rclpy.try_shutdown()


if __name__ == '__main__':
    sys.exit(main())
