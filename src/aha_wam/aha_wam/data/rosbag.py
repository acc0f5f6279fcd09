"""Read one recorded episode from a ROS 2 bag (MCAP or sqlite3, via `rosbags.highlevel.AnyReader`) through a
topic map, with every failure turned into one `BagError` that names the bag and what is missing or broken.

`read_bag` keeps every stream at its own timestamps (the replay of `eval-bag` needs the real arrival pattern:
camera jitter, joint-state gaps); `aha_wam.data.timeline.to_episode` resamples it onto the control grid for
training. Any number of cameras (the topic map's `cameras:`), each at native resolution unless `image_hw` is
given. Images go through the suite's one decoder (`aha_wam.data.images`).
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import yaml

from aha_wam.data.images import ImageError, msg_to_rgb
from aha_wam.data.topic_map import OPTIONAL_ROLES, REQUIRED_ROLES, ROLE_TYPES, TopicMap, bundled_names

from piper_core.layout import ARMS, GRIPPER_INDEX, JOINT_NAMES

META_KEY = 'aha_wam.episode'      # bag custom data (metadata.yaml): episode metadata as JSON


class BagError(RuntimeError):
    """A bag cannot be read; the message names the bag and what is missing or broken."""


@dataclasses.dataclass
class RecordedBag:
    path: Path
    meta: dict
    cameras: dict                         # name -> (stamps int64 [N] ns, list of N uint8 [h, w, 3] RGB), primary first
    joints: dict                          # arm -> (stamps int64 [n], q float64 [n, 7])
    commands: dict                        # arm -> (stamps int64 [n], q float64 [n, 7]): the actions
    instruction: str = ''
    status: dict = dataclasses.field(default_factory=dict)
    counts: dict = dataclasses.field(default_factory=dict)    # role -> messages read
    receive_stamped: dict = dataclasses.field(default_factory=dict)   # role -> messages stamped by receive time
    action_source: dict = dataclasses.field(default_factory=dict)     # arm -> 'commands' | 'leader'

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def primary_camera(self) -> str:
        return next(iter(self.cameras))

    @property
    def image_stamps(self) -> np.ndarray:
        return self.cameras[self.primary_camera][0]

    @property
    def images(self) -> list:
        return self.cameras[self.primary_camera][1]

    def span_ns(self) -> tuple[int, int]:
        series = [s for s, _ in (*self.cameras.values(), *self.joints.values(), *self.commands.values())]
        return min(int(s[0]) for s in series), max(int(s[-1]) for s in series)


def typestore():
    from rosbags.typesys import Stores, get_typestore
    return get_typestore(Stores.ROS2_HUMBLE)


def read_bag_meta(path: str | os.PathLike) -> dict:
    """The episode metadata a suite recorder stored in the bag ({} when there is none)."""
    with open(Path(path) / 'metadata.yaml', encoding='utf-8') as f:
        info = (yaml.safe_load(f) or {}).get('rosbag2_bagfile_information', {})
    raw = (info.get('custom_data') or {}).get(META_KEY)
    return json.loads(raw) if raw else {}


def _stamp(msg, receive_ns: int, mode: str) -> tuple[int, bool]:
    """-> (stamp ns, taken from the receive time)."""
    if mode == 'receive' or not hasattr(msg, 'header'):
        return int(receive_ns), True
    s = msg.header.stamp
    ns = int(s.sec) * 10**9 + int(s.nanosec)
    if ns == 0 and mode == 'auto':
        return int(receive_ns), True
    return ns, False


def joint_vector(msg, tmap: TopicMap, topic: str) -> np.ndarray:
    """A JointState -> [joint1..joint6 rad, gripper total opening m] through the map's joint names."""
    pos = np.asarray(msg.position, dtype=np.float64)
    names = list(msg.name)
    if tmap.joint_names is None or not names:
        if pos.size < 7:
            raise BagError(f'topic {topic}: JointState with {pos.size} positions, need 7 (joint1..joint6, gripper)')
        out = pos[:7].copy()
    else:
        out = np.empty(7)
        for j, alternatives in enumerate(tmap.joint_names):
            hit = next((names.index(n) for n in alternatives if n in names), None)
            if hit is None and j == GRIPPER_INDEX and pos.size >= 7:
                hit = GRIPPER_INDEX          # piper_ros: the gripper is index 6 whatever its name
            if hit is None or hit >= pos.size:
                raise BagError(f'topic {topic}: JointState has no joint named {" or ".join(alternatives)} '
                               f'(names {names}); set joint_names in the topic map')
            out[j] = pos[hit]
    out[GRIPPER_INDEX] *= tmap.gripper_scale
    if not np.all(np.isfinite(out)):
        raise BagError(f'topic {topic}: non-finite joint positions {out.tolist()}')
    return out


