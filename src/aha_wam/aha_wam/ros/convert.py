"""Message <-> numpy conversions and small builders shared by the nodes (no cv_bridge needed)."""
from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from std_msgs.msg import Header

DIAG_LEVEL = {'ok': DiagnosticStatus.OK, 'warn': DiagnosticStatus.WARN, 'error': DiagnosticStatus.ERROR,
              'stale': DiagnosticStatus.STALE}


def stamp_to_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(ns: int) -> Time:
    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def image_to_rgb(msg) -> np.ndarray:
    """sensor_msgs/Image (rgb8 or bgr8) -> [h, w, 3] uint8 RGB copy. ValueError naming what is wrong."""
    if msg.encoding not in ('rgb8', 'bgr8'):
        raise ValueError(f'image encoding {msg.encoding!r} is not supported (use rgb8 or bgr8)')
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0 or step < 3 * w:
        raise ValueError(f'image geometry {w}x{h} with step {step} is invalid (step must be >= 3*width)')
    data = np.frombuffer(msg.data, np.uint8)
    if data.size < h * step:
        raise ValueError(f'image data has {data.size} bytes, {w}x{h} with step {step} needs {h * step}')
    rgb = data[:h * step].reshape(h, step)[:, :3 * w].reshape(h, w, 3)
    return np.ascontiguousarray(rgb[..., ::-1] if msg.encoding == 'bgr8' else rgb)


def diagnostic_array(stamp, name: str, level: str, message: str, values: dict) -> DiagnosticArray:
    """One DiagnosticStatus in a DiagnosticArray (node-computed rates, ages, faults)."""
    status = DiagnosticStatus(level=DIAG_LEVEL[level], name=name, message=message, hardware_id=name,
                              values=[KeyValue(key=str(k), value=str(v)) for k, v in values.items()])
    return DiagnosticArray(header=Header(stamp=stamp), status=[status])
