"""Why a descriptor was not accepted: the named reasons, the `Rejection` value and the internal exception.

Every reason a reader can give is listed here, once; diagnostics report every one (zeros included), so a
new reason is a new line below and nothing else.
"""
from __future__ import annotations

import dataclasses

REJECTION_REASONS = (
    'bad_descriptor',      # fields missing / wrong type / invalid layout / version 0 / nbytes mismatch
    'bad_transport',       # unknown transport code, or a descriptor whose transport does not match its segment
    'transport_disabled',  # a known transport this reader does not accept (inline is opt-in for executors)
    'bad_name',            # segment name with path characters or other unsafe characters
    'untrusted_source',    # a segment other than the planner(s) this reader is configured to trust
    'missing_segment',     # no segment of that name (planner gone, wrong host)
    'segment_owner',       # segment owned by another user or writable by others
    'segment_symlink',     # a symbolic link planted under the segment name (never followed)
    'segment_not_regular', # a directory, FIFO or other non-file under the segment name
    'bad_magic',           # not an AHA-WAM context segment
    'bad_format_version',  # segment written by an incompatible version of this code
    'bad_header',          # segment header inconsistent
    'session_mismatch',    # descriptor from another planner session than the segment (restart race, forgery)
    'session_conflict',    # inline descriptor claiming the session of a planner proven by its segment
    'layout_mismatch',     # descriptor layout != segment layout (or != the reader's expected layout)
    'slot_out_of_range',   # slot >= num_slots, or num_slots disagrees with the segment
    'bad_sequence',        # slot_sequence odd or zero, or ahead of the slot
    'slot_busy',           # slot being written right now (seq odd)
    'slot_overwritten',    # the writer has reused the slot for a newer version
    'metadata_mismatch',   # stamp / frame index / memory entries differ from what the writer stored in the slot
    'torn',                # the slot changed while it was being copied
    'checksum_mismatch',   # checksum of the copied bytes != descriptor (or descriptor != slot)
    'payload_size',        # inline payload length != nbytes
    'stale_version',       # older than the context already accepted from this source
    'implausible_version', # newer than the segment holds, or (inline) a jump no planner could have made
    'non_finite',          # the context holds NaN or inf
    'cuda_unavailable',    # CUDA IPC descriptor but no usable CUDA device here
    'segment_closed',      # CUDA IPC ring whose planner shut down (its device memory may be freed)
    'internal_error',      # anything unexpected: logged in the detail, never raised
)


@dataclasses.dataclass(frozen=True)
class Rejection:
    """Why a descriptor was not accepted. Falsy, so `if ctx := reader.read(d):` works."""

    reason: str
    detail: str = ''

    def __bool__(self) -> bool:
        return False

    def __str__(self) -> str:
        return f'rejected ({self.reason}): {self.detail}'


class RejectError(Exception):
    """Raised inside the reader's checks; turned into a counted `Rejection` at the public boundary."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def reject(reason: str, detail: str):
    raise RejectError(reason, detail)
