"""CUDA IPC transport: a device ring shared once between planner and executor on the same GPU.

Design
  * The planner allocates ONE device buffer of `num_slots * slot_stride` bytes and `num_slots`
    inter-process CUDA events, once, and never reallocates them while it lives (a peer holds their handles).
  * Control state lives in a small host shm segment (`ShmRing` with `payload_on_device=True`): the same
    header and per-slot seqlocks as the shm transport, plus a blob with the IPC handles. The handles are
    therefore exchanged exactly once: the reader reads them when it first maps the segment, and the ROS
    descriptor only names the segment (`segment_name`) and the slot, as for shm.
  * The handles come from torch's own CUDA IPC reduction (`torch.multiprocessing.reductions.reduce_tensor`
    -> `storage._share_cuda_()`), serialised field by field (no pickle), and are rebuilt in the reader with
    `rebuild_cuda_tensor` (-> `UntypedStorage._new_shared_cuda`, cudaIpcOpenMemHandle), exactly what
    torch.multiprocessing does when a CUDA tensor crosses a Queue.
  * Publish: seq odd (host) -> copy into the slot on a side stream -> record the slot's IPC event ->
    synchronize it -> seq even. The reader makes its stream wait on the slot's event (orders it after the
    writer's copy even if a future writer stops synchronizing), clones the slot (device-to-device), waits for
    its own copy to finish and re-checks seq: a write that started meanwhile makes seq differ -> rejected.
    Because the writer sets seq odd on the host BEFORE enqueueing its copy, a reader that still sees the old
    seq after its copy completed cannot have overlapped that copy.
  * No checksum: a host CRC would need a device->host copy of the payload, defeating the transport; the
    seqlock plus the event are the guard (checksum_type = NONE).

Unverified on CPU-only machines: tests skip with the reason; see tests/context/test_context_cuda_ipc.py.
"""
from __future__ import annotations

import struct

import torch

from aha_wam.context.layout import ContextLayout
from aha_wam.context.shm_ring import RingError, ShmRing

_BLOB_MAGIC = b'CIPC0001'


def cuda_available() -> bool:
    try:
        return torch.cuda.is_available()
    except Exception:
        return False


def _lp(b: bytes) -> bytes:
    return struct.pack('<I', len(b)) + b


def _take(buf: bytes, pos: int) -> tuple[bytes, int]:
    (n,) = struct.unpack_from('<I', buf, pos)
    pos += 4
    if pos + n > len(buf):
        raise RingError('bad_header', 'truncated CUDA IPC handle blob')
    return buf[pos:pos + n], pos + n


