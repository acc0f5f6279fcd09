"""ROS-free tests of the context channel: ring, seqlock, descriptor validation, ownership, codecs."""
from __future__ import annotations

import dataclasses
import os
import signal
import stat
import textwrap

import numpy as np
import pytest
import torch

from _context_support import segments_with, shm_prefix  # noqa: F401  (fixture)
from _support import spawn_python

from aha_wam.context import (REJECTION_REASONS, ContextDescriptor, ContextLayout, ContextReader, ContextWriter,
                             PlannerContext, Rejection, RingError, SegmentBusy, ShmRing, segment_name,
                             validate_segment_name)
from aha_wam.context import integrity
from aha_wam.context.descriptor import CHECKSUM_CRC32, CHECKSUM_CRC32_SAMPLED, CHECKSUM_NONE
from aha_wam.context.inline import decode_payload, encode_payload
from aha_wam.context.shm_ring import FORMAT_VERSION, HEADER_BYTES, H_FORMAT, H_MAGIC, inspect_segment

SMALL = ContextLayout(2, 8, 2, 16, 'float32')


def make_ctx(layout: ContextLayout, seed: int, frame_index: int = 0) -> PlannerContext:
    g = torch.Generator().manual_seed(seed)
    kv = torch.randn(layout.shape, generator=g).to(layout.torch_dtype)
    return PlannerContext(kv=kv, layout=layout, frame_index=frame_index, memory_entries=seed % 5,
                          stamp_ns=1_700_000_000_000_000_000 + seed)


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and \
        a.contiguous().view(torch.uint8).numpy().tobytes() == b.contiguous().view(torch.uint8).numpy().tobytes()


@pytest.fixture
def writer(shm_prefix):
    w = ContextWriter(SMALL, 'planner', prefix=shm_prefix, num_slots=3)
    yield w
    w.close()


# ------------------------------------------------------------------------------------------ round trips
@pytest.mark.parametrize('dtype', ['float32', 'float16', 'bfloat16'])
@pytest.mark.parametrize('checksum', ['auto', 'sampled', 'none'])
def test_shm_round_trip_is_bit_exact(shm_prefix, dtype, checksum):
    layout = ContextLayout(3, 5, 2, 8, dtype)
    with ContextWriter(layout, 'planner', prefix=shm_prefix, checksum=checksum) as w, ContextReader() as r:
        for i in range(7):     # more than num_slots: slots are reused
            ctx = make_ctx(layout, i, frame_index=10 + i)
            d = w.publish(ctx)
            got = r.read(d)
            assert got, got
            assert same_bits(got.kv, ctx.kv)
            assert (got.version, got.frame_index, got.memory_entries, got.stamp_ns, got.session_id) == \
                (i + 1, 10 + i, ctx.memory_entries, ctx.stamp_ns, w.session_id)
            assert d.slot == i % 3 and d.slot_sequence % 2 == 0 and d.nbytes == layout.nbytes


def test_inline_round_trip_is_bit_exact_and_full_crc():
    layout = ContextLayout(2, 3, 4, 8, 'bfloat16')
    w = ContextWriter(layout, transport='inline')
    ctx = make_ctx(layout, 1)
    d = w.publish(ctx)
    assert d.segment_name == '' and d.checksum_type == CHECKSUM_CRC32 and len(d.payload) == layout.nbytes
    got = ContextReader().read(d)
    assert got and same_bits(got.kv, ctx.kv)
    assert same_bits(decode_payload(encode_payload(ctx.kv), layout), ctx.kv)
    bad = bytearray(d.payload)
    bad[5] ^= 1
    r = ContextReader()
    assert r.read(dataclasses.replace(d, payload=bytes(bad))).reason == 'checksum_mismatch'
    assert r.read(dataclasses.replace(d, payload=bytes(d.payload)[:-1])).reason == 'payload_size'


# ------------------------------------------------------------------------------------------ naming, ownership
@pytest.mark.parametrize('name', ['', 'a/b', '../etc/passwd', '/abs', '.hidden', 'a..b', 'sp ace', 'x' * 201,
                                  'nul\0', 'tab\t', None, 5])
