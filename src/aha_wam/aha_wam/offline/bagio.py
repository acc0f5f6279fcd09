"""Read one recorded episode from a ROS 2 bag (MCAP or sqlite3, via `rosbags.highlevel.AnyReader`) through a
topic map, with every failure turned into one `BagError` that names the bag and what is missing or broken.

Unlike `aha_wam.data.bag.read_episode_bag` (the training path: fixed topic names, resampled onto the control
grid) this keeps every stream at its own timestamps, because the replay needs the real arrival pattern
(camera jitter, joint-state gaps) to drive the runtimes' freshness checks and phase offsets.
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
from pathlib import Path

import numpy as np

from aha_wam.offline.topics import OPTIONAL_ROLES, REQUIRED_ROLES, ROLE_TYPES, TopicMap, bundled_names

from piper_core.layout import ARMS  # noqa: E402


class BagError(RuntimeError):
    """A bag cannot be evaluated; the message names the bag and what is missing or broken."""


@dataclasses.dataclass
class RecordedBag:
    path: Path
    meta: dict
    image_stamps: np.ndarray              # int64 [N] ns
    images: list                          # N x uint8 [h, w, 3] RGB (model size when read with image_hw)
    joints: dict                          # arm -> (stamps int64 [n], q float64 [n, 7])
    commands: dict                        # arm -> (stamps int64 [n], q float64 [n, 7])
    instruction: str = ''
    status: dict = dataclasses.field(default_factory=dict)
    counts: dict = dataclasses.field(default_factory=dict)    # role -> messages read
    receive_stamped: dict = dataclasses.field(default_factory=dict)   # role -> messages stamped by receive time

    @property
    def name(self) -> str:
        return self.path.name

    def span_ns(self) -> tuple[int, int]:
        firsts = [int(self.image_stamps[0])] + [int(s[0]) for s, _ in (*self.joints.values(), *self.commands.values())]
        lasts = [int(self.image_stamps[-1])] + [int(s[-1]) for s, _ in (*self.joints.values(), *self.commands.values())]
        return min(firsts), max(lasts)


def _typestore():
    from rosbags.typesys import Stores, get_typestore
    return get_typestore(Stores.ROS2_HUMBLE)


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
            if hit is None and j == 6 and pos.size >= 7:
                hit = 6                      # piper_ros: the gripper is index 6 whatever its name
            if hit is None or hit >= pos.size:
                raise BagError(f'topic {topic}: JointState has no joint named {" or ".join(alternatives)} '
                               f'(names {names}); set joint_names in the topic map')
            out[j] = pos[hit]
    out[6] *= tmap.gripper_scale
    if not np.all(np.isfinite(out)):
        raise BagError(f'topic {topic}: non-finite joint positions {out.tolist()}')
    return out


def image_array(msg, msgtype: str, topic: str) -> np.ndarray:
    if msgtype.endswith('CompressedImage'):
        try:
            from PIL import Image as PILImage
            with PILImage.open(io.BytesIO(bytes(msg.data))) as im:
                return np.asarray(im.convert('RGB'), dtype=np.uint8)
        except Exception as exc:
            raise BagError(f'topic {topic}: cannot decode {msg.format!r} compressed image '
                           f'({type(exc).__name__}: {exc})') from None
    h, w, step, enc = int(msg.height), int(msg.width), int(msg.step), str(msg.encoding)
    channels = {'rgb8': 3, 'bgr8': 3, 'rgba8': 4, 'bgra8': 4, 'mono8': 1}.get(enc)
    if channels is None:
        raise BagError(f'topic {topic}: image encoding {enc!r} is not supported (rgb8, bgr8, rgba8, bgra8, mono8)')
    data = np.asarray(msg.data, dtype=np.uint8)
    if h < 1 or w < 1 or step < channels * w or data.size < h * step:
        raise BagError(f'topic {topic}: image {w}x{h} step {step} with {data.size} bytes is inconsistent')
    px = data[:h * step].reshape(h, step)[:, :channels * w].reshape(h, w, channels)
    if enc == 'mono8':
        return np.repeat(px, 3, axis=2)
    px = px[..., :3]
    return np.array(px[..., ::-1] if enc.startswith('bgr') else px, dtype=np.uint8, order='C')   # writable copy


def read_meta(path: Path) -> dict:
    try:
        from aha_wam.data.bag import read_bag_meta
        return read_bag_meta(path)
    except Exception:        # no or foreign custom data: evaluation needs none of it
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


def read_bag(path: str | os.PathLike, tmap: TopicMap | None = None,
             image_hw: tuple[int, int] | None = None) -> RecordedBag:
    """The mapped streams of one bag. Raises BagError (never anything else for a bad bag)."""
    from aha_wam.preprocess import model_image
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
        reader = AnyReader([path], default_typestore=_typestore())
        reader.open()
    except Exception as exc:
        raise BagError(f'{path}: cannot open the bag, metadata or storage file is broken '
                       f'({type(exc).__name__}: {exc})') from None
    try:
        return _read_open(reader, path, tmap, image_hw, model_image)
    finally:
        try:
            reader.close()
        except Exception:
            pass


def _read_open(reader, path: Path, tmap: TopicMap, image_hw, model_image) -> RecordedBag:
    by_topic = {}
    for c in reader.connections:
        by_topic.setdefault(c.topic, []).append(c)
    if not by_topic:
        raise BagError(f'{path}: empty bag (no topics)')
    missing = [f'{r} ({tmap.topic(r)})' for r in REQUIRED_ROLES if tmap.topic(r) not in by_topic]
    if missing:
        raise BagError(f'{path}: missing topics {", ".join(missing)} for topic map {tmap.name!r}; the bag has '
                       f'{sorted(by_topic)}. Choose a map with --topic-map (bundled: {", ".join(bundled_names())} '
                       f'or a YAML file)')
    roles = {}
    for role in REQUIRED_ROLES + OPTIONAL_ROLES:
        topic = tmap.topic(role)
        if not topic or topic not in by_topic:
            continue
        for c in by_topic[topic]:
            if c.msgtype not in ROLE_TYPES[role]:
                raise BagError(f'{path}: topic {topic} ({role}) has type {c.msgtype}, expected '
                               f'{" or ".join(ROLE_TYPES[role])}')
        roles[topic] = role
    conns = [c for t in roles for c in by_topic[t]]
    total = sum(int(getattr(c, 'msgcount', 0) or 0) for cs in by_topic.values() for c in cs)
    if total == 0:
        raise BagError(f'{path}: empty bag (its {len(by_topic)} topics have no messages)')
    values = {r: [] for r in REQUIRED_ROLES + OPTIONAL_ROLES}
    counts = {r: 0 for r in values}
    receive = {r: 0 for r in values}
    n = 0
    try:
        for conn, t_ns, raw in reader.messages(connections=conns):
            role = roles[conn.topic]
            try:
                msg = reader.deserialize(raw, conn.msgtype)
            except Exception as exc:
                raise BagError(f'{path}: message {counts[role] + 1} on {conn.topic} ({conn.msgtype}) at '
                               f'{t_ns * 1e-9:.3f} s does not deserialize: corrupt data '
                               f'({type(exc).__name__}: {exc})') from None
            counts[role] += 1
            n += 1
            if role in OPTIONAL_ROLES:
                values[role].append(str(msg.data))
                continue
            stamp, by_receive = _stamp(msg, t_ns, tmap.stamps)
            receive[role] += by_receive
            if role == 'image':
                rgb = image_array(msg, conn.msgtype, conn.topic)
                values[role].append((stamp, model_image(rgb, *image_hw) if image_hw else rgb))
            else:
                values[role].append((stamp, joint_vector(msg, tmap, conn.topic)))
    except BagError:
        raise
    except Exception as exc:
        raise BagError(f'{path}: corrupt or truncated storage after {n} readable messages '
                       f'({type(exc).__name__}: {exc})') from None
    for topic, role in roles.items():
        listed = sum(int(getattr(c, 'msgcount', 0) or 0) for c in by_topic[topic])
        if listed and counts[role] < listed:
            raise BagError(f'{path}: truncated: metadata lists {listed} messages on {topic} ({role}), only '
                           f'{counts[role]} could be read')
    empty = [f'{r} ({tmap.topic(r)})' for r in REQUIRED_ROLES if not values[r]]
    if empty:
        raise BagError(f'{path}: no messages on {", ".join(empty)}')

    def series(role):
        items = sorted(values[role], key=lambda x: x[0])
        return np.array([s for s, _ in items], dtype=np.int64), [v for _, v in items]

    img_stamps, images = series('image')
    joints, commands = {}, {}
    for arm in ARMS:
        s, q = series(f'joint_states_{arm}')
        joints[arm] = (s, np.stack(q))
        s, q = series(f'commands_{arm}')
        commands[arm] = (s, np.stack(q))
    status = {}
    if values['task_status']:
        try:
            status = json.loads(values['task_status'][-1])
        except ValueError:
            status = {}
    meta = read_meta(path)
    return RecordedBag(path=path, meta=meta, image_stamps=img_stamps, images=images, joints=joints,
                       commands=commands, instruction=values['instruction'][-1] if values['instruction']
                       else str(meta.get('instruction', '')), status=status if isinstance(status, dict) else {},
                       counts={r: c for r, c in counts.items() if tmap.topic(r)},
                       receive_stamped={r: c for r, c in receive.items() if c})
