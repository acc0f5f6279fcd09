"""Synthetic episodes with known content for the training tests (no simulator needed)."""
from __future__ import annotations

import numpy as np

from aha_wam.data.cache import TrainingCache
from aha_wam.data.episode import Episode


def synthetic_episode(length=80, camera_every=2, hw=(32, 32), task='lift_box', seed=0, base=0.0) -> Episode:
    t = np.arange(length, dtype=np.float32)[:, None]
    j = np.arange(14, dtype=np.float32)[None, :] / 100.0
    proprio = base + t * 0.01 + j                      # value encodes (step, joint)
    actions = base + 10.0 + t * 0.01 + j
    steps = np.arange(0, length, camera_every)
    images = np.zeros((len(steps), *hw, 3), np.uint8)
    for i in range(len(steps)):
        images[i] = (i * 3) % 256                      # pixel value encodes the image index
        images[i, 0, 0, 0] = i % 7                     # and a second channel of information
    return Episode(proprio, actions, steps, images,
                   {'task': task, 'seed': seed, 'success': True, 'control_hz': 50.0, 'instruction': 'test'})


def synthetic_cache(n=3, length=80, hw=(32, 32)) -> TrainingCache:
    tasks = ['lift_box', 'handover_cube', 'place_cube_in_bowl']
    return TrainingCache.build([synthetic_episode(length + 8 * i, hw=hw, task=tasks[i % 3], seed=i, base=0.1 * i)
                                for i in range(n)])
