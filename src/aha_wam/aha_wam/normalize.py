"""Z-score normalisation of the 14-D state and action, as an nn.Module whose statistics are buffers.

The buffers live in the policy's state dict, so they are saved in `model.safetensors` with the weights (and
mirrored to `normalization.json` by the checkpoint writer for humans and other tools). Units: joints in
radians, grippers in metres of total opening (left j1..j6, gripper, then right).
"""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn as nn

from aha_wam.config import ACTION_DIM

STAT_NAMES = ('state_mean', 'state_std', 'action_mean', 'action_std')


class Normalizer(nn.Module):
    def __init__(self, dim: int = ACTION_DIM, min_std: float = 1e-4):
        super().__init__()
        self.dim = dim
        self.min_std = min_std
        for name in STAT_NAMES:
            self.register_buffer(name, torch.ones(dim) if name.endswith('std') else torch.zeros(dim))

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
            if name.endswith('std'):
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

    def normalize_state(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x, 'state')
        return (x - self.state_mean.to(x.dtype)) / self.state_std.to(x.dtype)

    def normalize_action(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x, 'action')
        return (x - self.action_mean.to(x.dtype)) / self.action_std.to(x.dtype)

    def unnormalize_action(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x, 'action')
        return x * self.action_std.to(x.dtype) + self.action_mean.to(x.dtype)

    def unnormalize_state(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x, 'state')
        return x * self.state_std.to(x.dtype) + self.state_mean.to(x.dtype)
