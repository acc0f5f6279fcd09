"""Flow matching in the Wan convention (sigma = 1 is pure noise) and the Euler sampler.

    x_s = (1 - s) x0 + s eps          target velocity v = eps - x0          x0 = x_s - s v
    s = shift u / (1 + (shift - 1) u) on a grid of `train_timesteps` u values (shift 5 train and inference)

Loss weighting 'wan': the Gaussian bump exp(-2 ((t - T/2) / T)^2) over the shifted timestep grid t = 1000 s,
minus its minimum and normalised to mean 1 over the grid (Wan / DiffSynth training weights); 'uniform' = 1.

Numerics (flow.numerics): 'official' reproduces AHA-WAM's `WanContinuousFlowMatchScheduler` bit for bit:
training u ~ U(0, 1) in fp32 (sampling 'continuous'), the inference grid u = linspace(1, 0, N+1) and
sigma = shift(u) in fp32, and Euler step sizes sigma[i+1] - sigma[i] in fp32, rounded once to the state
dtype (`step_sizes`). 'legacy' keeps this project's first choices: a 1000-point training grid, the grid in
float64, differenced after casting to the state dtype.
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch


def shift_sigma(u: torch.Tensor, shift: float) -> torch.Tensor:
    return shift * u / (1.0 + (shift - 1.0) * u)


class FlowMatchSchedule:
    def __init__(self, shift: float = 5.0, train_timesteps: int = 1000, weighting: str = 'wan',
                 sampling: str = 'grid', numerics: str = 'legacy'):
        if weighting not in ('wan', 'uniform'):
            raise ValueError(f"weighting must be 'wan' or 'uniform', got {weighting!r}")
        if sampling not in ('grid', 'continuous'):
            raise ValueError(f"sampling must be 'grid' or 'continuous', got {sampling!r}")
        if numerics not in ('legacy', 'official'):
            raise ValueError(f"numerics must be 'legacy' or 'official', got {numerics!r}")
        self.weighting, self.sampling, self.numerics = weighting, sampling, numerics
        self.shift = float(shift)
        self.train_timesteps = int(train_timesteps)
        u = torch.linspace(1.0, 0.0, self.train_timesteps + 1, dtype=torch.float64, device="cpu")[:-1]
        self.train_sigmas = shift_sigma(u, self.shift).float()               # (0, 1], descending
        if weighting == 'wan':
            t = self.train_sigmas.double() * 1000.0
            n = self.train_timesteps
            y = torch.exp(-2.0 * ((t - n / 2) / n) ** 2)
            y = y - y.min()
            self.train_weights = (y * (n / y.sum())).float()
        else:
            self.train_weights = torch.ones(self.train_timesteps, device="cpu")
        # Official continuous weighting constants: bump minimum and mean of (bump - minimum) over the grid
        # t = shift(u) * T, all float64 (WanContinuousFlowMatchScheduler._precompute_training_weight_stats).
        n = float(self.train_timesteps)
        y = torch.exp(-2.0 * ((shift_sigma(u, self.shift) * n - n / 2.0) / n) ** 2)
        self._y_min = float(y.min())
        self._y_mean = float((y - self._y_min).mean())

    @classmethod
    def from_config(cls, flow_config) -> 'FlowMatchSchedule':
        return cls(flow_config.shift, flow_config.train_timesteps, flow_config.loss_weighting,
                   flow_config.train_sampling, flow_config.numerics)

    def sample(self, shape: Iterable[int], generator: torch.Generator | None = None, device=None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Random training noise levels: (sigma, loss weight), each of `shape`."""
        if self.sampling == 'continuous':
            # As the official scheduler: u ~ U(0, 1) in fp32, sigma = shift(u) in fp32 (the model rounds
            # t = 1000 sigma to its dtype in TimestepConditioner).
            u = torch.rand(tuple(shape), generator=generator, dtype=torch.float32)
            sigma = shift_sigma(u, self.shift)
            return sigma.to(device), self.continuous_weight(sigma).to(device)
        idx = torch.randint(0, self.train_timesteps, tuple(shape), generator=generator)
        return self.train_sigmas[idx].to(device), self.train_weights[idx].to(device)

    def continuous_weight(self, sigma: torch.Tensor) -> torch.Tensor:
        """Official `training_weight`: the bump at t = 1000 sigma (fp32) minus the grid minimum, over the mean
        of (bump - minimum) on the 1000-point grid; 1 for 'uniform' weighting."""
        if self.weighting == 'uniform':
            return torch.ones_like(sigma, dtype=torch.float32)
        n = float(self.train_timesteps)
        t = sigma.float() * n
        y = torch.exp(-2.0 * ((t - n / 2.0) / n) ** 2)
        return (y - self._y_min) / (self._y_mean + 1e-10)

    def weight(self, sigma: torch.Tensor) -> torch.Tensor:
        """Loss weight of arbitrary sigmas (nearest grid point; the official formula for 'continuous')."""
        if self.sampling == 'continuous':
            return self.continuous_weight(sigma)
        grid = self.train_sigmas.to(sigma.device)
        idx = (sigma.float().unsqueeze(-1) - grid).abs().argmin(-1)
        return self.train_weights.to(sigma.device)[idx]

    def inference_sigmas(self, steps: int, device=None) -> torch.Tensor:
        """[steps + 1] sigmas from 1 to 0 on the shifted grid (Euler steps between neighbours)."""
        if not isinstance(steps, int) or steps <= 0:
            raise ValueError(f'denoise steps must be a positive int, got {steps!r}')
        if self.numerics == 'official':
            u = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float32, device="cpu")
            return shift_sigma(u, self.shift).to(device)
        u = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64, device="cpu")
        return shift_sigma(u, self.shift).float().to(device)

    @staticmethod
    def noisy(x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """sigma broadcastable to x0 (add trailing singleton dims yourself)."""
        return (1.0 - sigma) * x0 + sigma * noise

    @staticmethod
    def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return noise - x0


def step_sizes(sigmas: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Official Euler step sizes: sigma[i+1] - sigma[i] of the fp32 grid, in fp32, then rounded ONCE to the
    state dtype. (Casting the grid to bf16 first, as the legacy sampler does, gives -0.0234, -0.0234 for the
    first two 10-step sizes instead of -0.02173, -0.02588.)"""
    s = sigmas.float()
    return (s[1:] - s[:-1]).to(dtype)


def euler_sample(velocity: Callable[..., torch.Tensor], noise: torch.Tensor, sigmas: torch.Tensor,
                 capture: Iterable[int] = (), step_inputs=None, deltas: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """Integrate dx/ds = velocity(x, s) from sigmas[0] (noise) to sigmas[-1].

    `deltas`, if given ([len(sigmas) - 1], e.g. `step_sizes(sigmas, x.dtype)`), are the step sizes and the
    update is x + v * deltas[i] (official); otherwise x + (sigmas[i+1] - sigmas[i]) * v in sigmas' dtype.

    `step_inputs`, if given, is indexable by step i and velocity is called as velocity(x, sigmas[i],
    step_inputs[i]) (e.g. timestep conditioning precomputed for the whole schedule).

    `capture` lists step indices i in [0, len(sigmas) - 1] whose state (after i Euler steps; 0 = the noise)
    is returned, for ODE distillation. The loop length is the static length of `sigmas`, and the body has
    no data-dependent Python control flow, so the loop can be unrolled by export / CUDA-graph capture.
    """
    n = sigmas.shape[0] - 1
    wanted = sorted(set(int(i) for i in capture))
    for i in wanted:
        if not 0 <= i <= n:
            raise ValueError(f'capture step {i} outside [0, {n}] for a {n}-step sampler')
    states: dict[int, torch.Tensor] = {}
    x = noise
    if 0 in wanted:
        states[0] = x
    for i in range(n):
        v = velocity(x, sigmas[i]) if step_inputs is None else velocity(x, sigmas[i], step_inputs[i])
        x = x + (sigmas[i + 1] - sigmas[i]) * v if deltas is None else x + v * deltas[i]
        if i + 1 in wanted:
            states[i + 1] = x
    return x, states
