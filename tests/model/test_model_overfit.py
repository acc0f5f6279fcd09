"""The tiny planner and the tiny executor each overfit one fixed batch (fixed data, noise and noise levels).

Both stop as soon as the loss has fallen 5x; the assertion is that this happens within 500 steps.
"""
import torch

from aha_wam.models.executor import ActionExecutor
from aha_wam.models.flow import FlowMatchSchedule
from aha_wam.models.planner import VideoPlanner


def _fit(params, loss_fn, max_steps=500, lr=3e-3, factor=5.0):
    opt = torch.optim.Adam(params, lr=lr)
    first = None
    for step in range(1, max_steps + 1):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
        value = float(loss.detach())
        first = value if first is None else first
        if value * factor <= first:
            return first, value, step
    return first, value, max_steps + 1


def test_tiny_planner_overfits_one_batch(tiny_config):
    torch.manual_seed(0)
    planner = VideoPlanner(tiny_config)
    g = torch.Generator().manual_seed(1)
    b, f = 2, 1 + tiny_config.timing.future_latent_frames
    c, h, w = tiny_config.encoder.latent_channels, tiny_config.encoder.latent_height, tiny_config.encoder.latent_width
    x0 = torch.randn(b, f, c, h, w, generator=g)
    noise = torch.randn(b, f - 1, c, h, w, generator=g)
    sigma = torch.tensor([0.3, 0.7])
    noisy = torch.cat([x0[:, :1], FlowMatchSchedule.noisy(x0[:, 1:], noise, sigma.view(b, 1, 1, 1, 1))], 1)
    sigmas = torch.cat([torch.zeros(b, 1), sigma[:, None].expand(b, f - 1)], 1)
    times = torch.tensor([[0, 2, 4, 6], [5, 7, 9, 11]])
    task = torch.randn(b, tiny_config.task.text_tokens, tiny_config.task.text_dim, generator=g)
    target = FlowMatchSchedule.velocity_target(x0[:, 1:], noise)

    def loss_fn():
        v, _ = planner(noisy, sigmas, times, task)
        return (v[:, 1:] - target).pow(2).mean()

    first, last, steps = _fit(planner.parameters(), loss_fn)
    assert steps <= 500, f'planner loss {first:.4f} -> {last:.4f} not 5x lower in 500 steps'


def test_tiny_executor_overfits_one_batch(tiny_config):
    torch.manual_seed(0)
    executor = ActionExecutor(tiny_config)
    g = torch.Generator().manual_seed(2)
    b, cfg = 4, tiny_config
    kv = torch.randn(b, cfg.planner.num_layers, 2, cfg.tokens_per_frame, cfg.attn_width, generator=g)
    obs = torch.randn(b, cfg.encoder.latent_channels, cfg.encoder.latent_height, cfg.encoder.latent_width, generator=g)
    proprio = torch.randn(b, 14, generator=g)
    task = torch.randn(b, cfg.task.text_tokens, cfg.task.text_dim, generator=g)
    chunk_index = torch.tensor([0, 1, 0, 1])
    x0 = torch.randn(b, 16, 14, generator=g)
    noise = torch.randn(b, 16, 14, generator=g)
    sigma = torch.tensor([0.2, 0.5, 0.8, 0.95])
    noisy = FlowMatchSchedule.noisy(x0, noise, sigma.view(b, 1, 1))
    target = FlowMatchSchedule.velocity_target(x0, noise)

    def loss_fn():
        prepared = executor.prepare(kv, obs, proprio, task, chunk_index)
        return (executor.velocity(noisy, sigma, prepared) - target).pow(2).mean()

    first, last, steps = _fit(executor.parameters(), loss_fn)
    assert steps <= 500, f'executor loss {first:.4f} -> {last:.4f} not 5x lower in 500 steps'