def read_meta(path: Path) -> dict:
    try:
        return read_bag_meta(path)
    except Exception:        # no or foreign custom data: reading needs none of it
        return {}


def check_mcap_chunks(path: Path) -> None:
    """Structural check of every chunk of the bag's MCAP files (rosbags trusts the summary and skips CRCs):
    the record at each indexed offset must be a chunk of the indexed length that decompresses to its stated
    size and, where the writer stored one (ros2 bag record does; rosbags writes 0), matches its CRC-32."""
    import struct
    import zlib
    for f in sorted(path.glob('*.mcap')):
        try:
            from mcap.reader import make_reader
            with open(f, 'rb') as fh:
                summary = make_reader(fh).get_summary()
        except Exception as exc:
            raise BagError(f'{path}: {f.name} is truncated or its summary is corrupt ({type(exc).__name__}: {exc})') \
                from None
        if summary is None:
            continue
        with open(f, 'rb') as fh:
            for n, ci in enumerate(summary.chunk_indexes):
                fh.seek(ci.chunk_start_offset)
                raw = fh.read(ci.chunk_length)
                where = f'{path}: {f.name} chunk {n + 1}/{len(summary.chunk_indexes)} at byte {ci.chunk_start_offset}'
                if len(raw) < ci.chunk_length or raw[0] != 0x06 or \
                        struct.unpack_from('<Q', raw, 1)[0] != ci.chunk_length - 9:
                    raise BagError(f'{where} is corrupt (bad record header) or truncated')
                try:
                    usize, crc = struct.unpack_from('<QI', raw, 9 + 16)
                    clen = struct.unpack_from('<I', raw, 9 + 28)[0]
                    comp = raw[9 + 32:9 + 32 + clen].decode()
                    rlen = struct.unpack_from('<Q', raw, 9 + 32 + clen)[0]
                    body = raw[9 + 40 + clen:9 + 40 + clen + rlen]
                    if comp == 'zstd':
                        import zstandard
                        body = zstandard.ZstdDecompressor().decompress(body, max_output_size=usize)
                    elif comp == 'lz4':
                        import lz4.frame
                        body = lz4.frame.decompress(body)
                    elif comp:
                        raise ValueError(f'unknown compression {comp!r}')
                except Exception as exc:
                    raise BagError(f'{where} is corrupt ({type(exc).__name__}: {exc})') from None
                if len(body) != usize:
                    raise BagError(f'{where} is corrupt: {len(body)} bytes instead of {usize}')
                if crc and zlib.crc32(body) != crc:
                    raise BagError(f'{where} is corrupt: CRC-32 mismatch')


