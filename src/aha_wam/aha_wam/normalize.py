"""Z-score normalisation of the 14-D state and action, as an nn.Module whose statistics are buffers.

The buffers live in the policy's state dict, so they are saved in `model.safetensors` with the weights (and
mirrored to `normalization.json` by the checkpoint writer for humans and other tools). Units are the model's
(see the checkpoint's embodiment contract): this project's Piper checkpoints use joints in radians and
grippers in metres of total opening; official AHA-WAM checkpoints use RoboTwin units (grippers 0..1).

Two semantics (config `normalize`):
  'add_eps' (official AHA-WAM `SingleFieldLinearNormalizer`, z-score): scale = 1/(std + 1e-8),
      offset = -mean/(std + 1e-8); normalise x * scale + offset, clamped to +-5 (states and training
      actions); unnormalise (x - offset) / scale, never clamped. Statistics come from the official
      `dataset_stats.json` (`stats_from_dataset_stats`).
  'clamp_min' (this project's first checkpoints): (x - mean) / std with std clamped to >= 1e-4 when set,
      no clamp.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torch.nn as nn

from aha_wam.config import ACTION_DIM

STAT_NAMES = ('state_mean', 'state_std', 'action_mean', 'action_std')


class Normalizer(nn.Module):
    def __init__(self, dim: int = ACTION_DIM, min_std: float = 1e-4, std_mode: str = 'clamp_min',
                 clamp: float | None = None):
        """Defaults are the legacy semantics; `from_config` builds what a model config asks for. With
        std_mode 'add_eps', `min_std` is the epsilon added to std (official 1e-8)."""
        super().__init__()
        if std_mode not in ('clamp_min', 'add_eps'):
            raise ValueError(f"std_mode must be 'clamp_min' or 'add_eps', got {std_mode!r}")
        self.dim = dim
        self.min_std = min_std
        self.std_mode = std_mode
        self.clamp = None if clamp is None else float(clamp)
        for name in STAT_NAMES:
            self.register_buffer(name, torch.ones(dim) if name.endswith('std') else torch.zeros(dim))

    @classmethod
    def from_config(cls, dim: int, config) -> 'Normalizer':
        """config: an aha_wam.config.NormalizeConfig."""
        return cls(dim, min_std=float(config.eps), std_mode=config.std_mode, clamp=config.clamp)

    def _apply(self, fn, recurse=True):
        """Keep the statistics float32 whatever dtype the policy is cast to: a bf16 action_mean of ~1.5 rad
        would be off by up to 4 mrad. Device moves still apply."""
        before = {name: getattr(self, name) for name in STAT_NAMES}
        super()._apply(fn, recurse)
        for name, old in before.items():
            new = getattr(self, name)
            if new.dtype != torch.float32:
                setattr(self, name, old.to(device=new.device, dtype=torch.float32))
        return self

    @torch.no_grad()
    def set_stats(self, stats: Mapping[str, object]) -> None:
        """stats: {state_mean, state_std, action_mean, action_std} each a length-`dim` sequence/tensor."""
        missing = [n for n in STAT_NAMES if n not in stats]
        if missing:
            raise ValueError(f'normalisation stats miss {missing}')
        for name in STAT_NAMES:
            value = torch.as_tensor(stats[name], dtype=torch.float32).flatten()
            if value.numel() != self.dim:
                raise ValueError(f'normalisation stat {name} has {value.numel()} values, expected {self.dim}')
            if not torch.isfinite(value).all():
                raise ValueError(f'normalisation stat {name} is not finite: {value.tolist()}')
            if name.endswith('std') and self.std_mode == 'add_eps' and bool((value < 0).any()):
                raise ValueError(f'normalisation stat {name} has negative values: {value.tolist()}')
            if name.endswith('std') and self.std_mode == 'clamp_min':
                value = value.clamp_min(self.min_std)
            getattr(self, name).copy_(value)

    def stats(self) -> dict[str, list[float]]:
        return {name: getattr(self, name).float().tolist() for name in STAT_NAMES}

    @staticmethod
    def compute_stats(states: torch.Tensor, actions: torch.Tensor) -> dict[str, list[float]]:
        """Mean/std over all leading dims of states [..., A] and actions [..., A]."""
        s = states.reshape(-1, states.shape[-1]).double()
        a = actions.reshape(-1, actions.shape[-1]).double()
        return {'state_mean': s.mean(0).tolist(), 'state_std': s.std(0).tolist(),
                'action_mean': a.mean(0).tolist(), 'action_std': a.std(0).tolist()}

    def _check(self, x: torch.Tensor, what: str) -> None:
        if x.shape[-1] != self.dim:
            raise ValueError(f'{what} must end in {self.dim} values (left j1..j6, gripper, right ...), '
                             f'got shape {tuple(x.shape)}')

    def _scale_offset(self, kind: str, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Official affine form, computed in fp32 as the official normaliser does: (1/(std+eps), -mean/(std+eps))."""
        denom = getattr(self, f'{kind}_std') + self.min_std
        return (1.0 / denom).to(dtype), (-getattr(self, f'{kind}_mean') / denom).to(dtype)

    def _normalize(self, x: torch.Tensor, kind: str) -> torch.Tensor:
        self._check(x, kind)
        if self.std_mode == 'clamp_min':
            y = (x - getattr(self, f'{kind}_mean').to(x.dtype)) / getattr(self, f'{kind}_std').to(x.dtype)
        else:
            scale, offset = self._scale_offset(kind, x.dtype)
            y = x * scale + offset
        return y if self.clamp is None else y.clamp(-self.clamp, self.clamp)

    def _unnormalize(self, x: torch.Tensor, kind: str) -> torch.Tensor:
        self._check(x, kind)
        if self.std_mode == 'clamp_min':
            return x * getattr(self, f'{kind}_std').to(x.dtype) + getattr(self, f'{kind}_mean').to(x.dtype)
        scale, offset = self._scale_offset(kind, x.dtype)
        return (x - offset) / scale

    def normalize_state(self, x: torch.Tensor) -> torch.Tensor:
        return self._normalize(x, 'state')

    def normalize_action(self, x: torch.Tensor) -> torch.Tensor:
        """Training targets (clamped like states under official semantics, as the official dataset does)."""
        return self._normalize(x, 'action')

    def unnormalize_action(self, x: torch.Tensor) -> torch.Tensor:
        return self._unnormalize(x, 'action')

    def unnormalize_state(self, x: torch.Tensor) -> torch.Tensor:
        return self._unnormalize(x, 'state')


