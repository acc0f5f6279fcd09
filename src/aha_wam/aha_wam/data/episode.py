"""One demonstration on the control grid (see the package docstring for the format).

An episode has any number of named cameras, each at its own native resolution and its own frame steps. One
of them is the *primary* camera (`meta['camera']`, default ``ego``): `images` / `image_steps` are its frames
(what the single-view training path and the runtime's ego view read); `extra_cameras` holds the others.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from piper_core.layout import ACTION_DIM

# Task table of the policy's learned task embedding: name -> id (ids are positions).
TASKS = ('lift_box', 'handover_cube', 'place_cube_in_bowl')
FORMAT = 'aha_wam.episode'
FORMAT_VERSION = 1
DEFAULT_CAMERA = 'ego'
_CAMERA_NAME = re.compile(r'^[A-Za-z0-9_.\-]+$')


def task_id(name: str) -> int:
    if name not in TASKS:
        raise ValueError(f'unknown task {name!r}; known: {list(TASKS)}')
    return TASKS.index(name)


def check_camera_name(name: str) -> str:
    if not isinstance(name, str) or not _CAMERA_NAME.match(name):
        raise ValueError(f'camera name {name!r} must be letters, digits, "_", "." or "-"')
    return name


def _check_camera(name: str, steps: np.ndarray, frames: np.ndarray, length: int, primary: bool) -> None:
    where = f'camera {name!r}'
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3:
        raise ValueError(f'{where}: images must be uint8 [N, H, W, 3], got {frames.dtype} {frames.shape}')
    n = frames.shape[0]
    if steps.shape != (n,) or n < 1:
        raise ValueError(f'{where}: image_steps must be [N={n}] with N >= 1, got {steps.shape}')
    if primary and steps[0] != 0:
        raise ValueError(f'{where}: the first image must be at step 0 (episode start), got {steps[0]}')
    if steps[0] < 0:
        raise ValueError(f'{where}: image steps must be >= 0, got {steps[0]}')
    if n > 1 and np.any(np.diff(steps) <= 0):
        raise ValueError(f'{where}: image_steps must be strictly increasing')
    if steps[-1] >= length:
        raise ValueError(f'{where}: image at step {steps[-1]} is past the episode end (T={length})')


@dataclasses.dataclass
class Episode:
    proprio: np.ndarray                 # float32 [T, 14]
    actions: np.ndarray                 # float32 [T, 14]
    image_steps: np.ndarray             # int64 [N]            primary camera
    images: np.ndarray                  # uint8 [N, H, W, 3]   primary camera
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    # other cameras: name -> (steps int64 [M], frames uint8 [M, h, w, 3]) at their native resolution
    extra_cameras: dict[str, tuple[np.ndarray, np.ndarray]] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.proprio = np.ascontiguousarray(self.proprio, dtype=np.float32)
        self.actions = np.ascontiguousarray(self.actions, dtype=np.float32)
        self.image_steps = np.ascontiguousarray(self.image_steps, dtype=np.int64)
        self.images = np.ascontiguousarray(self.images)
        self.extra_cameras = {check_camera_name(k): (np.ascontiguousarray(s, dtype=np.int64), np.ascontiguousarray(f))
                              for k, (s, f) in (self.extra_cameras or {}).items()}
        self.validate()

    @classmethod
    def from_cameras(cls, proprio, actions, cameras: dict, meta: dict | None = None,
                     primary: str | None = None) -> 'Episode':
        """An episode from {name: (steps, frames)}; `primary` (default: the first camera) becomes `images`."""
        if not cameras:
            raise ValueError('an episode needs at least one camera')
        primary = primary or next(iter(cameras))
        if primary not in cameras:
            raise ValueError(f'primary camera {primary!r} is not among {list(cameras)}')
        steps, frames = cameras[primary]
        meta = {**(meta or {}), 'camera': primary}
        return cls(proprio, actions, steps, frames, meta, {k: v for k, v in cameras.items() if k != primary})

    @property
    def length(self) -> int:
        return int(self.proprio.shape[0])

    @property
    def camera(self) -> str:
        """Name of the primary camera."""
        return str(self.meta.get('camera', DEFAULT_CAMERA))

    @property
    def cameras(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Every camera, primary first: name -> (steps, frames)."""
        return {self.camera: (self.image_steps, self.images), **self.extra_cameras}

    def with_primary(self, name: str) -> 'Episode':
        """The same episode with camera `name` as the primary one."""
        if name == self.camera:
            return self
        if name not in self.extra_cameras:
            raise ValueError(f'episode has no camera {name!r} (cameras: {list(self.cameras)})')
        return Episode.from_cameras(self.proprio, self.actions, self.cameras, self.meta, primary=name)

    def validate(self) -> None:
        t = self.proprio.shape[0]
        if self.proprio.ndim != 2 or self.proprio.shape[1] != ACTION_DIM or t < 1:
            raise ValueError(f'episode proprio must be [T>=1, {ACTION_DIM}], got {self.proprio.shape}')
        if self.actions.shape != self.proprio.shape:
            raise ValueError(f'episode actions {self.actions.shape} must match proprio {self.proprio.shape}')
        if not (np.isfinite(self.proprio).all() and np.isfinite(self.actions).all()):
            raise ValueError('episode proprio/actions contain non-finite values')
        if self.camera in self.extra_cameras:
            raise ValueError(f'camera {self.camera!r} is both the primary and an extra camera')
        _check_camera(self.camera, self.image_steps, self.images, t, primary=True)
        for name, (steps, frames) in self.extra_cameras.items():
            _check_camera(name, steps, frames, t, primary=False)

    def frame_of_step(self, camera: str | None = None) -> np.ndarray:
        """int64 [T]: index of the newest image of `camera` (default primary) taken at or before each control
        step (-1 before an extra camera's first frame)."""
        steps = self.image_steps if camera in (None, self.camera) else self.cameras[camera][0]
        return np.searchsorted(steps, np.arange(self.length), side='right').astype(np.int64) - 1


