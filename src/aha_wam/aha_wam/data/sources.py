"""Where episodes come from, behind one interface: episode files (`*.npz`), recorded ROS 2 bags (MCAP or sqlite3,
any topic map), AgileX Cobot-Magic HDF5 files and LeRobot v2.1 / v3.0 dataset directories.

    find_episodes(paths) -> sources          every source under the paths (a LeRobot directory is one source)
    load_source(src, ...) -> [Episode]       the episodes of one source (native resolution unless image_hw)
    load_any(path, ...) -> Episode           one-episode sources (npz, bag, HDF5)

It sits above `episode` (the in-memory record) and the format readers, so none of them imports its caller.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from aha_wam.data.episode import Episode, load_episode
from aha_wam.preprocess import model_image

FORMATS = ('npz', 'bag', 'cobot_magic', 'lerobot')
HDF5_SUFFIXES = ('.hdf5', '.h5')


def detect_format(path: Path) -> str | None:
    path = Path(path)
    if path.is_file() and path.suffix == '.npz':
        return 'npz'
    if path.is_file() and path.suffix in HDF5_SUFFIXES:
        return 'cobot_magic'
    if (path / 'metadata.yaml').is_file():
        return 'bag'
    if (path / 'meta' / 'info.json').is_file():
        return 'lerobot'
    return None


def find_episodes(paths) -> list[Path]:
    """Sources under the given paths: episode files, bag directories, HDF5 files, LeRobot dataset directories
    (the path itself, or its children / grandchildren for bags and LeRobot datasets)."""
    found: list[Path] = []
    for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths):
        p = Path(p)
        if detect_format(p):
            found.append(p)
        elif p.is_dir():
            found += sorted(q for q in p.glob('*.npz'))
            found += sorted(q for s in HDF5_SUFFIXES for q in p.glob(f'*{s}'))
            found += sorted(q.parent for q in p.glob('*/metadata.yaml'))
            found += sorted(q.parent.parent for q in p.glob('*/meta/info.json'))
    return sorted(set(found))


def _resized(ep: Episode, image_hw) -> Episode:
    if image_hw is None:
        return ep
    cams = {name: (steps, frames if tuple(frames.shape[1:3]) == tuple(image_hw) else
                   np.stack([model_image(im, *image_hw) for im in frames]))
            for name, (steps, frames) in ep.cameras.items()}
    return Episode.from_cameras(ep.proprio, ep.actions, cams, ep.meta, primary=ep.camera)


def load_source(path: Path, image_hw: tuple[int, int] | None = None, fmt: str | None = None, topic_map=None,
                task: str | None = None, fps: float | None = None) -> list[Episode]:
    """Every episode of one source. Errors: BagError (bags), DatasetError (HDF5, LeRobot), ValueError."""
    path = Path(path)
    fmt = fmt or detect_format(path)
    if fmt == 'npz':
        eps = [load_episode(path)]
    elif fmt == 'bag':
        from aha_wam.data.bag import read_episode_bag
        eps = [read_episode_bag(path, control_hz=fps, topic_map=topic_map)]
    elif fmt == 'cobot_magic':
        from aha_wam.data.cobot_magic import find_cobot_magic, read_cobot_magic
        eps = [read_cobot_magic(f, **({'fps': fps} if fps else {}), task=task) for f in find_cobot_magic(path)]
    elif fmt == 'lerobot':
        from aha_wam.data.lerobot import read_lerobot
        eps = read_lerobot(path, task=task)
    else:
        raise ValueError(f'{path}: not an episode source (npz file, bag directory with metadata.yaml, HDF5 file, '
                         f'LeRobot directory with meta/info.json)')
    if task:
        for e in eps:
            e.meta['task'] = task
    return [_resized(e, image_hw) for e in eps]


def load_any(path: Path, image_hw: tuple[int, int] | None = None) -> Episode:
    """One episode: an episode file, a recorded bag directory or a Cobot-Magic HDF5 file."""
    eps = load_source(path, image_hw)
    if len(eps) != 1:
        raise ValueError(f'{path}: holds {len(eps)} episodes; use load_source')
    return eps[0]