def stats_from_dataset_stats(data: Mapping[str, Any], key: str | None = None, dim: int = ACTION_DIM
                             ) -> dict[str, list[float]]:
    """The official `dataset_stats.json` ({"state": {KEY: {"global_mean", "global_std", ...}}, "action": ...})
    -> {state_mean, state_std, action_mean, action_std}. KEY defaults to 'default' (the only key of the
    RoboTwin checkpoint) or the single key present. Raises ValueError naming what is missing or malformed."""
    if not isinstance(data, Mapping):
        raise ValueError(f'dataset stats must be a JSON object, got {type(data).__name__}')
    out: dict[str, list[float]] = {}
    for kind in ('state', 'action'):
        section = data.get(kind)
        if not isinstance(section, Mapping) or not section:
            raise ValueError(f'dataset stats have no {kind!r} section (keys: {sorted(data)})')
        name = key if key is not None else ('default' if 'default' in section else
                                           next(iter(section)) if len(section) == 1 else None)
        if name is None or name not in section:
            raise ValueError(f'dataset stats {kind!r} has keys {sorted(section)}; pick one with key=...')
        entry = section[name]
        for stat in ('mean', 'std'):
            values = entry.get(f'global_{stat}') if isinstance(entry, Mapping) else None
            if values is None:
                raise ValueError(f'dataset stats {kind}.{name} has no global_{stat}')
            flat = torch.as_tensor(values, dtype=torch.float64).flatten().tolist()
            if len(flat) != dim or not all(math.isfinite(v) for v in flat):
                raise ValueError(f'dataset stats {kind}.{name}.global_{stat} must be {dim} finite numbers, '
                                 f'got {len(flat)}')
            out[f'{kind}_{stat}'] = flat
    return out
