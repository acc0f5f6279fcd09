"""Where episodes come from: episode files (`*.npz`) and recorded bag directories, behind one loader.

It sits above `episode` (the in-memory record) and `bag` (the bag reader and writer), so neither imports
the other's caller.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from aha_wam.data.bag import read_episode_bag
from aha_wam.data.episode import Episode, load_episode
from aha_wam.preprocess import model_image


def find_episodes(paths) -> list[Path]:
    """Episode files (`*.npz`) and bag directories (with `metadata.yaml`) under the given paths."""
    found: list[Path] = []
    for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths):
        p = Path(p)
        if p.is_file() and p.suffix == '.npz':
            found.append(p)
        elif (p / 'metadata.yaml').is_file():
            found.append(p)
        elif p.is_dir():
            found += sorted(q for q in p.glob('*.npz'))
            found += sorted(q.parent for q in p.glob('*/metadata.yaml'))
    return sorted(set(found))


def load_any(path: Path, image_hw: tuple[int, int] | None = None) -> Episode:
    """An episode file or a recorded bag directory."""
    path = Path(path)
    if path.is_dir():
        return read_episode_bag(path, image_hw=image_hw)
    ep = load_episode(path)
    if image_hw is not None and tuple(ep.images.shape[1:3]) != tuple(image_hw):
        ep.images = np.stack([model_image(im, *image_hw) for im in ep.images])
    return ep
