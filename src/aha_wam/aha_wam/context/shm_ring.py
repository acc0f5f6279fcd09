"""A named POSIX shared-memory ring of context slots, each guarded by a seqlock.

Segment layout (all integers little-endian uint64 unless noted, header = one 4 KiB page)::

    byte 0      header: magic, format version, header size, creator pid + start time + uid, session id,
                num_slots, dtype code, layout (L, T, H, D), payload nbytes, slot stride, data offset,
                state (live / closed), latest published version and slot, payload location,
                session secret (128 bit)
    byte 256    slot table, SLOT_ENTRY_BYTES (one cache line) per slot:
                seq, version, nbytes, checksum_type, checksum, stamp_ns, frame_index, memory_entries
    byte 2048   transport blob (CUDA IPC handles; length-prefixed), up to 2 KiB
    byte 4096   slot payloads, `slot_stride` bytes apart (page aligned); absent for the CUDA IPC ring,
                whose payloads live in device memory and which uses this segment only for control

Seqlock (single writer per segment): the writer makes the slot's `seq` odd, writes payload and metadata,
then makes it even (seq += 2 per write). A reader loads `seq`, copies, loads `seq` again, and accepts only
if both loads equal the even value the descriptor announced. CPython issues these loads/stores in program
order and x86-64 (TSO) neither reorders stores with stores nor loads with loads, so no fences are needed
there; on weakly ordered CPUs (ARM) the sampled checksum is the second line of defence (see integrity.py).

Ownership: only the creating process unlinks, and only if the name still refers to *its* segment (same
inode). Readers open the name read-only with `shm_open` directly instead of `multiprocessing.SharedMemory`,
whose resource tracker would unlink the segment when an attaching process exits (cpython gh-82300; the
`track=False` escape exists only from Python 3.13). A segment whose creator is dead (pid gone, or pid
reused by another process: start time differs) is stale and is reclaimed by the next creator.

Trust: the segment is the writer's proof. It is created 0600 and readers refuse segments owned by another
user, writable by others, or reached through a symlink, so only the planner's own user can have written
what it holds. The session id travels in every descriptor (anyone on the ROS domain sees it and can claim
it); the 128-bit session *secret* never leaves the segment, so readers pin a writer session on (segment
name, secret) and a claim that merely repeats a session id proves nothing (see aha_wam.context.trust).
"""
from __future__ import annotations

import errno
import mmap
import os
import re
import secrets
import stat
import struct

import numpy as np

try:
    import _posixshmem  # CPython's shm_open/shm_unlink (POSIX only); the same calls SharedMemory makes
except ImportError:  # pragma: no cover - Windows
    _posixshmem = None

from aha_wam.context.layout import ContextLayout

MAGIC = int.from_bytes(b'AHAWAMKV', 'little')
FORMAT_VERSION = 2          # 2: session secret in the header
HEADER_BYTES = 4096
SLOT_TABLE_OFFSET = 256
SLOT_ENTRY_BYTES = 64
MAX_SLOTS = 16
BLOB_OFFSET = 2048
BLOB_MAX = HEADER_BYTES - BLOB_OFFSET - 8
PAGE = 4096

DEFAULT_PREFIX = 'aha_wam_ctx'
DTYPE_CODES = {'float32': 0, 'float16': 1, 'bfloat16': 2}
DTYPE_NAMES = {v: k for k, v in DTYPE_CODES.items()}

STATE_LIVE = 1
STATE_CLOSED = 2
PAYLOAD_IN_SEGMENT = 0
PAYLOAD_ON_DEVICE = 1      # CUDA IPC: the segment holds only header + seqlocks + handles

# Header field indices (in uint64 words).
H_MAGIC, H_FORMAT, H_HEADER_BYTES, H_PID, H_PID_START, H_UID, H_SESSION, H_NUM_SLOTS, H_DTYPE = range(9)
H_LAYERS, H_TOKENS, H_HEADS, H_HEAD_DIM, H_NBYTES, H_SLOT_STRIDE, H_DATA_OFFSET, H_STATE = range(9, 17)
H_LATEST_VERSION, H_LATEST_SLOT, H_PAYLOAD_LOCATION, H_SECRET_LO, H_SECRET_HI = range(17, 22)
# Slot entry field indices (in uint64 words, relative to the slot's entry).
S_SEQ, S_VERSION, S_NBYTES, S_CHECKSUM_TYPE, S_CHECKSUM, S_STAMP_NS, S_FRAME_INDEX, S_MEMORY = range(8)
SLOT_WORDS = SLOT_ENTRY_BYTES // 8

