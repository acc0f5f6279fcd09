"""Streams at their own timestamps -> the control grid (one rule for training and for the bag replay).

`latest_index` is the one "newest sample at or before" lookup of the suite: -1 before a stream's first sample
(never clipped to a later sample: that would show the model the future).

`to_episode` (the training path): control step k is at t0 + k / control_hz, with t0 the first moment every
needed stream (each camera, each arm's joint states and actions) has a sample; proprio and action at step k
are the newest joint state / action of each arm stamped at or before it; an image belongs to step
round((stamp - t0) * control_hz), images before t0 to step 0, and a later image of the same step replaces an
earlier one; the episode ends at the last step every stream covers.
"""
from __future__ import annotations

import numpy as np

from aha_wam.data.episode import Episode
from piper_core.layout import ARMS


def latest_index(stamps: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Index of the newest of the sorted `stamps` at or before each grid time; -1 before the first."""
    return np.searchsorted(np.asarray(stamps), np.asarray(grid), side='right') - 1


def frame_steps(stamps: np.ndarray, t0: int, period_ns: float, length: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept frame indices, their control steps): the newest frame of each step in [0, length)."""
    steps = np.maximum(np.round((np.asarray(stamps, dtype=np.int64) - t0) / period_ns).astype(np.int64), 0)
    keep = (steps < length) & np.append(steps[1:] != steps[:-1], True)
    idx = np.flatnonzero(keep)
    return idx, steps[idx]


def to_episode(rec, control_hz: float | None = None, image_hw: tuple[int, int] | None = None,
               source: str | None = None) -> Episode:
    """A `RecordedBag` (aha_wam.data.rosbag) on the control grid (module docstring). `image_hw` resizes
    every camera with the runtime's preprocessing; without it each camera keeps its native resolution."""
    from aha_wam.preprocess import model_image
    meta = dict(rec.meta)
    hz = float(control_hz or meta.get('control_hz', 50.0))
    period = 1e9 / hz
    streams = [s for s, _ in rec.cameras.values()] + [s for s, _ in rec.joints.values()] + \
        [s for s, _ in rec.commands.values()]
    t0 = max(int(s[0]) for s in streams)
    end = min(int(s[-1]) for s in streams)
    if end < t0:
        raise ValueError(f'{rec.path}: the camera, joint-state and action streams do not overlap in time')
    length = int(np.floor((end - t0) / period + 1e-9)) + 1
    grid = t0 + np.round(np.arange(length) * period).astype(np.int64)

    def resample(stamps, values):
        return np.asarray(values)[latest_index(stamps, grid)]      # every index >= 0: t0 covers each stream

    proprio = np.concatenate([resample(*rec.joints[a]) for a in ARMS], axis=1)
    actions = np.concatenate([resample(*rec.commands[a]) for a in ARMS], axis=1)
    cameras = {}
    for name, (stamps, frames) in rec.cameras.items():
        idx, steps = frame_steps(stamps, t0, period, length)
        imgs = [frames[i] for i in idx]
        if image_hw is not None:
            imgs = [model_image(im, *image_hw) for im in imgs]
        cameras[name] = (steps, np.stack(imgs))
    meta.setdefault('success', bool(rec.status.get('success', False)))
    if rec.instruction:
        meta.setdefault('instruction', rec.instruction)
    meta['control_hz'] = hz
    meta['source'] = source or f'bag:{rec.path.name}'
    meta['actions_from'] = sorted(set(rec.action_source.values())) if rec.action_source else ['commands']
    meta.pop('camera', None)
    return Episode.from_cameras(proprio, actions, cameras, meta, primary=rec.primary_camera)
