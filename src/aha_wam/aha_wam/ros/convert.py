"""Message <-> numpy conversions and small builders shared by the nodes (no cv_bridge needed)."""
from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from std_msgs.msg import Header

from aha_wam.data.images import msg_to_rgb

DIAG_LEVEL = {'ok': DiagnosticStatus.OK, 'warn': DiagnosticStatus.WARN, 'error': DiagnosticStatus.ERROR,
              'stale': DiagnosticStatus.STALE}


def stamp_to_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(ns: int) -> Time:
    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def image_to_rgb(msg) -> np.ndarray:
    """sensor_msgs/Image (rgb8, bgr8, rgba8, bgra8, mono8) or CompressedImage -> [h, w, 3] uint8 RGB copy.
    ValueError naming what is wrong. The suite's one decoder: aha_wam.data.images."""
    return msg_to_rgb(msg)


def diagnostic_array(stamp, name: str, level: str, message: str, values: dict) -> DiagnosticArray:
    """One DiagnosticStatus in a DiagnosticArray (node-computed rates, ages, faults)."""
    status = DiagnosticStatus(level=DIAG_LEVEL[level], name=name, message=message, hardware_id=name,
                              values=[KeyValue(key=str(k), value=str(v)) for k, v in values.items()])
    return DiagnosticArray(header=Header(stamp=stamp), status=[status])
