"""builtin_interfaces/Time <-> float seconds."""
from __future__ import annotations


def stamp_to_sec(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def sec_to_stamp(t: float, msg_stamp) -> None:
    """Write float seconds into a builtin_interfaces/Time in place."""
    ns = int(round(t * 1e9))
    msg_stamp.sec, msg_stamp.nanosec = divmod(ns, 1_000_000_000)
