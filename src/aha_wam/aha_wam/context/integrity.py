"""Integrity checks for context payloads.

Why a *sampled* CRC for the shared-memory ring
----------------------------------------------
A full zlib CRC-32 runs at about 2 GB/s on this machine: 20-40 ms for the 44 MB paper-size context, on
both the writer and the reader. That alone exceeds the 15 ms publish->usable budget. In the shm ring the
dangerous failure is not random bit corruption (the bytes never leave local RAM, which is ECC-protected on
deployment hardware) but *logic* errors: a torn copy racing the writer, a descriptor that points at the
wrong or a reused slot, a stale slot left from a previous version, a partially written page. The per-slot
seqlock already rejects every read that overlaps a write, so the checksum is the second, independent line:

  * CRC32_SAMPLED takes the first SAMPLE_BYTES of every SAMPLE_STRIDE-byte block (default 64 of 4096,
    i.e. one cache line per page, 1/64 of the data) plus the last SAMPLE_BYTES of the buffer, and runs
    CRC-32 over them. Every 4 KiB page contributes, so a wrong slot, a stale or half-copied page, a
    truncated copy or a layout mix-up changes the checksum with probability 1 - 2^-32. It costs ~1 ms at
    44 MB (gather + CRC of ~690 KB) instead of 20-40 ms. It does NOT detect a flipped byte outside the
    sampled lines; we accept that because the seqlock covers concurrent writes and RAM is not a lossy link.
  * Small payloads (<= FULL_CRC_LIMIT) get a full CRC-32 anyway: it is cheaper than the bookkeeping.
  * The inline transport crosses the network/DDS and bag files, so it always uses full CRC-32.
"""
from __future__ import annotations

import zlib

import numpy as np

from aha_wam.context.descriptor import CHECKSUM_CRC32, CHECKSUM_CRC32_SAMPLED, CHECKSUM_NONE

SAMPLE_STRIDE = 4096          # one sample per page
SAMPLE_BYTES = 64             # one cache line per sample
FULL_CRC_LIMIT = 1 << 20      # below 1 MiB a full CRC costs < 0.5 ms: just do it


def as_bytes_view(buf) -> np.ndarray:
    """A flat uint8 numpy view of any C-contiguous buffer (bytes, memoryview, array, ndarray); no copy."""
    if isinstance(buf, np.ndarray):
        if not buf.flags.c_contiguous:
            raise ValueError('payload buffer must be C-contiguous')
        return buf.reshape(-1).view(np.uint8)
    return np.frombuffer(buf, dtype=np.uint8)


def crc32_full(buf) -> int:
    return zlib.crc32(as_bytes_view(buf)) & 0xFFFFFFFF


def crc32_sampled(buf, stride: int = SAMPLE_STRIDE, nbytes: int = SAMPLE_BYTES) -> int:
    """CRC-32 over the first `nbytes` of every `stride`-byte block plus the last `nbytes` bytes."""
    data = as_bytes_view(buf)
    n = data.size
    full_blocks = n // stride
    crc = 0
    if full_blocks:
        # One strided gather into a small contiguous array, then one CRC call (no Python loop per block).
        sample = np.ascontiguousarray(data[:full_blocks * stride].reshape(full_blocks, stride)[:, :nbytes])
        crc = zlib.crc32(sample, crc)
    rest = data[full_blocks * stride:]
    crc = zlib.crc32(rest[:nbytes], crc)
    crc = zlib.crc32(data[max(0, n - nbytes):], crc)       # the tail always counts (catches truncation)
    crc = zlib.crc32(n.to_bytes(8, 'little'), crc)          # and the length
    return crc & 0xFFFFFFFF


def choose_checksum(nbytes: int, requested: str = 'auto') -> int:
    """Checksum code for a shm payload of `nbytes`: 'auto' | 'crc32' | 'sampled' | 'none'."""
    if requested == 'auto':
        return CHECKSUM_CRC32 if nbytes <= FULL_CRC_LIMIT else CHECKSUM_CRC32_SAMPLED
    codes = {'crc32': CHECKSUM_CRC32, 'sampled': CHECKSUM_CRC32_SAMPLED, 'crc32_sampled': CHECKSUM_CRC32_SAMPLED,
             'none': CHECKSUM_NONE}
    if requested not in codes:
        raise ValueError(f"checksum must be one of 'auto', {sorted(codes)}; got {requested!r}")
    return codes[requested]


def compute(checksum_type: int, buf) -> int:
    """Checksum value of `buf` for a checksum code (0 for CHECKSUM_NONE)."""
    if checksum_type == CHECKSUM_NONE:
        return 0
    if checksum_type == CHECKSUM_CRC32:
        return crc32_full(buf)
    if checksum_type == CHECKSUM_CRC32_SAMPLED:
        return crc32_sampled(buf)
    raise ValueError(f'unknown checksum type {checksum_type}')


def all_finite(kv) -> bool:
    """True if every element of the tensor `kv` is finite (no NaN, no +-inf).

    One reduction: IEEE sums propagate NaN and inf, so a finite sum proves every element finite (4 us for the
    `small` context on one CPU thread, 1.5-2 ms at paper size; on a GPU one kernel plus the scalar read). Only
    when the sum is not finite (a real NaN/inf, or a sum that overflowed its dtype, e.g. float16) does the
    exact element-wise check decide.
    """
    import torch   # local: this module stays importable without torch for the checksum helpers
    if not kv.is_floating_point():
        return True
    if bool(torch.isfinite(torch.sum(kv))):
        return True
    return bool(torch.isfinite(kv).all())
