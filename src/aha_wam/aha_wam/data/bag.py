"""Episode bags: ROS 2 bags (MCAP storage, written and read with `rosbags`, no rclpy) <-> `Episode`.

One bag directory per episode. Topics (header stamps are the time base; bag receive times are ignored):

    /camera/ego/image_raw          sensor_msgs/msg/Image (rgb8 or bgr8)       ego frames
    /left/joint_states_single      sensor_msgs/msg/JointState (joint1..6, gripper)   measured state
    /right/joint_states_single
    /left/joint_ctrl_single        sensor_msgs/msg/JointState                  commands sent to the arms
    /right/joint_ctrl_single
    /sim/task_status               std_msgs/msg/String (JSON: success, stage, ...)
    /aha_wam/instruction           std_msgs/msg/String (natural-language instruction)

Episode metadata (task, seed, level, success, instruction) is stored as bag custom data under key
`aha_wam.episode` (JSON) in metadata.yaml.

Time alignment (`read_episode_bag`): step 0 = the first image; control step k is at t0 + k / control_hz;
proprio and action at step k are the newest joint state / command of each arm stamped at or before it;
an image belongs to step round((stamp - t0) * control_hz) (a later image of the same step replaces an
earlier one); the episode ends at the last step every stream covers.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

import numpy as np
import yaml

from aha_wam.data.episode import Episode

from piper_core.layout import ARMS, JOINT_NAMES, arm_slice  # noqa: E402
IMAGE_TOPIC = '/camera/ego/image_raw'
JOINT_TOPICS = {a: f'/{a}/joint_states_single' for a in ARMS}
COMMAND_TOPICS = {a: f'/{a}/joint_ctrl_single' for a in ARMS}
STATUS_TOPIC = '/sim/task_status'
INSTRUCTION_TOPIC = '/aha_wam/instruction'
META_KEY = 'aha_wam.episode'
IMAGE_TYPE, JOINT_TYPE, STRING_TYPE = 'sensor_msgs/msg/Image', 'sensor_msgs/msg/JointState', 'std_msgs/msg/String'
TOPIC_TYPES = {IMAGE_TOPIC: IMAGE_TYPE, STATUS_TOPIC: STRING_TYPE, INSTRUCTION_TOPIC: STRING_TYPE,
               **{t: JOINT_TYPE for t in JOINT_TOPICS.values()}, **{t: JOINT_TYPE for t in COMMAND_TOPICS.values()}}


def typestore():
    from rosbags.typesys import Stores, get_typestore
    return get_typestore(Stores.ROS2_HUMBLE)


class BagWriter:
    """Write episode topics into one MCAP bag (used by `aha-wam record` and to make test bags)."""

    def __init__(self, path: str | os.PathLike):
        from rosbags.rosbag2 import StoragePlugin, Writer
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f'{self.path} exists: one bag per episode, never overwritten')
        self.ts = typestore()
        self.writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
        self.writer.open()
        self.connections = {topic: self.writer.add_connection(topic, kind, typestore=self.ts)
                            for topic, kind in TOPIC_TYPES.items()}
        self.counts = {topic: 0 for topic in TOPIC_TYPES}

    def _stamp(self, ns: int):
        t = self.ts.types
        return t['std_msgs/msg/Header'](stamp=t['builtin_interfaces/msg/Time'](sec=int(ns // 10**9),
                                                                                nanosec=int(ns % 10**9)), frame_id='')

    def _write(self, topic: str, msg, stamp_ns: int, receive_ns: int | None = None) -> None:
        data = self.ts.serialize_cdr(msg, TOPIC_TYPES[topic])
        self.writer.write(self.connections[topic], int(stamp_ns if receive_ns is None else receive_ns), data)
        self.counts[topic] += 1

    def image(self, rgb: np.ndarray, stamp_ns: int, receive_ns: int | None = None) -> None:
        rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
        h, w = rgb.shape[:2]
        msg = self.ts.types[IMAGE_TYPE](header=self._stamp(stamp_ns), height=h, width=w, encoding='rgb8',
                                        is_bigendian=0, step=3 * w, data=rgb.reshape(-1))
        self._write(IMAGE_TOPIC, msg, stamp_ns, receive_ns)

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


def read_bag_meta(path: str | os.PathLike) -> dict:
    with open(Path(path) / 'metadata.yaml', encoding='utf-8') as f:
        info = (yaml.safe_load(f) or {}).get('rosbag2_bagfile_information', {})
    raw = (info.get('custom_data') or {}).get(META_KEY)
    return json.loads(raw) if raw else {}


def _joint_vector(msg) -> np.ndarray:
    names = list(msg.name)
    pos = np.asarray(msg.position, dtype=np.float64)
    out = np.empty(7)
    for j, name in enumerate(JOINT_NAMES):
        if name in names:
            out[j] = pos[names.index(name)]
        elif j == 6 and pos.size >= 7:
            out[j] = pos[6]          # piper_ros: the gripper is index 6 whatever its name
        else:
            raise ValueError(f'joint state without {name!r}: names {names}')
    return out


def _image(msg) -> np.ndarray:
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.asarray(msg.data, dtype=np.uint8)
    rgb = data[:h * step].reshape(h, step)[:, :3 * w].reshape(h, w, 3)
    if msg.encoding == 'bgr8':
        rgb = rgb[..., ::-1]
    elif msg.encoding != 'rgb8':
        raise ValueError(f'image encoding {msg.encoding!r} is not supported (rgb8, bgr8)')
    return rgb.copy()


def _latest(stamps: np.ndarray, grid: np.ndarray) -> np.ndarray:
    return np.clip(np.searchsorted(stamps, grid, side='right') - 1, 0, None)


def read_episode_bag(path: str | os.PathLike, control_hz: float | None = None,
                     image_hw: tuple[int, int] | None = None) -> Episode:
    """Bag -> Episode on the control grid (see the module docstring). Images are resized with the shared
    `model_image` when `image_hw` is given."""
    from rosbags.rosbag2 import Reader
    from aha_wam.preprocess import model_image
    meta = read_bag_meta(path)
    hz = float(control_hz or meta.get('control_hz', 50.0))
    period = 1e9 / hz
    ts = typestore()
    streams: dict[str, list] = {t: [] for t in TOPIC_TYPES}
    with Reader(path) as reader:
        conns = [c for c in reader.connections if c.topic in TOPIC_TYPES]
        for conn, _, raw in reader.messages(connections=conns):
            msg = ts.deserialize_cdr(raw, conn.msgtype)
            if conn.topic in (STATUS_TOPIC, INSTRUCTION_TOPIC):
                streams[conn.topic].append(msg.data)
                continue
            stamp = int(msg.header.stamp.sec) * 10**9 + int(msg.header.stamp.nanosec)
            value = _image(msg) if conn.topic == IMAGE_TOPIC else _joint_vector(msg)
            streams[conn.topic].append((stamp, value))
    needed = [IMAGE_TOPIC, *JOINT_TOPICS.values(), *COMMAND_TOPICS.values()]
    empty = [t for t in needed if not streams[t]]
    if empty:
        raise ValueError(f'{path}: bag has no messages on {empty}')
    series = {}
    for topic in needed:
        items = sorted(streams[topic], key=lambda x: x[0])
        series[topic] = (np.array([s for s, _ in items], dtype=np.int64), [v for _, v in items])
    img_stamps, imgs = series[IMAGE_TOPIC]
    t0 = int(img_stamps[0])
    end = min(int(series[t][0][-1]) for t in needed)
    length = int(np.floor((end - t0) / period + 1e-9)) + 1
    if length < 1:
        raise ValueError(f'{path}: streams do not overlap after the first image')
    grid = t0 + np.round(np.arange(length) * period).astype(np.int64)

    def resample(topic):
        stamps, values = series[topic]
        return np.stack(values)[_latest(stamps, grid)]

    proprio = np.concatenate([resample(JOINT_TOPICS[a]) for a in ARMS], axis=1)
    actions = np.concatenate([resample(COMMAND_TOPICS[a]) for a in ARMS], axis=1)
    steps = np.round((img_stamps - t0) / period).astype(np.int64)
    keep = (steps < length) & np.append(steps[1:] != steps[:-1], True)     # newest image of each step
    images = [imgs[i] for i in np.flatnonzero(keep)]
    if image_hw is not None:
        images = [model_image(im, *image_hw) for im in images]
    status = {}
    if streams[STATUS_TOPIC]:
        try:
            status = json.loads(streams[STATUS_TOPIC][-1])
        except ValueError:
            status = {}
    meta = dict(meta)
    meta.setdefault('success', bool(status.get('success', False)))
    if streams[INSTRUCTION_TOPIC]:
        meta.setdefault('instruction', streams[INSTRUCTION_TOPIC][-1])
    meta['control_hz'] = hz
    meta['source'] = f'bag:{Path(path).name}'
    return Episode(proprio, actions, steps[keep], np.stack(images), meta)


def write_bags(episodes: Iterable[Episode], directory: str | os.PathLike) -> list[Path]:
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    return [write_episode_bag(ep, out / f"bag_{ep.meta.get('task', 'task')}_{int(ep.meta.get('seed', i)):06d}")
            for i, ep in enumerate(episodes)]
