"""Planner -> executor context channel: `ContextWriter.publish` and `ContextReader.read`.

    writer = ContextWriter(layout, node_name='planner', transport='shm')   # creates the ring once
    desc = writer.publish(planner_context)      # copy into the next slot; returns the ROS-free descriptor
    ...  (descriptor travels as aha_wam_msgs/PlannerContext, see aha_wam.ros.context_msg)
    reader = ContextReader(max_age_s=1.0)
    got = reader.read(desc)                     # PlannerContext, or Rejection(reason, detail) (falsy)
    ctx = reader.latest()                       # last good context while it is younger than max_age_s

Transports: 'shm' (POSIX shared-memory ring, same host), 'cuda_ipc' (device ring, same GPU), 'inline'
(payload inside the message: other host, bag recording). The reader validates every descriptor against
the segment header and the slot seqlock; it never raises on bad input: every problem is a `Rejection`
counted by reason in `reader.rejections`.

Why the reader copies out of the ring: the executor uses a context for many control steps while the
planner keeps writing; handing out views of a slot would let the writer change a context under the
executor. The copy goes into a small pool of reusable buffers so that the steady state has no page faults
(fresh 44 MB allocations cost 15-30 ms of faults on this machine; a warm copy ~4-8 ms). A pooled buffer is
reused only when nothing outside the pool still references it (its CPython refcount shows whether a
returned tensor, or any view of it, is alive), so a context you keep is never overwritten.
"""
from __future__ import annotations

import atexit
import dataclasses
import secrets
import sys
import threading
import time
import weakref

import numpy as np
import torch

from aha_wam.context import integrity
from aha_wam.context.descriptor import (CHECKSUM_CRC32, CHECKSUM_NAMES, CHECKSUM_NONE, TRANSPORT_CUDA_IPC,
                                        TRANSPORT_INLINE, TRANSPORT_NAMES, TRANSPORT_SHM, ContextDescriptor)
from aha_wam.context.inline import bytes_to_tensor, encode_payload, payload_view, tensor_bytes
from aha_wam.context.layout import ContextLayout, PlannerContext
from aha_wam.context.rejection import REJECTION_REASONS, Rejection, RejectError, reject
from aha_wam.context.shm_ring import DEFAULT_PREFIX, STATE_LIVE, RingError, ShmRing, validate_segment_name
from aha_wam.context.shm_ring import segment_name as make_segment_name
from aha_wam.context.trust import Source, TrustBook

TRANSPORTS = {'shm': TRANSPORT_SHM, 'cuda_ipc': TRANSPORT_CUDA_IPC, 'inline': TRANSPORT_INLINE}

