"""Helpers shared by the model-core tests (a uniquely named module: `conftest` names collide across dirs)."""
from __future__ import annotations

import torch


def randomise_zero_inits(module, std: float = 0.1) -> None:
    with torch.no_grad():
        for p in module.parameters():
            if p.dim() > 0 and not p.any():
                p.normal_(0.0, std)


def make_batch(config, batch: int = 2, history: int = 0, seed: int = 0) -> dict:
    """A batch following the documented contract (random content)."""
    g = torch.Generator().manual_seed(seed)
    t, e, enc = config.timing, config.executor, config.encoder
    k, c = t.horizon_chunks, e.chunk_size
    hw = (enc.image_height, enc.image_width, 3)

    def images(*lead):
        return torch.randint(0, 256, (*lead, *hw), dtype=torch.uint8, generator=g)

    out = {
        'video_frames': images(batch, 1 + t.future_latent_frames),
        'step': torch.arange(batch) * 40 + 64,
        'actions': torch.randn(batch, k * c, e.action_dim, generator=g),
        'chunk_proprio': torch.randn(batch, k, e.action_dim, generator=g),
        'chunk_images': images(batch, k),
        'task': torch.arange(batch) % max(config.task.num_tasks, 1),
    }
    if history:
        out['history_frames'] = images(batch, history)
        out['history_steps'] = out['step'][:, None] - 8 * torch.arange(history, 0, -1)[None, :] * t.latent_stride
        out['history_mask'] = torch.ones(batch, history, dtype=torch.bool)
    return out


def random_image(config, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    enc = config.encoder
    return torch.randint(0, 256, (enc.image_height, enc.image_width, 3), dtype=torch.uint8, generator=g)
