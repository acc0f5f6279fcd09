"""The training cache: every episode on the control grid, concatenated, plus an index.

Directory layout:

    index.json         {"format": "aha_wam.training_cache", "format_version": 1, "control_hz": 50.0,
                        "image_hw": [H, W], "tasks": [...], "stats": {state_mean, state_std, action_mean,
                        action_std}, "episodes": [{task, task_id, seed, success, source, start, length,
                        image_start, image_count}, ...]}
    data.safetensors   proprio [S, 14] float32, actions [S, 14] float32 (S = total control steps),
                       frame_of_step [S] int64 (global image row of the newest image at or before each step),
                       image_steps [N] int64 (step within its episode), images [N, H, W, 3] uint8

Episode e owns steps start .. start + length - 1 and image rows image_start .. image_start + image_count - 1.
Images are stored at model resolution (aha_wam.preprocess.model_image, the runtime's preprocessing).
Normalisation statistics are computed over all cached steps (z-score of state and action).

Cameras: the training view is one camera (`cameras[0]`, default each episode's primary camera); further
cameras named in `cameras` are cached beside it as `images@<name>`, `image_steps@<name>`, `frame_of_step@<name>`
(global rows of that camera; each episode's entry has `cameras: {name: [image_start, image_count]}`), so a
multi-view model reads them through `WindowSampler(..., extra_cameras=[...])`. Tasks: the policy's table
(`TASKS`) first, then any other task name in order of appearance (imported datasets), saved in `tasks`.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from aha_wam.data.episode import TASKS, Episode
from aha_wam.data.sources import find_episodes, load_source
from aha_wam.normalize import Normalizer

FORMAT = 'aha_wam.training_cache'
FORMAT_VERSION = 1


@dataclasses.dataclass
class TrainingCache:
    proprio: np.ndarray
    actions: np.ndarray
    frame_of_step: np.ndarray
    image_steps: np.ndarray
    images: np.ndarray
    episodes: list[dict]
    stats: dict
    control_hz: float = 50.0
    tasks: list = dataclasses.field(default_factory=lambda: list(TASKS))
    cameras: list = dataclasses.field(default_factory=list)           # [training view, extra cameras...]
    extra: dict = dataclasses.field(default_factory=dict)             # name -> {images, image_steps, frame_of_step}

    @property
    def image_hw(self) -> tuple[int, int]:
        return int(self.images.shape[1]), int(self.images.shape[2])

    @classmethod
    def build(cls, episodes, image_hw: tuple[int, int] | None = None, only_successful: bool = True,
              cameras: list[str] | None = None) -> 'TrainingCache':
        """Episodes (any iterable: each is resized and dropped as it comes) -> cache. `cameras`: the training
        view first (default: each episode's primary camera), then extra cameras to cache beside it."""
        from aha_wam.preprocess import model_image
        proprio, actions, fos, isteps, images, index = [], [], [], [], [], []
        extra = {name: {'images': [], 'image_steps': [], 'frame_of_step': []} for name in (cameras or [])[1:]}
        tasks = list(TASKS)
        hz = set()
        start = image_start = 0
        extra_start = {name: 0 for name in extra}
        view = None

        def resized(frames):
            if image_hw is not None and tuple(frames.shape[1:3]) != tuple(image_hw):
                return np.stack([model_image(im, *image_hw) for im in frames])
            return frames

        for e in episodes:
            if only_successful and not e.meta.get('success', True):
                continue
            if cameras:
                e = e.with_primary(cameras[0])
            hz.add(float(e.meta.get('control_hz', 50.0)))
            if len(hz) != 1:
                raise ValueError(f'episodes have different control rates {sorted(hz)}')
            view = view or e.camera
            imgs = resized(e.images)
            if images and imgs.shape[1:] != images[0].shape[1:]:
                raise ValueError(f'episode images {imgs.shape[1:]} differ from {images[0].shape[1:]}; pass image_hw')
            name = str(e.meta.get('task', TASKS[0]))
            if name not in tasks:
                tasks.append(name)
            entry = {'task': name, 'task_id': tasks.index(name),
                     'seed': int(e.meta.get('seed', -1)), 'success': bool(e.meta.get('success', True)),
                     'source': str(e.meta.get('source', '')), 'start': start, 'length': e.length,
                     'image_start': image_start, 'image_count': int(imgs.shape[0]), 'camera': e.camera}
            if extra:
                entry['cameras'] = {}
            for cam, store in extra.items():
                if cam not in e.cameras:
                    raise ValueError(f"episode {entry['source']}: no camera {cam!r} (cameras: {list(e.cameras)})")
                steps, frames = e.cameras[cam]
                if steps[0] != 0:
                    raise ValueError(f"episode {entry['source']}: camera {cam!r} has no frame at step 0")
                frames = resized(frames)
                if store['images'] and frames.shape[1:] != store['images'][0].shape[1:]:
                    raise ValueError(f'camera {cam!r}: images {frames.shape[1:]} differ from '
                                     f"{store['images'][0].shape[1:]}; pass image_hw")
                store['images'].append(frames)
                store['image_steps'].append(steps)
                store['frame_of_step'].append(e.frame_of_step(cam) + extra_start[cam])
                entry['cameras'][cam] = [extra_start[cam], int(frames.shape[0])]
                extra_start[cam] += frames.shape[0]
            index.append(entry)
            proprio.append(e.proprio)
            actions.append(e.actions)
            fos.append(e.frame_of_step() + image_start)
            isteps.append(e.image_steps)
            images.append(imgs)
            start += e.length
            image_start += imgs.shape[0]
        if not index:
            raise ValueError('no (successful) episodes to cache')
        p, a = np.concatenate(proprio), np.concatenate(actions)
        stats = Normalizer.compute_stats(torch.from_numpy(p), torch.from_numpy(a))
        return cls(p, a, np.concatenate(fos), np.concatenate(isteps), np.concatenate(images), index, stats,
                   hz.pop(), tasks, [view, *extra], {k: {kk: np.concatenate(vv) for kk, vv in v.items()}
                                                     for k, v in extra.items()})

    @classmethod
    def from_paths(cls, paths, image_hw: tuple[int, int] | None = None, only_successful: bool = True,
                   cameras: list[str] | None = None) -> 'TrainingCache':
        """Every episode under `paths` (episode files, bags, Cobot-Magic HDF5, LeRobot datasets)."""
        files = find_episodes(paths)
        if not files:
            raise ValueError(f'no episodes (*.npz, bag directories, *.hdf5, LeRobot datasets) under {paths}')
        return cls.build((e for f in files for e in load_source(f)), image_hw, only_successful, cameras)

    def save(self, directory: str | os.PathLike) -> Path:
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        arrays = {'proprio': self.proprio, 'actions': self.actions, 'frame_of_step': self.frame_of_step,
                  'image_steps': self.image_steps, 'images': np.ascontiguousarray(self.images)}
        for cam, store in self.extra.items():
            arrays.update({f'{k}@{cam}': np.ascontiguousarray(v) for k, v in store.items()})
        save_file(arrays, str(out / 'data.safetensors'))
        index = {'format': FORMAT, 'format_version': FORMAT_VERSION, 'control_hz': self.control_hz,
                 'image_hw': list(self.image_hw), 'tasks': list(self.tasks), 'stats': self.stats,
                 'cameras': list(self.cameras), 'episodes': self.episodes}
        (out / 'index.json').write_text(json.dumps(index, indent=1))
        return out

    @classmethod
    def load(cls, directory: str | os.PathLike) -> 'TrainingCache':
        root = Path(directory)
        index = json.loads((root / 'index.json').read_text())
        if index.get('format') != FORMAT or index.get('format_version') != FORMAT_VERSION:
            raise ValueError(f'{root}: not a {FORMAT} v{FORMAT_VERSION} directory')
        d = load_file(str(root / 'data.safetensors'))
        cams = list(index.get('cameras') or [])
        extra = {c: {k: d[f'{k}@{c}'] for k in ('images', 'image_steps', 'frame_of_step')} for c in cams[1:]}
        return cls(d['proprio'], d['actions'], d['frame_of_step'], d['image_steps'], d['images'],
                   index['episodes'], index['stats'], float(index['control_hz']), list(index.get('tasks', TASKS)),
                   cams, extra)

    def split(self, val_fraction: float = 0.1, seed: int = 0) -> tuple[list[int], list[int]]:
        """Episode ids for training and validation (at least one of each when there are >= 2 episodes),
        stratified by task."""
        rng = np.random.default_rng(seed)
        train, val = [], []
        by_task: dict[str, list[int]] = {}
        for i, e in enumerate(self.episodes):
            by_task.setdefault(e['task'], []).append(i)
        for ids in by_task.values():
            ids = list(rng.permutation(ids))
            n_val = int(round(len(ids) * val_fraction)) if len(ids) > 1 else 0
            val += ids[:n_val]
            train += ids[n_val:]
        if not val and len(train) > 1:
            val.append(train.pop())
        return sorted(int(i) for i in train), sorted(int(i) for i in val)

    def describe(self) -> dict:
        tasks: dict[str, int] = {}
        for e in self.episodes:
            tasks[e['task']] = tasks.get(e['task'], 0) + 1
        return {'episodes': len(self.episodes), 'steps': int(self.proprio.shape[0]),
                'images': int(self.images.shape[0]), 'per_task': tasks, 'control_hz': self.control_hz}