def test_unsafe_segment_names_are_refused(name):
    with pytest.raises(RingError) as e:
        validate_segment_name(name)
    assert e.value.reason == 'bad_name'


def test_segment_name_is_prefix_namespace_node_domain():
    assert segment_name('planner', 17) == 'aha_wam_ctx.planner.d17'
    assert segment_name('planner', 3, namespace='/left') == 'aha_wam_ctx.left.planner.d3'
    with pytest.raises(RingError):
        segment_name('plan/ner', 3)
    with pytest.raises(RingError):
        ContextWriter(SMALL, segment_name='../escape')


def test_segment_is_owner_only_and_unlinked_on_close(shm_prefix):
    w = ContextWriter(SMALL, 'planner', prefix=shm_prefix)
    path = '/dev/shm/' + w.segment_name
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.stat(path).st_uid == os.geteuid()
    r = ContextReader()
    assert r.read(w.publish(make_ctx(SMALL, 0)))
    r.close()                                  # a reader closing never unlinks
    assert os.path.exists(path)
    w.close()
    assert not os.path.exists(path) and segments_with(shm_prefix) == []
    with pytest.raises(RuntimeError):
        w.publish(make_ctx(SMALL, 1))


def test_reader_process_exit_never_unlinks(shm_prefix, writer):
    d = writer.publish(make_ctx(SMALL, 0))
    code = textwrap.dedent(f'''
        import sys
        from aha_wam.context import ContextReader, ContextDescriptor
        d = ContextDescriptor(**{dataclasses.asdict(d)!r})
        got = ContextReader().read(d)
        print('OK' if got else got)
        sys.exit(0 if got else 1)   # normal interpreter exit: atexit hooks and finalizers run
    ''')
    p = spawn_python('-c', code)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 0, out
    assert 'OK' in out
    assert os.path.exists('/dev/shm/' + writer.segment_name)
    assert ContextReader().read(writer.publish(make_ctx(SMALL, 1)))


WRITER_SCRIPT = textwrap.dedent('''
    import sys, time
    from aha_wam.context import ContextLayout, ContextWriter
    w = ContextWriter(ContextLayout(2, 8, 2, 16), 'planner', prefix=sys.argv[1])
    print('READY', w.segment_name, flush=True)
    time.sleep(120)
''')


def test_killed_writer_segment_is_reclaimed_and_live_owner_is_not(shm_prefix):
    p = spawn_python('-c', WRITER_SCRIPT, shm_prefix)
    try:
        line = p.stdout.readline()
        assert line.startswith('READY'), line + p.stdout.read()
        name = line.split()[1]
        assert inspect_segment(name)['alive']
        with pytest.raises(SegmentBusy):            # a second planner may not steal a live segment
            ContextWriter(SMALL, 'planner', prefix=shm_prefix)
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        assert segments_with(shm_prefix) == [name]     # SIGKILL leaves the segment behind...
        info = inspect_segment(name)
        assert info['valid'] and not info['alive']
        with ContextWriter(SMALL, 'planner', prefix=shm_prefix) as w:   # ...and the restart reclaims it
            assert w.segment_name == name and w.session_id != info['session_id']
            assert ContextReader().read(w.publish(make_ctx(SMALL, 3)))
        assert segments_with(shm_prefix) == []
    finally:
        if p.poll() is None:
            p.kill()
        p.wait(10)


def test_garbage_segment_of_same_name_is_reclaimed(shm_prefix):
    name = segment_name('planner', None, prefix=shm_prefix)
    fd = os.open('/dev/shm/' + name, os.O_CREAT | os.O_RDWR, 0o600)
    os.write(fd, b'not a context segment')
    os.close(fd)
    with ContextWriter(SMALL, 'planner', prefix=shm_prefix) as w:
        assert ContextReader().read(w.publish(make_ctx(SMALL, 0)))


