"""Delivery of planner contexts to a control loop: every descriptor is queued, examined and counted.

    inbox = ContextInbox(reader, convert=msg_to_descriptor, log=logger.warning)
    subscription callback:   inbox.put(msg)            # any thread; O(1); never raises
    control loop, each step: got = inbox.take()        # Delivery: newest valid context, what was rejected

Why a queue and not "the newest message": anyone on the ROS domain can publish descriptors, and a
latest-value cache lets junk at 20 Hz displace the planner's 2 Hz descriptors before the control loop looks
(the executor held in 60 % of its updates). Here nothing is displaced: `take()` drains the queue, triages
every item with the reader's cheap checks (each rejection counted by its reason), then reads candidates from
the newest back until one is accepted (payload copy, checksum, finiteness); older candidates are merely
superseded. So the planner's descriptor is found however much junk surrounds it, as long as fewer than
`capacity` descriptors arrive between two `take()` calls (32 at a 20 Hz control rate is 640 junk messages
per second; beyond that the oldest are dropped and counted as `dropped`).

Logging is rate-limited, counting is not: the first rejection of each reason is logged at once, then one
summary line per `log_period_s` lists the counts since the last line.
"""
from __future__ import annotations

import collections
import dataclasses
import threading
import time
from typing import Any, Callable

from aha_wam.context.channel import ContextReader
from aha_wam.context.layout import PlannerContext
from aha_wam.context.rejection import Rejection
from aha_wam.context.shm_ring import segment_name


def planner_segment_name(planner: str, domain_id: int | str | None = None) -> str:
    """Segment name of the planner node `planner` ('/planner', '/left/planner'; a leading '/' is optional)
    on ROS domain `domain_id` (default: $ROS_DOMAIN_ID), exactly as its `ContextWriter` names it."""
    parts = [p for p in str(planner).split('/') if p]
    if not parts:
        raise ValueError(f'planner node name {planner!r} is empty')
    return segment_name(parts[-1], domain_id, namespace='/'.join(parts[:-1]))


@dataclasses.dataclass
class Delivery:
    """What one `ContextInbox.take()` found."""

    context: PlannerContext | None      # newest accepted context (this take or earlier); None before the first
    new: bool = False                   # a context newer than the previous one was accepted in this take
    examined: int = 0                   # descriptors taken off the queue
    rejections: tuple[Rejection, ...] = ()   # rejected in this take (triage first, then full reads)
    read_ms: float = 0.0                # time spent examining and reading
    items: tuple = ()                   # what was taken off the queue, in arrival order (traces, replay)

    @property
    def last_rejection(self) -> Rejection | None:
        return self.rejections[-1] if self.rejections else None


class RejectionLog:
    """Rate-limited log lines for rejections (the reader counts every one regardless).

    The first rejection of each reason is logged with its detail at once (so a misconfiguration shows up
    immediately); after that, at most one summary line per `period_s` with the counts since the last line.
    """

    def __init__(self, log: Callable[[str], Any] | None, period_s: float = 2.0, clock=time.monotonic):
        self._log = log
        self.period_s = float(period_s)
        self._clock = clock
        self._seen: set[str] = set()
        self._pending: collections.Counter = collections.Counter()
        self._last_detail = ''
        self._next = 0.0
        self.lines = 0

    def add(self, rejection: Rejection) -> None:
        if rejection.reason not in self._seen:
            self._seen.add(rejection.reason)
            self._emit(f'planner context {rejection} (first of its kind; further ones are summarised every '
                       f'{self.period_s:g} s)')
            return
        self._pending[rejection.reason] += 1
        self._last_detail = str(rejection)

    def flush(self) -> None:
        now = self._clock()
        if not self._pending or now < self._next:
            return
        counts = ', '.join(f'{reason} x{n}' for reason, n in self._pending.most_common())
        self._emit(f'planner contexts rejected since the last report: {counts}; last: {self._last_detail}')
        self._pending.clear()
        self._next = now + self.period_s

    def _emit(self, line: str) -> None:
        self.lines += 1
        if self._log is not None:
            try:
                self._log(line)
            except Exception:
                pass      # a logging problem must never stop context delivery


class ContextInbox:
    """Thread-safe queue of received descriptors in front of a `ContextReader` (see the module docstring).

    Args:
        reader: the reader that validates, proves and copies (its configuration decides what is trusted).
        capacity: descriptors kept between two `take()` calls; the oldest are dropped (and counted) beyond.
        convert: turns a queued item into a `ContextDescriptor` (e.g. `aha_wam.ros.context_msg.msg_to_descriptor`);
            done in `take()`, off the subscription thread; a conversion error is a 'bad_descriptor' rejection.
        log: callable taking one line (e.g. a ROS logger's `warning`); rate-limited, see `RejectionLog`.
    """

    def __init__(self, reader: ContextReader, *, capacity: int = 32, convert: Callable[[Any], Any] | None = None,
                 log: Callable[[str], Any] | None = None, log_period_s: float = 2.0, clock=time.monotonic):
        if capacity < 1:
            raise ValueError(f'capacity must be >= 1, got {capacity}')
        self.reader = reader
        self.capacity = int(capacity)
        self._convert = convert
        self._queue: collections.deque = collections.deque()
        self._lock = threading.Lock()
        self.log = RejectionLog(log, log_period_s, clock)
        self.received = 0
        self.dropped = 0
        self.superseded = 0

    def put(self, item) -> None:
        """Queue one received descriptor (or message, with `convert`; or a `Rejection` for a message its
        owner could not decode, counted at the next take). Cheap; safe from any thread; never raises."""
        with self._lock:
            self.received += 1
            if len(self._queue) >= self.capacity:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(item)

    def take(self) -> Delivery:
        """Examine everything queued since the last call and return the newest valid context."""
        t0 = time.perf_counter()
        with self._lock:
            items = list(self._queue)
            self._queue.clear()
        previous = self.reader.last_context
        rejections: list[Rejection] = []
        candidates = []
        for item in items:                              # triage: cheap checks on every item, arrival order
            if isinstance(item, Rejection):              # the owner could not even decode the message
                rejections.append(self.reader.count(item))
                continue
            try:
                desc = self._convert(item) if self._convert is not None else item
            except Exception as exc:                     # malformed message content
                rejections.append(self.reader.count(Rejection('bad_descriptor', f'{type(exc).__name__}: {exc}')))
                continue
            why = self.reader.verify(desc)
            if why is not None:
                rejections.append(self.reader.count(why))
            else:
                candidates.append(desc)
        accepted = None
        for desc in reversed(candidates):               # newest first: the first that reads fully wins
            if accepted is not None:
                self.superseded += 1
                continue
            got = self.reader.read(desc)
            if got:
                accepted = got
            else:
                rejections.append(got)                  # counted by the reader
        for r in rejections:
            self.log.add(r)
        self.log.flush()
        context = self.reader.last_context
        return Delivery(context=context, new=accepted is not None and context is not previous, examined=len(items),
                        rejections=tuple(rejections), read_ms=(time.perf_counter() - t0) * 1e3, items=tuple(items))

    def stats(self) -> dict:
        """Reader statistics plus delivery counters (received, dropped for capacity, superseded, queued)."""
        with self._lock:
            queued = len(self._queue)
        return {**self.reader.stats(), 'received': self.received, 'dropped': self.dropped,
                'superseded': self.superseded, 'queued': queued, 'log_lines': self.log.lines}

    def close(self) -> None:
        with self._lock:
            self._queue.clear()
        self.reader.close()
