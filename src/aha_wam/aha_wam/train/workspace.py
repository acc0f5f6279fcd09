"""The Workspace owns one training run: data, policy, optimiser, schedule, EMA, logging, validation,
checkpoints and exact resume; it runs alone or under `torchrun` (DDP, gloo on CPU / nccl on GPU).

    ws = Workspace(load_train_config('config/train/small.yaml', ['steps=2000']))
    ws.train()          # resumes from <out>/state if it exists

Schedule: AdamW; learning rate = linear warm-up over `warmup_steps`, then cosine to `lr * min_lr_ratio` at
`steps` (a pure function of the step, so resume needs nothing but the step); gradients clipped to
`grad_clip`; optional EMA of the trainable parameters (the exported checkpoint then holds the EMA weights).
Each process draws its own windows (sampler seeded by seed + rank) and its own noise; DDP averages the
gradients, so every process holds the same weights.

Output directory:
    <out>/state/        resumable state (aha_wam.train.state), written every `save_every` steps and at the end
    <out>/checkpoint/   the policy checkpoint (aha_wam.checkpoint format) at the end (and at each save)
    <out>/log.jsonl     one JSON line per log/validation event
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import torch
import yaml

from aha_wam.config import AhaWamConfig, load_config
from aha_wam.data.cache import TrainingCache
from aha_wam.data.windows import WindowSampler
from aha_wam.train import state as st


@dataclasses.dataclass
class TrainConfig:
    model: str = 'tiny'                     # registry name or model YAML
    model_overrides: list = dataclasses.field(default_factory=list)
    cache: str = 'runs/cache'               # training cache directory (aha-wam record -> cache)
    out: str = 'runs/train'
    encoder: str | None = None              # `aha-wam train-ae` output dir (encoder weights); None = as initialised
    seed: int = 0
    steps: int = 1000
    batch_size: int = 8                     # per process
    lr: float = 3e-4
    min_lr_ratio: float = 0.05
    warmup_steps: int = 100
    weight_decay: float = 0.01
    betas: tuple = (0.9, 0.99)
    grad_clip: float = 1.0
    ema_decay: float | None = None          # e.g. 0.999; None = off
    val_fraction: float = 0.1
    val_every: int = 200
    val_windows: int = 32
    save_every: int = 500
    log_every: int = 10
    history_spacing: tuple = (16, 40)       # control steps between training history frames (deployed: 25)
    max_offset: int | None = None           # None = model timing.max_offset
    # Std of Gaussian noise added to the chunk-start proprio, in units of its normalisation std (training
    # only). Against the copycat failure of proprio-conditioned imitation: with a clean state input the model
    # learns "action = state + small lead", which imitates well on the demonstrations but stalls in closed
    # loop once the arm lags; a noisy state makes it read the target from the images.
    proprio_noise: float = 0.0
    # Fraction of training windows whose start is drawn from the first `start_steps` control steps of an
    # episode instead of uniformly. Which arm acts (place_cube_in_bowl: the cube's side) is decided from the
    # image at the start, with both arms at home; uniform windows give that moment ~5% of the data, and once
    # an arm moves the state alone tells which one, so the model learned to pick an arm at random.
    start_fraction: float = 0.0
    start_steps: int = 50
    num_threads: int = 0                    # torch threads per process; 0 = leave as is
    bf16: bool = True                       # autocast bf16 on CUDA (ignored on CPU)
    device: str = 'auto'
    progress: bool = True

    def __post_init__(self):
        if not (np.isfinite(self.proprio_noise) and self.proprio_noise >= 0):
            raise ValueError(f'proprio_noise must be a finite number >= 0 (std units), got {self.proprio_noise}')
        if not 0.0 <= self.start_fraction < 1.0:
            raise ValueError(f'start_fraction must be in [0, 1), got {self.start_fraction}')
        if self.start_steps < 1:
            raise ValueError(f'start_steps must be >= 1 control step, got {self.start_steps}')

    def model_config(self) -> AhaWamConfig:
        return load_config(self.model, self.model_overrides or None)


def load_train_config(source: str | os.PathLike | None = None, overrides: Iterable[str] = ()) -> TrainConfig:
    data: dict[str, Any] = {}
    if source:
        with open(source, encoding='utf-8') as f:
            data = yaml.safe_load(f) or {}
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    for item in overrides:
        key, sep, raw = item.partition('=')
        if not sep:
            raise ValueError(f"override {item!r} must look like key=value")
        data[key.strip()] = yaml.safe_load(raw)
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f'unknown training config keys {unknown}; known: {sorted(names)}')
    for key in ('betas', 'history_spacing'):
        if key in data:
            data[key] = tuple(data[key])
    floats = {'lr', 'min_lr_ratio', 'weight_decay', 'grad_clip', 'ema_decay', 'val_fraction', 'proprio_noise',
              'start_fraction'}
    for key in floats & set(data):
        if isinstance(data[key], str):      # YAML 1.1 reads '1e-3' (no dot) as a string
            data[key] = float(data[key])
    return TrainConfig(**data)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up then cosine decay to lr * min_lr_ratio at cfg.steps."""
    if cfg.warmup_steps > 0 and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + 0.5 * (cfg.lr - floor) * (1 + math.cos(math.pi * progress))


