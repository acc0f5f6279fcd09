"""Encoder kind 'wan22' (diffusers AutoencoderKLWan) and `aha-wam embed-instructions` (transformers UMT5), with
tiny random models built from configs in the test (no downloads): latent shapes, the official latent
normalisation, 128-token zero padding, the cache the nodes read, and a converted official model running end
to end on the tiny VAE."""
import json

import numpy as np
import pytest
import torch

diffusers = pytest.importorskip('diffusers')
transformers = pytest.importorskip('transformers')

from aha_wam.checkpoint import load_checkpoint  # noqa: E402
from aha_wam.cli import main as cli_main  # noqa: E402
from aha_wam.config import ImageEncoderConfig  # noqa: E402
from aha_wam.interop.text import (OFFICIAL_PROMPT, TextEmbeddingError, instruction_tokens,  # noqa: E402
                                  load_instruction_cache, prompt_of)
from aha_wam.models import wan22  # noqa: E402
from aha_wam.models.wan22 import ENV_WEIGHTS, Wan22Encoder, Wan22Error  # noqa: E402
from _interop_support import (TINY_VAE, load_fixture, make_tiny_tokenizer, make_tiny_umt5, make_tiny_vae,  # noqa: E402
                              official_payload, tiny_official_config)

@pytest.fixture(scope='module')
def vae_dir(tmp_path_factory):
    return make_tiny_vae(tmp_path_factory.mktemp('wan22') / 'vae')


def _encoder(vae_dir, h=64, w=96):
    return Wan22Encoder(ImageEncoderConfig(kind='wan22', image_height=h, image_width=w, latent_channels=4,
                                           downsample=16, weights=str(vae_dir)))


