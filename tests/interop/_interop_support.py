"""The official parity fixture (tests/fixtures/official/official_tiny.safetensors) and what tests build from it."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open

from aha_wam.config import (AhaWamConfig, ExecutorConfig, ImageEncoderConfig, MemoryConfig, OvcrConfig,
                            PlannerConfig, TaskConfig, TimingConfig)

FIXTURE = Path(__file__).resolve().parents[1] / 'fixtures' / 'official' / 'official_tiny.safetensors'


def load_fixture() -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(FIXTURE), framework='pt') as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata())


def official_payload(tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> dict:
    """The dict the official `save_checkpoint` pickled, rebuilt from the fixture."""
    payload: dict = {'step': int(meta['ckpt_step']), 'torch_dtype': meta['ckpt_torch_dtype']}
    for key, value in tensors.items():
        if key.startswith('ckpt/'):
            _, module, name = key.split('/', 2)
            payload.setdefault(module, {})[name] = value
    return payload


def tiny_official_config(meta: dict[str, str]) -> AhaWamConfig:
    """Our config with the official tiny model's dimensions (see make_fixture.DIMS)."""
    d = json.loads(meta['dims'])
    h, w = d['image_hw']
    chunks = d['horizon'] // d['chunk']
    return AhaWamConfig(
        name='official_tiny',
        encoder=ImageEncoderConfig(kind='wan22', image_height=h, image_width=w, latent_channels=d['z_dim'],
                                   downsample=16, base_channels=8),
        planner=PlannerConfig(hidden=d['video_hidden'], num_layers=d['num_layers'], num_heads=d['num_heads'],
                              head_dim=d['head_dim'], ffn_dim=d['video_ffn'], freq_dim=d['freq_dim']),
        executor=ExecutorConfig(hidden=d['action_hidden'], ffn_dim=d['action_ffn'], freq_dim=d['freq_dim'],
                                chunk_size=d['chunk']),
        ovcr=OvcrConfig(num_queries=d['num_queries'], query_dim=d['text_dim'], delta_hidden=None),
        memory=MemoryConfig(max_entries=d['history']),
        task=TaskConfig(text_dim=d['text_dim'], text_tokens=d['text_tokens'], num_tasks=0),
        timing=TimingConfig(video_stride=d['rope_stride'], latent_stride=4, future_latent_frames=1,
                            horizon_chunks=chunks, max_offset=0, history_frames=d['history']),
    )


def rel_err(ours: torch.Tensor, official: torch.Tensor) -> float:
    """max |ours - official| / max |official| (normwise relative error)."""
    ours, official = ours.double(), official.double()
    return float((ours - official).abs().max() / official.abs().max().clamp_min(1e-30))
