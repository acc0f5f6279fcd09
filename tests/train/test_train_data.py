"""Episode format, MCAP bags -> exact training tensors, horizon-adaptive offset invariants."""
import json

import numpy as np
import pytest
import torch

from _train_support import synthetic_cache, synthetic_episode
from aha_wam.config import get_config
from aha_wam.data.bag import (ARMS, BagWriter, COMMAND_TOPICS, IMAGE_TOPIC, INSTRUCTION_TOPIC, JOINT_TOPICS,
                              STATUS_TOPIC, read_episode_bag)
from aha_wam.data.cache import TrainingCache
from aha_wam.data.episode import load_episode, save_episode
from aha_wam.data.windows import WindowSampler, WindowSpec
from aha_wam.train.workspace import load_train_config

MS = 1_000_000


def write_synthetic_bag(path, length=70, t0=5 * 10**9):
    """Joint states and commands at 200 Hz, camera at 25 Hz stamped 3 ms after its control step, values
    that encode their own time, so the expected control-grid tensors are known exactly."""
    w = BagWriter(path)
    w.string(INSTRUCTION_TOPIC, 'lift it', t0)
    for n in range(4 * length):                               # 5 ms
        stamp = t0 + n * 5 * MS
        for i, arm in enumerate(ARMS):
            q = np.arange(7) + 100 * i + n                     # value = sub-step index n (+ joint, arm)
            w.joints(JOINT_TOPICS[arm], q, stamp)
            w.joints(COMMAND_TOPICS[arm], q + 0.5, stamp)
    for k in range(0, length, 2):
        img = np.full((48, 64, 3), k, np.uint8)               # another size than the model's: resized
        w.image(img, t0 + k * 20 * MS + 3 * MS)
    w.string(STATUS_TOPIC, json.dumps({'success': True, 'stage': 'success'}), t0 + length * 20 * MS)
    return w.close({'task': 'lift_box', 'seed': 7, 'level': 'clean', 'success': True, 'control_hz': 50.0})


def test_bag_to_episode_is_resampled_onto_the_control_grid(tmp_path):
    ep = read_episode_bag(write_synthetic_bag(tmp_path / 'bag'), image_hw=(32, 32))
    # the first image (t0 + 3 ms) is step 0; the last joint sample is at t0 + (4*70-1)*5 ms
    assert ep.meta['task'] == 'lift_box' and ep.meta['seed'] == 7 and ep.meta['success'] is True
    assert ep.meta['instruction'] == 'lift it'
    t = np.arange(ep.length)
    # control step k is at t0 + 3 ms + 20k ms -> newest 5 ms sample n = 4k (stamped t0 + 20k ms)
    n = 4 * t
    want_left = np.arange(7)[None, :] + n[:, None]
    np.testing.assert_array_equal(ep.proprio[:, :7], want_left.astype(np.float32))
    np.testing.assert_array_equal(ep.proprio[:, 7:], (want_left + 100).astype(np.float32))
    np.testing.assert_array_equal(ep.actions, ep.proprio + 0.5)
    np.testing.assert_array_equal(ep.image_steps, np.arange(0, ep.length, 2)[:len(ep.image_steps)])
    assert ep.images.shape[1:] == (32, 32, 3)
    np.testing.assert_array_equal(ep.images[:, 0, 0, 0], ep.image_steps.astype(np.uint8))
    assert ep.length == 69      # the last control step every stream covers


def test_episode_file_round_trip(tmp_path):
    ep = synthetic_episode(40)
    back = load_episode(save_episode(ep, tmp_path))
    for key in ('proprio', 'actions', 'image_steps', 'images'):
        np.testing.assert_array_equal(getattr(back, key), getattr(ep, key))
    assert back.meta['task'] == 'lift_box'


