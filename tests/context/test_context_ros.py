"""Cross-process context channel over real DDS: writer and reader are separate processes (or the test
process publishes hand-made descriptors), with aha_wam_msgs/PlannerContext on a reliable, depth-1,
transient-local topic."""
from __future__ import annotations

import dataclasses
import signal
import time

import pytest
import rclpy
import torch

from _context_support import JsonLines, segments_with, shm_prefix  # noqa: F401  (fixture)
from _support import spawn_python

from aha_wam.context import ContextLayout, ContextWriter, PlannerContext
from aha_wam.ros.context_msg import context_qos, descriptor_to_msg, msg_to_descriptor
from aha_wam_msgs.msg import PlannerContext as PlannerContextMsg

pytestmark = pytest.mark.ros
STUB = ('-m', 'aha_wam.ros.context_stub')


def start(*args) -> JsonLines:
    return JsonLines(spawn_python(*STUB, *args))


def is_event(name, **match):
    return lambda e: e.get('event') == name and all(e.get(k) == v for k, v in match.items())


@pytest.mark.parametrize('transport,layout', [('shm', '4,16,2,32,bfloat16'), ('inline', '4,16,2,32,float16')])
def test_round_trip_between_processes_is_bit_exact(shm_prefix, transport, layout):
    topic = f'/test/{shm_prefix}/context'
    reader = start('read', '--count', '5', '--verify', '--timeout', '20', '--topic', topic)
    writer = start('write', '--transport', transport, '--layout', layout, '--count', '5', '--period', '0.25',
                   '--prefix', shm_prefix, '--topic', topic, '--linger', '30')
    try:
        summary = reader.wait(is_event('summary'), timeout=90)
        reads = [e for e in reader.events if e.get('event') == 'read']
        versions = [e['version'] for e in reads]
        # The descriptor topic is KEEP_LAST 1 (latest wins): on a loaded machine a newer descriptor may
        # replace one not yet acknowledged, so a version can be skipped; every one received must be exact.
        assert versions == sorted(set(versions)) and versions[-1] == 5 and len(versions) >= 3, reads
        assert all(e['exact'] for e in reads), reads
        assert summary['inexact'] == 0 and summary['rejections'] == {}, summary
        assert {e['transport'] for e in reads} == {transport}
        writer.wait(is_event('done'), timeout=30)
        writer.proc.send_signal(signal.SIGINT)             # clean shutdown while lingering
        writer.wait(is_event('closed'), timeout=30)
        assert writer.proc.wait(10) == 0
    finally:
        writer.stop()
        reader.stop()
    assert segments_with(shm_prefix) == []          # clean shutdown leaves nothing in /dev/shm


@pytest.fixture
def ros_node():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node('context_test_publisher', context=ctx)
    yield node
    node.destroy_node()
    rclpy.shutdown(context=ctx)


def test_malformed_descriptors_over_dds_are_rejected_and_the_reader_stays_up(shm_prefix, ros_node):
    topic = f'/test/{shm_prefix}/context'
    layout = ContextLayout(2, 8, 2, 16, 'float32')
    pub = ros_node.create_publisher(PlannerContextMsg, topic, context_qos())
    reader = start('read', '--count', '0', '--timeout', '120', '--topic', topic)
    try:
        reader.wait(is_event('ready'), timeout=60)
        deadline = time.monotonic() + 30
        while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pub.get_subscription_count() > 0, reader.output()
        with ContextWriter(layout, 'planner', prefix=shm_prefix) as w, \
                ContextWriter(layout, transport='inline') as wi:
            kv = torch.arange(layout.numel, dtype=torch.float32).reshape(layout.shape)
            good = w.publish(PlannerContext(kv=kv, layout=layout, frame_index=1))
            good_inline = wi.publish(PlannerContext(kv=kv, layout=layout, frame_index=1))
            bad_payload = bytearray(good_inline.payload)
            bad_payload[3] ^= 0x10
            cases = [
                ('missing_segment', good, dict(segment_name=shm_prefix + 'gone')),
                ('bad_name', good, dict(segment_name='../../tmp/x')),
                ('slot_out_of_range', good, dict(slot=42)),
                ('layout_mismatch', good, dict(num_heads=1, head_dim=32)),
                ('checksum_mismatch', good, dict(checksum=good.checksum ^ 0xFFFF)),
                ('session_mismatch', good, dict(session_id=good.session_id ^ 4)),
                ('bad_descriptor', good, dict(dtype='complex128')),
                ('bad_transport', good, dict(transport=7)),
                ('checksum_mismatch', good_inline, dict(payload=bytes(bad_payload))),
                ('payload_size', good_inline, dict(payload=bytes(good_inline.payload)[:-4])),
                ('ok', good, {}),
                # An inline context may not claim the session the shm segment has proven (impersonation)...
                ('session_conflict', good_inline, dict(version=good.version + 1, session_id=good.session_id)),
                ('ok', good_inline, {}),                 # ...under its own session it is accepted
            ]
            for i, (expect, base, change) in enumerate(cases):
                desc = dataclasses.replace(base, frame_id=f'case{i}', **change)
                pub.publish(descriptor_to_msg(desc))
                event = reader.wait(is_event('read', frame_id=f'case{i}'), timeout=20)
                if expect == 'ok':
                    assert event['ok'], event
                else:
                    assert not event['ok'] and event['reason'] == expect, (expect, event)
                assert reader.proc.poll() is None, reader.output()      # still running
        out = reader.stop()
        summary = reader.wait(is_event('summary'), timeout=10)
        assert summary['accepted'] == 2, out
        assert summary['rejections'] == {'missing_segment': 1, 'bad_name': 1, 'slot_out_of_range': 1,
                                         'layout_mismatch': 1, 'checksum_mismatch': 2, 'session_mismatch': 1,
                                         'bad_descriptor': 1, 'bad_transport': 1, 'payload_size': 1,
                                         'session_conflict': 1}, summary
    finally:
        reader.stop()


