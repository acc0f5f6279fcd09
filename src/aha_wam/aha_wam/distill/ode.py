"""AHA-WAM-Flash: ODE regression of a few-step executor on teacher rollouts (notes/aha-wam.md §7).

Per batch (online, under no_grad): the frozen teacher's planner gives the clean frame-0 context (with
history), the teacher executor integrates every chunk for 16 Euler steps from fresh noise, capturing the
states after steps {0, 1, 2, 4, 8, 12, 16}. The student (initialised from the teacher; only its executor,
OVCR included, is trained) sees, per chunk, the teacher state at a random non-final captured step a (weighted
towards the steps the 1/2/4-step grids start from: `anchor_weights`) and
predicts x0 = x_a - sigma_a * v_student(x_a, sigma_a); loss = masked MSE(x0, teacher x_16). Inference uses
the ordinary Euler sampler with 1, 2 or 4 steps, whose grids are subsets of the 16-step grid (0->16;
0, 8, 16; 0, 4, 8, 12, 16), so every student step starts where it was trained.

Validation logs, per path, the student's n-step result vs the teacher's 16-step result from the same noise
(normalised action units, MSE), next to the teacher's own n-step error as the baseline distillation beats.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import time
from pathlib import Path

import torch

from aha_wam.data.cache import TrainingCache
from aha_wam.data.windows import WindowSampler
from aha_wam.train.workspace import TrainConfig, encode_images, lr_at

TEACHER_STEPS = 16
CAPTURE = (0, 1, 2, 4, 8, 12, 16)
PATHS = (1, 2, 4)


def anchor_weights(capture=CAPTURE, paths=PATHS, teacher_steps=TEACHER_STEPS) -> dict[int, float]:
    """Sampling weight of each non-final captured step as the student's starting state: 1, plus 1 for every
    deployed n-step grid that starts a step there. Uniform anchors train the 1-step path (x_0 -> x0, the one
    Flash deploys and the hardest map) on 1/6 of the samples; this gives it 4/13."""
    starts = [teacher_steps * i // n for n in paths for i in range(n)]
    return {a: 1.0 + starts.count(a) for a in capture if a < teacher_steps}


class Distiller:
    def __init__(self, teacher, cfg: TrainConfig, cache: TrainingCache | None = None, teacher_dir: str = ''):
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        self.cfg = cfg
        self.teacher_dir = teacher_dir
        self.teacher = teacher.eval().requires_grad_(False)
        self.student = copy.deepcopy(teacher).eval()
        self.student.requires_grad_(False)
        self.student.executor.requires_grad_(True)
        self.config = teacher.config
        self.cache = cache if cache is not None else TrainingCache.load(cfg.cache)
        self.train_ids, self.val_ids = self.cache.split(cfg.val_fraction, cfg.seed)
        kw = dict(history_spacing=cfg.history_spacing, max_offset=cfg.max_offset)
        self.sampler = WindowSampler(self.cache, self.config, self.train_ids, seed=cfg.seed * 1000 + 7, **kw)
        val_ids = self.val_ids or self.train_ids
        self.val_sampler = WindowSampler(self.cache, self.config, val_ids, seed=10**6 + cfg.seed, **kw)
        self.val_specs = self.val_sampler.sample_specs(cfg.val_windows)
        self.latents = encode_images(self.teacher.encoder, self.cache.images, self.teacher.device)
        self.params = [p for p in self.student.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                           betas=tuple(cfg.betas))
        self.generator = torch.Generator().manual_seed(cfg.seed + 99)
        self.sigmas = self.teacher.inference_sigmas(TEACHER_STEPS)
        self.anchor_weights = anchor_weights()
        self.anchor_probs = torch.tensor(list(self.anchor_weights.values()))
        self.step = 0
        self.history: list[dict] = []

    @torch.no_grad()
    def _teacher_inputs(self, batch):
        """Normalised inputs, frame-0 context [B, L, 2, T, HD] and the folded per-chunk executor inputs."""
        t = self.teacher
        inputs = t.prepare_batch(batch)
        video = inputs['video_latents']
        b = video.shape[0]
        memory_kv = memory_valid = None
        if 'history_latents' in inputs:
            memory_kv, memory_valid = t.planner.history_kv(inputs['history_latents'], inputs['history_times'],
                                                           inputs['history_mask'], inputs['task_tokens'])
        _, ctx = t.planner(video[:, :1], torch.zeros(b, 1, device=video.device), inputs['frame_times'][:, :1],
                           inputs['task_tokens'], memory_kv=memory_kv, memory_valid=memory_valid, kv_frames=1,
                           kv_only=True)
        k = inputs['actions'].shape[1]
        fold = dict(
            context_kv=ctx.unsqueeze(1).expand(b, k, *ctx.shape[1:]).reshape(b * k, *ctx.shape[1:]),
            obs_latent=inputs['chunk_latents'].reshape(b * k, *inputs['chunk_latents'].shape[2:]),
            proprio=inputs['chunk_proprio'].reshape(b * k, -1),
            task_tokens=inputs['task_tokens'].unsqueeze(1).expand(b, k, *inputs['task_tokens'].shape[1:]).reshape(
                b * k, *inputs['task_tokens'].shape[1:]),
            chunk_index=torch.arange(k, device=video.device).repeat(b))
        mask = inputs['action_mask'].reshape(b * k, -1)
        return fold, mask

    def _rollout(self, fold, generator):
        c, a = self.config.executor.chunk_size, self.config.executor.action_dim
        n = fold['proprio'].shape[0]
        noise = torch.randn(n, c, a, generator=generator).to(self.teacher.device)
        with torch.no_grad():
            prep = self.teacher.executor.prepare(**fold)
            final, states = self.teacher.executor.denoise(prep, noise, self.sigmas, CAPTURE)
        return noise, final, states

    def loss(self, batch, generator) -> tuple[torch.Tensor, dict]:
        fold, mask = self._teacher_inputs(batch)
        _, target, states = self._rollout(fold, generator)
        n = target.shape[0]
        anchors = list(self.anchor_weights)
        pick = torch.multinomial(self.anchor_probs, n, replacement=True, generator=generator)
        stacked = torch.stack([states[i] for i in anchors], dim=1)                  # [n, A, c, a]
        x = stacked[torch.arange(n), pick]
        sigma = self.sigmas[torch.tensor(anchors)[pick]].to(x.device)
        prep = self.student.executor.prepare(**fold)
        v = self.student.executor.velocity(x, sigma, prep)
        x0 = x - sigma.view(n, 1, 1) * v
        err = (x0 - target).pow(2).mean(-1)
        m = mask.float()
        loss = (err * m).sum() / m.sum().clamp_min(1.0)
        return loss, {'loss': float(loss.detach())}

    def train_step(self) -> dict:
        lr = lr_at(self.step, self.cfg)
        for g in self.optimizer.param_groups:
            g['lr'] = lr
        self.student.executor.train()
        batch = self.sampler.batch(self.cfg.batch_size, self.latents)
        loss, metrics = self.loss(batch, self.generator)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip)
        self.optimizer.step()
        self.step += 1
        return {**metrics, 'lr': lr}

    @torch.no_grad()
    def validate(self) -> dict:
        """Per path: MSE of the student's n-step chunk and of the teacher's n-step chunk vs teacher 16 steps."""
        self.student.executor.eval()
        gen = torch.Generator().manual_seed(4321)
        sums: dict[str, float] = {}
        count = 0
        bs = self.cfg.batch_size
        for i in range(0, len(self.val_specs), bs):
            batch = self.val_sampler.collate([self.val_sampler.window(s) for s in self.val_specs[i:i + bs]],
                                             self.latents)
            fold, mask = self._teacher_inputs(batch)
            noise, target, _ = self._rollout(fold, gen)
            sprep = self.student.executor.prepare(**fold)
            tprep = self.teacher.executor.prepare(**fold)
            m = mask.float()
            for n in PATHS:
                for who, model, prep in (('student', self.student, sprep), ('teacher', self.teacher, tprep)):
                    x, _ = model.executor.denoise(prep, noise, model.inference_sigmas(n))
                    err = float((((x - target).pow(2).mean(-1)) * m).sum() / m.sum().clamp_min(1.0))
                    key = f'val/{who}{n}_vs_teacher16'
                    sums[key] = sums.get(key, 0.0) + err * len(batch['step'])
            loss, _ = self.loss(batch, gen)
            sums['val/loss'] = sums.get('val/loss', 0.0) + float(loss) * len(batch['step'])
            count += len(batch['step'])
        return {k: v / max(count, 1) for k, v in sums.items()}

    def train(self, steps: int | None = None, progress: bool = True) -> dict:
        cfg = self.cfg
        total = cfg.steps if steps is None else steps
        out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=total, initial=self.step, desc='distill', dynamic_ncols=True)
        t0 = time.perf_counter()
        first_val = self.validate()
        self._log({'step': self.step, **first_val})
        last = {}
        while self.step < total:
            m = self.train_step()
            last = m
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{m['loss']:.4f}", lr=f"{m['lr']:.1e}")
            if self.step % cfg.log_every == 0:
                self._log({'step': self.step, **m, 'elapsed_s': round(time.perf_counter() - t0, 1)})
            if cfg.val_every and self.step % cfg.val_every == 0 and self.step < total:
                self._log({'step': self.step, **self.validate()})
        if bar is not None:
            bar.close()
        final_val = self.validate()
        self._log({'step': self.step, **final_val})
        self.export({'initial_val': first_val, 'final_val': final_val,
                     'distill_wall_s': round(time.perf_counter() - t0, 1)})
        return {**last, **final_val}

    def export(self, extra: dict) -> Path:
        from aha_wam.checkpoint import read_provenance, save_checkpoint
        teacher_prov = {}
        if self.teacher_dir:
            try:
                teacher_prov = read_provenance(self.teacher_dir)
            except ValueError:
                teacher_prov = {}
        return save_checkpoint(
            self.student, Path(self.cfg.out) / 'checkpoint', steps=self.step, overwrite=True,
            data={'cache': str(self.cfg.cache), **self.cache.describe()},
            extra={'tasks': list(self.cache.tasks), 'flash': True, 'default_denoise_steps': 1, 'paths': list(PATHS),
                   'teacher': self.teacher_dir, 'teacher_steps': TEACHER_STEPS, 'capture': list(CAPTURE),
                   'teacher_weights_sha256': teacher_prov.get('weights_sha256'),
                   'distill_config': dataclasses.asdict(self.cfg), **extra})

    def _log(self, record: dict) -> None:
        self.history.append(record)
        with open(Path(self.cfg.out) / 'log.jsonl', 'a', encoding='utf-8') as f:
            f.write(json.dumps({k: (round(v, 6) if isinstance(v, float) else v) for k, v in record.items()}) + '\n')