def read_bag(path: str | os.PathLike, tmap: TopicMap | None = None, image_hw: tuple[int, int] | None = None,
             all_cameras: bool = False) -> RecordedBag:
    """The mapped streams of one bag: the primary camera (every mapped camera with `all_cameras`), both arms'
    joint states and actions. Raises BagError (never anything else for a bad bag)."""
    tmap = tmap or TopicMap()
    path = Path(path)
    if not path.exists():
        raise BagError(f'{path}: no such bag')
    if path.is_dir() and not (path / 'metadata.yaml').is_file():
        raise BagError(f'{path}: not a rosbag2 directory (no metadata.yaml)')
    if path.is_file():
        raise BagError(f'{path}: expected a rosbag2 bag directory (with metadata.yaml), got a file')
    check_mcap_chunks(path)
    try:
        from rosbags.highlevel import AnyReader
        reader = AnyReader([path], default_typestore=typestore())
        reader.open()
    except Exception as exc:
        raise BagError(f'{path}: cannot open the bag, metadata or storage file is broken '
                       f'({type(exc).__name__}: {exc})') from None
    try:
        return _read_open(reader, path, tmap, image_hw, all_cameras)
    finally:
        try:
            reader.close()
        except Exception:
            pass


def _roles(by_topic: dict, tmap: TopicMap, path: Path, all_cameras: bool) -> dict:
    """bag topic -> role ('camera:<name>', 'joint_states_<arm>', 'commands_<arm>' (from the commands or the
    leader topic), 'instruction', 'task_status'), after checking presence and types."""
    missing = []
    for role in REQUIRED_ROLES:
        if tmap.topic(role) in by_topic:
            continue
        leader = role.replace('commands_', 'leader_') if role.startswith('commands_') else None
        if leader and tmap.topic(leader) in by_topic:
            continue
        alt = f' [or {leader} ({tmap.topic(leader)})]' if leader and tmap.topic(leader) else ''
        missing.append(f'{role} ({tmap.topic(role)}){alt}')
    if missing:
        raise BagError(f'{path}: missing topics {", ".join(missing)} for topic map {tmap.name!r}; the bag has '
                       f'{sorted(by_topic)}. Choose a map with --topic-map (bundled: {", ".join(bundled_names())} '
                       f'or a YAML file)')
    cams = tmap.camera_topics()
    if not all_cameras:
        cams = dict([next(iter(cams.items()))])
    absent = [f'{n} ({t})' for n, t in cams.items() if t not in by_topic]
    if absent:
        raise BagError(f'{path}: missing camera topics {", ".join(absent)} for topic map {tmap.name!r}')
    wanted = [(t, f'camera:{n}', 'image') for n, t in cams.items()]
    for arm in ARMS:
        wanted.append((tmap.topic(f'joint_states_{arm}'), f'joint_states_{arm}', f'joint_states_{arm}'))
        src = f'commands_{arm}' if tmap.topic(f'commands_{arm}') in by_topic else f'leader_{arm}'
        wanted.append((tmap.topic(src), f'commands_{arm}', src))
    for role in OPTIONAL_ROLES:
        if tmap.topic(role) in by_topic:
            wanted.append((tmap.topic(role), role, role))
    roles = {}
    for topic, role, kind in wanted:
        for c in by_topic[topic]:
            if c.msgtype not in ROLE_TYPES[kind]:
                shown = 'image' if kind == 'image' and tmap.topic('image') == topic else \
                    (role.split(':', 1)[1] if kind == 'image' else kind)
                raise BagError(f'{path}: topic {topic} ({shown}) has type {c.msgtype}, expected '
                               f'{" or ".join(ROLE_TYPES[kind])}')
        roles.setdefault(topic, []).append((role, kind))
    return roles


