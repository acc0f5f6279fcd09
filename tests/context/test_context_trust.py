"""ROS-free tests of context trust and delivery: what a publisher on the ROS domain can forge, and what it can't.

An attacker sees every descriptor (session id, segment name, slot, version) but cannot write the planner's
owner-only segment. These tests play that attacker against a real writer / reader pair in real shared
memory; the cross-process version over DDS with the real nodes is test_context_trust_ros.py.
"""
from __future__ import annotations

import dataclasses
import os
import stat

import numpy as np
import pytest
import torch

from _context_support import shm_prefix  # noqa: F401  (fixture)

from aha_wam.context import (REJECTION_REASONS, ContextInbox, ContextLayout, ContextReader, ContextWriter,
                             PlannerContext, Rejection, ShmRing, planner_segment_name)
from aha_wam.context import integrity
from aha_wam.context.descriptor import TRANSPORT_INLINE
from aha_wam.context.shm_ring import HEADER_BYTES, H_SECRET_HI, H_SECRET_LO

LAYOUT = ContextLayout(2, 8, 2, 16, 'float32')


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def ctx(value: float = 0.5, layout: ContextLayout = LAYOUT, seed: int = 0, stamp_ns: int = 1_000) -> PlannerContext:
    g = torch.Generator().manual_seed(seed)
    kv = (torch.randn(layout.shape, generator=g) * 0 + value).to(layout.torch_dtype)
    return PlannerContext(kv=kv, layout=layout, frame_index=seed, stamp_ns=stamp_ns)


def forged_inline(session_id: int, version: int, value: float, layout: ContextLayout = LAYOUT):
    """An inline descriptor with a right-size payload and a valid CRC: what anyone on the domain can build."""
    with ContextWriter(layout, transport='inline', session_id=session_id) as w:
        return w.publish(dataclasses.replace(ctx(value, layout), version=version))


@pytest.fixture
def planner(shm_prefix):
    w = ContextWriter(LAYOUT, 'planner', prefix=shm_prefix)
    yield w
    w.close()


# ------------------------------------------------------------------------------------------ proof by segment
def test_the_segment_holds_a_session_secret_that_no_descriptor_carries(planner):
    d = planner.publish(ctx())
    ring = ShmRing.attach(planner.segment_name)
    try:
        assert ring.secret.bit_length() > 64          # 128 random bits (P(<= 64 bits) = 2^-64)
        raw = open('/dev/shm/' + planner.segment_name, 'rb').read(HEADER_BYTES)
        words = np.frombuffer(raw, np.uint64)
        assert int(words[H_SECRET_LO]) | (int(words[H_SECRET_HI]) << 64) == ring.secret
        assert ring.secret not in {v for v in dataclasses.asdict(d).values() if isinstance(v, int)}
        assert stat.S_IMODE(os.stat('/dev/shm/' + planner.segment_name).st_mode) == 0o600
    finally:
        ring.close()


def test_forged_ring_descriptors_are_rejected_by_what_the_segment_holds(planner):
    r = ContextReader(trusted_segments=[planner.segment_name])
    good = planner.publish(ctx(seed=1, stamp_ns=5_000))
    assert r.read(good)
    forgeries = {
        'implausible_version': dict(version=2**62),                      # a version the segment never held
        'metadata_mismatch': dict(stamp_ns=good.stamp_ns + 10**9),       # a replay with a forged stamp...
        'bad_sequence': dict(slot_sequence=good.slot_sequence + 2),
        'session_mismatch': dict(session_id=good.session_id + 2),
        'untrusted_source': dict(segment_name=planner.segment_name + 'x'),
    }
    for reason, change in forgeries.items():
        got = r.read(dataclasses.replace(good, **change))
        assert not got and got.reason == reason, (reason, got)
    assert r.read(dataclasses.replace(good, frame_index=good.frame_index + 3)).reason == 'metadata_mismatch'
    # None of it moved the record: the planner's next context is accepted as usual.
    nxt = r.read(planner.publish(ctx(seed=2, stamp_ns=6_000)))
    assert nxt and nxt.version == 2 and nxt.stamp_ns == 6_000 and nxt.frame_index == 2
    assert r.stats()['resyncs'] == 0


def test_a_restarted_planner_is_a_new_session_pinned_on_its_new_secret(shm_prefix):
    r = ContextReader()
    with ContextWriter(LAYOUT, 'planner', prefix=shm_prefix) as w1:
        for i in range(5):
            assert r.read(w1.publish(ctx(seed=i)))
        secret1 = r._rings[w1.segment_name].secret
    with ContextWriter(LAYOUT, 'planner', prefix=shm_prefix) as w2:      # same name, versions from 1 again
        got = r.read(w2.publish(ctx(seed=9)))
        assert got and got.version == 1 and got.session_id == w2.session_id
        assert r._rings[w2.segment_name].secret != secret1
        assert r.stats()['planner_restarts'] == 1


