"""Topic maps: which bag topic plays which role (YAML, config/topic_maps/*.yaml).

    name: agilex
    topics:
      image: /camera_f/color/image_raw          # required: the primary (ego) camera
      joint_states_left: /joint_states_single_l # required (measured joints)
      joint_states_right: /joint_states_single_r
      commands_left: /joint_states_l            # what the arms were commanded (actions) ...
      commands_right: /joint_states_r
      leader_left: null                         # ... or, in leader/follower teleoperation, the leader's
      leader_right: null                        #     commands as the follower's driver reports them
      instruction: null                         # optional (std_msgs/String)
      task_status: null                         # optional (std_msgs/String, JSON)
    cameras:                                    # optional: every camera by name (the primary one included)
      cam_high: /camera_f/color/image_raw
      cam_left_wrist: /camera_l/color/image_raw
    joint_names: [joint1, ..., joint6, [joint7, gripper]]   # or `positional` (position[0..6] in order)
    gripper_scale: 1.0                          # bag gripper value x scale = total opening, m
    stamps: auto                                # header | receive | auto

Each arm's actions come from its `commands_<arm>` topic when the bag has it, else from `leader_<arm>`
(piper_ros `joint_ctrl`: in AgileX leader/follower mode the follower's driver publishes the control frames
the leader arm puts on its CAN bus, i.e. the leader's commands). `--topic-map` takes a file path or the name
of a bundled map (`aha_wam`, `agilex`, `agilex_aloha`, `cobot_magic_ros2`).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import yaml

from piper_core.layout import ARMS

IMAGE_TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage')
JOINT_TYPES = ('sensor_msgs/msg/JointState',)
REQUIRED_ROLES = ('image', 'joint_states_left', 'joint_states_right', 'commands_left', 'commands_right')
LEADER_ROLES = tuple(f'leader_{a}' for a in ARMS)      # stand in for commands_<arm> (teleoperation bags)
OPTIONAL_ROLES = ('instruction', 'task_status')
ROLES = REQUIRED_ROLES + LEADER_ROLES + OPTIONAL_ROLES
ROLE_TYPES = {
    'image': IMAGE_TYPES,
    'joint_states_left': JOINT_TYPES, 'joint_states_right': JOINT_TYPES,
    'commands_left': JOINT_TYPES, 'commands_right': JOINT_TYPES,
    'leader_left': JOINT_TYPES, 'leader_right': JOINT_TYPES,
    'instruction': ('std_msgs/msg/String',), 'task_status': ('std_msgs/msg/String',),
}
PRIMARY_CAMERA = 'ego'        # name of the `image` topic's camera when `cameras:` does not name it
STAMP_MODES = ('header', 'receive', 'auto')


class TopicMapError(ValueError):
    """A topic map file is missing or malformed (the message says which key)."""


@dataclasses.dataclass(frozen=True)
class TopicMap:
    name: str = 'aha_wam'
    topics: dict = dataclasses.field(default_factory=lambda: {
        'image': '/camera/ego/image_raw',
        'joint_states_left': '/left/joint_states_single', 'joint_states_right': '/right/joint_states_single',
        'commands_left': '/left/joint_ctrl_single', 'commands_right': '/right/joint_ctrl_single',
        'leader_left': '/left/joint_ctrl', 'leader_right': '/right/joint_ctrl',
        'instruction': '/aha_wam/instruction', 'task_status': '/sim/task_status'})
    cameras: dict = dataclasses.field(default_factory=dict)      # name -> topic (may include the primary)
    # per joint1..joint6, gripper: accepted JointState names; None = positional (position[0..6])
    joint_names: tuple | None = (('joint1',), ('joint2',), ('joint3',), ('joint4',), ('joint5',), ('joint6',),
                                 ('gripper', 'joint7'))
    gripper_scale: float = 1.0
    stamps: str = 'auto'
    source: str = '(built-in aha_wam map)'

    def topic(self, role: str) -> str | None:
        return self.topics.get(role)

    def camera_topics(self) -> dict:
        """Every camera, primary first: name -> topic. The primary camera is the `image` topic."""
        primary = self.topics['image']
        name = next((n for n, t in self.cameras.items() if t == primary), PRIMARY_CAMERA)
        return {name: primary, **{n: t for n, t in self.cameras.items() if t != primary}}

    def primary_camera(self) -> str:
        return next(iter(self.camera_topics()))

    def role_of(self) -> dict:
        """bag topic -> role, for the roles that are mapped."""
        return {t: r for r, t in self.topics.items() if t}

    def describe(self) -> dict:
        return {'name': self.name, 'source': self.source, 'topics': dict(self.topics),
                'cameras': self.camera_topics(),
                'joint_names': 'positional' if self.joint_names is None else [list(n) for n in self.joint_names],
                'gripper_scale': self.gripper_scale, 'stamps': self.stamps}


def bundled_dirs() -> list[Path]:
    dirs = [Path(__file__).resolve().parents[2] / 'config' / 'topic_maps']
    try:
        from ament_index_python.packages import get_package_share_directory
        dirs.append(Path(get_package_share_directory('aha_wam')) / 'config' / 'topic_maps')
    except Exception:       # not installed with colcon / no ament index: the source tree is enough
        pass
    return dirs


def bundled_names() -> list[str]:
    return sorted({p.stem for d in bundled_dirs() if d.is_dir() for p in d.glob('*.yaml')})


def load_topic_map(spec: str | os.PathLike | None) -> TopicMap:
    """A path to a YAML file, the name of a bundled map, or None (the suite's own naming)."""
    if spec is None:
        return TopicMap()
    path = Path(spec)
    if not path.is_file():
        for d in bundled_dirs():
            if (d / f'{spec}.yaml').is_file():
                path = d / f'{spec}.yaml'
                break
        else:
            raise TopicMapError(f'topic map {str(spec)!r} is neither a file nor a bundled map '
                                f'(bundled: {", ".join(bundled_names()) or "none found"})')
    try:
        data = yaml.safe_load(path.read_text(encoding='utf-8'))
    except (OSError, yaml.YAMLError) as exc:
        raise TopicMapError(f'topic map {path}: cannot read it ({type(exc).__name__}: {exc})') from None
    return parse_topic_map(data, source=str(path))


def parse_topic_map(data, source: str = '(dict)') -> TopicMap:
    where = f'topic map {source}'
    if not isinstance(data, dict):
        raise TopicMapError(f'{where}: expected a mapping with a `topics:` section')
    unknown = sorted(set(data) - {'name', 'topics', 'cameras', 'joint_names', 'gripper_scale', 'stamps'})
    if unknown:
        raise TopicMapError(f'{where}: unknown keys {unknown}')
    topics = data.get('topics')
    if not isinstance(topics, dict):
        raise TopicMapError(f'{where}: `topics:` must map roles ({", ".join(ROLES)}) to topic names')
    bad = sorted(set(topics) - set(ROLES))
    if bad:
        raise TopicMapError(f'{where}: unknown roles {bad} (known: {", ".join(ROLES)})')
    cameras = data.get('cameras') or {}
    if not isinstance(cameras, dict):
        raise TopicMapError(f'{where}: `cameras:` must map camera names to image topics')
    for name, topic in cameras.items():
        if not isinstance(name, str) or not name.replace('_', '').replace('-', '').replace('.', '').isalnum():
            raise TopicMapError(f'{where}: cameras.{name}: a camera name is letters, digits, "_", "." or "-"')
        if not isinstance(topic, str) or not topic.startswith('/'):
            raise TopicMapError(f'{where}: cameras.{name} must be an absolute topic name, got {topic!r}')
    if not topics.get('image') and cameras:
        topics = {**topics, 'image': next(iter(cameras.values()))}    # the first camera is the primary one
    missing = [r for r in REQUIRED_ROLES if not topics.get(r)
               and not (r.startswith('commands_') and topics.get(r.replace('commands_', 'leader_')))]
    if missing:
        raise TopicMapError(f'{where}: no topic for the required roles {missing}')
    for role, topic in topics.items():
        if topic is not None and (not isinstance(topic, str) or not topic.startswith('/')):
            raise TopicMapError(f'{where}: topics.{role} must be an absolute topic name, got {topic!r}')
    resolved = {r: topics.get(r) for r in ROLES}
    names = data.get('joint_names', None)
    if names is None:
        joint_names = TopicMap().joint_names
    elif names == 'positional':
        joint_names = None
    else:
        if not isinstance(names, list) or len(names) != 7:
            raise TopicMapError(f'{where}: joint_names must list 7 entries (joint1..joint6, gripper) or be '
                                f'`positional`, got {names!r}')
        joint_names = tuple((n,) if isinstance(n, str) else tuple(str(x) for x in n) for n in names)
    try:
        scale = float(data.get('gripper_scale', 1.0))
    except (TypeError, ValueError):
        raise TopicMapError(f'{where}: gripper_scale must be a number') from None
    stamps = str(data.get('stamps', 'auto'))
    if stamps not in STAMP_MODES:
        raise TopicMapError(f'{where}: stamps must be one of {STAMP_MODES}, got {stamps!r}')
    return TopicMap(name=str(data.get('name', Path(source).stem)), topics=resolved, cameras=dict(cameras),
                    joint_names=joint_names, gripper_scale=scale, stamps=stamps, source=source)
