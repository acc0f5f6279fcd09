"""The camera views a node subscribes, as its checkpoint's embodiment contract names them.

One latest-value cache per view (best effort, depth 1: only the newest frame matters). `newest()` gives the
first view's image and stamp (the head / ego camera: its stamp is the observation time, it drives the
executor's phase lock) and, when the contract composes several cameras, every view by name.
"""
from __future__ import annotations

import threading

from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from aha_wam.ros.convert import image_to_rgb, stamp_to_ns

SENSOR_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)


def camera_topics(contract, override) -> list[str]:
    """The node's topics: the `camera_topics` parameter when set, else the contract's; counts must agree."""
    topics = [t for t in (override or []) if t] or contract.camera_topics
    names = [v.name for v in contract.cameras.views]
    if len(topics) != len(names):
        raise ValueError(f'camera_topics {topics}: the checkpoint\'s contract {contract.name!r} composes '
                         f'{len(names)} camera view(s) {names}')
    return topics


class CameraSet:
    """Latest frame of each view; `on_first` runs after each frame of the first view (phase lock)."""

    def __init__(self, node, contract, topics, on_first=None, log=None):
        self.names = [v.name for v in contract.cameras.views]
        self._lock = threading.Lock()
        self._frames: dict[str, tuple] = {}
        self.dropped = 0
        self._on_first, self._log = on_first, log
        self.subscriptions = [node.create_subscription(Image, topic, lambda m, n=name: self._on(n, m), SENSOR_QOS)
                              for name, topic in zip(self.names, topics)]

    def _on(self, name: str, msg: Image) -> None:
        try:
            rgb = image_to_rgb(msg)
        except ValueError as exc:
            self.dropped += 1
            if self._log:
                self._log(f'dropping image on view {name!r}: {exc}', throttle_duration_sec=5.0)
            return
        with self._lock:
            self._frames[name] = (rgb, stamp_to_ns(msg.header.stamp))
        if name == self.names[0] and self._on_first is not None:
            self._on_first()

    def newest(self):
        """(first view's image or None, its stamp, {view: image} when several views are composed, else None)."""
        with self._lock:
            frames = dict(self._frames)
        first = frames.get(self.names[0])
        if first is None:
            return None, 0, None
        views = None
        if len(self.names) > 1:
            if any(n not in frames for n in self.names):
                return None, 0, None          # a view has not arrived yet: no composite (the executor holds)
            views = {n: frames[n][0] for n in self.names}
        return first[0], first[1], views