def test_wan22_latents_are_the_normalised_posterior_mean(vae_dir):
    enc = _encoder(vae_dir)
    images = torch.randint(0, 256, (2, 64, 96, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    z = enc.encode(images)
    assert z.shape == (2, 4, 4, 6) and enc.latent_shape == (4, 4, 6)
    ref = diffusers.AutoencoderKLWan.from_pretrained(str(vae_dir))
    x = images.permute(0, 3, 1, 2).float() * (2.0 / 255.0) - 1.0
    mu = ref.encode(x.unsqueeze(2)).latent_dist.mean[:, :, 0]
    mean, std = torch.tensor(TINY_VAE['latents_mean']), torch.tensor(TINY_VAE['latents_std'])
    assert torch.allclose(z, (mu - mean[:, None, None]) * (1.0 / std)[:, None, None], atol=1e-6)
    assert enc.vae.decoder is None                           # encode only
    assert not enc.state_dict() and not list(enc.parameters())   # outside the checkpoint
    enc.to(torch.bfloat16)
    assert next(enc.vae.parameters()).dtype == torch.bfloat16 and enc.encode(images).dtype == torch.bfloat16


def test_wan22_weights_errors_and_environment_override(vae_dir, tmp_path, monkeypatch):
    cfg = ImageEncoderConfig(kind='wan22', image_height=64, image_width=96, latent_channels=4, downsample=16)
    monkeypatch.delenv(ENV_WEIGHTS, raising=False)
    image = torch.zeros(64, 96, 3, dtype=torch.uint8)
    with pytest.raises(Wan22Error, match=ENV_WEIGHTS):
        Wan22Encoder(cfg).encode(image)
    monkeypatch.setenv(ENV_WEIGHTS, str(vae_dir.parent))       # a parent holding vae/ works too
    assert Wan22Encoder(cfg).encode(image).shape == (4, 4, 6)
    monkeypatch.setenv(ENV_WEIGHTS, str(tmp_path / 'nowhere'))
    with pytest.raises(Wan22Error, match='does not exist'):
        Wan22Encoder(cfg).encode(image)
    wrong = ImageEncoderConfig(kind='wan22', image_height=64, image_width=96, latent_channels=48, downsample=16,
                               weights=str(vae_dir))
    monkeypatch.delenv(ENV_WEIGHTS)
    with pytest.raises(Wan22Error, match='z_dim 4'):
        Wan22Encoder(wrong).encode(image)


def test_wan22_single_safetensors_file(vae_dir, tmp_path, monkeypatch):
    from safetensors.torch import save_file
    ref = diffusers.AutoencoderKLWan.from_pretrained(str(vae_dir))
    monkeypatch.setattr(wan22, 'WAN22_VAE_CONFIG', TINY_VAE)       # the tiny stand-in for the 5B VAE's config
    single = tmp_path / 'wan22_vae.safetensors'
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(single))
    image = torch.randint(0, 256, (64, 96, 3), dtype=torch.uint8)
    from_file = _encoder(single).encode(image)
    assert torch.allclose(from_file, _encoder(vae_dir).encode(image), atol=1e-6)
    original = tmp_path / 'original.safetensors'
    save_file({'encoder.conv1.weight': torch.zeros(1)}, str(original))
    with pytest.raises(Wan22Error, match='diffusers layout'):
        _encoder(original).encode(image)
    pth = tmp_path / 'wan22_vae.pth'
    pth.write_bytes(b'not read')
    with pytest.raises(Wan22Error, match='never unpickled'):
        _encoder(pth).encode(image)


@pytest.fixture(scope='module')
def umt5_dir(tmp_path_factory):
    """A tiny UMT5 encoder and a T5 tokenizer trained here on a few sentences (no downloads)."""
    root = tmp_path_factory.mktemp('umt5')
    make_tiny_tokenizer(root / 'tokenizer', [prompt_of(t) for t in ('lift the box', 'place the cube in the bowl',
                                                                     'hand over the cube')])
    make_tiny_umt5(root / 'text_encoder')
    return root


def test_embed_instructions_128_tokens_zero_padded(umt5_dir, tmp_path, capsys):
    out = tmp_path / 'instructions.safetensors'
    rc = cli_main(['embed-instructions', 'lift the box', 'place the cube in the bowl', '--encoder',
                   str(umt5_dir / 'text_encoder'), '--out', str(out), '--dtype', 'float32'])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary['instructions'] == 2 and summary['max_length'] == 128
    cache = load_instruction_cache(out)
    tok = transformers.AutoTokenizer.from_pretrained(str(umt5_dir / 'tokenizer'))
    enc = transformers.UMT5EncoderModel.from_pretrained(str(umt5_dir / 'text_encoder'))
    for instruction, emb in cache.items():
        prompt = OFFICIAL_PROMPT.format(task=instruction)
        ids = tok([prompt], padding='max_length', truncation=True, max_length=128, return_tensors='pt')
        n = int(ids.attention_mask.sum())
        assert emb.shape == (128, 16) and 0 < n < 128
        assert torch.count_nonzero(emb[n:]) == 0 and bool((emb[:n].abs().sum(-1) > 0).all())
        with torch.no_grad():
            ref = enc(input_ids=ids.input_ids, attention_mask=ids.attention_mask).last_hidden_state[0]
        assert torch.allclose(emb[:n], ref[:n], atol=1e-5)
    # Extending the cache keeps what is there; a lookup of something missing names what the cache holds.
    assert cli_main(['embed-instructions', 'hand over the cube', '--encoder', str(umt5_dir / 'text_encoder'),
                     '--out', str(out), '--dtype', 'float32']) == 0
    assert sorted(load_instruction_cache(out)) == ['hand over the cube', 'lift the box', 'place the cube in the bowl']
    with pytest.raises(TextEmbeddingError, match='lift the box'):
        instruction_tokens(out, 'open the drawer')
    assert cli_main(['embed-instructions', 'x', '--encoder', str(umt5_dir / 'text_encoder'), '--out', str(out)]) == 2
    assert 'dtype' in capsys.readouterr().err                   # bf16 run against a float32 cache: refused


def test_converted_official_model_runs_on_the_tiny_vae(vae_dir, umt5_dir, tmp_path, monkeypatch):
    """The tiny official model (converted) with wan22 images and UMT5 instructions: prefill, act, finite chunk."""
    from aha_wam.interop.official import convert_official
    from aha_wam.interop.text import embed_instructions
    tensors, meta = load_fixture()
    torch.save(official_payload(tensors, meta), tmp_path / 'ckpt.pt')
    (tmp_path / 'stats.json').write_text(meta['dataset_stats'])
    cfg = tiny_official_config(meta)
    out = convert_official(tmp_path / 'ckpt.pt', tmp_path / 'stats.json', tmp_path / 'ckpt', cfg,
                           vae_weights=str(vae_dir))
    policy, _ = load_checkpoint(out)
    assert policy.config.encoder.weights == str(vae_dir)
    # The fixture's text width (32) is not the tiny UMT5's (16): embed with a wider tiny UMT5.
    torch.manual_seed(0)
    wide = transformers.UMT5Config(vocab_size=64, d_model=32, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
                                   relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1)
    transformers.UMT5EncoderModel(wide).save_pretrained(str(tmp_path / 'wide'))
    cache = tmp_path / 'text.safetensors'
    embed_instructions(tmp_path / 'wide', ['lift the box'], cache, tokenizer=umt5_dir / 'tokenizer',
                       max_length=cfg.task.text_tokens, dtype='float32')
    policy.reset(task=instruction_tokens(cache, 'lift the box'))
    h, w = cfg.encoder.image_height, cfg.encoder.image_width
    image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    ctx = policy.prefill({'image': image, 'step': 0})
    chunk = policy.act(ctx, image, np.zeros(14, np.float32), offset=0, seed=0)
    assert chunk.shape == (16, 14) and torch.isfinite(chunk).all()
