"""One demonstration on the control grid (see the package docstring for the format)."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from aha_wam.config import ACTION_DIM

# Task table of the policy's learned task embedding: name -> id (ids are positions).
TASKS = ('lift_box', 'handover_cube', 'place_cube_in_bowl')
FORMAT = 'aha_wam.episode'
FORMAT_VERSION = 1


def task_id(name: str) -> int:
    if name not in TASKS:
        raise ValueError(f'unknown task {name!r}; known: {list(TASKS)}')
    return TASKS.index(name)


@dataclasses.dataclass
class Episode:
    proprio: np.ndarray                 # float32 [T, 14]
    actions: np.ndarray                 # float32 [T, 14]
    image_steps: np.ndarray             # int64 [N]
    images: np.ndarray                  # uint8 [N, H, W, 3]
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.proprio = np.ascontiguousarray(self.proprio, dtype=np.float32)
        self.actions = np.ascontiguousarray(self.actions, dtype=np.float32)
        self.image_steps = np.ascontiguousarray(self.image_steps, dtype=np.int64)
        self.images = np.ascontiguousarray(self.images)
        self.validate()

    @property
    def length(self) -> int:
        return int(self.proprio.shape[0])

    def validate(self) -> None:
        t = self.proprio.shape[0]
        if self.proprio.ndim != 2 or self.proprio.shape[1] != ACTION_DIM or t < 1:
            raise ValueError(f'episode proprio must be [T>=1, {ACTION_DIM}], got {self.proprio.shape}')
        if self.actions.shape != self.proprio.shape:
            raise ValueError(f'episode actions {self.actions.shape} must match proprio {self.proprio.shape}')
        if not (np.isfinite(self.proprio).all() and np.isfinite(self.actions).all()):
            raise ValueError('episode proprio/actions contain non-finite values')
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[3] != 3:
            raise ValueError(f'episode images must be uint8 [N, H, W, 3], got {self.images.dtype} {self.images.shape}')
        n = self.images.shape[0]
        if self.image_steps.shape != (n,) or n < 1:
            raise ValueError(f'episode image_steps must be [N={n}] with N >= 1, got {self.image_steps.shape}')
        if self.image_steps[0] != 0:
            raise ValueError(f'the first image must be at step 0 (episode start), got {self.image_steps[0]}')
        if n > 1 and np.any(np.diff(self.image_steps) <= 0):
            raise ValueError('episode image_steps must be strictly increasing')
        if self.image_steps[-1] >= t:
            raise ValueError(f'image at step {self.image_steps[-1]} is past the episode end (T={t})')

    def frame_of_step(self) -> np.ndarray:
        """int64 [T]: index of the newest image taken at or before each control step."""
        steps = np.arange(self.length)
        return np.searchsorted(self.image_steps, steps, side='right').astype(np.int64) - 1


def episode_filename(meta: dict) -> str:
    return f"episode_{meta.get('task', 'task')}_{int(meta.get('seed', 0)):06d}.npz"


def save_episode(episode: Episode, directory: str | os.PathLike, name: str | None = None) -> Path:
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    path = out / (name or episode_filename(episode.meta))
    meta = {'format': FORMAT, 'format_version': FORMAT_VERSION, **episode.meta}
    tmp = path.with_name(path.name + '.tmp.npz')
    np.savez_compressed(tmp, proprio=episode.proprio, actions=episode.actions, image_steps=episode.image_steps,
                        images=episode.images, meta=np.array(json.dumps(meta, default=_jsonable)))
    os.replace(tmp, path)
    return path


def load_episode(path: str | os.PathLike) -> Episode:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z['meta']))
        if meta.get('format') != FORMAT:
            raise ValueError(f'{path}: not an {FORMAT} file')
        return Episode(z['proprio'], z['actions'], z['image_steps'], z['images'], meta)


def _jsonable(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.floating, np.integer, np.bool_)):
        return v.item()
    return str(v)