def _read_open(reader, path: Path, tmap: TopicMap, image_hw, all_cameras: bool) -> RecordedBag:
    from aha_wam.preprocess import model_image
    by_topic = {}
    for c in reader.connections:
        by_topic.setdefault(c.topic, []).append(c)
    if not by_topic:
        raise BagError(f'{path}: empty bag (no topics)')
    roles = _roles(by_topic, tmap, path, all_cameras)
    conns = [c for t in roles for c in by_topic[t]]
    total = sum(int(getattr(c, 'msgcount', 0) or 0) for cs in by_topic.values() for c in cs)
    if total == 0:
        raise BagError(f'{path}: empty bag (its {len(by_topic)} topics have no messages)')
    values = {role: [] for rs in roles.values() for role, _ in rs}
    counts = {topic: 0 for topic in roles}
    receive = {role: 0 for role in values}
    n = 0
    try:
        for conn, t_ns, raw in reader.messages(connections=conns):
            try:
                msg = reader.deserialize(raw, conn.msgtype)
            except Exception as exc:
                raise BagError(f'{path}: message {counts[conn.topic] + 1} on {conn.topic} ({conn.msgtype}) at '
                               f'{t_ns * 1e-9:.3f} s does not deserialize: corrupt data '
                               f'({type(exc).__name__}: {exc})') from None
            counts[conn.topic] += 1
            n += 1
            decoded = None
            for role, kind in roles[conn.topic]:
                if kind in OPTIONAL_ROLES:
                    values[role].append(str(msg.data))
                    continue
                stamp, by_receive = _stamp(msg, t_ns, tmap.stamps)
                receive[role] += by_receive
                if decoded is None:
                    if kind == 'image':
                        try:
                            rgb = msg_to_rgb(msg, compressed=conn.msgtype.endswith('CompressedImage'))
                        except ImageError as exc:
                            raise BagError(f'topic {conn.topic}: {exc}') from None
                        decoded = model_image(rgb, *image_hw) if image_hw else rgb
                    else:
                        decoded = joint_vector(msg, tmap, conn.topic)
                values[role].append((stamp, decoded))
    except BagError:
        raise
    except Exception as exc:
        raise BagError(f'{path}: corrupt or truncated storage after {n} readable messages '
                       f'({type(exc).__name__}: {exc})') from None
    for topic, rs in roles.items():
        listed = sum(int(getattr(c, 'msgcount', 0) or 0) for c in by_topic[topic])
        if listed and counts[topic] < listed:
            raise BagError(f'{path}: truncated: metadata lists {listed} messages on {topic} ({rs[0][1]}), only '
                           f'{counts[topic]} could be read')
    empty = [f'{kind} ({t})' for t, rs in roles.items() for role, kind in rs
             if kind not in OPTIONAL_ROLES and not values[role]]
    if empty:
        raise BagError(f'{path}: no messages on {", ".join(sorted(set(empty)))}')

    def series(role):
        items = sorted(values[role], key=lambda x: x[0])          # stable: equal stamps keep arrival order
        return np.array([s for s, _ in items], dtype=np.int64), [v for _, v in items]

    cameras = {}
    for role in values:
        if role.startswith('camera:'):
            cameras[role.split(':', 1)[1]] = series(role)
    joints, commands, source = {}, {}, {}
    for arm in ARMS:
        s, q = series(f'joint_states_{arm}')
        joints[arm] = (s, np.stack(q))
        s, q = series(f'commands_{arm}')
        commands[arm] = (s, np.stack(q))
        source[arm] = next(kind for rs in roles.values() for role, kind in rs
                           if role == f'commands_{arm}').split('_')[0]
    status = {}
    if values.get('task_status'):
        try:
            status = json.loads(values['task_status'][-1])
        except ValueError:
            status = {}
    meta = read_meta(path)
    per_role = {}
    for topic, rs in roles.items():
        for role, kind in rs:
            per_role[role if kind == 'image' or kind in OPTIONAL_ROLES else kind] = counts[topic]
    return RecordedBag(path=path, meta=meta, cameras=cameras, joints=joints, commands=commands,
                       instruction=values['instruction'][-1] if values.get('instruction')
                       else str(meta.get('instruction', '')), status=status if isinstance(status, dict) else {},
                       counts=per_role, receive_stamped={r: c for r, c in receive.items() if c},
                       action_source=source)
