"""Episode bags: ROS 2 bags (MCAP storage, written with `rosbags`, no rclpy) <-> `Episode`.

One bag directory per episode. The suite's own topics (the `aha_wam` topic map; header stamps are the time
base; bag receive times are ignored):

    /camera/ego/image_raw          sensor_msgs/msg/Image (rgb8 or bgr8)       ego frames
    /left/joint_states_single      sensor_msgs/msg/JointState (joint1..6, gripper)   measured state
    /right/joint_states_single
    /left/joint_ctrl_single        sensor_msgs/msg/JointState                  commands sent to the arms
    /right/joint_ctrl_single
    /sim/task_status               std_msgs/msg/String (JSON: success, stage, ...)
    /aha_wam/instruction           std_msgs/msg/String (natural-language instruction)

Episode metadata (task, seed, level, success, instruction) is stored as bag custom data under key
`aha_wam.episode` (JSON) in metadata.yaml.

Reading goes through the one reader (`aha_wam.data.rosbag.read_bag`, any topic map, any number of cameras)
and the one time alignment (`aha_wam.data.timeline.to_episode`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

import numpy as np

from aha_wam.data.episode import Episode
from aha_wam.data.rosbag import META_KEY, read_bag, read_bag_meta, typestore  # noqa: F401 (re-exported)
from aha_wam.data.timeline import to_episode

from piper_core.layout import ARMS, JOINT_NAMES, arm_slice
IMAGE_TOPIC = '/camera/ego/image_raw'
JOINT_TOPICS = {a: f'/{a}/joint_states_single' for a in ARMS}
COMMAND_TOPICS = {a: f'/{a}/joint_ctrl_single' for a in ARMS}
STATUS_TOPIC = '/sim/task_status'
INSTRUCTION_TOPIC = '/aha_wam/instruction'
IMAGE_TYPE, JOINT_TYPE, STRING_TYPE = 'sensor_msgs/msg/Image', 'sensor_msgs/msg/JointState', 'std_msgs/msg/String'
TOPIC_TYPES = {IMAGE_TOPIC: IMAGE_TYPE, STATUS_TOPIC: STRING_TYPE, INSTRUCTION_TOPIC: STRING_TYPE,
               **{t: JOINT_TYPE for t in JOINT_TOPICS.values()}, **{t: JOINT_TYPE for t in COMMAND_TOPICS.values()}}

# rosbag2 metadata version 8: the newest that both Humble and Kilted `ros2 bag` parse. Humble's rosbag2_storage
# reads `offered_qos_profiles` as one YAML string (versions 4-8; Kilted still reads that for version < 9); version 9
# writes it as a YAML list, which Humble refuses. Humble ignores the newer keys (type_description_hash, ros_distro).
BAG_VERSION = 8


def offered_qos(msgtype: str):
    """The QoS a live publisher of `msgtype` offers, which `ros2 bag play` republishes with: cameras best effort
    depth 1; everything else reliable (the piper_ros driver and the streamer: depth 1; status strings: depth 10)."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
    camera = msgtype in (IMAGE_TYPE, 'sensor_msgs/msg/CompressedImage')
    unspecified = QosTime(0, 0)
    return Qos(QosHistory.KEEP_LAST, 10 if msgtype == STRING_TYPE else 1,
               QosReliability.BEST_EFFORT if camera else QosReliability.RELIABLE, QosDurability.VOLATILE,
               unspecified, unspecified, QosLiveliness.AUTOMATIC, unspecified, False)


