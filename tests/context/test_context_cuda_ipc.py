"""CUDA IPC transport. The cross-process tests need a CUDA device and skip with the reason otherwise; the
CPU-side behaviour (clear errors, rejection reason) is tested everywhere."""
from __future__ import annotations

import dataclasses
import json
import signal
import textwrap

import pytest
import torch

from _context_support import JsonLines, segments_with, shm_prefix  # noqa: F401  (fixture)
from _support import spawn_python

from aha_wam.context import ContextDescriptor, ContextLayout, ContextReader, ContextWriter, ShmRing
from aha_wam.context.descriptor import TRANSPORT_CUDA_IPC

LAYOUT = ContextLayout(3, 16, 4, 32, 'bfloat16')


def test_cuda_ipc_without_cuda_fails_clearly(shm_prefix):
    if torch.cuda.is_available():
        pytest.skip('CPU-only behaviour: this machine has CUDA')
    with pytest.raises(RuntimeError, match='CUDA'):
        ContextWriter(LAYOUT, 'planner', prefix=shm_prefix, transport='cuda_ipc')
    assert segments_with(shm_prefix) == []
    # A CUDA IPC descriptor reaching a CPU-only executor is a counted rejection, not a crash.
    ring = ShmRing.create(shm_prefix + 'ctl', LAYOUT, 2, session_id=77, payload_on_device=True)
    try:
        desc = ContextDescriptor(session_id=77, version=1, transport=TRANSPORT_CUDA_IPC, segment_name=ring.name,
                                 slot=0, num_slots=2, slot_sequence=2)
        desc.set_layout(LAYOUT)
        ring.write_begin(0)
        ring.write_end(0, 1, 0, 0, 0, 0, 0)
        reader = ContextReader()
        got = reader.read(desc)
        assert got.reason == 'cuda_unavailable', got
        # An shm descriptor naming the device ring's control segment is refused too.
        assert reader.read(dataclasses.replace(desc, transport=0)).reason == 'bad_transport'
        ring.close()                 # the planner shuts down: its device ring must never be touched again
        assert reader.read(dataclasses.replace(desc, frame_id='late')).reason == 'segment_closed'
    finally:
        ring.close()


WRITER = textwrap.dedent('''
    import dataclasses, json, sys, torch
    from aha_wam.context import ContextLayout, ContextWriter, PlannerContext
    layout = ContextLayout(3, 16, 4, 32, 'bfloat16')
    w = ContextWriter(layout, 'planner', prefix=sys.argv[1], transport='cuda_ipc')
    descs = []
    for v in range(1, 5):
        g = torch.Generator(device='cuda').manual_seed(v)
        kv = torch.randn(layout.shape, generator=g, device='cuda').to(torch.bfloat16)
        d = w.publish(PlannerContext(kv=kv, layout=layout, frame_index=v))
        descs.append({k: val for k, val in dataclasses.asdict(d).items() if k != 'payload'})
    print(json.dumps(descs), flush=True)
    sys.stdin.readline()           # keep the device ring alive until the reader is done
    w.close()
    print('CLOSED', flush=True)
''')


def test_cuda_ipc_round_trip_between_processes_is_bit_exact(cuda_device, shm_prefix):
    import subprocess
    p = spawn_python('-c', WRITER, shm_prefix, stdin=subprocess.PIPE)
    try:
        line = p.stdout.readline()
        descs = [ContextDescriptor(**d) for d in json.loads(line)]
        reader = ContextReader()
        # 4 versions in a 3-slot ring: the first slot was reused.
        assert reader.read(descs[0]).reason == 'slot_overwritten'
        for d in descs[1:]:
            got = reader.read(d)
            assert got, got
            g = torch.Generator(device='cuda').manual_seed(d.version)
            want = torch.randn(LAYOUT.shape, generator=g, device='cuda').to(torch.bfloat16)
            assert got.kv.is_cuda and torch.equal(got.kv.view(torch.int16), want.view(torch.int16))
        p.stdin.write('\n')
        p.stdin.flush()
        assert 'CLOSED' in p.stdout.read()
        assert p.wait(30) == 0
        # The planner is gone: its device memory must not be read any more.
        assert reader.read(dataclasses.replace(descs[-1], frame_id='late')).reason == 'segment_closed'
        reader.close()
    finally:
        if p.poll() is None:
            p.kill()
    assert segments_with(shm_prefix) == []


def test_cuda_ipc_over_dds_with_stub_processes(cuda_device, shm_prefix):
    topic = f'/test/{shm_prefix}/context'
    reader = JsonLines(spawn_python('-m', 'aha_wam.ros.context_stub', 'read', '--count', '5', '--verify',
                                    '--timeout', '90', '--topic', topic))
    writer = JsonLines(spawn_python('-m', 'aha_wam.ros.context_stub', 'write', '--transport', 'cuda_ipc',
                                    '--layout', '4,16,2,32,bfloat16', '--count', '8', '--period', '0.15',
                                    '--prefix', shm_prefix, '--topic', topic, '--linger', '30'))
    try:
        summary = reader.wait(lambda e: e.get('event') == 'summary', timeout=120)
        assert summary['accepted'] == 5 and summary['inexact'] == 0, summary
        writer.proc.send_signal(signal.SIGINT)
        writer.wait(lambda e: e.get('event') == 'closed', timeout=30)
    finally:
        writer.stop()
        reader.stop()
    assert segments_with(shm_prefix) == []


def test_shm_transport_accepts_a_cuda_context(cuda_device, shm_prefix):
    """GPU planner on the shm transport: one device->host copy straight into the slot."""
    kv = torch.randn(LAYOUT.shape, device=cuda_device).to(torch.bfloat16)
    from aha_wam.context import PlannerContext
    with ContextWriter(LAYOUT, 'planner', prefix=shm_prefix, checksum='sampled') as w:
        got = ContextReader().read(w.publish(PlannerContext(kv=kv, layout=LAYOUT, frame_index=0)))
        assert got and torch.equal(got.kv.view(torch.int16), kv.cpu().view(torch.int16))