# ============================================================================================ writer
class ContextWriter:
    """Planner side. Owns the ring (shm / cuda_ipc) and numbers the refreshes of one session.

    Args:
        layout: tensor layout of every context this writer publishes (the ring is sized for it once).
        node_name, namespace, domain_id, prefix: build the segment name (see `shm_ring.segment_name`);
            `segment_name` overrides it (validated).
        transport: 'shm' | 'cuda_ipc' | 'inline'.
        num_slots: ring slots (>= 3 keeps readers' retries rare with a slow writer).
        checksum: 'auto' (full CRC-32 up to 1 MiB, sampled above), 'crc32', 'sampled', 'none'. Inline
            always uses full CRC-32; CUDA IPC uses none (see cuda_ipc.py).
        frame_period, video_stride, video_horizon, control_period, frame_id: copied into every descriptor.
    """

    def __init__(self, layout: ContextLayout, node_name: str = 'planner', *, transport: str = 'shm',
                 num_slots: int = 3, namespace: str = '', domain_id: int | str | None = None,
                 prefix: str = DEFAULT_PREFIX, segment_name: str | None = None, checksum: str = 'auto',
                 session_id: int | None = None, frame_period: float = 0.0, video_stride: int = 0,
                 video_horizon: int = 0, control_period: float = 0.0, frame_id: str = '',
                 device: torch.device | str | None = None):
        if not isinstance(layout, ContextLayout):
            raise TypeError(f'layout must be a ContextLayout, got {type(layout).__name__}')
        if transport not in TRANSPORTS:
            raise ValueError(f'transport must be one of {sorted(TRANSPORTS)}, got {transport!r}')
        self.layout = layout
        self.transport = transport
        self.session_id = int(session_id) if session_id else (secrets.randbits(63) | 1)
        self.version = 0
        self.num_slots = 1 if transport == 'inline' else int(num_slots)
        self._timing = dict(frame_period=float(frame_period), video_stride=int(video_stride),
                            video_horizon=int(video_horizon), control_period=float(control_period))
        self.frame_id = frame_id
        self._count = 0
        self._reserved: int | None = None
        self._lock = threading.Lock()   # publish may be called from a worker thread while close() runs
        self._ring: ShmRing | None = None
        self._cuda = None
        if transport == 'inline':
            self.segment_name = ''
            self.checksum_type = CHECKSUM_CRC32   # crosses hosts / bags: full CRC
        else:
            name = segment_name if segment_name is not None else make_segment_name(node_name, domain_id, namespace, prefix)
            self.segment_name = validate_segment_name(name)
            if transport == 'shm':
                self.checksum_type = integrity.choose_checksum(layout.nbytes, checksum)
                self._ring = ShmRing.create(self.segment_name, layout, self.num_slots, self.session_id)
            else:
                from aha_wam.context.cuda_ipc import CudaIpcWriterRing
                self.checksum_type = CHECKSUM_NONE
                self._cuda = CudaIpcWriterRing(self.segment_name, layout, self.num_slots, self.session_id, device)
                self._ring = self._cuda.ring
        # Unlink on a normal interpreter exit too (KeyboardInterrupt, sys.exit) if the node forgot close().
        self._atexit = _close_at_exit(self)

    # ------------------------------------------------------------------------------------------ publish
    def publish(self, context: PlannerContext) -> ContextDescriptor:
        """Write `context` into the next slot (or encode it inline) and return its descriptor.

        Raises ValueError if the context does not match the writer's layout or carries an out-of-order
        version / a foreign session id (a programming error on the planner side, not bad input).
        """
        if not isinstance(context, PlannerContext):
            raise TypeError(f'publish() takes a PlannerContext, got {type(context).__name__}')
        if context.layout != self.layout:
            raise ValueError(f'context layout {context.layout} differs from the writer layout {self.layout}')
        self.layout.check(context.kv)
        with self._lock:
            if self._ring is None and self.transport != 'inline':
                raise RuntimeError('ContextWriter is closed')
            if self._reserved is not None:
                raise RuntimeError('a slot is reserved: commit() or abort() it before publish()')
            version = int(context.version) if context.version else self.version + 1
            if version <= self.version:
                raise ValueError(f'context version {version} is not newer than {self.version}')
            if context.session_id and int(context.session_id) != self.session_id:
                raise ValueError(f'context session {context.session_id:#x} is not this writer\'s {self.session_id:#x}')
            desc = ContextDescriptor(
                session_id=self.session_id, version=version, transport=TRANSPORTS[self.transport],
                segment_name=self.segment_name, num_slots=self.num_slots, memory_entries=int(context.memory_entries),
                frame_index=int(context.frame_index), stamp_ns=int(context.stamp_ns), frame_id=self.frame_id,
                checksum_type=self.checksum_type, **self._timing)
            desc.set_layout(self.layout)
            if self.transport == 'inline':
                payload = encode_payload(context.kv)
                desc.payload = payload
                desc.checksum = integrity.crc32_full(payload)
            else:
                slot = self._count % self.num_slots
                if self.transport == 'shm' and context.kv.device.type == 'cpu':
                    src = tensor_bytes(context.kv)
                    # Checksum the source before the slot goes busy: keeps the odd (busy) window short.
                    checksum = integrity.compute(self.checksum_type, src)
                    self._ring.write_begin(slot)
                    np.copyto(self._ring.payload(slot), src)
                elif self.transport == 'shm':
                    # Device tensor (GPU planner, shm transport): one device->host copy straight into the
                    # slot instead of .cpu() + memcpy; the checksum is then taken over the slot itself.
                    dst = self._ring.payload(slot)
                    self._ring.write_begin(slot)
                    torch.from_numpy(dst).copy_(context.kv.detach().contiguous().view(torch.uint8).reshape(-1))
                    checksum = integrity.compute(self.checksum_type, dst)
                else:
                    checksum = 0
                    self._ring.write_begin(slot)
                    self._cuda.write(slot, context.kv)
                desc.slot = slot
                desc.checksum = checksum
                desc.slot_sequence = self._ring.write_end(slot, version, self.checksum_type, checksum,
                                                          desc.stamp_ns, desc.frame_index, desc.memory_entries)
            self._count += 1
            self.version = version
            return desc

    # ------------------------------------------------------------------------------ zero-copy publish
    def reserve(self) -> torch.Tensor:
        """Zero-copy alternative to `publish` (shm transport): the next slot as a writable [L, 2, T, H*D]
        tensor in shared memory. Write the context into it (e.g. `torch.stack(per_layer_kv, out=...)`, or a
        device->host `copy_`), then call `commit`. The slot is marked busy (seq odd) until then, so readers
        reject it; they keep using the other slots. Do not touch the tensor after `commit`.
        """
        if self.transport != 'shm':
            raise ValueError(f'reserve/commit needs the shm transport, this writer uses {self.transport}')
        with self._lock:
            if self._ring is None:
                raise RuntimeError('ContextWriter is closed')
            if self._reserved is not None:
                raise RuntimeError('a slot is already reserved: commit() or abort() it first')
            slot = self._count % self.num_slots
            self._ring.write_begin(slot)
            self._reserved = slot
            return torch.from_numpy(self._ring.payload(slot)).view(self.layout.torch_dtype).reshape(self.layout.shape)

    def commit(self, frame_index: int, memory_entries: int = 0, stamp_ns: int = 0,
               version: int = 0) -> ContextDescriptor:
        """Publish the reserved slot (checksum taken over the slot now) and return its descriptor."""
        with self._lock:
            if self._reserved is None or self._ring is None:
                raise RuntimeError('commit() without reserve()')
            slot, self._reserved = self._reserved, None
            version = int(version) if version else self.version + 1
            if version <= self.version:
                self._ring.write_begin(slot)   # leave the slot busy (odd): its content is not a valid version
                raise ValueError(f'context version {version} is not newer than {self.version}')
            checksum = integrity.compute(self.checksum_type, self._ring.payload(slot))
            desc = ContextDescriptor(
                session_id=self.session_id, version=version, transport=TRANSPORT_SHM, segment_name=self.segment_name,
                num_slots=self.num_slots, slot=slot, memory_entries=int(memory_entries), frame_index=int(frame_index),
                stamp_ns=int(stamp_ns), frame_id=self.frame_id, checksum_type=self.checksum_type, checksum=checksum,
                **self._timing)
            desc.set_layout(self.layout)
            desc.slot_sequence = self._ring.write_end(slot, version, self.checksum_type, checksum, desc.stamp_ns,
                                                      desc.frame_index, desc.memory_entries)
            self._count += 1
            self.version = version
            return desc

    def abort(self) -> None:
        """Give up a reservation: the slot stays busy (odd) until it is written again; nothing is published."""
        with self._lock:
            self._reserved = None

    def close(self) -> None:
        """Unlink the segment (clean shutdown). Idempotent."""
        with self._lock:
            if self._cuda is not None:
                self._cuda.close()
            elif self._ring is not None:
                self._ring.close()
            self._ring = self._cuda = None
        if self._atexit is not None:
            atexit.unregister(self._atexit)
            self._atexit = None

    @property
    def closed(self) -> bool:
        return self._ring is None and self.transport != 'inline'

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _close_at_exit(writer: ContextWriter):
    ref = weakref.ref(writer)

    def _hook():
        w = ref()
        if w is not None:
            try:
                w.close()
            except Exception:
                pass
    atexit.register(_hook)
    return _hook


