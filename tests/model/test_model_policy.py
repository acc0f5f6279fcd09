"""AhaWamPolicy: training forward and batch validation, deployment API, loop-invariant hoisting, export."""
import numpy as np
import pytest
import torch

from aha_wam.config import get_config
from aha_wam.policy import AhaWamPolicy
from _model_support import make_batch, random_image

STATS = {'state_mean': [0.2] * 14, 'state_std': [0.5] * 14,
         'action_mean': [0.1 * i for i in range(14)], 'action_std': [0.01 + 0.05 * i for i in range(14)]}


def test_training_forward_loss_metrics_and_gradients(trained_like_policy, tiny_config):
    tiny_policy = trained_like_policy.train()
    loss, metrics = tiny_policy(make_batch(tiny_config, history=2), generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(loss) and set(metrics) == {'loss', 'loss/action', 'loss/video'}
    assert metrics['loss'] == pytest.approx(metrics['loss/action'] + metrics['loss/video'], rel=1e-5)
    loss.backward()
    grads = {n: p.grad for n, p in tiny_policy.named_parameters()}
    assert grads['planner.blocks.0.q.weight'].abs().sum() > 0      # action + video loss reach the planner
    assert grads['executor.blocks.0.qkv.weight'].abs().sum() > 0
    assert grads['executor.ovcr.editor.delta_out_weight'].abs().sum() > 0
    assert grads['task_table.table'].abs().sum() > 0
    assert all(p.grad is None for p in tiny_policy.encoder.parameters())   # frozen encoder


def test_batch_validation_names_key_and_shape(tiny_policy, tiny_config):
    batch = make_batch(tiny_config)
    with pytest.raises(ValueError, match=r"batch\['actions'\] has shape \(2, 31, 14\), expected \[2, 32, 14\]"):
        tiny_policy(dict(batch, actions=batch['actions'][:, :31]))
    with pytest.raises(ValueError, match="missing 'chunk_proprio'"):
        tiny_policy({k: v for k, v in batch.items() if k != 'chunk_proprio'})
    with pytest.raises(ValueError, match='uint8'):
        tiny_policy(dict(batch, video_frames=batch['video_frames'].float()))
    # Precomputed latents are accepted in place of images.
    with torch.no_grad():
        lat = tiny_policy.encoder.encode(batch['video_frames'])
    inputs = tiny_policy.prepare_batch(dict({k: v for k, v in batch.items() if k != 'video_frames'}, video_latents=lat))
    assert torch.equal(inputs['video_latents'], lat)


def test_act_is_prepare_then_denoise_in_robot_units(tiny_policy, tiny_config):
    from _model_support import randomise_zero_inits
    randomise_zero_inits(tiny_policy)
    tiny_policy.normalizer.set_stats(STATS)
    img = random_image(tiny_config)
    tiny_policy.reset(task=2)
    ctx = tiny_policy.prefill({'image': img.numpy(), 'step': 40, 'stamp_ns': 123})
    assert (ctx.frame_index, ctx.stamp_ns, ctx.kv.shape) == (5, 123, ctx.layout.shape)
    proprio = np.linspace(-1, 1, 14).astype(np.float32)
    noise = torch.randn(1, 16, 14, generator=torch.Generator().manual_seed(0))
    chunk = tiny_policy.act(ctx, img, proprio, offset=5, steps=4, noise=noise)
    assert chunk.shape == (16, 14) and chunk.dtype == torch.float32
    with torch.no_grad():
        x = tiny_policy.denoise(tiny_policy.prepare(ctx, img, proprio, offset=5), noise, 4)
    std, mean = torch.tensor(STATS['action_std']), torch.tensor(STATS['action_mean'])
    assert torch.allclose(chunk, x[0] * std + mean, atol=1e-6)
    # Distillation: intermediate states at chosen step indices, final state equal to the plain result.
    with torch.no_grad():
        final, states = tiny_policy.denoise(tiny_policy.prepare(ctx, img, proprio, 5), noise, 4, capture=[0, 2, 4])
    assert sorted(states) == [0, 2, 4] and torch.equal(states[0], noise) and torch.equal(states[4], final)
    assert torch.allclose(final, x)
    # The loop (timestep conditioning precomputed for the schedule) is plain Euler on executor.velocity.
    from aha_wam.models.flow import euler_sample
    with torch.no_grad():
        prepared = tiny_policy.prepare(ctx, img, proprio, 5)
        ref, _ = euler_sample(lambda z, s: tiny_policy.executor.velocity(z, s.expand(1), prepared), noise,
                              tiny_policy.inference_sigmas(4))
    assert torch.allclose(ref, x, atol=1e-5)


def test_offset_selects_the_chunk_position_not_the_phase(tiny_policy, tiny_config):
    img = random_image(tiny_config)
    tiny_policy.reset(task=0)
    ctx = tiny_policy.prefill({'image': img, 'step': 0})
    with torch.no_grad():
        cos = [tiny_policy.prepare(ctx, img, torch.zeros(14), off).rope_cos for off in (0, 15, 16, 31)]
    assert torch.equal(cos[0], cos[1]) and torch.equal(cos[2], cos[3]) and not torch.equal(cos[0], cos[2])


def test_denoise_loop_only_runs_the_chunk_tokens(tiny_policy, tiny_config):
    """Loop-invariant hoisting: encoder, OVCR, task/proprio projections and context K/V run once in
    prepare(); each denoise step runs only the 16 chunk tokens through the blocks."""
    img = random_image(tiny_config)
    tiny_policy.reset(task=0)
    ctx = tiny_policy.prefill({'image': img, 'step': 0})
    ex = tiny_policy.executor
    calls = {}

    def counter(name):
        def hook(module, args, output):
            calls[name] = calls.get(name, 0) + 1
        return hook
    watched = {'encoder': tiny_policy.encoder.encoder, 'ovcr': ex.ovcr, 'text_embed': ex.text_embed,
               'proprio_in': ex.proprio_in, 'cross_k': ex.blocks[0].cross.k, 'action_in': ex.action_in,
               'self_qkv': ex.blocks[0].qkv}
    handles = [m.register_forward_hook(counter(n)) for n, m in watched.items()]
    try:
        with torch.no_grad():
            prepared = tiny_policy.prepare(ctx, img, torch.zeros(14), 0)
            after_prepare = dict(calls)
            tiny_policy.denoise(prepared, torch.randn(1, 16, 14), steps=7)
    finally:
        for h in handles:
            h.remove()
    assert after_prepare == {'encoder': 1, 'ovcr': 1, 'text_embed': 1, 'proprio_in': 1, 'cross_k': 1}
    per_loop = {k: v - after_prepare.get(k, 0) for k, v in calls.items()}
    assert per_loop == {'encoder': 0, 'ovcr': 0, 'text_embed': 0, 'proprio_in': 0, 'cross_k': 0,
                        'action_in': 7, 'self_qkv': 7}


def test_deployment_errors_are_clear(tiny_policy, tiny_config):
    img = random_image(tiny_config)
    with pytest.raises(ValueError, match='no task set'):
        tiny_policy.prefill({'image': img, 'step': 0})
    tiny_policy.reset(task=0)
    with pytest.raises(ValueError, match=r'images must have shape \[\.\.\., 32, 32, 3\]'):
        tiny_policy.prefill({'image': torch.zeros(48, 48, 3, dtype=torch.uint8), 'step': 0})
    with pytest.raises(ValueError, match="missing 'step'"):
        tiny_policy.prefill({'image': img})
    with pytest.raises(ValueError, match='task id out of range'):
        tiny_policy.reset(task=99)
    ctx = tiny_policy.prefill({'image': img, 'step': 0})
    with pytest.raises(ValueError, match='proprio must have 14 values'):
        tiny_policy.act(ctx, img, torch.zeros(7))
    with pytest.raises(ValueError, match='offset must be >= 0'):
        tiny_policy.act(ctx, img, torch.zeros(14), offset=-1)
    other = AhaWamPolicy(get_config('tiny', overrides=['planner.num_layers=3']))
    other.reset(task=0)
    with pytest.raises(ValueError, match='num_layers=2 does not match'):
        other.act(ctx, img, torch.zeros(14))


@pytest.mark.filterwarnings('ignore::DeprecationWarning')   # legacy TorchScript exporter: fast, no onnxscript
def test_denoise_exports_to_onnx_and_matches(tiny_policy, tiny_config, tmp_path):
    """The pure-tensor denoise loop (static shapes, fixed steps) exports; onnxruntime agrees with eager."""
    ort = pytest.importorskip('onnxruntime')
    from _model_support import randomise_zero_inits
    from aha_wam.models.executor import PreparedChunk
    randomise_zero_inits(tiny_policy)
    img = random_image(tiny_config)
    tiny_policy.reset(task=0)
    ctx = tiny_policy.prefill({'image': img, 'step': 0})
    with torch.no_grad():
        prepared = tiny_policy.prepare(ctx, img, torch.zeros(14), 0)

    class Denoise(torch.nn.Module):
        def __init__(self, policy):
            super().__init__()
            self.policy = policy

        def forward(self, noise, *tensors):
            return self.policy.denoise(PreparedChunk(*tensors), noise, 2)

    noise = torch.randn(1, 16, 14, generator=torch.Generator().manual_seed(0))
    path = tmp_path / 'denoise.onnx'
    with torch.no_grad():
        torch.onnx.export(Denoise(tiny_policy), (noise, *prepared), str(path), dynamo=False, opset_version=17)
        expected = tiny_policy.denoise(prepared, noise, 2).numpy()
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    feeds = dict(zip([i.name for i in session.get_inputs()], [noise.numpy()] + [t.numpy() for t in prepared]))
    got = session.run(None, feeds)[0]
    assert np.abs(expected).max() > 0.1 and np.allclose(got, expected, atol=1e-4)