# Names become /dev/shm/<name>: one path component of portable characters, no leading dot, bounded length.
_NAME_RE = re.compile(r'[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}')


class RingError(Exception):
    """A segment cannot be created or used; `reason` is a short code counted by the reader."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class SegmentBusy(RingError):
    """Another live process owns a segment of this name (two planners with the same node name?)."""

    def __init__(self, message: str):
        super().__init__('segment_busy', message)


def validate_segment_name(name) -> str:
    """Return `name` if it is a safe POSIX shm name (no '/', no '..', printable, <= 200 chars); else raise."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or '..' in name:
        raise RingError('bad_name', f'invalid shared-memory segment name {name!r}: use 1-200 characters from '
                        '[A-Za-z0-9_.-], not starting with "." and without path separators')
    return name


def segment_name(node_name: str, domain_id: int | str | None = None, namespace: str = '',
                 prefix: str = DEFAULT_PREFIX) -> str:
    """Segment name = prefix + namespace + node name + ROS domain, e.g. `aha_wam_ctx.left.planner.d17`.

    The namespace's '/' separators become '.', so `/left` and `/right` planners get distinct segments; any
    other path character in the parts is rejected rather than silently rewritten.
    """
    if domain_id is None:
        domain_id = os.environ.get('ROS_DOMAIN_ID', '0') or '0'
    parts = [prefix] + [p for p in str(namespace).split('/') if p] + [node_name, f'd{domain_id}']
    for p in parts:
        validate_segment_name(p)
    return validate_segment_name('.'.join(parts))


def _shm_path(name: str) -> str:
    return '/dev/shm/' + name


