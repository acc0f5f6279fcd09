"""Training windows: the cache -> batches of the AhaWamPolicy batch contract.

A window is (episode e, start step s, offset o, history spacing d):

    video frame j (j = 0..F)   image at step s + j * latent_step (newest image at or before; clamped to the
                               episode end, i.e. the last frame repeats)
    actions i (i < K*c)        actions[s + o + i]; past the end: the last action, action_mask False
    chunk k proprio / image    state and image at step s + o + k*c (clamped to the end)
    history m (m = 1..M)       image at step s - m*d, oldest first, left-padded (mask False) where < 0
    step                       s (RoPE time s // video_stride); action RoPE positions stay k*c + i

Horizon-adaptive offsets: o ~ U{0..max_offset} (max_offset < chunk), so a chunk starts at any phase of the
planner frame and the executor learns to read the phase from its observation and proprio. Start steps s are
the steps where an image was taken (the planner refreshes on camera frames), uniformly over the data, except
a `start_fraction` of them drawn from each episode's first `start_steps` (the moment an arm is chosen).
History spacing d ~ U{lo..hi} control steps brackets the deployed planner period (notes §10: trained
spacing must match deployment; randomising it covers cadence jitter).

Extra cameras (`extra_cameras`, cached beside the training view: `TrainingCache` cameras): the window also
holds each one's newest frame at the same video, chunk and history steps (`<name>@video_rows`, ...) and the
batch carries them as `cameras/<name>/video_frames`, `.../chunk_images`, `.../history_frames`.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from aha_wam.config import AhaWamConfig
from aha_wam.data.cache import TrainingCache


@dataclasses.dataclass(frozen=True)
class WindowSpec:
    episode: int
    step: int
    offset: int
    spacing: int


class WindowSampler:
    def __init__(self, cache: TrainingCache, config: AhaWamConfig, episodes: list[int] | None = None,
                 seed: int = 0, history_spacing: tuple[int, int] = (16, 40), max_offset: int | None = None,
                 history_frames: int | None = None, start_fraction: float = 0.0, start_steps: int = 50,
                 extra_cameras: list[str] | None = None):
        self.cache = cache
        self.extra_cameras = list(extra_cameras or [])
        missing = [c for c in self.extra_cameras if c not in cache.extra]
        if missing:
            raise ValueError(f'cameras {missing} are not cached (cached extra cameras: {list(cache.extra)})')
        self.config = config
        t = config.timing
        self.episodes = list(range(len(cache.episodes))) if episodes is None else list(episodes)
        if not self.episodes:
            raise ValueError('WindowSampler needs at least one episode')
        self.max_offset = t.max_offset if max_offset is None else int(max_offset)
        if not 0 <= self.max_offset < config.executor.chunk_size:
            raise ValueError(f'max_offset {self.max_offset} must be in [0, chunk_size - 1]')
        self.history_frames = t.history_frames if history_frames is None else int(history_frames)
        lo, hi = int(history_spacing[0]), int(history_spacing[1])
        if not 1 <= lo <= hi:
            raise ValueError(f'history_spacing must be 1 <= lo <= hi, got {history_spacing}')
        self.spacing = (lo, hi)
        # Candidate start rows: every image of the chosen episodes (uniform over the data).
        self._rows = np.concatenate([np.arange(cache.episodes[e]['image_start'],
                                               cache.episodes[e]['image_start'] + cache.episodes[e]['image_count'])
                                     for e in self.episodes])
        self._row_episode = np.concatenate([np.full(cache.episodes[e]['image_count'], e) for e in self.episodes])
        # Rows of each episode's opening (step < start_steps): drawn with probability start_fraction
        # (TrainConfig.start_fraction says why). The episode's first image is step 0 (cache contract).
        if not 0.0 <= start_fraction < 1.0:
            raise ValueError(f'start_fraction must be in [0, 1), got {start_fraction}')
        self.start_fraction = float(start_fraction)
        self._early = np.flatnonzero(cache.image_steps[self._rows] < int(start_steps))
        if self.start_fraction > 0 and self._early.size == 0:
            raise ValueError(f'no image before step {start_steps} in these episodes: cannot oversample starts')
        self.rng = np.random.default_rng(seed)

    # ------------------------------------------------------------------------------------------ sampling
    def sample_specs(self, n: int) -> list[WindowSpec]:
        idx = self.rng.integers(0, self._rows.shape[0], n)
        if self.start_fraction > 0:         # (drawn only when on, so 0 keeps the uniform stream bit-exact)
            early = self.rng.random(n) < self.start_fraction
            idx[early] = self._early[self.rng.integers(0, self._early.size, int(early.sum()))]
        offsets = self.rng.integers(0, self.max_offset + 1, n)
        spacing = self.rng.integers(self.spacing[0], self.spacing[1] + 1, n)
        return [WindowSpec(int(self._row_episode[i]), int(self.cache.image_steps[self._rows[i]]), int(o), int(d))
                for i, o, d in zip(idx, offsets, spacing)]

    def state_dict(self) -> dict:
        return {'bit_generator': self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state['bit_generator']

    # ------------------------------------------------------------------------------------------- windows
    def window(self, spec: WindowSpec) -> dict[str, np.ndarray]:
        """One sample: numpy arrays of the batch contract, images as global image rows (`*_rows`)."""
        cfg = self.config
        t, c, k = cfg.timing, cfg.executor.chunk_size, cfg.timing.horizon_chunks
        ep = self.cache.episodes[spec.episode]
        start, length = ep['start'], ep['length']
        s, o = spec.step, spec.offset
        if not 0 <= s < length:
            raise ValueError(f'step {s} outside episode {spec.episode} of length {length}')
        last = length - 1

        def at(steps):
            return start + np.minimum(np.asarray(steps, dtype=np.int64), last)

        video_steps = s + np.arange(1 + t.future_latent_frames) * t.latent_step
        action_steps = s + o + np.arange(k * c)
        chunk_steps = s + o + np.arange(k) * c
        m = self.history_frames
        hist_steps = s - np.arange(m, 0, -1) * spec.spacing          # oldest first
        hist_mask = hist_steps >= 0
        hist_steps = np.where(hist_mask, hist_steps, 0)
        fos = self.cache.frame_of_step
        rows = {}
        for cam in self.extra_cameras:
            cfos = self.cache.extra[cam]['frame_of_step']
            rows.update({f'{cam}@video_rows': cfos[at(video_steps)], f'{cam}@chunk_rows': cfos[at(chunk_steps)],
                         f'{cam}@history_rows': cfos[at(hist_steps)]})
        return {**rows,
            'video_rows': fos[at(video_steps)],
            'step': np.int64(s),
            'actions': self.cache.actions[at(action_steps)],
            'action_mask': action_steps <= last,
            'chunk_proprio': self.cache.proprio[at(chunk_steps)],
            'chunk_rows': fos[at(chunk_steps)],
            'task': np.int64(ep['task_id']),
            'history_rows': fos[at(hist_steps)],
            'history_steps': hist_steps.astype(np.int64),
            'history_mask': hist_mask,
        }

    def collate(self, windows: list[dict], latents: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Stack windows into a batch; images come from the cache (uint8 frames) or, when `latents` [N, C,
        h, w] (every cached image encoded by the policy's encoder) is given, as latents."""
        def stack(key):
            return torch.from_numpy(np.stack([w[key] for w in windows]))

        batch = {key: stack(key) for key in ('step', 'actions', 'action_mask', 'chunk_proprio', 'task')}
        rows = {'video': stack('video_rows'), 'chunk': stack('chunk_rows')}
        if self.history_frames > 0:
            rows['history'] = stack('history_rows')
            batch['history_steps'] = stack('history_steps')
            batch['history_mask'] = stack('history_mask')
        images = torch.from_numpy(self.cache.images) if latents is None else None
        for name, r in rows.items():
            if latents is not None:
                batch[f'{name}_latents'] = latents[r.reshape(-1)].reshape(*r.shape, *latents.shape[1:]).float()
            else:
                batch[f'{name}_frames' if name != 'chunk' else 'chunk_images'] = images[r.reshape(-1)].reshape(
                    *r.shape, *images.shape[1:])
        for cam in self.extra_cameras:
            cam_images = torch.from_numpy(self.cache.extra[cam]['images'])
            for name in ('video', 'chunk', 'history'):
                if name == 'history' and self.history_frames <= 0:
                    continue
                r = stack(f'{cam}@{name}_rows')
                key = f'cameras/{cam}/' + ('chunk_images' if name == 'chunk' else f'{name}_frames')
                batch[key] = cam_images[r.reshape(-1)].reshape(*r.shape, *cam_images.shape[1:])
        return batch

    def batch(self, n: int, latents: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return self.collate([self.window(s) for s in self.sample_specs(n)], latents)
