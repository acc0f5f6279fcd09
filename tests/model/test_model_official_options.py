"""The options that make our networks compute the official AHA-WAM function: defaults for new configs,
legacy values for configs saved before they existed, and what each one computes."""
import pytest
import torch
import yaml

from aha_wam.checkpoint import load_checkpoint, read_config, save_checkpoint
from aha_wam.config import LEGACY_DEFAULTS, config_to_dict, fill_legacy_defaults, get_config
from aha_wam.models.flow import FlowMatchSchedule, shift_sigma, step_sizes
from aha_wam.models.layers import model_timesteps
from aha_wam.normalize import Normalizer, stats_from_dataset_stats
from aha_wam.policy import AhaWamPolicy
from _model_support import random_image, randomise_zero_inits


def test_new_configs_default_to_the_official_choices(tiny_config):
    assert tiny_config.executor.head == 'linear'
    assert tiny_config.ovcr.query_residual is False
    assert (tiny_config.flow.numerics, tiny_config.flow.train_sampling, tiny_config.flow.noise_layout) == \
        ('official', 'continuous', 'horizon')
    n = tiny_config.normalize
    assert (n.std_mode, n.eps, n.clamp) == ('add_eps', 1e-8, 5.0)
    policy = AhaWamPolicy(tiny_config)
    names = dict(policy.named_parameters())
    assert 'executor.head_modulation' not in names and 'executor.head.weight' in names


def test_saved_config_without_the_options_reads_as_legacy(tmp_path, tiny_config):
    policy = AhaWamPolicy(get_config('tiny', ['executor.head=adaln', 'ovcr.query_residual=true',
                                              'flow.numerics=legacy', 'flow.train_sampling=grid',
                                              'flow.noise_layout=chunk', 'normalize.std_mode=clamp_min',
                                              'normalize.eps=0.0001', 'normalize.clamp=null']))
    path = save_checkpoint(policy, tmp_path / 'old')
    raw = yaml.safe_load((path / 'config.yaml').read_text())
    for section, fields in LEGACY_DEFAULTS.items():      # as a checkpoint written before the options existed
        for name in fields:
            raw[section].pop(name)
        if not raw[section]:
            raw.pop(section)
    (path / 'config.yaml').write_text(yaml.safe_dump(raw))
    assert read_config(path) == policy.config
    loaded, _ = load_checkpoint(path)                      # strict: head_modulation is expected and present
    assert 'executor.head_modulation' in loaded.state_dict()
    # A config that names the options keeps them.
    assert fill_legacy_defaults(config_to_dict(tiny_config)) == config_to_dict(tiny_config)


def test_bf16_step_sizes_are_fp32_differences_rounded_once():
    schedule = FlowMatchSchedule(numerics='official')
    sigmas = schedule.inference_sigmas(10)
    assert sigmas.dtype == torch.float32
    u = torch.linspace(1.0, 0.0, 11, dtype=torch.float32)
    assert torch.equal(sigmas, 5.0 * u / (1.0 + 4.0 * u))                # grid in fp32 (as official)
    ds = step_sizes(sigmas, torch.bfloat16)
    assert torch.equal(ds, (sigmas[1:] - sigmas[:-1]).to(torch.bfloat16))
    assert ds[:2].float().tolist() == pytest.approx([-0.02173, -0.02588], abs=5e-5)
    legacy = sigmas.to(torch.bfloat16)
    assert (legacy[1:] - legacy[:-1])[:2].float().tolist() == pytest.approx([-0.0234, -0.0234], abs=1e-4)
    # t = 1000 sigma rounded to bf16: the second 10-step timestep 978.26 is fed as 980.
    t = model_timesteps(sigmas[:-1], torch.bfloat16)
    assert float(sigmas[1]) * 1000 == pytest.approx(978.26, abs=0.01) and float(t[1]) == 980.0


def test_bf16_executor_denoise_uses_rounded_steps(trained_like_policy):
    policy = trained_like_policy.to(torch.bfloat16)
    img = random_image(policy.config)
    policy.reset(task=0)
    ctx = policy.prefill({'image': img, 'step': 0})
    prepared = policy.prepare(ctx, img, torch.zeros(14))
    noise = torch.randn(1, 16, 14).to(torch.bfloat16)
    sigmas = policy.inference_sigmas(3)
    x = noise
    emb, mod, ds = policy.executor.step_schedule(sigmas, torch.bfloat16)
    for i in range(3):       # the loop spelled out: x + v * ds[i] with bf16 ds computed from the fp32 grid
        x = x + policy.executor._velocity(x, emb[i], mod[i], prepared) * ds[i]
    assert torch.equal(policy.denoise(prepared, noise, 3), x)