def episode_filename(meta: dict) -> str:
    return f"episode_{meta.get('task', 'task')}_{int(meta.get('seed', 0)):06d}.npz"


def save_episode(episode: Episode, directory: str | os.PathLike, name: str | None = None) -> Path:
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    path = out / (name or episode_filename(episode.meta))
    meta = {'format': FORMAT, 'format_version': FORMAT_VERSION, **episode.meta,
            'camera': episode.camera, 'cameras': list(episode.cameras)}
    extra = {}
    for i, (steps, frames) in enumerate(episode.extra_cameras.values()):
        extra[f'camera{i}_steps'], extra[f'camera{i}_images'] = steps, frames
    tmp = path.with_name(path.name + '.tmp.npz')
    np.savez_compressed(tmp, proprio=episode.proprio, actions=episode.actions, image_steps=episode.image_steps,
                        images=episode.images, meta=np.array(json.dumps(meta, default=_jsonable)), **extra)
    os.replace(tmp, path)
    return path


def load_episode(path: str | os.PathLike) -> Episode:
    with np.load(path, allow_pickle=False) as z:
        if 'meta' not in z.files:
            raise ValueError(f'{path}: not an {FORMAT} file (no key "meta")')
        meta = json.loads(str(z['meta']))
        if meta.get('format') != FORMAT:
            raise ValueError(f'{path}: not an {FORMAT} file')
        names = [n for n in meta.get('cameras', []) if n != meta.get('camera', DEFAULT_CAMERA)]
        extra = {}
        for i, name in enumerate(names):
            key = f'camera{i}_images'
            if key not in z.files:
                raise ValueError(f'{path}: camera {name!r} listed in meta but key {key!r} is missing')
            extra[name] = (z[f'camera{i}_steps'], z[key])
        return Episode(z['proprio'], z['actions'], z['image_steps'], z['images'], meta, extra)


def _jsonable(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.floating, np.integer, np.bool_)):
        return v.item()
    return str(v)