def test_non_finite_contexts_are_rejected_on_every_transport(planner):
    r = ContextReader()
    for bad in (float('nan'), float('inf'), -float('inf')):
        kv = ctx().kv.clone()
        kv[1, 0, 3, 5] = bad
        got = r.read(planner.publish(PlannerContext(kv=kv, layout=LAYOUT, frame_index=0)))
        assert got.reason == 'non_finite', got
        inline = forged_inline(77, 1, bad)
        assert ContextReader().read(inline).reason == 'non_finite'
    assert r.read(planner.publish(ctx()))            # finite again: accepted


@pytest.mark.parametrize('dtype', ['float16', 'bfloat16'])
def test_finiteness_check_is_exact_when_the_sum_overflows(dtype):
    layout = ContextLayout(2, 8, 2, 16, dtype)
    big = torch.full(layout.shape, 60000.0).to(layout.torch_dtype)      # finite, but its float16 sum is inf
    assert integrity.all_finite(big)
    big[0, 1, 2, 3] = float('nan')
    assert not integrity.all_finite(big)
    assert integrity.all_finite(torch.zeros(3, dtype=torch.int64))


# ------------------------------------------------------------------------------------------ inline
def test_inline_poisoning_with_the_planners_session_is_rejected(planner):
    r = ContextReader(trusted_segments=[planner.segment_name])
    assert r.read(planner.publish(ctx()))
    for value in (0.0, float('nan')):
        got = r.read(forged_inline(planner.session_id, 2**62, value))
        assert got.reason == 'session_conflict', got
    # Executors take inline contexts only when told to: then the claim is not even considered.
    strict = ContextReader(transports=('shm', 'cuda_ipc'))
    assert strict.read(forged_inline(planner.session_id, 2**62, 0.0)).reason == 'transport_disabled'
    assert strict.read(forged_inline(12345, 1, 0.0)).reason == 'transport_disabled'
    assert r.read(planner.publish(ctx(seed=3)))      # the planner's contexts still flow


def test_inline_version_jumps_are_bounded_and_a_poisoned_record_resyncs():
    clock = Clock()
    r = ContextReader(max_age_s=1.0, clock=clock, max_version_jump=64, max_version_rate=100.0)
    assert r.read(forged_inline(5, 1, 0.1))
    assert r.read(forged_inline(5, 2**62, 0.2)).reason == 'implausible_version'
    assert r.read(forged_inline(5, 60, 0.3))              # a plausible gap (lost messages)
    clock.t += 10.0                                         # after 10 s silence up to 64 + 1000 ahead is fine
    assert r.read(forged_inline(5, 60 + 1000, 0.4))
    # A record poisoned at first contact (nothing to compare with yet) recovers: after max_age_s of rejecting
    # the real writer's versions as stale, with nothing accepted from that source, the reader re-syncs.
    r2 = ContextReader(max_age_s=1.0, clock=clock)
    assert r2.read(forged_inline(9, 2**62, 0.5))
    assert r2.read(forged_inline(9, 7, 0.6)).reason == 'stale_version'
    clock.t += 0.6
    assert r2.read(forged_inline(9, 8, 0.6)).reason == 'stale_version'
    clock.t += 0.6                                          # 1.2 s of rejections > max_age_s
    got = r2.read(forged_inline(9, 9, 0.7))
    assert got and got.version == 9 and r2.stats()['resyncs'] == 1
    assert r2.read(forged_inline(9, 10, 0.8))


# ------------------------------------------------------------------------------------------ planted files
def test_symlinks_directories_and_fifos_under_the_segment_name_get_named_reasons(planner, shm_prefix):
    good = planner.publish(ctx())
    r = ContextReader()
    link, folder, fifo = (shm_prefix + s for s in ('link', 'dir', 'fifo'))
    os.symlink('/dev/shm/' + planner.segment_name, '/dev/shm/' + link)
    os.mkdir('/dev/shm/' + folder)
    os.mkfifo('/dev/shm/' + fifo, 0o600)
    try:
        assert r.read(dataclasses.replace(good, segment_name=link)).reason == 'segment_symlink'
        assert r.read(dataclasses.replace(good, segment_name=folder)).reason == 'segment_not_regular'
        assert r.read(dataclasses.replace(good, segment_name=fifo)).reason == 'segment_not_regular'  # no hang
        assert r.rejections['internal_error'] == 0
        assert r.read(good)
    finally:
        os.unlink('/dev/shm/' + link)
        os.rmdir('/dev/shm/' + folder)
        os.unlink('/dev/shm/' + fifo)


