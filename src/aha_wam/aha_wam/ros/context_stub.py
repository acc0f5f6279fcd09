"""Stand-in planner and executor processes for the context channel, over real DDS.

    python -m aha_wam.ros.context_stub write --transport shm --layout 8,36,2,128,float32 --count 20
    python -m aha_wam.ros.context_stub read  --count 20 --verify

`write` publishes deterministic contexts (content = seeded random values, the low byte of every element XOR a
per-version mask, so every element changes between versions) through `ContextWriter` and descriptors on the
context topic; `read` subscribes, reads each descriptor with `ContextReader`, checks the bytes against the
same recipe and prints one JSON line per message plus a summary. The context's `stamp_ns` is the wall-clock
time just before `publish()`, so the reader's `latency_ms` is publish -> usable-in-reader (same host, same
clock). Used by the cross-process tests and by bench/context_channel.py.

Both roles shut down cleanly on SIGINT / SIGTERM (the writer unlinks its segment); `write --count 0`
publishes until stopped.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import time

import numpy as np
import rclpy
import torch
from rclpy.executors import ExternalShutdownException

from aha_wam.context import ContextLayout, ContextReader, ContextWriter, PlannerContext
from aha_wam.context.inline import tensor_bytes
from aha_wam.ros.context_msg import CONTEXT_TOPIC, context_qos, descriptor_to_msg, msg_to_descriptor
from aha_wam_msgs.msg import PlannerContext as PlannerContextMsg


def parse_layout(text: str) -> ContextLayout:
    """'L,T,H,D[,dtype]' -> ContextLayout."""
    parts = text.split(',')
    if len(parts) not in (4, 5):
        raise argparse.ArgumentTypeError(f'layout must be L,T,H,D[,dtype], got {text!r}')
    try:
        return ContextLayout(*(int(p) for p in parts[:4]), *(parts[4:] or ['float32']))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


class Content:
    """Deterministic context bytes for (seed, version): random finite values of the layout's dtype, with the
    lowest byte of every element XOR a per-version mask (1..127: mantissa bits only in float32, float16 and
    bfloat16, so every element changes between versions and none becomes NaN or inf, which readers reject)."""

    def __init__(self, layout: ContextLayout, seed: int):
        self.layout = layout
        g = torch.Generator().manual_seed(seed)
        values = torch.randn(layout.numel, generator=g).to(layout.torch_dtype)
        self.base = values.view(torch.uint8).numpy().copy()
        self._low = self.base.reshape(layout.numel, layout.itemsize)[:, 0]   # little endian: the lowest byte
        self._buf = np.empty_like(self.base)

    def bytes_for(self, version: int, out: np.ndarray | None = None) -> np.ndarray:
        out = self._buf if out is None else out
        np.copyto(out, self.base)
        np.bitwise_xor(self._low, np.uint8(version % 127 + 1), out=out.reshape(-1, self.layout.itemsize)[:, 0])
        return out

    def context(self, version: int, frame_index: int = 0) -> PlannerContext:
        kv = torch.from_numpy(self.bytes_for(version)).view(self.layout.torch_dtype).reshape(self.layout.shape)
        return PlannerContext(kv=kv, layout=self.layout, frame_index=frame_index, memory_entries=version % 7,
                              version=version)


def _emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


def _terminate_on_sigterm() -> None:
    # SIGTERM -> the same clean path as SIGINT (finally blocks run, the writer unlinks its segment).
    def handler(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def write(args) -> int:
    node = rclpy.create_node(args.node_name)
    pub = node.create_publisher(PlannerContextMsg, args.topic, context_qos())
    writer = ContextWriter(args.layout, args.node_name, transport=args.transport, num_slots=args.num_slots,
                           prefix=args.prefix, checksum=args.checksum, frame_period=0.1, video_stride=4,
                           video_horizon=16, control_period=0.025, frame_id='ego_camera_optical')
    content = Content(args.layout, args.seed)
    _emit(event='ready', role='writer', pid=os.getpid(), segment=writer.segment_name,
          session_id=writer.session_id, transport=args.transport)
    try:
        deadline = time.monotonic() + args.timeout
        while args.wait_subscriber and pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.02)
        version = 0
        next_t = time.monotonic()
        while args.count == 0 or version < args.count:
            version += 1
            ctx = content.context(version, frame_index=version)          # content prepared before the clock starts
            ctx.stamp_ns = time.time_ns()                                 # publish start, wall clock
            t0 = time.perf_counter()
            desc = writer.publish(ctx)
            msg = descriptor_to_msg(desc)
            pub.publish(msg)
            t1 = time.perf_counter()
            if args.verbose:
                _emit(event='published', version=version, slot=desc.slot, publish_ms=round(1e3 * (t1 - t0), 3))
            next_t += args.period
            while True:   # serve DDS while waiting for the next period
                left = next_t - time.monotonic()
                if left <= 0:
                    break
                rclpy.spin_once(node, timeout_sec=min(left, 0.05))
        _emit(event='done', role='writer', published=version)
        end = time.monotonic() + args.linger
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.05)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        writer.close()
        _emit(event='closed', role='writer', segment=writer.segment_name)
        node.destroy_node()
    return 0


def read(args) -> int:
    node = rclpy.create_node(args.node_name)
    reader = ContextReader(max_age_s=args.max_age)
    if args.layout is not None:
        reader.prepare(args.layout)
    contents: dict = {}
    latencies: list[float] = []
    state = {'accepted': 0, 'received': 0, 'inexact': 0, 'handle_ms': []}

    def on_msg(msg):
        t_recv = time.time_ns()
        desc = msg_to_descriptor(msg)
        got = reader.read(desc)
        t_done = time.time_ns()
        state['received'] += 1
        event = {'event': 'read', 'version': int(desc.version), 'session_id': int(desc.session_id),
                 'frame_id': desc.frame_id,
                 'transport': desc.transport_name, 'ok': bool(got)}
        if got:
            state['accepted'] += 1
            latency_ms = (t_done - desc.stamp_ns) / 1e6
            latencies.append(latency_ms)
            event['latency_ms'] = round(latency_ms, 3)
            event['read_ms'] = round((t_done - t_recv) / 1e6, 3)
            if args.verify:
                key = (got.layout, args.seed)
                if key not in contents:
                    contents[key] = Content(got.layout, args.seed)
                want = contents[key].bytes_for(int(got.version))
                exact = bool(np.array_equal(tensor_bytes(got.kv), want))
                event['exact'] = exact
                state['inexact'] += 0 if exact else 1
        else:
            event['reason'] = got.reason
            event['detail'] = got.detail[:200]
        if not args.quiet:
            print(json.dumps(event), flush=True)

    node.create_subscription(PlannerContextMsg, args.topic, on_msg, context_qos())
    _emit(event='ready', role='reader', pid=os.getpid())
    try:
        deadline = time.monotonic() + args.timeout
        while (args.count == 0 or state['accepted'] < args.count) and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        lat = sorted(latencies)
        summary = {'event': 'summary', 'role': 'reader', 'received': state['received'],
                   'accepted': state['accepted'], 'inexact': state['inexact'],
                   'rejections': {k: v for k, v in reader.rejections.items() if v},
                   'latency_ms': {'n': len(lat),
                                  'median': round(statistics.median(lat), 3) if lat else None,
                                  'p95': round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 3) if lat else None,
                                  'all': [round(x, 3) for x in latencies]}}
        reader.close()   # unmaps only: readers never unlink
        print(json.dumps(summary), flush=True)
        node.destroy_node()
    return 0 if state['inexact'] == 0 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='context_stub', description=__doc__.split('\n')[0])
    parser.add_argument('role', choices=['write', 'read'])
    parser.add_argument('--transport', choices=['shm', 'inline', 'cuda_ipc'], default='shm')
    parser.add_argument('--layout', type=parse_layout, default=None,
                        help='L,T,H,D[,dtype] (writer: required; reader: pre-allocates buffers)')
    parser.add_argument('--count', type=int, default=10, help='contexts to publish / accept (0: until stopped)')
    parser.add_argument('--period', type=float, default=0.1, help='writer: seconds between contexts')
    parser.add_argument('--seed', type=int, default=3)
    parser.add_argument('--node-name', default=None)
    parser.add_argument('--topic', default=CONTEXT_TOPIC)
    parser.add_argument('--prefix', default='aha_wam_ctx', help='segment name prefix')
    parser.add_argument('--num-slots', type=int, default=3)
    parser.add_argument('--checksum', default='auto')
    parser.add_argument('--no-wait-subscriber', dest='wait_subscriber', action='store_false')
    parser.add_argument('--linger', type=float, default=1.0, help='writer: keep serving after the last context, s')
    parser.add_argument('--timeout', type=float, default=60.0)
    parser.add_argument('--max-age', type=float, default=None)
    parser.add_argument('--verify', action='store_true', help='reader: check every byte against the recipe')
    parser.add_argument('--quiet', action='store_true', help='reader: summary only')
    parser.add_argument('--verbose', action='store_true', help='writer: one line per publish')
    args, ros_args = parser.parse_known_args(argv)
    if args.role == 'write' and args.layout is None:
        parser.error('write needs --layout')
    args.node_name = args.node_name or ('planner' if args.role == 'write' else 'executor')
    _terminate_on_sigterm()
    rclpy.init(args=[sys.argv[0], *ros_args], signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
    try:
        return write(args) if args.role == 'write' else read(args)
    finally:
        rclpy.try_shutdown()


if __name__ == '__main__':
    sys.exit(main())
