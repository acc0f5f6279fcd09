#!/usr/bin/env python3
"""Latency of the OFFICIAL AHA-WAM layout (preset `robotwin`, 7.35 B parameters) with random weights; one JSON.

    python bench/official_latency.py                       # robotwin, bf16, CUDA; skipped without a GPU
    python bench/official_latency.py --backends torch cudagraph tensorrt --repeats 30
    python bench/official_latency.py --config tests/... --device cpu --dtype float32   # a small config on CPU

Measured (medians, p95, min over --repeats rounds, after --warmup):
  prefill_ms        planner prefill of one frame (120 tokens) over a FULL rolling memory (6 x 120 tokens)
  prepare_ms        executor update preparation: OVCR routing + editing of all layers, context/cross K/V
  chunk_10_ms       the 10-step Euler chunk (denoise only), per executor backend
  flash_1_ms        one Euler step (AHA-WAM-Flash deployment), per executor backend
Images are not encoded (the Wan2.2 VAE's weights are not downloaded here): random latents of the model's
latent shape are fed to the planner and the executor, so encoder time is NOT included. Weights are random
(normal, std 0.02): latency does not depend on them. A backend that cannot run here (no CUDA, no TensorRT)
is reported with the reason instead of numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'src', 'aha_wam'))

from aha_wam.config import load_config  # noqa: E402
from aha_wam.policy import AhaWamPolicy  # noqa: E402


def _summary(samples_s: list[float]) -> dict:
    ms = sorted(s * 1e3 for s in samples_s)
    p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
    return {'median': round(statistics.median(ms), 3), 'p95': round(p95, 3), 'min': round(ms[0], 3), 'n': len(ms)}


def random_policy(config, device: torch.device, dtype: torch.dtype) -> AhaWamPolicy:
    """Build on the meta device and materialise directly on `device` (no 29 GB fp32 CPU copy)."""
    from aha_wam.models.rope import pair_swap_matrix
    with torch.device('meta'):
        policy = AhaWamPolicy(config)
    policy = policy.to_empty(device=device).to(dtype)
    g = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.02, generator=g)
            elif name.endswith('weight'):
                p.fill_(1.0)
            else:
                p.zero_()
        for module in policy.modules():
            if hasattr(module, 'rope_swap'):
                module.rope_swap = pair_swap_matrix(module.rope_swap.shape[0]).to(device, dtype)
            if hasattr(module, 'reset_buffers'):
                module.reset_buffers()
        n = policy.normalizer
        for name in ('state_mean', 'action_mean'):
            getattr(n, name).zero_()
        for name in ('state_std', 'action_std'):
            getattr(n, name).fill_(1.0)
    return policy.to(device).eval()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--config', default='robotwin', help='registry name or YAML (default: robotwin)')
    ap.add_argument('--device', default='cuda')
    ap.add_argument('--dtype', default='bfloat16', choices=('bfloat16', 'float32'))
    ap.add_argument('--backends', nargs='+', default=['torch', 'cudagraph', 'tensorrt'])
    ap.add_argument('--repeats', type=int, default=20)
    ap.add_argument('--warmup', type=int, default=3)
    args = ap.parse_args()
    device = torch.device(args.device)
    report: dict = {'config': args.config, 'device': str(device), 'dtype': args.dtype, 'encoder': 'not included'}
    if device.type == 'cuda' and not torch.cuda.is_available():
        report['skipped'] = 'no CUDA device on this machine (the GPU numbers need one)'
        print(json.dumps(report))
        return 0
    dtype = torch.bfloat16 if args.dtype == 'bfloat16' else torch.float32
    config = load_config(args.config)
    policy = random_policy(config, device, dtype)
    report['num_parameters'] = sum(p.numel() for p in policy.parameters())
    if device.type == 'cuda':
        report['gpu'] = torch.cuda.get_device_name(device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == 'cuda' else (lambda: None)
    c, h, w = config.encoder.latent_channels, config.encoder.latent_height, config.encoder.latent_width
    g = torch.Generator(device='cpu').manual_seed(1)
    text = torch.randn(1, config.task.text_tokens, config.task.text_dim, generator=g).to(device, dtype)
    latent = torch.randn(c, h, w, generator=g).to(device, dtype)
    planner, executor = policy.planner, policy.executor

    def timed(fn, repeats=args.repeats, warmup=args.warmup):
        out = []
        for r in range(warmup + repeats):
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            if r >= warmup:
                out.append(time.perf_counter() - t0)
        return _summary(out)

    with torch.no_grad():
        planner.reset()
        for i in range(config.memory.max_entries):            # fill the rolling memory
            ctx = planner.prefill(latent, text, 4 * i)
        frame = [4 * config.memory.max_entries]

        def prefill():
            planner.memory._entries.pop()                      # keep the memory full and the same size
            planner.prefill(latent, text, frame[0])
        report['prefill_ms'] = timed(prefill)
        kv = ctx.kv.unsqueeze(0)
        proprio = torch.zeros(1, config.executor.action_dim, device=device)
        chunk_index = torch.zeros(1, dtype=torch.long, device=device)
        prepared = executor.prepare(kv, latent.unsqueeze(0), proprio, text, chunk_index)
        report['prepare_ms'] = timed(lambda: executor.prepare(kv, latent.unsqueeze(0), proprio, text, chunk_index))
        noise = policy.chunk_noise(0, seed=0)
        report['backends'] = {}
        for name in args.backends:
            try:
                from aha_wam.export.factory import make_backend
                backend = make_backend(policy, name, steps=None)
                entry = {}
                for steps, key in ((10, 'chunk_10_ms'), (1, 'flash_1_ms')):
                    # capture / engine build happen in the warm-up rounds (no image: backend.warmup would encode one)
                    entry[key] = timed(lambda: backend.denoise(prepared, noise, steps))
                report['backends'][name] = entry
            except Exception as exc:   # a backend missing here (no CUDA graphs on CPU, no TensorRT) is reported
                report['backends'][name] = {'unavailable': f'{type(exc).__name__}: {str(exc).splitlines()[0][:200]}'}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