class BagWriter:
    """Write episode topics into one MCAP bag (used by `aha-wam record` and to make test bags)."""

    def __init__(self, path: str | os.PathLike, topics: dict | None = None):
        """`topics`: topic -> message type (default: the suite's episode topics, TOPIC_TYPES)."""
        from rosbags.rosbag2 import StoragePlugin, Writer
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f'{self.path} exists: one bag per episode, never overwritten')
        self.ts = typestore()
        self.types = dict(TOPIC_TYPES if topics is None else topics)
        self.writer = Writer(self.path, version=BAG_VERSION, storage_plugin=StoragePlugin.MCAP)
        self.writer.open()
        self.connections = {topic: self.writer.add_connection(topic, kind, typestore=self.ts,
                                                              offered_qos_profiles=[offered_qos(kind)])
                            for topic, kind in self.types.items()}
        self.counts = {topic: 0 for topic in self.types}

    def write_raw(self, topic: str, cdr: bytes, stamp_ns: int) -> None:
        """Already-serialised CDR bytes (what rclpy received) on one of the bag's topics."""
        self.writer.write(self.connections[topic], int(stamp_ns), cdr)
        self.counts[topic] += 1

    def _stamp(self, ns: int):
        t = self.ts.types
        return t['std_msgs/msg/Header'](stamp=t['builtin_interfaces/msg/Time'](sec=int(ns // 10**9),
                                                                                nanosec=int(ns % 10**9)), frame_id='')

    def _write(self, topic: str, msg, stamp_ns: int, receive_ns: int | None = None) -> None:
        data = self.ts.serialize_cdr(msg, self.types[topic])
        self.writer.write(self.connections[topic], int(stamp_ns if receive_ns is None else receive_ns), data)
        self.counts[topic] += 1

    def image(self, rgb: np.ndarray, stamp_ns: int, receive_ns: int | None = None, topic: str = IMAGE_TOPIC) -> None:
        rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
        h, w = rgb.shape[:2]
        msg = self.ts.types[IMAGE_TYPE](header=self._stamp(stamp_ns), height=h, width=w, encoding='rgb8',
                                        is_bigendian=0, step=3 * w, data=rgb.reshape(-1))
        self._write(topic, msg, stamp_ns, receive_ns)

    def joints(self, topic: str, q7, stamp_ns: int, receive_ns: int | None = None, velocity=None,
               effort=None) -> None:
        q7 = np.asarray(q7, dtype=np.float64)
        msg = self.ts.types[JOINT_TYPE](header=self._stamp(stamp_ns), name=list(JOINT_NAMES), position=q7,
                                        velocity=np.asarray(velocity if velocity is not None else [], np.float64),
                                        effort=np.asarray(effort if effort is not None else [], np.float64))
        self._write(topic, msg, stamp_ns, receive_ns)

    def string(self, topic: str, text: str, stamp_ns: int) -> None:
        self._write(topic, self.ts.types[STRING_TYPE](data=text), stamp_ns)

    def close(self, meta: dict | None = None) -> Path:
        if meta is not None:
            self.writer.set_custom_data(META_KEY, json.dumps(meta, default=str))
        self.writer.close()
        return self.path


def write_episode_bag(episode: Episode, path: str | os.PathLike, t0_ns: int = 1_000_000_000,
                      control_hz: float | None = None) -> Path:
    """An Episode as a bag (images at their steps, joints/commands at every control step)."""
    hz = float(control_hz or episode.meta.get('control_hz', 50.0))
    period = int(round(1e9 / hz))
    w = BagWriter(path)
    w.string(INSTRUCTION_TOPIC, str(episode.meta.get('instruction', '')), t0_ns)
    for t in range(episode.length):
        stamp = t0_ns + t * period
        for i, arm in enumerate(ARMS):
            w.joints(JOINT_TOPICS[arm], episode.proprio[t, arm_slice(arm)], stamp)
            w.joints(COMMAND_TOPICS[arm], episode.actions[t, arm_slice(arm)], stamp)
    for step, rgb in zip(episode.image_steps, episode.images):
        w.image(rgb, t0_ns + int(step) * period)
    w.string(STATUS_TOPIC, json.dumps({'success': bool(episode.meta.get('success', False))}),
             t0_ns + (episode.length - 1) * period)
    return w.close({**episode.meta, 'control_hz': hz})


def read_episode_bag(path: str | os.PathLike, control_hz: float | None = None,
                     image_hw: tuple[int, int] | None = None, topic_map=None) -> Episode:
    """Bag -> Episode on the control grid (`timeline.to_episode`), every mapped camera. Images are resized
    with the shared `model_image` when `image_hw` is given, else kept at native resolution."""
    return to_episode(read_bag(path, topic_map, all_cameras=True), control_hz, image_hw)


def write_bags(episodes: Iterable[Episode], directory: str | os.PathLike) -> list[Path]:
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    return [write_episode_bag(ep, out / f"bag_{ep.meta.get('task', 'task')}_{int(ep.meta.get('seed', i)):06d}")
            for i, ep in enumerate(episodes)]