def test_descriptor_message_conversion_round_trips_and_uses_the_array_fast_path():
    layout = ContextLayout(2, 4, 2, 8, 'bfloat16')
    with ContextWriter(layout, transport='inline', frame_period=0.2, video_stride=4, video_horizon=32,
                       control_period=0.05, frame_id='cam') as w:
        desc = w.publish(PlannerContext(kv=torch.randn(layout.shape).to(torch.bfloat16), layout=layout,
                                        frame_index=-3, memory_entries=4, stamp_ns=1_234_567_890_123))
    msg = descriptor_to_msg(desc)
    assert msg.payload is desc.payload                 # array.array('B') assigned as is: no copy
    back = msg_to_descriptor(msg)
    for f in dataclasses.fields(desc):
        if f.name != 'payload':
            assert getattr(back, f.name) == getattr(desc, f.name), f.name
    assert bytes(back.payload) == bytes(desc.payload)
    msg2 = descriptor_to_msg(dataclasses.replace(desc, payload=memoryview(bytes(desc.payload))))
    assert bytes(msg2.payload) == bytes(desc.payload)
    with pytest.raises(ValueError):
        descriptor_to_msg(dataclasses.replace(desc, slot=-1))


def test_killed_planner_is_reclaimed_on_restart_and_readers_never_unlink(shm_prefix):
    topic = f'/test/{shm_prefix}/context'
    layout = '2,8,2,16,float32'
    args = ('write', '--layout', layout, '--count', '0', '--period', '0.1', '--prefix', shm_prefix, '--topic',
            topic, '--no-wait-subscriber')
    listener = start('read', '--count', '0', '--verify', '--timeout', '120', '--topic', topic)
    planner = start(*args)
    planner2 = short_reader = None
    try:
        ready = planner.wait(is_event('ready'), timeout=60)
        name = ready['segment']
        assert segments_with(shm_prefix) == [name]
        # A reader process that reads and exits normally does not unlink the planner's segment.
        short_reader = start('read', '--count', '2', '--verify', '--timeout', '60', '--topic', topic)
        assert short_reader.wait(is_event('summary'), timeout=60)['accepted'] == 2
        assert short_reader.proc.wait(10) == 0
        assert segments_with(shm_prefix) == [name]
        listener.wait(is_event('read', session_id=ready['session_id'], ok=True), timeout=30)
        # SIGKILL: no cleanup runs, the segment stays behind.
        planner.proc.send_signal(signal.SIGKILL)
        planner.proc.wait(10)
        assert segments_with(shm_prefix) == [name]
        # The restarted planner reclaims it under the same name, with a new session.
        planner2 = start(*args)
        ready2 = planner2.wait(is_event('ready'), timeout=60)
        assert ready2['segment'] == name and ready2['session_id'] != ready['session_id'], planner2.output()
        # The long-lived reader follows the restart (remaps the new segment once) and reads exact contexts.
        event = listener.wait(is_event('read', session_id=ready2['session_id'], ok=True), timeout=30)
        assert event['exact'], event
        assert listener.proc.poll() is None
        # Clean shutdown unlinks.
        planner2.proc.send_signal(signal.SIGINT)
        planner2.wait(is_event('closed'), timeout=30)
        assert planner2.proc.wait(15) == 0, planner2.output()
        assert segments_with(shm_prefix) == []
        listener.stop()
        summary = listener.wait(is_event('summary'), timeout=10)
        assert summary['inexact'] == 0 and summary['accepted'] >= 2, summary
    finally:
        for p in (planner, planner2, short_reader, listener):
            if p is not None:
                p.stop()