# ------------------------------------------------------------------------------------------ malformed input
def _fake_segment(name: str, header: bytes) -> None:
    fd = os.open('/dev/shm/' + name, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    os.write(fd, header.ljust(HEADER_BYTES + 3 * 4096, b'\0'))
    os.close(fd)


def test_malformed_descriptors_are_rejected_with_reasons(shm_prefix, writer):
    good = writer.publish(make_ctx(SMALL, 0))
    r = ContextReader()
    # Segments with a foreign magic and a future format version, built from the real header bytes.
    real = bytearray(open('/dev/shm/' + writer.segment_name, 'rb').read(HEADER_BYTES))
    h = np.frombuffer(real, np.uint64)
    h[H_MAGIC] = 0x1234
    _fake_segment(shm_prefix + 'magic', bytes(real))
    h[H_MAGIC] = int.from_bytes(b'AHAWAMKV', 'little')
    h[H_FORMAT] = FORMAT_VERSION + 1
    _fake_segment(shm_prefix + 'format', bytes(real))
    wrong_layout = dict(num_heads=4, head_dim=8)     # same nbytes, different layout
    cases = {
        'bad_magic': dict(segment_name=shm_prefix + 'magic'),
        'bad_format_version': dict(segment_name=shm_prefix + 'format'),
        'layout_mismatch': wrong_layout,
        'slot_out_of_range': dict(slot=3),
        'missing_segment': dict(segment_name=shm_prefix + 'nothere'),
        'bad_name': dict(segment_name='../../dev/shm/' + writer.segment_name),
        'checksum_mismatch': dict(checksum=good.checksum ^ 1),
        'session_mismatch': dict(session_id=good.session_id + 2),
        'bad_sequence': dict(slot_sequence=good.slot_sequence + 1),
        'bad_transport': dict(transport=9),
    }
    for reason, change in cases.items():
        got = r.read(dataclasses.replace(good, **change))
        assert isinstance(got, Rejection) and not got, (reason, got)
        assert got.reason == reason, (reason, got)
    more = [
        (dict(num_slots=5), 'slot_out_of_range'),
        (dict(segment_name='a/b'), 'bad_name'),
        (dict(version=0), 'bad_descriptor'),
        (dict(nbytes=good.nbytes + 4), 'bad_descriptor'),
        (dict(dtype='int8'), 'bad_descriptor'),
        (dict(num_layers=-1), 'bad_descriptor'),
        (dict(checksum_type=7), 'bad_descriptor'),
        (dict(version='x'), 'bad_descriptor'),
    ]
    for change, reason in more:
        assert r.read(dataclasses.replace(good, **change)).reason == reason, change
    assert r.read(None).reason == 'bad_descriptor'
    assert r.read('garbage').reason == 'bad_descriptor'
    counts = r.rejections
    assert set(counts) >= set(REJECTION_REASONS)
    assert sum(counts.values()) == len(cases) + len(more) + 2
    assert counts['bad_name'] == 2 and counts['slot_out_of_range'] == 2
    # The reader is unharmed: the good descriptor still reads.
    got = r.read(good)
    assert got and r.accepted == 1 and r.stats()['rejected'] == sum(counts.values())


def test_expected_layout_and_checksum_requirement(shm_prefix):
    with ContextWriter(SMALL, 'planner', prefix=shm_prefix, checksum='none') as w:
        d = w.publish(make_ctx(SMALL, 0))
        assert d.checksum_type == CHECKSUM_NONE
        assert ContextReader(require_checksum=True).read(d).reason == 'checksum_mismatch'
        assert ContextReader(expected_layout=ContextLayout(2, 8, 2, 16, 'float16')).read(d).reason == 'layout_mismatch'
        assert ContextReader(transports=('inline',)).read(d).reason == 'transport_disabled'
        assert ContextReader().read(d)


# ------------------------------------------------------------------------------------------ seqlock / tearing
def test_slot_being_written_is_rejected(writer):
    d = writer.publish(make_ctx(SMALL, 0))
    writer._ring.write_begin(d.slot)                 # writer died / is mid-write: seq odd
    assert ContextReader().read(d).reason == 'slot_busy'


class TearingReader(ContextReader):
    """Simulates the writer starting on the slot while the reader is half-way through its copy."""

    def __init__(self, writer, scribble=True, **kw):
        super().__init__(**kw)
        self.writer = writer
        self.scribble = scribble

    def _copy_payload(self, ring, slot, out):
        src = ring.payload(slot)
        half = out.size // 2
        np.copyto(out[:half], src[:half])
        wring = self.writer._ring
        wring.write_begin(slot)                      # seq -> odd, as the writer does before copying
        if self.scribble:
            wring.payload(slot)[:] = 0xAB            # new bytes land in the second half of our copy
        np.copyto(out[half:], src[half:])


@pytest.mark.parametrize('checksum', ['none', 'auto'])
def test_torn_copy_is_detected_by_the_seqlock(shm_prefix, checksum):
    with ContextWriter(SMALL, 'planner', prefix=shm_prefix, checksum=checksum) as w:
        d = w.publish(make_ctx(SMALL, 0))
        r = TearingReader(w)
        got = r.read(d)
        assert got.reason == 'torn' and r.accepted == 0 and r.rejections['torn'] == 1
        # After the (simulated) write completes, the old descriptor names an overwritten slot.
        w._ring.write_end(d.slot, 99, CHECKSUM_NONE, 0, 0, 0, 0)
        assert ContextReader().read(d).reason == 'slot_overwritten'


def test_overwritten_slot_is_rejected_and_newer_read_is_fine(writer):
    r = ContextReader()
    old = writer.publish(make_ctx(SMALL, 0))
    published = [writer.publish(make_ctx(SMALL, i + 1)) for i in range(3)]
    newest = published[-1]
    assert r.read(old).reason == 'slot_overwritten'
    assert r.read(newest)
    # Once v4 is accepted, an older genuine descriptor (v3, still in its slot) is stale...
    assert r.read(published[-2]).reason == 'stale_version'
    # ...and a forged claim of v3 for v4's slot is not what the slot holds.
    assert r.read(dataclasses.replace(newest, version=3)).reason == 'slot_overwritten'


@pytest.mark.parametrize('checksum,offset', [('auto', 1000), ('sampled', 4096 * 1 + 10), ('sampled', -1)])
def test_corrupted_payload_with_intact_seqlock_fails_the_checksum(shm_prefix, checksum, offset):
    """A scribble the seqlock cannot see (no sequence change): the checksum catches it.

    The sampled CRC only covers the first 64 bytes of each 4 KiB page and the last 64 bytes, so the
    scribble targets those (see integrity.py for why that trade-off is acceptable)."""
    layout = ContextLayout(2, 64, 4, 32, 'float32')    # 128 KiB: 32 pages
    with ContextWriter(layout, 'planner', prefix=shm_prefix, checksum=checksum) as w:
        d = w.publish(make_ctx(layout, 0))
        assert d.checksum_type == (CHECKSUM_CRC32 if checksum == 'auto' else CHECKSUM_CRC32_SAMPLED)
        w._ring.payload(d.slot)[offset] ^= 0xFF
        assert ContextReader().read(d).reason == 'checksum_mismatch'


def test_sampled_crc_sees_every_page_and_the_length():
    data = np.random.default_rng(0).integers(0, 256, 10 * 4096 + 100, dtype=np.uint8)
    base = integrity.crc32_sampled(data)
    for page in range(10):
        d2 = data.copy()
        d2[page * 4096 + 7] ^= 1
        assert integrity.crc32_sampled(d2) != base
    assert integrity.crc32_sampled(data[:-1]) != base
    assert integrity.crc32_sampled(data) == base


# ------------------------------------------------------------------------------------------ reader behaviour
def test_last_good_context_is_served_until_max_age(writer):
    now = [100.0]
    r = ContextReader(max_age_s=0.5, clock=lambda: now[0])
    assert r.latest() is None
    d = writer.publish(make_ctx(SMALL, 0))
    ctx = r.read(d)
    assert r.read(dataclasses.replace(d, slot=7)).reason == 'slot_out_of_range'
    now[0] += 0.4
    assert r.latest() is ctx                        # a rejection does not drop the last good context
    assert r.read(d) is ctx                         # re-delivery of the same refresh is idempotent
    now[0] += 0.2
    assert r.latest() is None                       # too old
    stamp = ctx.stamp_ns
    assert r.latest(now_ns=stamp + 400_000_000) is ctx and r.latest(now_ns=stamp + 600_000_000) is None
    assert r.stats()['last_version'] == 1


def test_buffers_held_by_the_caller_are_never_overwritten(writer):
    r = ContextReader(pool_size=2)
    first = r.read(writer.publish(make_ctx(SMALL, 0)))
    keys = first.keys(0)                            # a view keeps the buffer alive too
    snapshot = first.kv.clone()
    del first
    for i in range(1, 8):
        assert r.read(writer.publish(make_ctx(SMALL, i)))
    assert torch.equal(keys, snapshot[0, 0])


def test_writer_refuses_contexts_that_do_not_fit(writer):
    other = ContextLayout(2, 8, 2, 16, 'float16')
    with pytest.raises(ValueError):
        writer.publish(make_ctx(other, 0))
    ctx = make_ctx(SMALL, 0)
    ctx.version = 5
    assert writer.publish(ctx).version == 5
    ctx.version = 5
    with pytest.raises(ValueError):
        writer.publish(ctx)
    ctx.version, ctx.session_id = 0, 1234
    with pytest.raises(ValueError):
        writer.publish(ctx)
    with pytest.raises(TypeError):
        writer.publish(torch.zeros(3))


def test_ring_attach_is_read_only(writer):
    writer.publish(make_ctx(SMALL, 0))
    ring = ShmRing.attach(writer.segment_name)
    try:
        with pytest.raises(RingError):
            ring.write_begin(0)
        with pytest.raises(ValueError):
            ring.payload(0)[0] = 1                   # the mapping itself is PROT_READ
    finally:
        ring.close()
    assert os.path.exists('/dev/shm/' + writer.segment_name)


def test_descriptor_dataclass_has_every_message_field():
    fields = {f.name for f in dataclasses.fields(ContextDescriptor)}
    msg_file = os.path.join(os.environ.get('AHA_WAM_ROOT', '.'), 'src/aha_wam_msgs/msg/PlannerContext.msg')
    names = set()
    for line in open(msg_file):
        line = line.split('#')[0].split()
        if len(line) >= 2 and '=' not in line[1] and not line[1][0].isupper():
            names.add(line[1])
    assert names - {'header'} <= fields, names - fields


def test_context_package_never_imports_ros():
    code = ('import sys, aha_wam.context, aha_wam.context.channel, aha_wam.context.cuda_ipc; '
            'bad = [m for m in sys.modules if m.startswith(("rclpy", "aha_wam_msgs", "aha_wam.ros"))]; '
            'print(bad); sys.exit(1 if bad else 0)')
    p = spawn_python('-c', code)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 0, out


def test_zero_copy_reserve_and_commit(writer):
    ctx = make_ctx(SMALL, 4)
    r = ContextReader()
    first = writer.publish(make_ctx(SMALL, 1))
    out = writer.reserve()
    assert out.shape == SMALL.shape and out.dtype == SMALL.torch_dtype
    with pytest.raises(RuntimeError):
        writer.publish(ctx)                        # one writer action at a time
    out.copy_(ctx.kv)
    busy = dataclasses.replace(first, slot=1, version=2, slot_sequence=2)
    assert r.read(busy).reason == 'slot_busy'      # reserved slot is not readable before commit
    d = writer.commit(frame_index=9, memory_entries=2, stamp_ns=5)
    got = r.read(d)
    assert got and same_bits(got.kv, ctx.kv) and (got.version, got.frame_index, got.memory_entries) == (2, 9, 2)
    assert r.read(first).reason == 'stale_version'
    with pytest.raises(RuntimeError):
        writer.commit(frame_index=0)
    with pytest.raises(ValueError):
        ContextWriter(SMALL, transport='inline').reserve()