def dist_info() -> tuple[int, int]:
    return int(os.environ.get('RANK', 0)), int(os.environ.get('WORLD_SIZE', 1))


def encode_images(encoder, images: np.ndarray, device, batch: int = 256) -> torch.Tensor:
    """Every cached image through the (frozen) encoder once: [N, C, h, w] float32 on `device`."""
    out = []
    with torch.no_grad():
        for i in range(0, images.shape[0], batch):
            out.append(encoder.encode(torch.from_numpy(images[i:i + batch]).to(device)).float())
    return torch.cat(out)


def load_encoder_weights(policy, directory: str | os.PathLike) -> None:
    from safetensors.torch import load_file
    state = load_file(str(Path(directory) / 'encoder.safetensors'))
    policy.encoder.load_state_dict(state, strict=True)


class Workspace:
    def __init__(self, cfg: TrainConfig, cache: TrainingCache | None = None):
        self.cfg = cfg
        self.rank, self.world = dist_info()
        if self.world > 1 and not torch.distributed.is_initialized():
            backend = 'nccl' if torch.cuda.is_available() and cfg.device != 'cpu' else 'gloo'
            torch.distributed.init_process_group(backend)
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        if cfg.device == 'auto':
            self.device = torch.device(f'cuda:{int(os.environ.get("LOCAL_RANK", 0))}' if torch.cuda.is_available()
                                       else 'cpu')
        else:
            self.device = torch.device(cfg.device)
        self.out = Path(cfg.out)
        self.state_dir = self.out / 'state'
        torch.manual_seed(cfg.seed)                          # identical initial weights on every process
        from aha_wam.policy import AhaWamPolicy
        self.model_config = cfg.model_config()
        self.policy = AhaWamPolicy(self.model_config)
        if cfg.encoder:
            load_encoder_weights(self.policy, cfg.encoder)
        self.cache = cache if cache is not None else TrainingCache.load(cfg.cache)
        hw = (self.model_config.encoder.image_height, self.model_config.encoder.image_width)
        if self.cache.image_hw != hw:
            raise ValueError(f'cache images are {self.cache.image_hw}, the model expects {hw}: rebuild the cache '
                             'with the model image size')
        self.policy.normalizer.set_stats(self.cache.stats)
        self.policy.to(self.device)
        self.train_ids, self.val_ids = self.cache.split(cfg.val_fraction, cfg.seed)
        kw = dict(history_spacing=cfg.history_spacing, max_offset=cfg.max_offset)
        self.sampler = WindowSampler(self.cache, self.model_config, self.train_ids, seed=cfg.seed * 1000 + self.rank,
                                     start_fraction=cfg.start_fraction, start_steps=cfg.start_steps, **kw)
        self.val_batch = None
        if self.val_ids:
            val_sampler = WindowSampler(self.cache, self.model_config, self.val_ids, seed=10**6 + cfg.seed, **kw)
            self.val_specs = val_sampler.sample_specs(cfg.val_windows)
            self.val_sampler = val_sampler
        self.generator = torch.Generator().manual_seed(cfg.seed * 1000 + 17 + self.rank)
        self.latents = None
        if not self.model_config.encoder.trainable_with_policy:
            self.latents = encode_images(self.policy.encoder, self.cache.images, self.device)
        self.params = [p for p in self.policy.parameters() if p.requires_grad]
        decay = [p for p in self.params if p.dim() >= 2]
        no_decay = [p for p in self.params if p.dim() < 2]
        self.optimizer = torch.optim.AdamW([{'params': decay, 'weight_decay': cfg.weight_decay},
                                            {'params': no_decay, 'weight_decay': 0.0}],
                                           lr=cfg.lr, betas=tuple(cfg.betas))
        self.ema = ({n: p.detach().clone() for n, p in self.policy.named_parameters() if p.requires_grad}
                    if cfg.ema_decay else None)
        self.model = self.policy
        if self.world > 1:
            self.model = torch.nn.parallel.DistributedDataParallel(
                self.policy, device_ids=[self.device.index] if self.device.type == 'cuda' else None)
        self.step = 0
        self.history: list[dict] = []

    # ------------------------------------------------------------------------------------------ state
    def save_state(self) -> None:
        if self.rank == 0:
            st.save_shared(self.state_dir, self.policy.state_dict(), self.optimizer, self.ema,
                           {'step': self.step, 'world_size': self.world, 'config': dataclasses.asdict(self.cfg)})
        st.save_rank(self.state_dir, self.rank,
                     {'torch_rng': torch.get_rng_state(), 'noise_rng': self.generator.get_state()},
                     {'sampler': self.sampler.state_dict(), 'step': self.step})
        if self.world > 1:
            torch.distributed.barrier()

    def load_state(self) -> bool:
        if not (self.state_dir / 'trainer.json').exists():
            return False
        s = st.load_state(self.state_dir, self.rank)
        if s['trainer'].get('world_size', 1) != self.world:
            raise ValueError(f'{self.state_dir} was written by {s["trainer"]["world_size"]} processes, now {self.world}')
        self.policy.load_state_dict(s['model'])
        st.optimizer_from_flat(self.optimizer, s['optimizer'], s['trainer']['optimizer'])
        if self.ema is not None and s['ema'] is not None:
            for k in self.ema:
                self.ema[k].copy_(s['ema'][k])
        torch.set_rng_state(s['rank_tensors']['torch_rng'])
        self.generator.set_state(s['rank_tensors']['noise_rng'])
        self.sampler.load_state_dict(s['rank']['sampler'])
        self.step = int(s['trainer']['step'])
        return True

    # ------------------------------------------------------------------------------------------ steps
    def _autocast(self):
        if self.device.type == 'cuda' and self.cfg.bf16:
            return torch.autocast('cuda', dtype=torch.bfloat16)
        import contextlib
        return contextlib.nullcontext()

    def train_step(self) -> dict:
        cfg = self.cfg
        lr = lr_at(self.step, cfg)
        for group in self.optimizer.param_groups:
            group['lr'] = lr
        self.model.train()
        batch = self.sampler.batch(cfg.batch_size, self.latents)
        if cfg.proprio_noise > 0:
            std = self.policy.normalizer.state_std.detach().cpu()
            noise = torch.randn(batch['chunk_proprio'].shape, generator=self.generator)
            batch['chunk_proprio'] = batch['chunk_proprio'] + cfg.proprio_noise * std * noise
        with self._autocast():
            loss, metrics = self.model(batch, generator=self.generator)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip) if cfg.grad_clip else torch.tensor(0.)
        self.optimizer.step()
        if self.ema is not None:
            with torch.no_grad():
                for n, p in self.policy.named_parameters():
                    if n in self.ema:
                        self.ema[n].lerp_(p.detach(), 1.0 - cfg.ema_decay)
        self.step += 1
        return {**metrics, 'lr': lr, 'grad_norm': float(grad_norm)}

    @torch.no_grad()
    def validate(self) -> dict:
        if not self.val_ids:
            return {}
        backup = self._swap_in_ema()
        self.policy.eval()
        gen = torch.Generator().manual_seed(12345)
        totals: dict[str, float] = {}
        chunks = [self.val_specs[i:i + self.cfg.batch_size] for i in range(0, len(self.val_specs), self.cfg.batch_size)]
        for specs in chunks:
            batch = self.val_sampler.collate([self.val_sampler.window(s) for s in specs], self.latents)
            with self._autocast():
                _, metrics = self.policy(batch, generator=gen)
            for k, v in metrics.items():
                totals[k] = totals.get(k, 0.0) + v * len(specs)
        self._restore(backup)
        return {f'val/{k.replace("loss/", "")}' if k != 'loss' else 'val/loss': v / len(self.val_specs)
                for k, v in totals.items()}

    def _swap_in_ema(self):
        if self.ema is None:
            return None
        backup = {}
        for n, p in self.policy.named_parameters():
            if n in self.ema:
                backup[n] = p.detach().clone()
                p.data.copy_(self.ema[n])
        return backup

    def _restore(self, backup) -> None:
        if backup is None:
            return
        for n, p in self.policy.named_parameters():
            if n in backup:
                p.data.copy_(backup[n])

    def export(self, extra: Mapping[str, Any] | None = None) -> Path | None:
        """The policy checkpoint (EMA weights when EMA is on) at <out>/checkpoint."""
        if self.rank != 0:
            return None
        from aha_wam.checkpoint import save_checkpoint
        backup = self._swap_in_ema()
        data = {'cache': str(self.cfg.cache), **self.cache.describe(), 'train_episodes': len(self.train_ids),
                'val_episodes': len(self.val_ids)}
        path = save_checkpoint(self.policy, self.out / 'checkpoint', steps=self.step, data=data, overwrite=True,
                               extra={'tasks': list(self.cache.tasks), 'train_config': dataclasses.asdict(self.cfg),
                                      'world_size': self.world, **(extra or {})})
        self._restore(backup)
        return path

    def _log(self, record: dict) -> None:
        self.history.append(record)
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            with open(self.out / 'log.jsonl', 'a', encoding='utf-8') as f:
                f.write(json.dumps(record) + '\n')

    def train(self, steps: int | None = None, resume: bool = True) -> dict:
        """Train until `steps` (default cfg.steps) optimiser steps in total; returns the last metrics."""
        cfg = self.cfg
        total = cfg.steps if steps is None else steps
        if resume and self.load_state() and self.rank == 0:
            print(f'resumed from {self.state_dir} at step {self.step}', flush=True)
        bar = None
        if cfg.progress and self.rank == 0:
            from tqdm import tqdm
            bar = tqdm(total=total, initial=self.step, desc='train', dynamic_ncols=True)
        last: dict = {}
        t_last, n_last = time.perf_counter(), 0
        t_start = time.perf_counter()
        while self.step < total:
            metrics = self.train_step()
            n_last += cfg.batch_size * self.world
            last = metrics
            if bar is not None:
                bar.update(1)
            if self.step % cfg.log_every == 0 or self.step == total:
                now = time.perf_counter()
                sps = n_last / max(now - t_last, 1e-9)
                t_last, n_last = now, 0
                rec = {'step': self.step, **{k: round(v, 6) for k, v in metrics.items()}, 'samples_per_s': round(sps, 2),
                       'elapsed_s': round(now - t_start, 1)}
                self._log(rec)
                if bar is not None:
                    bar.set_postfix(loss=f"{metrics['loss']:.4f}", lr=f"{metrics['lr']:.2e}", sps=f'{sps:.1f}')
            if cfg.val_every and (self.step % cfg.val_every == 0 or self.step == total):
                val = self.validate()
                if val:
                    self._log({'step': self.step, **val})
                    last = {**last, **val}
                    if bar is not None:
                        bar.write(json.dumps({'step': self.step, **{k: round(v, 5) for k, v in val.items()}}))
            if cfg.save_every and self.step % cfg.save_every == 0 and self.step < total:
                self.save_state()
                self.export()
        if bar is not None:
            bar.close()
        self.save_state()
        self.export({'final_metrics': last, 'train_wall_s': round(time.perf_counter() - t_start, 1)})
        return last