class CudaIpcWriterRing:
    """Planner side: control segment + device ring + per-slot IPC events, allocated once."""

    def __init__(self, name: str, layout: ContextLayout, num_slots: int, session_id: int,
                 device: torch.device | str | int | None = None):
        if not cuda_available():
            raise RuntimeError('CUDA IPC transport needs a CUDA device; torch.cuda.is_available() is False')
        from torch.multiprocessing.reductions import reduce_tensor
        self.device = torch.device('cuda', torch.cuda.current_device()) if device is None else torch.device(device)
        if self.device.index is None:
            self.device = torch.device('cuda', torch.cuda.current_device())
        self.ring = ShmRing.create(name, layout, num_slots, session_id, payload_on_device=True)
        try:
            self.buffer = torch.zeros(num_slots * self.ring.slot_stride, dtype=torch.uint8, device=self.device)
            self.events = [torch.cuda.Event(blocking=False, interprocess=True) for _ in range(num_slots)]
            for ev in self.events:   # an IPC event needs to exist on the device before its handle is taken
                ev.record(torch.cuda.current_stream(self.device))
            torch.cuda.synchronize(self.device)
            self.stream = torch.cuda.Stream(self.device)
            _, args = reduce_tensor(self.buffer)
            (_cls, _size, _stride, _off, _scls, _dtype, dev, handle, storage_size, storage_offset, _rg,
             ref_counter_handle, ref_counter_offset, event_handle, event_sync_required) = args
            blob = (_BLOB_MAGIC + struct.pack('<qQQqQ?', int(dev), int(storage_size), int(storage_offset),
                                              int(ref_counter_offset), self.buffer.numel(), bool(event_sync_required))
                    + _lp(bytes(handle)) + _lp(bytes(ref_counter_handle)) + _lp(bytes(event_handle or b''))
                    + struct.pack('<I', num_slots) + b''.join(_lp(bytes(ev.ipc_handle())) for ev in self.events))
            self.ring.write_blob(blob)
        except BaseException:
            self.ring.close()
            raise

    def slot_view(self, slot: int) -> torch.Tensor:
        start = slot * self.ring.slot_stride
        return self.buffer[start:start + self.ring.nbytes]

    def write(self, slot: int, kv: torch.Tensor) -> None:
        """Copy `kv` into `slot` and wait until the copy is complete on the device (call inside the seqlock)."""
        src = kv.detach()
        if src.device != self.device:
            src = src.to(self.device, non_blocking=False)
        src = src.contiguous().view(torch.uint8).reshape(-1)
        current = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(current)            # kv may still be being produced on the current stream
        with torch.cuda.stream(self.stream):
            self.slot_view(slot).copy_(src, non_blocking=True)
            src.record_stream(self.stream)
        ev = self.events[slot]
        ev.record(self.stream)
        ev.synchronize()                            # only now may the seqlock declare the slot complete

    def close(self) -> None:
        # ring.close() marks the control segment CLOSED first: readers then refuse to touch the device buffer
        # (reason 'segment_closed') before this process frees it.
        torch.cuda.synchronize(self.device)
        self.ring.close()
        self.events = []
        self.buffer = None


class CudaIpcReaderRing:
    """Executor side: the device ring rebuilt from the handles in an attached control segment."""

    def __init__(self, ring: ShmRing, device: torch.device | str | int | None = None):
        if not cuda_available():
            raise RingError('cuda_unavailable', 'descriptor uses CUDA IPC but this process has no CUDA device')
        from torch.multiprocessing.reductions import rebuild_cuda_tensor
        self.ring = ring
        blob = ring.read_blob()
        if not blob.startswith(_BLOB_MAGIC):
            raise RingError('bad_header', f'segment {ring.name!r} carries no CUDA IPC handles')
        pos = len(_BLOB_MAGIC)
        fmt = '<qQQqQ?'
        dev, storage_size, storage_offset, ref_counter_offset, numel, sync_required = struct.unpack_from(fmt, blob, pos)
        pos += struct.calcsize(fmt)
        handle, pos = _take(blob, pos)
        ref_counter_handle, pos = _take(blob, pos)
        event_handle, pos = _take(blob, pos)
        (n_events,) = struct.unpack_from('<I', blob, pos)
        pos += 4
        if n_events != ring.num_slots:
            raise RingError('bad_header', f'segment {ring.name!r}: {n_events} events for {ring.num_slots} slots')
        event_handles = []
        for _ in range(n_events):
            h, pos = _take(blob, pos)
            event_handles.append(h)
        if device is not None and torch.device(device).index not in (None, dev):
            raise RingError('cuda_unavailable', f'CUDA IPC ring lives on cuda:{dev}, reader asked for {device}')
        self.device = torch.device('cuda', dev)
        self.buffer = rebuild_cuda_tensor(
            torch.Tensor, torch.Size([numel]), (1,), 0, torch.storage.TypedStorage, torch.uint8, dev, handle,
            storage_size, storage_offset, False, ref_counter_handle, ref_counter_offset, event_handle or None,
            sync_required)
        self.events = [torch.cuda.Event.from_ipc_handle(self.device, h) for h in event_handles]
        self.stream = torch.cuda.Stream(self.device)

    def copy_slot(self, slot: int) -> torch.Tensor:
        """A private device copy of the slot's bytes, complete (synchronized) when this returns."""
        start = slot * self.ring.slot_stride
        with torch.cuda.stream(self.stream):
            self.stream.wait_event(self.events[slot])
            out = self.buffer[start:start + self.ring.nbytes].clone()
        self.stream.synchronize()
        return out

    def close(self) -> None:
        self.buffer = None
        self.events = []
        self.ring.close()
