"""Record what the legacy checkpoints compute, so that model changes can prove they did not alter them.

The legacy checkpoints (tests/fixtures/legacy_checkpoints/: the project's CPU teacher and Flash student as
committed before the official-parity options existed: AdaLN executor head, OVCR query residual, legacy
numerics; they were checkpoints/cpu and checkpoints/cpu_flash until commit c8b3869) stand for every checkpoint
users trained with those versions. This script was run once, at commit 54d01dd, BEFORE the model code changed:

    bash scripts/run.sh python tests/model/make_legacy_outputs.py

It writes tests/model/legacy_outputs.safetensors (a few KB): for both legacy checkpoints,
the planner context of two prefills (memory in use), the prepared chunk's edited context, the action chunk
after 10 (cpu) or 1/2/4 (cpu_flash) steps from fixed noise, in fp32 and bf16, and one training loss with a
fixed generator. `test_model_legacy.py` recomputes them with the current code.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[2]
LEGACY = ROOT / 'tests' / 'fixtures' / 'legacy_checkpoints'
sys.path.insert(0, str(Path(__file__).resolve().parent))
OUT = Path(__file__).resolve().parent / 'legacy_outputs.safetensors'
CASES = {'cpu': (10,), 'cpu_flash': (1, 2, 4)}


def legacy_outputs(checkpoint: Path, steps: tuple[int, ...], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    from aha_wam.checkpoint import load_checkpoint
    from _model_support import make_batch
    torch.manual_seed(0)
    policy, _ = load_checkpoint(checkpoint)
    policy = policy.to(dtype)
    cfg = policy.config
    g = torch.Generator().manual_seed(7)
    h, w = cfg.encoder.image_height, cfg.encoder.image_width
    images = torch.randint(0, 256, (2, h, w, 3), dtype=torch.uint8, generator=g)
    proprio = torch.tensor(policy.normalizer.stats()['state_mean']) + 0.1 * torch.randn(14, generator=g)
    noise = torch.randn(1, cfg.executor.chunk_size, cfg.executor.action_dim, generator=g)
    out: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        policy.reset(task=1)
        policy.prefill({'image': images[0], 'step': 0})
        ctx = policy.prefill({'image': images[1], 'step': 16})
        out['context'] = ctx.kv.float()
        prepared = policy.prepare(ctx, images[0], proprio, offset=20)
        out['edited_k'] = prepared.ctx_k.float()
        for n in steps:
            out[f'chunk_{n}'] = policy.act(ctx, images[0], proprio, offset=20, steps=n, noise=noise)
    if dtype == torch.float32:
        batch = make_batch(cfg, batch=2, history=1, seed=3)
        policy.train()
        loss, _ = policy(batch, generator=torch.Generator().manual_seed(5))
        out['train_loss'] = loss.detach().reshape(1).float()
    return out


def main() -> int:
    torch.set_num_threads(1)
    tensors = {}
    for name, steps in CASES.items():
        for dtype in (torch.float32, torch.bfloat16):
            tag = 'fp32' if dtype == torch.float32 else 'bf16'
            for key, value in legacy_outputs(LEGACY / name, steps, dtype).items():
                tensors[f'{name}.{tag}.{key}'] = value.contiguous()
    from aha_wam.checkpoint import read_provenance
    meta = {'commit': os.popen(f'git -C {ROOT} rev-parse HEAD').read().strip()}
    for name in CASES:     # the test checks that it recomputes these very weights
        meta[f'{name}.weights_sha256'] = read_provenance(LEGACY / name)['weights_sha256']
    save_file(tensors, str(OUT), metadata=meta)
    print(f'{OUT}: {len(tensors)} tensors, {OUT.stat().st_size} bytes')
    return 0


if __name__ == '__main__':
    sys.exit(main())
