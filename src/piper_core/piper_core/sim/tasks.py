"""Task registry, YAML task specs, seeded layouts and success predicates (ROS-free).

A task is a YAML file ``piper_core/config/tasks/<name>.yaml`` (parameters: objects, randomisation ranges, levels,
success thresholds, timeout, instruction) plus a registered Python class that knows how to lay the
objects out from a seed and how to judge success from simulator state.

The success predicates read the simulator only through a small view protocol (``SimView`` below), so
they can be unit-tested and reused by the ROS node.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import yaml

from ..layout import ARMS

OBJECT_KINDS = ('box', 'bowl', 'zone', 'cylinder')
LEVELS = ('clean', 'randomized')


class TaskSpecError(ValueError):
    """A task YAML is missing a field or has a bad value (the message names file and field)."""


# --------------------------------------------------------------------------------------------------
# Specs
# --------------------------------------------------------------------------------------------------
@dataclass
class ObjectSpec:
    name: str
    kind: str
    rgba: tuple
    size: tuple = (0.04, 0.04, 0.04)      # box/cylinder full extents (cylinder: diameter, diameter, height)
    radius: float = 0.0                   # bowl inner radius / zone radius
    height: float = 0.0                   # bowl wall height
    mass: float = 0.05
    x: tuple = (0.3, 0.3)
    y: tuple | None = None
    y_abs: tuple | None = None            # |y| range; the sign (side) is sampled
    yaw_deg: tuple = (0.0, 0.0)
    min_separation: float = 0.0

    @property
    def footprint(self) -> float:
        """Radius of a disc that covers the object on the table (for keep-out sampling)."""
        if self.kind in ('bowl', 'zone'):
            return self.radius + 0.015
        return 0.5 * math.hypot(self.size[0], self.size[1])


@dataclass
class LevelSpec:
    distractors: int = 0
    randomize_colors: bool = False


@dataclass
class TaskSpec:
    name: str
    instruction: str
    episode_timeout: float
    objects: dict
    success: dict
    levels: dict
    path: str = ''


def tasks_dir() -> Path:
    """Directory with the task YAMLs: $AHA_WAM_TASKS_DIR, else the ones this package ships."""
    env = os.environ.get('AHA_WAM_TASKS_DIR')
    return Path(env) if env else Path(__file__).resolve().parents[1] / 'config' / 'tasks'


def _req(d: dict, key: str, path: str, ctx: str):
    if not isinstance(d, dict) or key not in d:
        raise TaskSpecError(f'{path}: missing field {ctx}{key!r}')
    return d[key]


def _range(v, path: str, field_name: str) -> tuple:
    if not (isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(a, (int, float)) for a in v)
            and v[0] <= v[1]):
        raise TaskSpecError(f'{path}: field {field_name!r} must be [low, high] numbers with low <= high, got {v!r}')
    return (float(v[0]), float(v[1]))


def _num(v, path: str, field_name: str, positive: bool = True) -> float:
    if not isinstance(v, (int, float)) or isinstance(v, bool) or (positive and v <= 0):
        raise TaskSpecError(f'{path}: field {field_name!r} must be a {"positive " if positive else ""}number, got {v!r}')
    return float(v)


def parse_task_spec(data, path: str) -> TaskSpec:
    """Validate a loaded YAML mapping; raises TaskSpecError naming file and field."""
    if not isinstance(data, dict):
        raise TaskSpecError(f'{path}: top level must be a mapping, got {type(data).__name__}')
    name = _req(data, 'name', path, '')
    if not isinstance(name, str):
        raise TaskSpecError(f"{path}: field 'name' must be a string")
    instruction = _req(data, 'instruction', path, '')
    if not isinstance(instruction, str) or not instruction.strip():
        raise TaskSpecError(f"{path}: field 'instruction' must be a non-empty string")
    timeout = _num(_req(data, 'episode_timeout', path, ''), path, 'episode_timeout')
    objs_raw = _req(data, 'objects', path, '')
    if not isinstance(objs_raw, dict) or not objs_raw:
        raise TaskSpecError(f"{path}: field 'objects' must be a non-empty mapping")
    objects = {}
    for oname, o in objs_raw.items():
        ctx = f'objects.{oname}.'
        kind = _req(o, 'kind', path, ctx)
        if kind not in OBJECT_KINDS:
            raise TaskSpecError(f'{path}: field {ctx}kind must be one of {OBJECT_KINDS}, got {kind!r}')
        rgba = o.get('rgba', [0.7, 0.7, 0.7, 1.0])
        if not (isinstance(rgba, list) and len(rgba) == 4):
            raise TaskSpecError(f'{path}: field {ctx}rgba must be 4 numbers')
        spec = ObjectSpec(name=oname, kind=kind, rgba=tuple(float(c) for c in rgba))
        if kind in ('box', 'cylinder'):
            size = _req(o, 'size', path, ctx)
            if not (isinstance(size, list) and len(size) == 3 and all(isinstance(s, (int, float)) and s > 0 for s in size)):
                raise TaskSpecError(f'{path}: field {ctx}size must be 3 positive numbers (m)')
            spec.size = tuple(float(s) for s in size)
        if kind in ('bowl', 'zone'):
            spec.radius = _num(_req(o, 'radius', path, ctx), path, ctx + 'radius')
        if kind == 'bowl':
            spec.height = _num(_req(o, 'height', path, ctx), path, ctx + 'height')
        if kind != 'zone':
            spec.mass = _num(o.get('mass', 0.05), path, ctx + 'mass')
        spec.x = _range(_req(o, 'x', path, ctx), path, ctx + 'x')
        if 'y' in o:
            spec.y = _range(o['y'], path, ctx + 'y')
        elif 'y_abs' in o:
            spec.y_abs = _range(o['y_abs'], path, ctx + 'y_abs')
        else:
            raise TaskSpecError(f'{path}: missing field {ctx}y (or {ctx}y_abs)')
        if 'yaw_deg' in o:
            spec.yaw_deg = _range(o['yaw_deg'], path, ctx + 'yaw_deg')
        if 'min_separation' in o:
            spec.min_separation = _num(o['min_separation'], path, ctx + 'min_separation', positive=False)
        objects[oname] = spec
    success = _req(data, 'success', path, '')
    if not isinstance(success, dict):
        raise TaskSpecError(f"{path}: field 'success' must be a mapping")
    for k, v in success.items():
        _num(v, path, f'success.{k}')
    levels_raw = _req(data, 'levels', path, '')
    levels = {}
    for lname in LEVELS:
        lv = _req(levels_raw, lname, path, 'levels.')
        n = lv.get('distractors', 0) if isinstance(lv, dict) else None
        if not isinstance(n, int) or isinstance(n, bool) or n < 0 or n > 8:
            raise TaskSpecError(f'{path}: field levels.{lname}.distractors must be an integer 0..8, got {n!r}')
        rc = lv.get('randomize_colors', False)
        if not isinstance(rc, bool):
            raise TaskSpecError(f'{path}: field levels.{lname}.randomize_colors must be true/false')
        levels[lname] = LevelSpec(n, rc)
    return TaskSpec(name, instruction.strip(), timeout, objects, dict(success), levels, path)


def load_task_spec(name: str, directory: str | Path | None = None) -> TaskSpec:
    if name not in TASKS:
        raise ValueError(f'unknown task {name!r}; known tasks: {", ".join(sorted(TASKS))}')
    d = Path(directory) if directory else tasks_dir()
    path = d / f'{name}.yaml'
    if not path.is_file():
        raise ValueError(f'task {name!r}: no spec file {path} (set AHA_WAM_TASKS_DIR to use your own task files)')
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise TaskSpecError(f'{path}: invalid YAML: {e}') from e
    spec = parse_task_spec(data, str(path))
    if spec.name != name:
        raise TaskSpecError(f"{path}: field 'name' is {spec.name!r}, expected {name!r}")
    TASKS[name].check_spec(spec)
    return spec


# --------------------------------------------------------------------------------------------------
# Status and the simulator view used by the predicates
# --------------------------------------------------------------------------------------------------
@dataclass
class TaskStatus:
    success: bool
    stage: str
    time: float = 0.0
    timed_out: bool = False
    detail: dict = field(default_factory=dict)


class SimView(Protocol):
    time: float

    def object_pos(self, name: str) -> np.ndarray: ...

    def object_speed(self, name: str) -> float: ...

    def grasping(self, arm: str, name: str) -> bool: ...      # both fingers of `arm` touch the object

    def touching(self, arm: str, name: str) -> bool: ...      # any gripper geom of `arm` touches it


@dataclass
class Layout:
    """Seeded object placement: name -> (x, y, yaw rad), plus colours and distractors."""
    poses: dict
    rgba: dict
    side: str | None = None               # task-specific (place_cube_in_bowl: 'left' / 'right')


PALETTE = np.array([[0.85, 0.2, 0.2], [0.2, 0.7, 0.25], [0.2, 0.35, 0.85], [0.9, 0.8, 0.1], [0.8, 0.35, 0.8],
                    [0.1, 0.75, 0.8], [0.95, 0.55, 0.1], [0.55, 0.35, 0.2], [0.9, 0.9, 0.9], [0.25, 0.25, 0.25]])
DISTRACTOR_SIZE = 0.03
WORKSPACE_X = (0.17, 0.45)
WORKSPACE_Y = (-0.36, 0.36)


class Task:
    """Base class: seeded layout (with keep-out) and a latched success monitor."""
    name = ''

    def __init__(self, spec: TaskSpec, level: str):
        if level not in spec.levels:
            raise ValueError(f'unknown level {level!r} for task {spec.name!r}; known levels: {", ".join(spec.levels)}')
        self.spec = spec
        self.level = level
        self.level_spec: LevelSpec = spec.levels[level]
        self.layout: Layout | None = None
        self.reset_monitor()

    @classmethod
    def check_spec(cls, spec: TaskSpec) -> None:
        for oname, kind in cls.required_objects().items():
            if oname not in spec.objects:
                raise TaskSpecError(f'{spec.path}: missing field objects.{oname} (task {cls.name} needs a {kind})')
            if spec.objects[oname].kind != kind:
                raise TaskSpecError(f'{spec.path}: field objects.{oname}.kind must be {kind!r}')

    @classmethod
    def required_objects(cls) -> dict:
        return {}

    @property
    def distractor_names(self) -> list:
        return [f'distractor{i}' for i in range(self.level_spec.distractors)]

    # ---- layout ---------------------------------------------------------------------------------
    def sample_layout(self, rng: np.random.Generator) -> Layout:
        side = 'left' if rng.random() < 0.5 else 'right'
        poses, rgba = {}, {}
        placed = []   # (x, y, r)
        for _attempt in range(200):
            poses.clear()
            placed.clear()
            ok = True
            for o in self.spec.objects.values():
                x = rng.uniform(*o.x)
                if o.y is not None:
                    y = rng.uniform(*o.y)
                else:
                    y = rng.uniform(*o.y_abs) * (1.0 if side == 'left' else -1.0)
                yaw = math.radians(rng.uniform(*o.yaw_deg))
                for px, py, pr, pname in placed:
                    sep = max(pr + o.footprint if o.kind != 'zone' and self.spec.objects[pname].kind != 'zone' else 0.0,
                              o.min_separation, self.spec.objects[pname].min_separation)
                    if math.hypot(x - px, y - py) < sep:
                        ok = False
                poses[o.name] = (x, y, yaw)
                placed.append((x, y, o.footprint, o.name))
            if ok:
                break
        else:
            raise RuntimeError(f'task {self.name}: could not sample a collision-free layout')
        for o in self.spec.objects.values():
            rgba[o.name] = np.array(o.rgba)
        if self.level_spec.randomize_colors:
            idx = rng.permutation(len(PALETTE))
            for k, o in enumerate(self.spec.objects.values()):
                if o.kind == 'zone':
                    continue   # the zone stays the green marker the instruction refers to
                rgba[o.name] = np.r_[PALETTE[idx[k]] * rng.uniform(0.85, 1.0), o.rgba[3]]
        for dname in self.distractor_names:
            for _attempt in range(500):
                x, y = rng.uniform(*WORKSPACE_X), rng.uniform(*WORKSPACE_Y)
                clear = all(math.hypot(x - px, y - py) > pr + 0.06 for px, py, pr, _ in placed)
                if clear and self.distractor_clear(x, y, poses):
                    break
            else:
                x, y = 0.5, 0.4 * (1 if len(placed) % 2 else -1)  # park it out of the way
            poses[dname] = (x, y, rng.uniform(-math.pi, math.pi))
            placed.append((x, y, 0.03, dname))
            rgba[dname] = np.r_[PALETTE[rng.integers(len(PALETTE))] * rng.uniform(0.7, 1.0), 1.0]
        self.layout = Layout(poses, rgba, side)
        return self.layout

    def distractor_clear(self, x, y, poses) -> bool:
        """Extra keep-out for distractors (e.g. the hand-over corridor); default: none."""
        return True

    # ---- success --------------------------------------------------------------------------------
    def reset_monitor(self):
        self._success = False
        self._stage = 'start'
        self._detail = {}

    def update(self, sim: SimView) -> None:
        raise NotImplementedError

    def status(self, sim: SimView) -> TaskStatus:
        return TaskStatus(self._success, self._stage, sim.time, (sim.time >= self.spec.episode_timeout) and not self._success,
                          dict(self._detail))


TASKS: dict = {}


def register(cls):
    TASKS[cls.name] = cls
    return cls


def available_tasks() -> list:
    return sorted(TASKS)


def make_task(name: str, level: str = 'clean', directory=None) -> Task:
    if name not in TASKS:
        raise ValueError(f'unknown task {name!r}; known tasks: {", ".join(sorted(TASKS))}')
    if level not in LEVELS:
        raise ValueError(f'unknown level {level!r}; known levels: {", ".join(LEVELS)}')
    return TASKS[name](load_task_spec(name, directory), level)


@register
class LiftBox(Task):
    """Both grippers grasp the box; box lifted >= lift_height above rest and held for hold_time."""
    name = 'lift_box'

    @classmethod
    def required_objects(cls):
        return {'box': 'box'}

    def reset_monitor(self):
        super().reset_monitor()
        self._z0 = None
        self._hold_start = None

    def update(self, sim):
        if self._success:
            return
        p = sim.object_pos('box')
        if self._z0 is None:
            self._z0 = 0.5 * self.spec.objects['box'].size[2]
        gl, gr = sim.grasping('left', 'box'), sim.grasping('right', 'box')
        lift = float(p[2] - self._z0)
        self._detail = {'lift': lift, 'left_grasp': gl, 'right_grasp': gr}
        lifted = gl and gr and lift >= self.spec.success.get('lift_height', 0.08)
        if lifted:
            if self._hold_start is None:
                self._hold_start = sim.time
            held = sim.time - self._hold_start
            self._detail['held'] = held
            self._stage = 'lifted'
            if held >= self.spec.success.get('hold_time', 1.0):
                self._success = True
                self._stage = 'success'
        else:
            self._hold_start = None
            self._stage = 'grasped' if (gl and gr) else ('grasping' if (gl or gr) else 'reach')


@register
class HandoverCube(Task):
    """Left picks the cube, right takes it from the left in the air, right places it in the zone."""
    name = 'handover_cube'

    @classmethod
    def required_objects(cls):
        return {'cube': 'box', 'zone': 'zone'}

    def reset_monitor(self):
        super().reset_monitor()
        self._left_picked = False
        self._handed = False

    def zone_center(self):
        x, y, _ = self.layout.poses['zone']
        return np.array([x, y])

    def update(self, sim):
        if self._success:
            return
        s = self.spec.success
        c = self.spec.objects['cube']
        p = sim.object_pos('cube')
        lift = float(p[2] - 0.5 * c.size[2])
        gl, gr = sim.grasping('left', 'cube'), sim.grasping('right', 'cube')
        tl, tr = sim.touching('left', 'cube'), sim.touching('right', 'cube')
        if gl and lift >= s.get('lift_height', 0.03):
            self._left_picked = True
        if self._left_picked and gr and not tl and lift >= s.get('lift_height', 0.03):
            self._handed = True
        d = float(np.linalg.norm(p[:2] - self.zone_center()))
        self._detail = {'left_picked': self._left_picked, 'handed_over': self._handed, 'zone_dist': d, 'lift': lift}
        if not self._left_picked:
            self._stage = 'pick'
        elif not self._handed:
            self._stage = 'handover' if gr else 'carry'
        else:
            self._stage = 'place'
            resting = lift < 0.01 and sim.object_speed('cube') < s.get('settle_speed', 0.05)
            if d <= s.get('zone_radius', 0.06) and resting and not (tl or tr):
                self._success = True
                self._stage = 'success'


@register
class PlaceCubeInBowl(Task):
    """The arm on the cube's side picks the cube and releases it inside the bowl."""
    name = 'place_cube_in_bowl'

    @classmethod
    def required_objects(cls):
        return {'cube': 'box', 'bowl': 'bowl'}

    def reset_monitor(self):
        super().reset_monitor()
        self._picked_by = None

    @property
    def arm(self) -> str:
        return self.layout.side

    def update(self, sim):
        if self._success:
            return
        s = self.spec.success
        c, b = self.spec.objects['cube'], self.spec.objects['bowl']
        p, pb = sim.object_pos('cube'), sim.object_pos('bowl')
        lift = float(p[2] - 0.5 * c.size[2])
        for arm in ARMS:
            if self._picked_by is None and sim.grasping(arm, 'cube') and lift >= s.get('lift_height', 0.03):
                self._picked_by = arm
        d = float(np.linalg.norm(p[:2] - pb[:2]))
        touching = sim.touching('left', 'cube') or sim.touching('right', 'cube')
        inside = d < b.radius - 0.3 * c.size[0] and p[2] < pb[2] + b.height
        self._detail = {'arm': self.arm, 'picked_by': self._picked_by, 'bowl_dist': d}
        if self._picked_by is None:
            self._stage = 'pick'
        elif self._picked_by != self.arm:
            self._stage = 'wrong_arm'
        else:
            self._stage = 'place'
            if inside and not touching and sim.object_speed('cube') < s.get('settle_speed', 0.05):
                self._success = True
                self._stage = 'success'