# ============================================================================================ reader
_IDENTITY_FIELDS = tuple(f.name for f in dataclasses.fields(ContextDescriptor) if f.name != 'payload')


def _same_refresh(a: ContextDescriptor, b: ContextDescriptor | None) -> bool:
    """Same descriptor in every field but the payload buffer (inline payloads are covered by the checksum)."""
    return b is not None and all(getattr(a, n) == getattr(b, n) for n in _IDENTITY_FIELDS)


class _BufferPool:
    """Reusable, pre-faulted uint8 buffers for one layout; see the module docstring for the reuse rule."""

    def __init__(self, nbytes: int, size: int):
        self.nbytes = nbytes
        self.size = size
        self._bufs: list[np.ndarray] = []

    def get(self) -> np.ndarray:
        for buf in self._bufs:
            # References: the list, the loop variable, getrefcount's argument. A returned tensor (or any
            # view of it) holds one more through its storage (torch.from_numpy keeps the array alive).
            if sys.getrefcount(buf) <= 3:
                return buf
        buf = np.empty(self.nbytes, np.uint8)
        buf.fill(0)            # fault the pages in now, not inside a timed read later
        if len(self._bufs) < self.size:
            self._bufs.append(buf)
        return buf


class ContextReader:
    """Executor side. Maps each segment once, validates descriptors, proves them, copies contexts out.

    Args:
        max_age_s: `latest()` returns None once the last good context is older than this (None: never).
        expected_layout: if set, descriptors with any other layout are rejected ('layout_mismatch').
        transports: which transports to accept (default all three; executors leave 'inline' out unless the
            planner is on another host, see aha_wam.context.trust); others are 'transport_disabled'.
        trusted_segments: segment names of the planner(s) to trust; None: any segment that passes the
            ownership checks. See `trust.TrustBook`.
        max_version_jump, max_version_rate: plausibility bound for unproven (inline) versions.
        resync_after_s: re-synchronise a source rejected for its version alone for this long (default:
            `max_age_s`).
        check_finite: reject contexts holding NaN or inf ('non_finite'); one reduction per new context.
        require_checksum: reject shm/inline descriptors without a checksum (seqlock alone is then not enough).
        pool_size: reusable output buffers per layout (>= 2: one may be held by the caller while reading).
        device: CUDA device for CUDA IPC contexts (default: the ring's device).
        require_same_uid: only trust segments owned by this user.
        cache_redelivery: return the cached context when the very descriptor last accepted arrives again
            (transient-local redelivery) instead of copying the slot again. False re-reads every time
            (stress tests, diagnostics).
    """

    def __init__(self, *, max_age_s: float | None = None, expected_layout: ContextLayout | None = None,
                 transports=('shm', 'cuda_ipc', 'inline'), trusted_segments=None, max_version_jump: int = 64,
                 max_version_rate: float = 100.0, resync_after_s: float | None = None, check_finite: bool = True,
                 require_checksum: bool = False, pool_size: int = 3, device=None, require_same_uid: bool = True,
                 cache_redelivery: bool = True, clock=time.monotonic):
        unknown = set(transports) - set(TRANSPORTS)
        if unknown:
            raise ValueError(f'unknown transports {sorted(unknown)}; use {sorted(TRANSPORTS)}')
        self.max_age_s = max_age_s
        self.expected_layout = expected_layout
        self._transports = {TRANSPORTS[t] for t in transports}
        self.check_finite = check_finite
        self.require_checksum = require_checksum
        self.pool_size = max(1, int(pool_size))
        self.device = device
        self.require_same_uid = require_same_uid
        self.cache_redelivery = cache_redelivery
        self._clock = clock
        self.trust = TrustBook(trusted_segments=trusted_segments, max_version_jump=max_version_jump,
                               max_version_rate=max_version_rate,
                               resync_after_s=max_age_s if resync_after_s is None else resync_after_s, clock=clock)
        self._rings: dict[str, ShmRing] = {}
        self._cuda_rings: dict[str, object] = {}
        self._pools: dict[ContextLayout, _BufferPool] = {}
        self._rejections = {r: 0 for r in REJECTION_REASONS}
        self.accepted = 0
        self.last_rejection: Rejection | None = None
        self._last: PlannerContext | None = None
        self._last_desc: ContextDescriptor | None = None
        self._last_time = 0.0

    # ------------------------------------------------------------------------------------------ public
    @property
    def rejections(self) -> dict[str, int]:
        """Rejection counts by reason (a copy; every known reason present)."""
        return dict(self._rejections)

    def stats(self) -> dict:
        """Diagnostics: accepted count, rejections by reason, last rejection, last context age, trust."""
        return {'accepted': self.accepted, 'rejected': sum(self._rejections.values()),
                'rejections': self.rejections, 'mapped_segments': sorted(self._rings),
                'last_rejection': str(self.last_rejection) if self.last_rejection else '',
                'last_version': self._last.version if self._last is not None else 0,
                'last_age_s': (self._clock() - self._last_time) if self._last is not None else None,
                'resyncs': self.trust.resyncs, 'planner_restarts': self.trust.restarts}

    def prepare(self, layout: ContextLayout) -> None:
        """Allocate and fault in the output buffers for `layout` now (keeps the first reads fast)."""
        pool = self._pool(layout)
        held = [pool.get() for _ in range(pool.size)]
        del held

    def read(self, descriptor: ContextDescriptor) -> PlannerContext | Rejection:
        """The context a descriptor announces, bit-exact, or a Rejection. Never raises on bad input."""
        try:
            ctx, src = self._read(descriptor)
        except RejectError as e:
            return self._count(Rejection(e.reason, str(e)))
        except RingError as e:
            return self._count(Rejection(e.reason if e.reason in self._rejections else 'bad_header', str(e)))
        except Exception as e:   # a reader must stay up whatever arrives
            return self._count(Rejection('internal_error', f'{type(e).__name__}: {e}'))
        if ctx is self._last:
            return ctx   # same refresh again: keep its original acceptance time (its age keeps growing)
        self.accepted += 1
        self._last, self._last_desc, self._last_time = ctx, descriptor, self._clock()
        self.trust.accepted(src, ctx.version)
        return ctx

    def verify(self, descriptor: ContextDescriptor) -> Rejection | None:
        """Every check `read` makes short of copying the payload (no checksum, no finiteness): None if the
        descriptor is a candidate, else why not. Changes nothing and counts nothing (the inbox uses it to
        triage a queue before it reads the newest candidate)."""
        try:
            self._read(descriptor, verify_only=True)
        except RejectError as e:
            return Rejection(e.reason, str(e))
        except RingError as e:
            return Rejection(e.reason if e.reason in self._rejections else 'bad_header', str(e))
        except Exception as e:
            return Rejection('internal_error', f'{type(e).__name__}: {e}')
        return None

    def count(self, rejection: Rejection) -> Rejection:
        """Count a rejection decided outside `read` (the inbox's triage, a message that did not convert)."""
        return self._count(rejection)

    def latest(self, now_ns: int | None = None) -> PlannerContext | None:
        """The last good context while it is fresh enough, else None.

        Age is time since it was accepted (monotonic clock), or, if `now_ns` is given (ROS time, ns), time
        since the observation it encodes (`stamp_ns`), which is what a sim-time aware executor wants.
        """
        if self._last is None:
            return None
        if self.max_age_s is not None:
            age = (now_ns - self._last.stamp_ns) * 1e-9 if now_ns is not None else self._clock() - self._last_time
            if age > self.max_age_s:
                return None
        return self._last

    @property
    def last_context(self) -> PlannerContext | None:
        """The last accepted context, whatever its age (the executor judges staleness itself)."""
        return self._last

    @property
    def last_descriptor(self) -> ContextDescriptor | None:
        return self._last_desc

    def close(self) -> None:
        """Unmap every segment. Never unlinks: the planner owns them."""
        for r in self._cuda_rings.values():
            try:
                r.close()
            except Exception:
                pass
        for r in self._rings.values():
            r.close()
        self._rings.clear()
        self._cuda_rings.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------------------------------ internals
    def _count(self, rejection: Rejection) -> Rejection:
        self._rejections[rejection.reason] = self._rejections.get(rejection.reason, 0) + 1
        self.last_rejection = rejection
        return rejection

    def _pool(self, layout: ContextLayout) -> _BufferPool:
        pool = self._pools.get(layout)
        if pool is None:
            pool = self._pools[layout] = _BufferPool(layout.nbytes, self.pool_size)
        return pool

    def _check_common(self, d: ContextDescriptor) -> ContextLayout:
        if not isinstance(d, ContextDescriptor):
            reject('bad_descriptor', f'expected a ContextDescriptor, got {type(d).__name__}')
        if d.transport not in TRANSPORT_NAMES:
            reject('bad_transport', f'unknown transport code {d.transport!r}')
        if d.transport not in self._transports:
            reject('transport_disabled', f'transport {TRANSPORT_NAMES[d.transport]} is not accepted by this reader'
                   + (' (inline contexts trust the whole DDS domain: opt in only for a planner on another host)'
                      if d.transport == TRANSPORT_INLINE else ''))
        try:
            layout = d.layout()
        except (ValueError, TypeError) as e:
            reject('bad_descriptor', f'invalid layout: {e}')
        if self.expected_layout is not None and layout != self.expected_layout:
            reject('layout_mismatch', f'descriptor layout {layout} != expected {self.expected_layout}')
        if int(d.nbytes) != layout.nbytes:
            reject('bad_descriptor', f'nbytes {d.nbytes} != {layout.nbytes} implied by the layout')
        try:
            ok = int(d.version) == d.version and int(d.version) > 0 and int(d.session_id) == d.session_id
        except (TypeError, ValueError):
            ok = False
        if not ok:
            reject('bad_descriptor', f'version must be a positive int and session_id an int, got '
                   f'{d.version!r}, {d.session_id!r}')
        if d.checksum_type not in CHECKSUM_NAMES:
            reject('bad_descriptor', f'unknown checksum type {d.checksum_type!r}')
        if self.require_checksum and d.transport != TRANSPORT_CUDA_IPC and d.checksum_type == CHECKSUM_NONE:
            reject('checksum_mismatch', 'descriptor carries no checksum and this reader requires one')
        return layout

    def _read(self, d: ContextDescriptor, verify_only: bool = False) -> tuple[PlannerContext | None, Source | None]:
        layout = self._check_common(d)
        if self.cache_redelivery and self._last is not None and _same_refresh(d, self._last_desc):
            return self._last, None   # redelivery of the very same descriptor (transient local): idempotent
        if d.transport == TRANSPORT_INLINE:
            src = self.trust.inline_source(d.session_id)
            self.trust.check_version(src, int(d.version), resync=not verify_only)
            kv = self._read_inline(d, layout, verify_only)
            stamp_ns, frame_index, memory_entries = int(d.stamp_ns), int(d.frame_index), int(d.memory_entries)
        else:
            kv, src, meta = self._read_ring(d, layout, verify_only)
            # What the planner stored in the slot, not what the message says (proven; equal when genuine).
            stamp_ns, frame_index, memory_entries = meta['stamp_ns'], meta['frame_index'], meta['memory_entries']
        if verify_only:
            return None, src
        if self.check_finite and not integrity.all_finite(kv):
            reject('non_finite', f'{d.transport_name} context v{int(d.version)} from {src.label} holds NaN or inf')
        return PlannerContext(kv=kv, layout=layout, frame_index=frame_index, memory_entries=memory_entries,
                              stamp_ns=stamp_ns, version=int(d.version), session_id=int(d.session_id)), src

    def _read_inline(self, d: ContextDescriptor, layout: ContextLayout, verify_only: bool) -> torch.Tensor | None:
        data = payload_view(d.payload)
        if data.size != layout.nbytes:
            reject('payload_size', f'inline payload has {data.size} bytes, descriptor says {layout.nbytes}')
        if verify_only:
            return None
        if d.checksum_type != CHECKSUM_NONE:
            got = integrity.compute(d.checksum_type, data)
            if got != int(d.checksum):
                reject('checksum_mismatch', f'inline payload {CHECKSUM_NAMES[d.checksum_type]} {got:#010x} '
                       f'!= descriptor {int(d.checksum):#010x}')
        # Own the bytes (the message buffer may be reused by the middleware): one copy into a pooled buffer.
        buf = self._pool(layout).get()
        np.copyto(buf, data)
        return bytes_to_tensor(buf, layout)

    def _ring_for(self, d: ContextDescriptor) -> ShmRing:
        try:
            name = validate_segment_name(d.segment_name)
        except RingError as e:
            reject('bad_name', str(e))
        self.trust.check_segment(name)
        ring = self._rings.get(name)
        if ring is not None and ring.session_id != d.session_id and not ring.still_named():
            # The planner restarted: the name now refers to a new segment. Map the new one (once).
            self._drop_ring(name)
            ring = None
        if ring is None:
            ring = ShmRing.attach(name, require_same_uid=self.require_same_uid)
            self._rings[name] = ring
        if ring.session_id != d.session_id:
            # The mapping stays: a wrong claim about a live segment must not make us remap it every time.
            reject('session_mismatch', f'segment {name!r} belongs to session {ring.session_id:#x}, '
                   f'descriptor to {int(d.session_id):#x}')
        return ring

    def _drop_ring(self, name: str) -> None:
        cuda = self._cuda_rings.pop(name, None)
        if cuda is not None:
            cuda.close()
        ring = self._rings.pop(name, None)
        if ring is not None:
            ring.close()

    def _copy_payload(self, ring: ShmRing, slot: int, out: np.ndarray) -> None:
        """Copy a slot out of shared memory (a method so tests can interleave a writer mid-copy)."""
        np.copyto(out, ring.payload(slot))

    def _read_ring(self, d: ContextDescriptor, layout: ContextLayout, verify_only: bool):
        ring = self._ring_for(d)
        src = self.trust.ring_source(ring.name, ring.session_id, ring.secret)
        if ring.layout != layout:
            reject('layout_mismatch', f'descriptor layout {layout} != segment layout {ring.layout}')
        on_device = d.transport == TRANSPORT_CUDA_IPC
        if ring.payload_on_device != on_device:
            reject('bad_transport', f'descriptor transport {TRANSPORT_NAMES[d.transport]} does not match segment '
                   f'{ring.name!r}')
        if int(d.num_slots) != ring.num_slots:
            reject('slot_out_of_range', f'descriptor num_slots {d.num_slots} != segment {ring.num_slots}')
        slot = int(d.slot)
        if not 0 <= slot < ring.num_slots:
            reject('slot_out_of_range', f'slot {slot} not in [0, {ring.num_slots})')
        expected = int(d.slot_sequence)
        if expected <= 0 or expected % 2:
            reject('bad_sequence', f'slot_sequence {expected} must be even and positive')
        version = int(d.version)
        # ---- proof against the segment, then seqlock read: seq, metadata, copy, seq again ----
        seq0 = ring.seq(slot)
        if seq0 % 2:
            reject('slot_busy', f'slot {slot} is being written (seq {seq0})')
        meta = ring.slot_meta(slot)
        if ring.seq(slot) != seq0:       # a write began while we read the metadata: it is not one snapshot
            reject('slot_busy', f'slot {slot} was rewritten while its metadata was read (seq {seq0})')
        if meta['version'] != version:
            if meta['version'] > version:
                reject('slot_overwritten', f'slot {slot} holds version {meta["version"]}, descriptor {version}')
            reject('implausible_version', f'descriptor claims version {version}, but slot {slot} of {ring.name!r} '
                   f'holds {meta["version"]} (newest written: {ring.latest[0]})')
        if seq0 != expected:
            if seq0 > expected:
                reject('slot_overwritten', f'slot {slot} moved on to seq {seq0} (descriptor {expected})')
            reject('bad_sequence', f'slot {slot} is at seq {seq0}, descriptor claims {expected}')
        if (meta['stamp_ns'], meta['frame_index'], meta['memory_entries']) != \
                (int(d.stamp_ns), int(d.frame_index), int(d.memory_entries)):
            reject('metadata_mismatch', f'descriptor stamp/frame/memory ({int(d.stamp_ns)}, {int(d.frame_index)}, '
                   f'{int(d.memory_entries)}) != slot {slot} ({meta["stamp_ns"]}, {meta["frame_index"]}, '
                   f'{meta["memory_entries"]})')
        if meta['checksum_type'] != d.checksum_type or meta['checksum'] != d.checksum:
            reject('checksum_mismatch', f'descriptor checksum {int(d.checksum):#x} ({d.checksum_type}) != slot '
                   f'{meta["checksum"]:#x} ({meta["checksum_type"]})')
        # After the proof: only genuine versions reach the record.
        self.trust.check_version(src, version, resync=not verify_only)
        if on_device and ring.state != STATE_LIVE:
            # The planner closed: its device buffer may already be freed, so never touch it. (A closed shm
            # segment stays readable: the reader's own mapping keeps the memory.)
            self._drop_ring(ring.name)
            self.trust.forget_ring(ring.name)
            reject('segment_closed', f'CUDA IPC ring {ring.name!r} was closed by its planner')
        if verify_only:
            return None, src, meta
        if on_device:
            kv_bytes = self._cuda_ring(ring).copy_slot(slot)
        else:
            buf = self._pool(layout).get()
            self._copy_payload(ring, slot, buf)
        seq1 = ring.seq(slot)
        if seq1 != seq0:
            reject('torn', f'slot {slot} changed during the copy (seq {seq0} -> {seq1})')
        if on_device:
            return kv_bytes.view(layout.torch_dtype).reshape(layout.shape), src, meta
        if d.checksum_type != CHECKSUM_NONE:
            got = integrity.compute(d.checksum_type, buf)
            if got != int(d.checksum):
                reject('checksum_mismatch', f'copied slot {CHECKSUM_NAMES[d.checksum_type]} {got:#010x} != '
                       f'descriptor {int(d.checksum):#010x}')
        return bytes_to_tensor(buf, layout), src, meta

    def _cuda_ring(self, ring: ShmRing):
        cuda = self._cuda_rings.get(ring.name)
        if cuda is None:
            from aha_wam.context.cuda_ipc import CudaIpcReaderRing
            cuda = self._cuda_rings[ring.name] = CudaIpcReaderRing(ring, self.device)
        return cuda