def test_a_planner_reclaims_its_name_from_its_own_dangling_symlink(shm_prefix):
    name = planner_segment_name('/planner', 0).replace('aha_wam_ctx', shm_prefix)
    os.symlink('/nonexistent', '/dev/shm/' + name)
    with ContextWriter(LAYOUT, 'planner', domain_id=0, prefix=shm_prefix) as w:
        assert w.segment_name == name and not os.path.islink('/dev/shm/' + name)
        assert ContextReader().read(w.publish(ctx()))


def test_planner_segment_name_matches_the_writer():
    assert planner_segment_name('/planner', 7) == 'aha_wam_ctx.planner.d7'
    assert planner_segment_name('/left/planner', 7) == 'aha_wam_ctx.left.planner.d7'
    assert planner_segment_name('planner', '3') == 'aha_wam_ctx.planner.d3'
    with pytest.raises(ValueError):
        planner_segment_name('/', 0)


# ------------------------------------------------------------------------------------------ delivery
def test_inbox_finds_the_planners_descriptor_in_a_flood_and_counts_every_rejection(planner):
    inbox = ContextInbox(ContextReader(transports=('shm', 'cuda_ipc'), trusted_segments=[planner.segment_name]),
                         capacity=64)
    genuine = planner.publish(ctx(seed=1))
    junk = [dataclasses.replace(genuine, version=genuine.version + 1 + i, slot=(genuine.slot + i) % 3)
            for i in range(10)]
    junk += [forged_inline(planner.session_id, 2**62, float('nan'))] * 5
    for d in junk[:7] + [genuine] + junk[7:]:       # the planner's descriptor in the middle of the flood
        inbox.put(d)
    got = inbox.take()
    assert got.new and got.context.version == genuine.version and got.examined == 16
    counts = {k: v for k, v in inbox.stats()['rejections'].items() if v}
    assert sum(counts.values()) == 15 and counts['transport_disabled'] == 5, counts
    assert set(counts) <= {'implausible_version', 'bad_sequence', 'transport_disabled', 'slot_busy'}, counts
    # Nothing new: the same context, not new, no rejections.
    again = inbox.take()
    assert not again.new and again.context is got.context and again.rejections == ()


def test_inbox_newest_valid_wins_older_ones_are_superseded_not_rejected(planner):
    inbox = ContextInbox(ContextReader())
    descs = [planner.publish(ctx(seed=i)) for i in range(3)]
    bad = dataclasses.replace(descs[-1], version=descs[-1].version + 1)   # newest in the queue, but forged
    for d in descs + [bad]:
        inbox.put(d)
    got = inbox.take()
    assert got.context.version == 3 and inbox.superseded == 2
    assert [r.reason for r in got.rejections] == ['implausible_version']


def test_inbox_capacity_drops_the_oldest_and_counts_undecodable_messages(planner):
    inbox = ContextInbox(ContextReader(), capacity=4, convert=lambda m: m['descriptor'])
    inbox.put({'descriptor': planner.publish(ctx())})
    for _ in range(3):
        inbox.put({'no': 'descriptor'})                  # convert raises KeyError
    inbox.put(Rejection('bad_descriptor', 'owner could not decode it'))
    got = inbox.take()
    assert inbox.stats()['dropped'] == 1 and got.examined == 4 and got.context is None
    assert inbox.stats()['rejections']['bad_descriptor'] == 4


def test_rejection_log_is_rate_limited_but_counts_stay_exact(planner):
    clock, lines = Clock(), []
    inbox = ContextInbox(ContextReader(transports=('shm',)), log=lines.append, log_period_s=2.0, clock=clock)
    poison = forged_inline(1, 1, 0.0)
    for tick in range(40):                               # 2 s of a 20 Hz control loop, 5 junk per tick
        for _ in range(5):
            inbox.put(poison)
        inbox.take()
        clock.t += 0.05
    assert inbox.stats()['rejections']['transport_disabled'] == 200
    assert 2 <= len(lines) <= 3, lines                   # first of its kind + one summary per 2 s
    assert 'transport_disabled' in lines[0] and 'x' in lines[-1]


def test_every_reason_is_listed_once():
    assert len(REJECTION_REASONS) == len(set(REJECTION_REASONS))
    for r in ('untrusted_source', 'session_conflict', 'implausible_version', 'metadata_mismatch', 'non_finite',
              'transport_disabled', 'segment_symlink', 'segment_not_regular'):
        assert r in REJECTION_REASONS
    assert TRANSPORT_INLINE == 2
