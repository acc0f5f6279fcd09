"""Attention topology: per-frame causal video, video blind to actions, chunk-local actions."""
import torch

from _model_support import make_batch


def _outputs(policy, inputs, video_noise, action_noise, seed=0):
    b, k = inputs['actions'].shape[:2]
    g = torch.Generator().manual_seed(seed)
    video_sigma = torch.rand(b, generator=g) * 0.8 + 0.1
    action_sigma = torch.rand(b, k, generator=g) * 0.8 + 0.1
    with torch.no_grad():
        return policy.velocity_outputs(inputs, video_sigma, video_noise, action_sigma, action_noise)


def _noises(inputs, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(inputs['video_latents'][:, 1:].shape, generator=g),
            torch.randn(inputs['actions'].shape, generator=g))


def test_future_latents_do_not_change_current_context_or_earlier_frames(trained_like_policy, tiny_config):
    inputs = trained_like_policy.prepare_batch(make_batch(tiny_config, history=2))
    vn, an = _noises(inputs)
    base = _outputs(trained_like_policy, inputs, vn, an)
    perturbed = dict(inputs)
    latents = inputs['video_latents'].clone()
    latents[:, -1] += 3.0 * torch.randn_like(latents[:, -1])          # last future frame
    perturbed['video_latents'] = latents
    out = _outputs(trained_like_policy, perturbed, vn, an)
    assert torch.equal(out['context_kv'], base['context_kv'])
    # Frames before the perturbed one (future frames 1..F-1) are unchanged too: per-frame causal.
    assert torch.allclose(out['video_velocity'][:, :-1], base['video_velocity'][:, :-1], atol=1e-6)
    assert not torch.allclose(out['video_velocity'][:, -1], base['video_velocity'][:, -1], atol=1e-4)
    # Actions depend only on the current frame's context, so they are unchanged as well.
    assert torch.allclose(out['action_velocity'], base['action_velocity'], atol=1e-6)


def test_actions_never_change_video_outputs(trained_like_policy, tiny_config):
    inputs = trained_like_policy.prepare_batch(make_batch(tiny_config))
    vn, an = _noises(inputs)
    base = _outputs(trained_like_policy, inputs, vn, an)
    perturbed = dict(inputs, actions=inputs['actions'] + 5.0, chunk_proprio=inputs['chunk_proprio'] - 2.0)
    out = _outputs(trained_like_policy, perturbed, vn, an + 1.0)
    assert torch.equal(out['video_velocity'], base['video_velocity'])
    assert torch.equal(out['context_kv'], base['context_kv'])
    assert not torch.allclose(out['action_velocity'], base['action_velocity'])


def test_chunk_k_plus_1_never_changes_chunk_k(trained_like_policy, tiny_config):
    inputs = trained_like_policy.prepare_batch(make_batch(tiny_config))
    vn, an = _noises(inputs)
    base = _outputs(trained_like_policy, inputs, vn, an)
    actions = inputs['actions'].clone()
    actions[:, 1] += 4.0
    proprio = inputs['chunk_proprio'].clone()
    proprio[:, 1] += 1.0
    latents = inputs['chunk_latents'].clone()
    latents[:, 1] = torch.randn_like(latents[:, 1])
    an2 = an.clone()
    an2[:, 1] = torch.randn_like(an2[:, 1])
    changed = dict(inputs, actions=actions, chunk_proprio=proprio, chunk_latents=latents)
    out = _outputs(trained_like_policy, changed, vn, an2)
    assert torch.allclose(out['action_velocity'][:, 0], base['action_velocity'][:, 0], atol=1e-6)
    assert not torch.allclose(out['action_velocity'][:, 1], base['action_velocity'][:, 1], atol=1e-4)


def test_training_context_equals_deployment_prefill(trained_like_policy, tiny_config):
    """The frame-0 K/V of the training forward (future frames + history present) equal what prefill returns
    after the same frames were prefilled one by one: training and deployment see the same context."""
    batch = make_batch(tiny_config, batch=1, history=2)
    inputs = trained_like_policy.prepare_batch(batch)
    vn, an = _noises(inputs)
    train_kv = _outputs(trained_like_policy, inputs, vn, an)['context_kv'][0]
    trained_like_policy.reset(task=int(batch['task'][0]))
    for j in range(2):
        trained_like_policy.prefill({'image': batch['history_frames'][0, j], 'step': int(batch['history_steps'][0, j])})
    ctx = trained_like_policy.prefill({'image': batch['video_frames'][0, 0], 'step': int(batch['step'][0])})
    assert ctx.memory_entries == 2
    assert torch.allclose(ctx.kv, train_kv, atol=1e-5), (ctx.kv - train_kv).abs().max()


def test_padded_history_equals_shorter_history(trained_like_policy, tiny_config):
    """Left-padded history frames (mask False) have no influence at all."""
    batch = make_batch(tiny_config, batch=1, history=2)
    short = dict(batch, history_frames=batch['history_frames'][:, 1:], history_steps=batch['history_steps'][:, 1:],
                 history_mask=batch['history_mask'][:, 1:])
    padded = dict(batch, history_mask=torch.tensor([[False, True]]))
    padded['history_frames'] = batch['history_frames'].clone()
    padded['history_frames'][:, 0] = 0
    kv = []
    for b in (short, padded):
        inputs = trained_like_policy.prepare_batch(b)
        vn, an = _noises(inputs)
        kv.append(_outputs(trained_like_policy, inputs, vn, an)['context_kv'])
    assert torch.allclose(kv[0], kv[1], atol=1e-6)
