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


# Tiny stand-ins for the Wan2.2 VAE and the UMT5 text encoder, built from configs (no downloads).
TINY_VAE = dict(base_dim=8, decoder_base_dim=8, z_dim=4, dim_mult=[1, 2, 2, 2], num_res_blocks=1, is_residual=True,
                in_channels=12, out_channels=12, patch_size=2, scale_factor_spatial=16, scale_factor_temporal=4,
                latents_mean=[0.1, -0.2, 0.3, 0.0], latents_std=[0.5, 1.5, 1.0, 2.0])


def make_tiny_vae(path: Path) -> Path:
    import diffusers
    torch.manual_seed(0)
    diffusers.AutoencoderKLWan(**TINY_VAE).save_pretrained(str(path))
    return path


def make_tiny_tokenizer(path: Path, sentences) -> Path:
    """A T5 tokenizer trained here on a few sentences (Unigram, like UMT5's)."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    tk = Tokenizer(models.Unigram())
    tk.normalizer = normalizers.NFKC()
    tk.pre_tokenizer = pre_tokenizers.Metaspace()
    tk.decoder = decoders.Metaspace()
    tk.train_from_iterator(list(sentences) * 20, trainers.UnigramTrainer(
        vocab_size=60, special_tokens=['<pad>', '</s>', '<unk>'], unk_token='<unk>'))
    tk.post_processor = processors.TemplateProcessing(single='$A </s>', special_tokens=[('</s>', tk.token_to_id('</s>'))])
    tok = transformers.T5TokenizerFast(tokenizer_object=tk, pad_token='<pad>', eos_token='</s>', unk_token='<unk>',
                                       extra_ids=0)
    tok.save_pretrained(str(path))
    return path


def make_tiny_umt5(path: Path, d_model: int = 16, num_layers: int = 2) -> Path:
    import transformers
    torch.manual_seed(0)
    cfg = transformers.UMT5Config(vocab_size=64, d_model=d_model, d_kv=8, d_ff=32, num_layers=num_layers, num_heads=2,
                                  relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1,
                                  decoder_start_token_id=0)
    transformers.UMT5EncoderModel(cfg).save_pretrained(str(path))
    return path