def _process_start_time(pid: int) -> int:
    """Kernel start time of `pid` in clock ticks (field 22 of /proc/<pid>/stat), 0 if unknown.

    Recorded with the pid so a stale segment is recognised even if its pid was reused by a new process.
    """
    try:
        with open(f'/proc/{pid}/stat', 'rb') as f:
            data = f.read()
        # The command name (field 2) may contain spaces and ')': split after the last ')'.
        return int(data[data.rindex(b')') + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return 0


def pid_alive(pid: int, start_time: int = 0) -> bool:
    """True if `pid` is a running process and (when known) started at `start_time`."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    if start_time:
        now_start = _process_start_time(pid)
        if now_start and now_start != start_time:
            return False  # pid reused
    # A zombie (killed, not yet reaped by its parent) holds no mapping any more: treat it as dead.
    try:
        with open(f'/proc/{pid}/stat', 'rb') as f:
            data = f.read()
        if data[data.rindex(b')') + 2:].split()[0] in (b'Z', b'X'):
            return False
    except (OSError, ValueError):
        pass
    return True


def _round_up(n: int, m: int) -> int:
    return (n + m - 1) // m * m


def _shm_open(name: str, flags: int, mode: int = 0o600) -> int:
    if _posixshmem is not None:
        return _posixshmem.shm_open('/' + name, flags, mode)
    return os.open(_shm_path(name), flags, mode)  # pragma: no cover


def _shm_unlink(name: str) -> None:
    if _posixshmem is not None:
        _posixshmem.shm_unlink('/' + name)
    else:  # pragma: no cover
        os.unlink(_shm_path(name))


def _open_existing(name: str) -> int:
    """Open an existing segment read-only, refusing what is not a plain segment file.

    glibc's shm_open adds O_NOFOLLOW, so a symlink planted under the name fails with ELOOP: reported as
    'segment_symlink' (named, not an internal error). O_NONBLOCK keeps a FIFO planted under the name from
    blocking the caller forever; anything but a regular file is 'segment_not_regular'.
    """
    try:
        fd = _shm_open(name, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise RingError('segment_symlink', f'/dev/shm/{name} is a symbolic link; refusing to follow it') from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise RingError('segment_not_regular', f'/dev/shm/{name} is not a regular shared-memory file')
    return fd


def segment_exists(name: str) -> bool:
    try:
        fd = _shm_open(validate_segment_name(name), os.O_RDONLY)
    except (FileNotFoundError, RingError):
        return False
    os.close(fd)
    return True


def inspect_segment(name: str) -> dict:
    """Read the header of an existing segment without keeping it mapped (diagnostics, stale detection)."""
    fd = _open_existing(validate_segment_name(name))
    try:
        st = os.fstat(fd)
        if st.st_size < HEADER_BYTES:
            return {'valid': False, 'size': st.st_size, 'uid': st.st_uid, 'why': 'smaller than a header'}
        mm = mmap.mmap(fd, HEADER_BYTES, mmap.MAP_SHARED, mmap.PROT_READ)
    finally:
        os.close(fd)
    try:
        h = np.frombuffer(mm, np.uint64, HEADER_BYTES // 8)
        info = {'valid': int(h[H_MAGIC]) == MAGIC, 'size': st.st_size, 'uid': st.st_uid,
                'format': int(h[H_FORMAT]), 'pid': int(h[H_PID]), 'pid_start': int(h[H_PID_START]),
                'session_id': int(h[H_SESSION]), 'state': int(h[H_STATE])}
        del h
    finally:
        mm.close()
    info['alive'] = bool(info['valid'] and info['state'] == STATE_LIVE and pid_alive(info['pid'], info['pid_start']))
    return info


class ShmRing:
    """One mapped segment. Create with `ShmRing.create` (planner, owner) or `ShmRing.attach` (reader)."""

    def __init__(self, name: str, mm: mmap.mmap, owner: bool, inode: int):
        self.name = name
        self._mm = mm
        self.owner = owner
        self._inode = inode
        self._closed = False
        self._h = self._hi = self._slots = self._slots_i = self._payloads = None
        self._read_header()     # validates from a struct copy first: no buffer is exported if it raises
        self._h = np.frombuffer(mm, np.uint64, HEADER_BYTES // 8)
        self._hi = np.frombuffer(mm, np.int64, HEADER_BYTES // 8)   # signed view of the same words
        self._slots = np.frombuffer(self._mm, np.uint64, self.num_slots * SLOT_WORDS, SLOT_TABLE_OFFSET) \
            .reshape(self.num_slots, SLOT_WORDS)
        self._slots_i = self._slots.view(np.int64)
        self._payloads = None if self.payload_on_device else np.frombuffer(
            self._mm, np.uint8, self.num_slots * self.slot_stride, HEADER_BYTES).reshape(self.num_slots, self.slot_stride)

    # ----------------------------------------------------------------------------------------- creation
    @classmethod
    def create(cls, name: str, layout: ContextLayout, num_slots: int = 3, session_id: int = 0,
               payload_on_device: bool = False, prefault: bool = True, secret: int | None = None) -> 'ShmRing':
        """Create the segment (owner-only 0600), reclaiming a stale one of the same name; raise SegmentBusy
        if a live process owns it. `prefault` touches every page now so the first publishes are not slowed
        by page faults (~100 ms at paper size, once). `secret` (128 bit, default random) identifies this
        writer session to readers; it is stored only here, never sent."""
        validate_segment_name(name)
        if not isinstance(num_slots, int) or not 1 <= num_slots <= MAX_SLOTS:
            raise ValueError(f'num_slots must be an int in 1..{MAX_SLOTS}, got {num_slots!r}')
        nbytes = layout.nbytes
        slot_stride = _round_up(nbytes, PAGE)
        size = HEADER_BYTES + (0 if payload_on_device else num_slots * slot_stride)
        flags = os.O_CREAT | os.O_EXCL | os.O_RDWR
        try:
            fd = _shm_open(name, flags)
        except FileExistsError:
            cls._reclaim(name)
            fd = _shm_open(name, flags)   # a concurrent creator winning this race gets FileExistsError: fine
        try:
            os.fchmod(fd, 0o600)           # umask can only narrow the mode; make it exact anyway
            os.ftruncate(fd, size)
            inode = os.fstat(fd).st_ino
            mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            os.close(fd)
            try:
                _shm_unlink(name)
            except OSError:
                pass
            raise
        os.close(fd)   # the mapping keeps the memory; the fd is not needed any more
        if prefault and size > HEADER_BYTES:
            np.frombuffer(mm, np.uint8)[HEADER_BYTES:] = 0
        h = np.frombuffer(mm, np.uint64, HEADER_BYTES // 8)
        pid = os.getpid()
        h[H_FORMAT] = FORMAT_VERSION
        h[H_HEADER_BYTES] = HEADER_BYTES
        h[H_PID] = pid
        h[H_PID_START] = _process_start_time(pid)
        h[H_UID] = os.geteuid()
        h[H_SESSION] = session_id & 0xFFFFFFFFFFFFFFFF
        h[H_NUM_SLOTS] = num_slots
        h[H_DTYPE] = DTYPE_CODES[layout.dtype]
        h[H_LAYERS], h[H_TOKENS], h[H_HEADS], h[H_HEAD_DIM] = (layout.num_layers, layout.tokens_per_frame,
                                                                layout.num_heads, layout.head_dim)
        h[H_NBYTES] = nbytes
        h[H_SLOT_STRIDE] = slot_stride
        h[H_DATA_OFFSET] = HEADER_BYTES
        h[H_PAYLOAD_LOCATION] = PAYLOAD_ON_DEVICE if payload_on_device else PAYLOAD_IN_SEGMENT
        secret = secrets.randbits(128) if secret is None else int(secret)
        h[H_SECRET_LO], h[H_SECRET_HI] = secret & 0xFFFFFFFFFFFFFFFF, (secret >> 64) & 0xFFFFFFFFFFFFFFFF
        h[H_STATE] = STATE_LIVE
        h[H_MAGIC] = MAGIC          # last: a reader never sees a valid magic over a half-written header
        del h
        return cls(name, mm, owner=True, inode=inode)

    @staticmethod
    def _reclaim(name: str) -> None:
        try:
            info = inspect_segment(name)
        except FileNotFoundError:
            return
        except RingError as e:
            # A symlink or other non-segment file under our name: remove it if it is ours (shm_unlink
            # removes the link itself, never its target); another user's we cannot and must not touch.
            st = os.lstat(_shm_path(name))
            if st.st_uid != os.geteuid() or stat.S_ISDIR(st.st_mode):
                raise RingError(e.reason, f'{e}; owned by uid {st.st_uid}: remove /dev/shm/{name} by hand') from None
            _shm_unlink(name)
            return
        if info['valid'] and info['alive'] and info['pid'] != os.getpid():
            raise SegmentBusy(f'shared-memory segment {name!r} belongs to live process pid {info["pid"]}; '
                              'is another planner running with the same node name and ROS domain?')
        if info['uid'] != os.geteuid():
            raise RingError('segment_owner', f'stale segment {name!r} is owned by uid {info["uid"]}, not us; '
                            f'remove /dev/shm/{name} by hand')
        try:
            _shm_unlink(name)   # dead creator (SIGKILL, crash), garbage, or closed: reclaim the name
        except FileNotFoundError:
            pass

    @classmethod
    def attach(cls, name: str, require_same_uid: bool = True) -> 'ShmRing':
        """Map an existing segment read-only (reader side). Raises RingError with a reason code."""
        validate_segment_name(name)
        try:
            fd = _open_existing(name)
        except FileNotFoundError:
            raise RingError('missing_segment', f'shared-memory segment {name!r} does not exist') from None
        except PermissionError:
            raise RingError('segment_owner', f'no permission to open shared-memory segment {name!r}') from None
        try:
            st = os.fstat(fd)
            if require_same_uid and st.st_uid != os.geteuid():
                raise RingError('segment_owner', f'segment {name!r} is owned by uid {st.st_uid}, expected '
                                f'{os.geteuid()}; refusing to trust it')
            if stat.S_IMODE(st.st_mode) & 0o022:
                raise RingError('segment_owner', f'segment {name!r} is writable by others '
                                f'(mode {stat.S_IMODE(st.st_mode):o}); refusing to trust it')
            if st.st_size < HEADER_BYTES:
                raise RingError('bad_header', f'segment {name!r} is {st.st_size} bytes, smaller than a header')
            mm = mmap.mmap(fd, st.st_size, mmap.MAP_SHARED, mmap.PROT_READ)
        finally:
            os.close(fd)
        try:
            return cls(name, mm, owner=False, inode=st.st_ino)
        except BaseException:
            mm.close()
            raise

    def _read_header(self) -> None:
        h = struct.unpack_from(f'<{SLOT_TABLE_OFFSET // 8}Q', self._mm, 0)
        if int(h[H_MAGIC]) != MAGIC:
            raise RingError('bad_magic', f'segment {self.name!r} has magic {int(h[H_MAGIC]):#x}, expected {MAGIC:#x}')
        if int(h[H_FORMAT]) != FORMAT_VERSION:
            raise RingError('bad_format_version', f'segment {self.name!r} has format version {int(h[H_FORMAT])}, '
                            f'this code reads {FORMAT_VERSION}')
        if int(h[H_HEADER_BYTES]) != HEADER_BYTES or int(h[H_DATA_OFFSET]) != HEADER_BYTES:
            raise RingError('bad_header', f'segment {self.name!r} has an unexpected header size')
        self.session_id = int(h[H_SESSION])
        self.secret = int(h[H_SECRET_LO]) | (int(h[H_SECRET_HI]) << 64)
        self.num_slots = int(h[H_NUM_SLOTS])
        self.nbytes = int(h[H_NBYTES])
        self.slot_stride = int(h[H_SLOT_STRIDE])
        self.payload_on_device = int(h[H_PAYLOAD_LOCATION]) == PAYLOAD_ON_DEVICE
        self.creator_pid = int(h[H_PID])
        dtype = DTYPE_NAMES.get(int(h[H_DTYPE]))
        try:
            self.layout = ContextLayout(int(h[H_LAYERS]), int(h[H_TOKENS]), int(h[H_HEADS]), int(h[H_HEAD_DIM]),
                                        dtype or '?')
        except ValueError as e:
            raise RingError('bad_header', f'segment {self.name!r} has an invalid layout: {e}') from None
        if not 1 <= self.num_slots <= MAX_SLOTS or self.nbytes != self.layout.nbytes \
                or self.slot_stride < self.nbytes:
            raise RingError('bad_header', f'segment {self.name!r} has inconsistent sizes')
        need = HEADER_BYTES + (0 if self.payload_on_device else self.num_slots * self.slot_stride)
        if len(self._mm) < need:
            raise RingError('bad_header', f'segment {self.name!r} is {len(self._mm)} bytes, its header needs {need}')

    # ----------------------------------------------------------------------------------------- access
    @property
    def state(self) -> int:
        return int(self._h[H_STATE])

    @property
    def latest(self) -> tuple[int, int]:
        """(version, slot) of the newest completed write (diagnostics; descriptors remain authoritative)."""
        return int(self._h[H_LATEST_VERSION]), int(self._h[H_LATEST_SLOT])

    def creator_alive(self) -> bool:
        return self.state == STATE_LIVE and pid_alive(int(self._h[H_PID]), int(self._h[H_PID_START]))

    def payload(self, slot: int) -> np.ndarray:
        """uint8 view of the slot's payload bytes (read-only on the reader side)."""
        if self._payloads is None:
            raise RingError('bad_transport', f'segment {self.name!r} keeps its payloads on the device')
        return self._payloads[slot, :self.nbytes]

    def seq(self, slot: int) -> int:
        return int(self._slots[slot, S_SEQ])

    def slot_meta(self, slot: int) -> dict:
        s, si = self._slots[slot], self._slots_i[slot]
        return {'seq': int(s[S_SEQ]), 'version': int(s[S_VERSION]), 'nbytes': int(s[S_NBYTES]),
                'checksum_type': int(s[S_CHECKSUM_TYPE]), 'checksum': int(s[S_CHECKSUM]),
                'stamp_ns': int(si[S_STAMP_NS]), 'frame_index': int(si[S_FRAME_INDEX]), 'memory_entries': int(s[S_MEMORY])}

    def write_begin(self, slot: int) -> int:
        """Writer: mark `slot` busy (seq odd) before touching its payload; returns the odd value."""
        self._require_owner()
        seq = int(self._slots[slot, S_SEQ])
        seq = seq + 1 if seq % 2 == 0 else seq + 2   # stays odd even if a previous write died half-way
        self._slots[slot, S_SEQ] = seq
        return seq

    def write_end(self, slot: int, version: int, checksum_type: int, checksum: int, stamp_ns: int,
                  frame_index: int, memory_entries: int) -> int:
        """Writer: store the slot metadata, then publish it (seq even). Returns the even sequence."""
        self._require_owner()
        s, si = self._slots[slot], self._slots_i[slot]
        s[S_VERSION] = version
        s[S_NBYTES] = self.nbytes
        s[S_CHECKSUM_TYPE] = checksum_type
        s[S_CHECKSUM] = checksum
        si[S_STAMP_NS] = stamp_ns
        si[S_FRAME_INDEX] = frame_index
        s[S_MEMORY] = memory_entries
        seq = int(s[S_SEQ]) + 1
        s[S_SEQ] = seq                               # last store: makes the slot visible
        self._h[H_LATEST_VERSION] = version
        self._h[H_LATEST_SLOT] = slot
        return seq

    def write_blob(self, blob: bytes) -> None:
        """Owner: store the transport blob (CUDA IPC handles) once, before publishing anything."""
        self._require_owner()
        if len(blob) > BLOB_MAX:
            raise ValueError(f'transport blob of {len(blob)} bytes exceeds {BLOB_MAX}')
        buf = np.frombuffer(self._mm, np.uint8, HEADER_BYTES - BLOB_OFFSET, BLOB_OFFSET)
        buf[8:8 + len(blob)] = np.frombuffer(blob, np.uint8)
        buf[:8] = np.frombuffer(len(blob).to_bytes(8, 'little'), np.uint8)

    def read_blob(self) -> bytes:
        buf = np.frombuffer(self._mm, np.uint8, HEADER_BYTES - BLOB_OFFSET, BLOB_OFFSET)
        n = int.from_bytes(buf[:8].tobytes(), 'little')
        if n > BLOB_MAX:
            raise RingError('bad_header', f'segment {self.name!r} has a corrupt transport blob length {n}')
        return buf[8:8 + n].tobytes()

    def _require_owner(self) -> None:
        if not self.owner:
            raise RingError('not_owner', f'segment {self.name!r} is mapped read-only by a reader')
        if self._closed:
            raise RingError('closed', f'segment {self.name!r} is closed')

    # ----------------------------------------------------------------------------------------- teardown
    def still_named(self) -> bool:
        """True if the name still refers to this mapping's segment (not unlinked or replaced)."""
        try:
            fd = _shm_open(self.name, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:        # gone, not ours, or something planted under the name (symlink: ELOOP)
            return False
        try:
            return os.fstat(fd).st_ino == self._inode
        finally:
            os.close(fd)

    def close(self) -> None:
        """Unmap; the owner also marks the segment closed and unlinks it (only if the name is still ours).
        Readers never unlink."""
        if self._closed:
            return
        if self.owner:
            try:
                self._h[H_STATE] = STATE_CLOSED
                if self.still_named():
                    _shm_unlink(self.name)
            except OSError:
                pass
        self._closed = True
        self._h = self._hi = self._slots = self._slots_i = self._payloads = None
        try:
            self._mm.close()
        except BufferError:
            pass  # a caller still holds a view into the mapping; the GC unmaps it when the view dies

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        # Best effort only: the owner's clean path is close() (a dropped owner ring is finished, so it
        # unlinks its own segment); a reader's close never unlinks.
        try:
            if not self._closed:
                self.close()
        except Exception:
            pass
