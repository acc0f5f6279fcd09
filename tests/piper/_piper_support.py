"""In-test rclpy client (this pytest process) talking to piper_bringup nodes in other processes."""
from __future__ import annotations

import threading
import time
from collections import defaultdict, deque

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy


class Recorder:
    """A node in a background thread that records (receive monotonic time, msg) per topic."""

    def __init__(self, name: str):
        if not rclpy.ok():
            rclpy.init()
        self.node = Node(name)
        self.msgs = defaultdict(lambda: deque(maxlen=20000))
        self.lock = threading.Lock()
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._running = True
        self._thread.start()

    def _spin(self):
        while self._running and rclpy.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # shutdown races
                if not self._running:
                    return

    def record(self, msg_type, topic: str, best_effort: bool = False, depth: int = 10):
        qos = QoSProfile(depth=depth, reliability=ReliabilityPolicy.BEST_EFFORT if best_effort
                         else ReliabilityPolicy.RELIABLE)

        def cb(msg, topic=topic):
            with self.lock:
                self.msgs[topic].append((time.monotonic(), msg))
        return self.node.create_subscription(msg_type, topic, cb, qos)

    def get(self, topic: str, since: float = 0.0):
        with self.lock:
            return [(t, m) for t, m in self.msgs[topic] if t >= since]

    def last(self, topic: str):
        with self.lock:
            return self.msgs[topic][-1][1] if self.msgs[topic] else None

    def clear(self, topic: str | None = None):
        with self.lock:
            if topic is None:
                self.msgs.clear()
            else:
                self.msgs[topic].clear()

    def now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def close(self):
        self._running = False
        self._thread.join(2.0)
        self.executor.remove_node(self.node)
        self.node.destroy_node()


def stamp(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def set_stamp(header, t: float):
    ns = int(round(t * 1e9))
    header.stamp.sec, header.stamp.nanosec = divmod(ns, 1_000_000_000)


def duration(t: float):
    from builtin_interfaces.msg import Duration
    ns = int(round(t * 1e9))
    sec, nsec = divmod(ns, 1_000_000_000)
    return Duration(sec=sec, nanosec=nsec)
