"""bag_player: replay a rosbag2 bag (MCAP or sqlite3) into a live ROS graph with /clock, where `ros2 bag play`
is absent (PyPI ROS). Full installs: `ros2 bag play BAG --clock 100 --rate R [--loop] [--start-paused]`.

    python -m aha_wam.ros.bag_player --ros-args -p bag:=runs/bags/bag_lift_box_000000 \
        -p rate:=1.0 -p start_paused:=true -p loop:=false [-p topic_map:=agilex]

Parameters
    bag            rosbag2 directory (required)
    rate           playback speed factor (> 0)
    start_paused   wait for `~/resume` (std_srvs/Trigger) before the first message; `~/pause` pauses again
    loop           start over at the end (/clock jumps back; the planner treats that as a new episode)
    clock_hz       /clock publish rate (continuous bag time; frozen while paused)
    topics         only these bag topics (empty: all)
    topic_map      a topic map (file or bundled name): its roles are republished under the suite's own topic
                   names, so AgileX-named bags drive the aha_wam nodes; other topics keep their names
    exit_at_end    exit when the bag is done (not looping)

Messages are republished as the bag's raw CDR bytes (no deserialisation) on publishers of the recorded type.
Subscribers run with `use_sim_time:=true` to follow the bag clock.
"""
from __future__ import annotations

import importlib
import sys
import threading
import time
from pathlib import Path

import rclpy
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from std_srvs.srv import Trigger

from aha_wam.ros.convert import ns_to_stamp


def message_class(msgtype: str):
    pkg, _, name = msgtype.split('/')
    return getattr(importlib.import_module(f'{pkg}.msg'), name)


class BagPlayer(Node):
    def __init__(self):
        super().__init__('bag_player')
        self.declare_parameter('bag', '')
        self.declare_parameter('rate', 1.0)
        self.declare_parameter('start_paused', False)
        self.declare_parameter('loop', False)
        self.declare_parameter('clock_hz', 100.0)
        self.declare_parameter('topics', [''])
        self.declare_parameter('topic_map', '')
        self.declare_parameter('exit_at_end', True)
        p = lambda name: self.get_parameter(name).value   # noqa: E731
        self.bag = Path(str(p('bag')))
        self.rate = float(p('rate'))
        if not self.rate > 0:
            raise ValueError(f'rate must be > 0, got {self.rate}')
        self.loop = bool(p('loop'))
        self.exit_at_end = bool(p('exit_at_end'))
        only = [t for t in (p('topics') or []) if t]
        rename = {}
        if p('topic_map'):
            from aha_wam.data.topic_map import TopicMap, load_topic_map
            tmap, ours = load_topic_map(str(p('topic_map'))), TopicMap()
            rename = {tmap.topics[r]: ours.topics[r] for r in tmap.topics if tmap.topics[r] and ours.topics.get(r)}
        from rosbags.highlevel import AnyReader
        from aha_wam.data.rosbag import typestore
        self.reader = AnyReader([self.bag], default_typestore=typestore())
        self.reader.open()
        self.connections, self.pubs = [], {}
        for c in self.reader.connections:
            if only and c.topic not in only:
                continue
            try:
                cls = message_class(c.msgtype)
            except (ImportError, AttributeError, ValueError):
                self.get_logger().warning(f'skipping {c.topic}: message type {c.msgtype} is not available here')
                continue
            out = rename.get(c.topic, c.topic)
            if out not in self.pubs:
                image = c.msgtype.startswith('sensor_msgs/msg/') and 'Image' in c.msgtype
                qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5 if image else 10,
                                 reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.VOLATILE if image else DurabilityPolicy.TRANSIENT_LOCAL)
                self.pubs[out] = self.create_publisher(cls, out, qos)
            self.connections.append((c, out))
        if not self.connections:
            raise ValueError(f'{self.bag}: nothing to play (topics {only or "all"})')
        self.out_of = {id(c): out for c, out in self.connections}
        self.clock_pub = self.create_publisher(Clock, '/clock', QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE))
        self._lock = threading.Lock()
        self.paused = bool(p('start_paused'))
        self.start_ns = int(self.reader.start_time)
        self.bag_ns = self.start_ns
        self._anchor = (time.monotonic(), self.bag_ns)
        self.done = threading.Event()
        self.published = 0
        self.create_service(Trigger, '~/resume', lambda req, res: self._set_paused(False, res))
        self.create_service(Trigger, '~/pause', lambda req, res: self._set_paused(True, res))
        self.create_timer(1.0 / float(p('clock_hz')), self._publish_clock)
        self.thread = threading.Thread(target=self._play, daemon=True)
        self.thread.start()
        self.get_logger().info(f'playing {self.bag} ({len(self.connections)} topics) at rate {self.rate}'
                               f'{", paused: call ~/resume" if self.paused else ""}')

    def _set_paused(self, paused: bool, res):
        with self._lock:
            if paused != self.paused:
                self.bag_ns = self._now_bag()
                self.paused = paused
                self._anchor = (time.monotonic(), self.bag_ns)
        res.success, res.message = True, 'paused' if paused else 'playing'
        return res

    def _now_bag(self) -> int:
        """Continuous playback time (frozen while paused)."""
        if self.paused:
            return self.bag_ns
        wall0, bag0 = self._anchor
        return bag0 + int((time.monotonic() - wall0) * self.rate * 1e9)

    def _publish_clock(self, ns: int | None = None) -> None:
        with self._lock:
            ns = self._now_bag() if ns is None else ns
        self.clock_pub.publish(Clock(clock=ns_to_stamp(ns)))

    def _play(self) -> None:
        try:
            while rclpy.ok():
                for conn, t_ns, raw in self.reader.messages(connections=[c for c, _ in self.connections]):
                    while rclpy.ok():
                        with self._lock:
                            wait = None if self.paused else (t_ns - self._now_bag()) / (self.rate * 1e9)
                        if wait is not None and wait <= 0:
                            break
                        time.sleep(0.01 if wait is None else min(wait, 0.01))
                    if not rclpy.ok():
                        return
                    self.pubs[self.out_of[id(conn)]].publish(bytes(raw))
                    self.published += 1
                if not self.loop:
                    break
                with self._lock:             # start over: the bag clock jumps back
                    self.bag_ns = self.start_ns
                    self._anchor = (time.monotonic(), self.start_ns)
            self.get_logger().info(f'done: {self.published} messages published')
        except Exception as exc:       # a corrupt bag: say so and stop, no trace
            self.get_logger().error(f'{self.bag}: playback stopped: {type(exc).__name__}: {exc}')
        finally:
            self.done.set()


def main(argv=None) -> int:
    rclpy.init(args=argv)
    try:
        node = BagPlayer()
    except Exception as exc:
        print(f'bag_player: error: {type(exc).__name__}: {exc}', file=sys.stderr, flush=True)
        rclpy.try_shutdown()
        return 2
    from rclpy.executors import SingleThreadedExecutor
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while rclpy.ok():
            executor.spin_once(timeout_sec=0.05)
            if node.done.is_set() and node.exit_at_end:
                for _ in range(20):            # let the last messages and a final /clock go out
                    executor.spin_once(timeout_sec=0.01)
                break
    except KeyboardInterrupt:
        pass
    finally:
        try:
            node.reader.close()
        except Exception:
            pass
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
