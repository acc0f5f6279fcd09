"""Checkpoint directories: bit-exact round trip, no unpickling, clear errors for corruption and mismatch."""
import json
import pickle

import pytest
import torch
import yaml

from aha_wam.checkpoint import CheckpointError, load_checkpoint, read_provenance, save_checkpoint
from aha_wam.config import get_config
from aha_wam.policy import AhaWamPolicy
from _model_support import random_image, randomise_zero_inits

STATS = {'state_mean': [0.1 * i for i in range(14)], 'state_std': [0.5 + 0.01 * i for i in range(14)],
         'action_mean': [-0.1 * i for i in range(14)], 'action_std': [0.3 + 0.02 * i for i in range(14)]}


@pytest.fixture
def saved(tmp_path, tiny_config):
    torch.manual_seed(3)
    policy = AhaWamPolicy(tiny_config)
    randomise_zero_inits(policy)
    policy.normalizer.set_stats(STATS)
    path = save_checkpoint(policy, tmp_path / 'ckpt', steps=1234, data={'dataset': 'unit-test', 'episodes': 3})
    return policy, path


def test_round_trip_is_bit_exact_and_never_unpickles(saved, monkeypatch):
    policy, path = saved
    assert sorted(p.name for p in path.iterdir()) == ['config.yaml', 'model.safetensors', 'normalization.json',
                                                      'provenance.json']

    def forbidden(*args, **kwargs):
        raise AssertionError('checkpoint loading must not unpickle')
    monkeypatch.setattr(torch, 'load', forbidden)
    monkeypatch.setattr(pickle, 'load', forbidden)
    monkeypatch.setattr(pickle, 'loads', forbidden)
    loaded, provenance = load_checkpoint(path)
    a, b = policy.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
    assert loaded.config == policy.config
    assert provenance['steps'] == 1234 and provenance['data']['dataset'] == 'unit-test'
    assert len(provenance['git_commit']) in (40, 7) or provenance['git_commit'] == 'unknown'
    assert json.loads((path / 'normalization.json').read_text())['action_std'][1] == pytest.approx(0.32)
    # Same weights -> same actions.
    img = random_image(policy.config)
    outs = []
    for p in (policy.eval(), loaded):
        p.reset(task=1)
        ctx = p.prefill({'image': img, 'step': 16})
        outs.append(p.act(ctx, img, torch.zeros(14), offset=3, steps=3, noise=torch.ones(16, 14)))
    assert torch.equal(outs[0], outs[1])


def test_bf16_round_trip_stays_bf16(tmp_path, tiny_config):
    policy = AhaWamPolicy(tiny_config)
    policy.normalizer.set_stats(STATS)
    policy.to(torch.bfloat16)
    path = save_checkpoint(policy, tmp_path / 'bf16')
    loaded, _ = load_checkpoint(path)
    for k, v in policy.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    assert loaded.planner.patch_embed.weight.dtype == torch.bfloat16
    assert loaded.normalizer.action_mean.dtype == torch.float32       # statistics never lose precision


def test_corrupted_weights_are_reported(saved):
    _, path = saved
    weights = path / 'model.safetensors'
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match='sha256.*corrupted'):
        load_checkpoint(path)
    weights.write_bytes(b'not a safetensors file')
    with pytest.raises(CheckpointError, match='not a readable safetensors'):
        load_checkpoint(path, verify_hash=False)


def test_mismatched_config_names_the_tensor_and_field(saved, tiny_config):
    _, path = saved
    cfg = yaml.safe_load((path / 'config.yaml').read_text())
    cfg['planner']['ffn_dim'] = 96
    (path / 'config.yaml').write_text(yaml.safe_dump(cfg))
    with pytest.raises(CheckpointError, match=r'shape mismatch.*planner\.blocks\.0\.ffn\.fc1\.weight'):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match=r'planner\.ffn_dim: checkpoint 96 != expected 128'):
        load_checkpoint(path, expected_config=tiny_config)
    cfg['planner']['ffn_dim'] = 128
    cfg['ovcr']['enabled'] = False
    (path / 'config.yaml').write_text(yaml.safe_dump(cfg))
    with pytest.raises(CheckpointError, match=r'unexpected tensors.*executor\.ovcr'):
        load_checkpoint(path)
    cfg['ovcr']['enabled'] = True
    cfg['planner']['bogus'] = 1
    (path / 'config.yaml').write_text(yaml.safe_dump(cfg))
    with pytest.raises(CheckpointError, match='bogus'):
        load_checkpoint(path)


def test_missing_files_and_edited_stats_are_reported(saved):
    _, path = saved
    stats = json.loads((path / 'normalization.json').read_text())
    stats['action_mean'][0] += 1.0
    (path / 'normalization.json').write_text(json.dumps(stats))
    with pytest.raises(CheckpointError, match='action_mean disagrees'):
        load_checkpoint(path)
    (path / 'provenance.json').unlink()
    with pytest.raises(CheckpointError, match='provenance.json is missing'):
        read_provenance(path)
    with pytest.raises(CheckpointError, match='does not exist'):
        load_checkpoint(path / 'nope')
    with pytest.raises(CheckpointError, match='not empty'):
        save_checkpoint(AhaWamPolicy(get_config('tiny')), path)


def test_large_checkpoints_load_through_the_meta_device_with_the_same_result(saved, monkeypatch):
    """Above LARGE_MODEL_PARAMETERS (decided from the checkpoint's own tensor count) the policy is built on the
    meta device and takes the stored tensors; the loaded policy equals the one built on the CPU."""
    import aha_wam.checkpoint as checkpoint
    policy, path = saved
    small, _ = load_checkpoint(path)
    monkeypatch.setattr(checkpoint, 'LARGE_MODEL_PARAMETERS', 1)
    large, _ = load_checkpoint(path)
    assert all(t.device.type == 'cpu' for t in list(large.parameters()) + list(large.buffers()))
    a, b = small.state_dict(), large.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for (name, x), (_, y) in zip(small.named_buffers(), large.named_buffers()):
        assert torch.equal(x, y), name


def test_loading_a_small_checkpoint_does_not_import_torch_dynamo(saved):
    """A meta-device build routes ops through torch._refs, which imports torch._dynamo: about a second of every
    node's start-up. Small checkpoints are built directly on the CPU."""
    import subprocess
    import sys
    _, path = saved
    code = ('import sys; from aha_wam.checkpoint import load_checkpoint; load_checkpoint(sys.argv[1]); '
            'print("torch._dynamo" in sys.modules)')
    result = subprocess.run([sys.executable, '-c', code, str(path)], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == 'False', result.stdout + result.stderr
