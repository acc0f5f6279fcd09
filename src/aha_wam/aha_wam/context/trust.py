"""Which planner a context comes from, and which of its versions are believable.

Threat model: any process that can publish on the ROS domain can send `aha_wam_msgs/PlannerContext`, and
every descriptor it sees tells it the planner's session id, segment name, slot and version. So nothing a
descriptor *claims* about its origin is evidence. What is evidence:

* **Ring transports (shm, CUDA IPC).** The segment: created 0600 by the planner's user, refused by readers
  when owned by another user, writable by others, a symlink or not a regular file. Only the planner can
  have written its header (session id, 128-bit session secret that never leaves the segment) and its slot
  table (sequence, version, stamp, frame index, checksum per slot). A source is the segment *name*; its
  writer session is pinned on the segment's secret (a restarted planner has a new secret: a new session,
  numbered from 1 again). The descriptor must agree with the slot it names, so its version is proven, and
  the newest version recorded for a ring source only ever comes from the segment.
* **Inline (other hosts, bags).** The payload travels in the message: nothing on this host can prove who
  sent it. Without DDS security (SROS2: authenticated participants, signed/encrypted topics), an inline
  context is trusted exactly as far as the DDS domain is. Readers therefore accept inline only when asked
  to (opt-in), never from a session id that a segment has proven to be a ring planner's
  ('session_conflict'), and never with a version jump no planner could have made ('implausible_version').

No message can raise the accepted version beyond recovery: ring versions are proven; an unproven
(inline) record accepts at most `max_version_jump + max_version_rate * seconds since its last acceptance`
versions ahead; and a source whose descriptors have been rejected for their version alone, with nothing
accepted from it, for longer than `resync_after_s` (the executor's `max_context_age`) is re-synchronised:
the record is dropped and its next valid context accepted. Ring records cannot be poisoned, so for them
this only ever fires on genuine old descriptors, whose stamps are then older than the age limit anyway.
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections import OrderedDict

from aha_wam.context.rejection import reject

# Inline sources are keyed by a claimed session id; an attacker can invent any number of them.
MAX_INLINE_SOURCES = 64


@dataclasses.dataclass
class Source:
    """What the reader believes about one context source."""

    key: tuple                         # ('ring', segment name) or ('inline', session id)
    session_id: int
    proven: bool                       # ring: versions are proven by the segment
    secret: int | None = None          # ring: the writer session this record is pinned to
    newest: int = 0                    # newest version accepted from this source (0: none yet)
    accepted_at: float = -math.inf     # clock time of that acceptance
    rejecting_since: float | None = None   # first version rejection since the last acceptance

    @property
    def label(self) -> str:
        kind, ident = self.key
        return f'segment {ident!r}' if kind == 'ring' else f'inline session {ident:#x}'


class TrustBook:
    """The reader's records of its sources (one per reader; not thread-safe, like the reader).

    Args:
        trusted_segments: segment names whose contexts are accepted (the configured planner(s)); None
            accepts any segment that passes the ownership checks (library use, tests).
        max_version_jump, max_version_rate: an unproven (inline) source may advance by at most
            `max_version_jump + max_version_rate * seconds since its last acceptance` versions at once
            (planners refresh at <= 30 Hz; the default rate leaves a wide margin).
        resync_after_s: re-synchronise a source rejected for its version alone for this long (None: never).
    """

    def __init__(self, *, trusted_segments=None, max_version_jump: int = 64, max_version_rate: float = 100.0,
                 resync_after_s: float | None = None, clock=time.monotonic):
        self.trusted_segments = None if trusted_segments is None else frozenset(str(s) for s in trusted_segments)
        if max_version_jump < 1 or max_version_rate < 0:
            raise ValueError(f'max_version_jump must be >= 1 and max_version_rate >= 0, got '
                             f'{max_version_jump}, {max_version_rate}')
        self.max_version_jump = int(max_version_jump)
        self.max_version_rate = float(max_version_rate)
        self.resync_after_s = resync_after_s
        self._clock = clock
        self._rings: dict[str, Source] = {}
        self._inline: OrderedDict[int, Source] = OrderedDict()
        self.resyncs = 0
        self.restarts = 0

    # ------------------------------------------------------------------------------------------ sources
    def check_segment(self, name: str) -> None:
        """Reject a segment that is not one of the trusted planners' (before it is even opened)."""
        if self.trusted_segments is not None and name not in self.trusted_segments:
            reject('untrusted_source', f'segment {name!r} is not a trusted planner segment '
                   f'({", ".join(sorted(self.trusted_segments)) or "none configured"})')

    def ring_source(self, name: str, session_id: int, secret: int) -> Source:
        """The record of a segment, pinned to the writer session its secret identifies."""
        src = self._rings.get(name)
        if src is None or src.secret != secret:
            if src is not None:
                self.restarts += 1      # the planner restarted: a new writer session, numbered afresh
            src = self._rings[name] = Source(('ring', name), int(session_id), True, secret=secret)
        return src

    def inline_source(self, session_id: int) -> Source:
        """The record of an inline session; rejects a claim to a session a segment has proven."""
        session_id = int(session_id)
        for ring in self._rings.values():
            if ring.session_id == session_id:
                reject('session_conflict', f'inline descriptor claims session {session_id:#x}, which belongs to '
                       f'the planner writing {ring.label}; only that segment can carry its contexts')
        src = self._inline.get(session_id)
        if src is None:
            src = self._inline[session_id] = Source(('inline', session_id), session_id, False)
            while len(self._inline) > MAX_INLINE_SOURCES:
                self._inline.popitem(last=False)     # forget the least recently used claim
        else:
            self._inline.move_to_end(session_id)
        return src

    # ------------------------------------------------------------------------------------------ versions
    def check_version(self, src: Source, version: int, resync: bool = True) -> None:
        """Reject a version older than the source's newest, or (unproven) implausibly far ahead of it.

        `resync=False` (triage) lets a descriptor through that would re-synchronise the source, without
        doing it: the read that follows does."""
        now = self._clock()
        if src.newest == 0:
            return
        if version < src.newest:
            why = ('stale_version', f'version {version} is older than the accepted {src.newest} from {src.label}')
        elif not src.proven and version - src.newest > self._allowed_jump(src, now):
            why = ('implausible_version', f'version {version} jumps {version - src.newest} ahead of the accepted '
                   f'{src.newest} from {src.label} (at most {self._allowed_jump(src, now):.0f} plausible)')
        else:
            return
        if src.rejecting_since is None:
            src.rejecting_since = now
        elif (self.resync_after_s is not None and now - src.rejecting_since > self.resync_after_s
              and now - src.accepted_at > self.resync_after_s):
            # Only version rejections from this source, and nothing accepted from it, for longer than a
            # context may live: our record is what is wrong (a planner that renumbered, a record poisoned by a
            # claim). Start over from this descriptor instead of holding the arms until a restart.
            if not resync:
                return
            self.resyncs += 1
            src.newest, src.rejecting_since = 0, None
            return
        reject(*why)

    def _allowed_jump(self, src: Source, now: float) -> float:
        return self.max_version_jump + self.max_version_rate * max(0.0, now - src.accepted_at)

    def accepted(self, src: Source, version: int) -> None:
        src.newest = max(src.newest, int(version))
        src.accepted_at = self._clock()
        src.rejecting_since = None

    def forget_ring(self, name: str) -> None:
        self._rings.pop(name, None)

    def stats(self) -> dict:
        return {'trusted_segments': sorted(self.trusted_segments) if self.trusted_segments is not None else None,
                'sources': {s.label: s.newest for s in (*self._rings.values(), *self._inline.values())},
                'resyncs': self.resyncs, 'planner_restarts': self.restarts}
