"""Stress: a writer process publishing at full speed, this process reading continuously.

10 000 reads, each a real copy out of the ring (cache_redelivery=False) through `ContextReader.read`, with the checksum
switched OFF so that the seqlock alone must keep torn contexts out. Every payload byte of version v is
fill_byte(v): an accepted context that mixes two versions would be caught by the uniformity check.
A control copy of the same slot taken WITHOUT the seqlock shows that tearing really happens under this load.
"""
import dataclasses
import os
import time

import numpy as np
import torch

from _context_support import segments_with, shm_prefix  # noqa: F401  (fixture)
from _support import spawn_python, stop

from aha_wam.context import ContextDescriptor, ContextReader, ShmRing
from aha_wam.context.descriptor import CHECKSUM_NONE

HERE = os.path.dirname(os.path.abspath(__file__))
L, T, H, D = 4, 32, 4, 64          # 256 KiB float32: large enough that copies overlap, small enough to be fast
READS = 10_000


def fill_byte(version: int) -> int:
    return version % 255 + 1


def test_ten_thousand_reads_against_a_full_speed_writer_accept_no_torn_context(shm_prefix):
    proc = spawn_python(os.path.join(HERE, '_context_stress_writer.py'), shm_prefix, str(L), str(T), str(H),
                        str(D), '2', 'none')
    try:
        line = proc.stdout.readline()
        assert line.startswith('READY'), line + proc.stdout.read()
        name = line.split()[1]
        ring = ShmRing.attach(name)            # read-only view of the slot table, to mint descriptors
        template = ContextDescriptor(session_id=ring.session_id, segment_name=name, num_slots=ring.num_slots,
                                     checksum_type=CHECKSUM_NONE)
        template.set_layout(ring.layout)
        # Two readers: one follows the newest slot, one the slot the writer overwrites next (most tearing);
        # separate readers so neither rejects the other's older versions as stale.
        readers = [ContextReader(cache_redelivery=False, check_finite=False) for _ in range(2)]   # bytes, not floats
        reads = accepted = torn_accepted = cached = raw_torn = 0
        control = np.empty(ring.nbytes, np.uint8)
        previous = [None, None]
        t0 = time.monotonic()
        i = 0
        while reads < READS:
            i += 1
            latest_version, latest_slot = ring.latest
            # Alternate between the newest slot and the other one (the next to be overwritten: most tearing).
            slot = latest_slot if i % 2 else (latest_slot + 1) % ring.num_slots
            meta = ring.slot_meta(slot)          # racy snapshot, exactly what a late descriptor looks like
            if meta['version'] == 0 or meta['seq'] % 2:
                continue                         # nothing complete to announce yet
            desc = dataclasses.replace(template, slot=slot, version=meta['version'], slot_sequence=meta['seq'],
                                       stamp_ns=meta['stamp_ns'], frame_index=meta['frame_index'],
                                       memory_entries=meta['memory_entries'])
            got = readers[i % 2].read(desc)
            if got and previous[i % 2] is not None and got.version == previous[i % 2].version:
                cached += 1                      # a re-read of a version already seen (still a real copy)
            reads += 1
            if got:
                accepted += 1
                previous[i % 2] = got
                b = got.kv.view(torch.uint8).reshape(-1).numpy()
                if not (b[0] == fill_byte(got.version) and (b == b[0]).all()):
                    torn_accepted += 1
            if i % 4 == 0:                       # control: the same copy without the seqlock
                np.copyto(control, ring.payload(slot))
                if not (control == control[0]).all():
                    raw_torn += 1
        elapsed = time.monotonic() - t0
        ring.close()
    finally:
        out = stop(proc)
    rej = {}
    for r in readers:
        for k, v in r.rejections.items():
            if v:
                rej[k] = rej.get(k, 0) + v
    print(f'\nstress: {reads} reads in {elapsed:.2f}s, accepted {accepted} (re-reads of a seen version {cached}), rejected {rej}, '
          f'torn accepted {torn_accepted}, unguarded control copies torn {raw_torn}')
    assert torn_accepted == 0
    assert accepted >= 500, (accepted, rej)
    assert set(rej) <= {'torn', 'slot_busy', 'slot_overwritten', 'bad_sequence', 'stale_version'}, rej
    assert 'DONE' in out and segments_with(shm_prefix) == [], out    # writer closed cleanly and unlinked
