"""`aha-wam train-ae`: the image autoencoder on the cached ego frames, before the policy (which keeps it frozen).

L1 reconstruction + small KL (ConvAutoencoder.loss), AdamW with the same warm-up/cosine schedule, then
`calibrate` sets the per-channel latent mean/std so flow matching sees unit-variance latents. Output:
<out>/encoder.safetensors (the encoder module's state dict, buffers included) and <out>/ae.json (config,
steps, losses, data).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from aha_wam.config import load_config
from aha_wam.data.cache import TrainingCache
from aha_wam.models.vae import build_image_encoder
from aha_wam.train.workspace import TrainConfig, lr_at


def train_autoencoder(cfg: TrainConfig, steps: int = 1500, batch_size: int = 32, lr: float = 1e-3,
                      cache: TrainingCache | None = None, out: str | None = None, progress: bool = True) -> dict:
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    torch.manual_seed(cfg.seed)
    model_cfg = load_config(cfg.model, cfg.model_overrides or None)
    cache = cache if cache is not None else TrainingCache.load(cfg.cache)
    hw = (model_cfg.encoder.image_height, model_cfg.encoder.image_width)
    if cache.image_hw != hw:
        raise ValueError(f'cache images are {cache.image_hw}, the encoder expects {hw}')
    ae = build_image_encoder(model_cfg.encoder)
    opt = torch.optim.AdamW(ae.parameters(), lr=lr, weight_decay=0.0)
    sched = TrainConfig(lr=lr, steps=steps, warmup_steps=min(100, steps // 10), min_lr_ratio=0.1)
    rng = np.random.default_rng(cfg.seed)
    images = torch.from_numpy(cache.images)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=steps, desc='train-ae', dynamic_ncols=True)
    t0 = time.perf_counter()
    metrics = {}
    for step in range(steps):
        for g in opt.param_groups:
            g['lr'] = lr_at(step, sched)
        idx = torch.from_numpy(rng.integers(0, images.shape[0], batch_size))
        loss, metrics = ae.loss(images[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ae.parameters(), 1.0)
        opt.step()
        if bar is not None:
            bar.update(1)
            if step % 20 == 0:
                bar.set_postfix(l1=f"{metrics['ae/recon_l1']:.4f}", lr=f"{opt.param_groups[0]['lr']:.1e}")
    if bar is not None:
        bar.close()
    sample = images[torch.from_numpy(rng.integers(0, images.shape[0], min(1024, images.shape[0])))]
    ae.calibrate(sample)
    out_dir = Path(out or Path(cfg.out).parent / 'ae')
    out_dir.mkdir(parents=True, exist_ok=True)
    encoder_state = {k: v.detach().contiguous() for k, v in ae.state_dict().items()}
    save_file(encoder_state, str(out_dir / 'encoder.safetensors'))
    report = {'steps': steps, 'batch_size': batch_size, 'lr': lr, 'final': metrics,
              'wall_s': round(time.perf_counter() - t0, 1), 'encoder': model_cfg.encoder.__dict__,
              'data': cache.describe()}
    (out_dir / 'ae.json').write_text(json.dumps(report, indent=1, default=str))
    return report