def test_bag_window_gives_exact_training_tensors(tmp_path):
    cfg = get_config('tiny')         # chunk 16, 2 chunks, 3 future latent frames 16 steps apart, 2 history
    cache = TrainingCache.build([read_episode_bag(write_synthetic_bag(tmp_path / 'bag'), image_hw=(32, 32))])
    cache = TrainingCache.load(cache.save(tmp_path / 'cache'))
    sampler = WindowSampler(cache, cfg, history_spacing=(20, 20))
    s, o = 50, 5
    w = sampler.window(WindowSpec(0, s, o, 20))
    last = cache.episodes[0]['length'] - 1                        # 68
    act_steps = np.minimum(s + o + np.arange(32), last)
    np.testing.assert_array_equal(w['actions'], cache.actions[act_steps])
    np.testing.assert_array_equal(w['action_mask'], s + o + np.arange(32) <= last)
    np.testing.assert_array_equal(w['chunk_proprio'], cache.proprio[[s + o, min(s + o + 16, last)]])
    # images were taken at even steps: the image "at" step t is the one of step 2 * (t // 2)
    row = lambda step: min(step, last) // 2                       # noqa: E731
    np.testing.assert_array_equal(w['video_rows'], [row(50), row(66), row(82), row(98)])
    np.testing.assert_array_equal(w['chunk_rows'], [row(55), row(71)])
    np.testing.assert_array_equal(w['history_steps'], [10, 30])
    np.testing.assert_array_equal(w['history_mask'], [True, True])
    np.testing.assert_array_equal(w['history_rows'], [row(10), row(30)])
    batch = sampler.collate([w])
    assert batch['video_frames'].dtype == torch.uint8 and tuple(batch['video_frames'].shape) == (1, 4, 32, 32, 3)
    np.testing.assert_array_equal(batch['video_frames'][0, :, 0, 0, 0].numpy(), [50, 66, 68, 68])
    np.testing.assert_array_equal(batch['chunk_images'][0, :, 0, 0, 0].numpy(), [54, 68])
    assert int(batch['step'][0]) == 50 and int(batch['task'][0]) == 0
    # early window: history before the episode start is left-padded and masked
    w0 = sampler.window(WindowSpec(0, 30, 0, 20))
    np.testing.assert_array_equal(w0['history_mask'], [False, True])
    np.testing.assert_array_equal(w0['history_steps'], [0, 10])
    # the batch satisfies the policy's contract end to end
    from aha_wam.policy import AhaWamPolicy
    torch.manual_seed(0)
    policy = AhaWamPolicy(cfg)
    policy.normalizer.set_stats(cache.stats)
    loss, metrics = policy(sampler.collate([w, w0]))
    assert torch.isfinite(loss) and set(metrics) >= {'loss/action', 'loss/video'}


def test_offset_sampling_invariants():
    cfg = get_config('tiny')
    cache = synthetic_cache(3)
    c, k = cfg.executor.chunk_size, cfg.timing.horizon_chunks
    sampler = WindowSampler(cache, cfg, seed=3)
    specs = sampler.sample_specs(400)
    assert {sp.offset for sp in specs} == set(range(cfg.timing.max_offset + 1))      # all phases drawn
    for sp in specs:
        ep = cache.episodes[sp.episode]
        last = ep['length'] - 1
        assert 0 <= sp.offset <= c - 1
        assert sp.step in set(cache.image_steps[ep['image_start']:ep['image_start'] + ep['image_count']])
        w = sampler.window(sp)
        at = lambda t: ep['start'] + min(t, last)                                      # noqa: E731
        # planner frame anchored at the window start, not shifted by the offset
        assert w['video_rows'][0] == cache.frame_of_step[at(sp.step)] and w['step'] == sp.step
        assert cache.image_steps[w['video_rows'][0]] == sp.step
        for kk in range(k):             # chunk-start proprio and images at offset + k * chunk
            assert np.array_equal(w['chunk_proprio'][kk], cache.proprio[at(sp.step + sp.offset + kk * c)])
            assert w['chunk_rows'][kk] == cache.frame_of_step[at(sp.step + sp.offset + kk * c)]
        # action i is the action of step s + offset + i (positions k*c + i unchanged by the offset)
        idx = [at(sp.step + sp.offset + i) for i in range(k * c)]
        assert np.array_equal(w['actions'], cache.actions[idx])
    no_offset = WindowSampler(cache, cfg, seed=3, max_offset=0)
    assert {sp.offset for sp in no_offset.sample_specs(50)} == {0}
    with pytest.raises(ValueError):
        WindowSampler(cache, cfg, max_offset=cfg.executor.chunk_size)


def test_history_spacing_is_randomised_within_its_range():
    cfg = get_config('tiny')
    sampler = WindowSampler(synthetic_cache(2, length=200), cfg, seed=0, history_spacing=(16, 40))
    spacings = {sp.spacing for sp in sampler.sample_specs(300)}
    assert min(spacings) >= 16 and max(spacings) <= 40 and len(spacings) > 10


def test_start_oversampling_draws_episode_openings():
    cfg = get_config('tiny')
    cache = synthetic_cache(2, length=200)
    uniform = WindowSampler(cache, cfg, seed=0).sample_specs(2000)
    assert WindowSampler(cache, cfg, seed=0, start_fraction=0.0).sample_specs(2000) == uniform   # off: same stream
    early_share = np.mean([sp.step < 20 for sp in uniform])
    oversampled = WindowSampler(cache, cfg, seed=0, start_fraction=0.5, start_steps=20).sample_specs(2000)
    share = np.mean([sp.step < 20 for sp in oversampled])
    assert early_share < 0.2 and share == pytest.approx(0.5 + 0.5 * early_share, abs=0.04), (early_share, share)
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match='start_fraction'):
            WindowSampler(cache, cfg, start_fraction=bad)
    with pytest.raises(ValueError, match='start_fraction'):
        load_train_config(None, ['start_fraction=1.5'])