def test_linear_head_and_query_encoder_without_residual(tiny_config):
    torch.manual_seed(0)
    policy = AhaWamPolicy(tiny_config).eval()
    randomise_zero_inits(policy)
    ex = policy.executor
    hooked = {}
    ex.head.register_forward_hook(lambda m, i, o: hooked.update(inp=i[0]))
    img = random_image(tiny_config)
    policy.reset(task=0)
    ctx = policy.prefill({'image': img, 'step': 0})
    prepared = policy.prepare(ctx, img, torch.zeros(14))
    out = ex.velocity(torch.randn(1, 16, 14), torch.tensor([0.5]), prepared)
    assert torch.equal(out, ex.head(hooked['inp']))                          # bare Linear on the stream
    enc = ex.ovcr.query_encoder
    obs = torch.randn(1, tiny_config.encoder.latent_channels, 8, 8)
    tokens = enc.obs_proj(enc.obs_norm(obs.flatten(2).transpose(1, 2)))
    w = torch.softmax(enc.queries @ enc.key(enc.key_norm(tokens)).transpose(1, 2) / enc.query_dim ** 0.5, -1)
    gathered = w @ enc.value(enc.value_norm(tokens))
    assert torch.allclose(enc(obs), enc.out(enc.out_norm(gathered)), atol=1e-6)
    enc.residual = True
    assert torch.allclose(enc(obs), enc.queries + enc.out(enc.out_norm(gathered)), atol=1e-6)


def test_official_normaliser_semantics():
    norm = Normalizer.from_config(14, get_config('tiny').normalize)
    stats = {'state_mean': [0.5] * 14, 'state_std': [0.0] + [0.2] * 13,
             'action_mean': [-0.1] * 14, 'action_std': [0.3] * 14}
    norm.set_stats(stats)
    assert norm.state_std[0] == 0.0                      # kept raw: std + 1e-8 at use, never clamped up
    x = torch.full((1, 14), 0.5)
    x[0, 1] = 100.0                                      # far out of distribution
    y = norm.normalize_state(x)
    assert y[0, 0] == 0.0 and y[0, 1] == 5.0             # clamped to +-5
    scale = 1.0 / (torch.tensor(0.2) + 1e-8)
    assert y[0, 2] == 0.5 * scale - 0.5 * scale
    a = torch.full((1, 14), 40.0)                        # unnormalise never clamps
    assert torch.allclose(norm.unnormalize_action(a), torch.full((1, 14), 40.0 * 0.3 - 0.1), atol=1e-5)
    assert torch.allclose(norm.normalize_action(norm.unnormalize_action(torch.full((1, 14), 2.0))),
                          torch.full((1, 14), 2.0), atol=1e-5)
    legacy = Normalizer(14)
    legacy.set_stats(stats)
    assert legacy.state_std[0] == pytest.approx(1e-4) and legacy.normalize_state(x)[0, 1] > 5


def test_stats_from_official_dataset_stats():
    data = {'state': {'default': {'global_mean': list(range(14)), 'global_std': [1.0] * 14,
                                  'stepwise_mean': [[0.0] * 14] * 3}},
            'action': {'default': {'global_mean': [0.0] * 14, 'global_std': [2.0] * 14}},
            'num_episodes': 3}
    stats = stats_from_dataset_stats(data)
    assert stats['state_mean'][3] == 3.0 and stats['action_std'] == [2.0] * 14
    with pytest.raises(ValueError, match='global_std'):
        stats_from_dataset_stats({'state': {'default': {'global_mean': [0.0] * 14}}, 'action': data['action']})
    with pytest.raises(ValueError, match='14 finite'):
        stats_from_dataset_stats({'state': {'default': {'global_mean': [0.0] * 7, 'global_std': [1.0] * 7}},
                                  'action': data['action']})


def test_horizon_noise_layout_matches_the_official_draw(tiny_config):
    policy = AhaWamPolicy(tiny_config)
    horizon = tiny_config.horizon                        # 2 chunks of 16
    full = torch.randn(1, horizon, 14, generator=torch.Generator().manual_seed(0))
    assert torch.equal(policy.chunk_noise(0, seed=0), full[:, :16])
    assert torch.equal(policy.chunk_noise(20, seed=0), full[:, 16:32])     # offset 20 -> chunk 1
    late = policy.chunk_noise(40, seed=0)                                   # past the horizon: still defined
    assert late.shape == (1, 16, 14)
    legacy = AhaWamPolicy(get_config('tiny', ['flow.noise_layout=chunk']))
    assert torch.equal(legacy.chunk_noise(20, seed=0), torch.randn(1, 16, 14, generator=torch.Generator().manual_seed(0)))


def test_continuous_training_sampling_matches_the_official_weights():
    schedule = FlowMatchSchedule(sampling='continuous', numerics='official')
    sigma, weight = schedule.sample((4096,), torch.Generator().manual_seed(0))
    u = torch.rand(4096, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sigma, shift_sigma(u, 5.0))
    # Official: weights normalised to mean 1 over the 1000-point grid, zero at the grid minimum.
    grid = schedule.train_sigmas
    w = schedule.continuous_weight(grid)
    assert float(w.mean()) == pytest.approx(1.0, abs=1e-5) and float(w.min()) == pytest.approx(0.0, abs=1e-6)
    assert torch.allclose(weight, schedule.weight(sigma))
