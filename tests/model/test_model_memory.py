"""Rolling planner memory: FIFO bookkeeping, its effect on prefill, absolute RoPE time across refreshes."""
import pytest
import torch

from aha_wam.config import get_config
from aha_wam.models.memory import KVMemory
from aha_wam.models.rope import apply_rope, pair_swap_matrix, rope_3d
from _model_support import random_image


def test_kv_memory_capacity_fifo_eviction_reset():
    mem = KVMemory(3)
    assert len(mem) == 0 and mem.stacked() is None
    entries = [torch.full((2, 2, 4, 8), float(i)) for i in range(5)]
    for i, kv in enumerate(entries):
        mem.append(kv, frame_index=4 * i)
        assert len(mem) == min(i + 1, 3)
    assert mem.frame_indices == [8, 12, 16]                        # oldest evicted first
    stacked = mem.stacked()
    assert stacked.shape == (2, 2, 12, 8)
    assert [float(stacked[0, 0, 4 * j, 0]) for j in range(3)] == [2.0, 3.0, 4.0]   # oldest first
    entries[4].fill_(99.0)                                          # stored copies are independent
    assert float(mem.stacked()[0, 0, -1, 0]) == 4.0
    assert mem.nbytes == 3 * entries[0].numel() * 4
    with pytest.raises(ValueError, match='differs'):
        mem.append(torch.zeros(2, 2, 5, 8), 20)
    mem.reset()
    assert len(mem) == 0 and mem.frame_indices == []
    disabled = KVMemory(0)
    disabled.append(entries[0], 0)
    assert len(disabled) == 0
    with pytest.raises(ValueError, match='max_entries'):
        KVMemory(-1)


def test_prefill_fills_memory_and_memory_changes_the_context(tiny_policy, tiny_config):
    img_a, img_b = random_image(tiny_config, 1), random_image(tiny_config, 2)
    tiny_policy.reset(task=0)
    alone = tiny_policy.prefill({'image': img_b, 'step': 32})
    assert alone.memory_entries == 0
    tiny_policy.reset(task=0)
    tiny_policy.prefill({'image': img_a, 'step': 0})
    with_memory = tiny_policy.prefill({'image': img_b, 'step': 32})
    assert with_memory.memory_entries == 1 and len(tiny_policy.planner.memory) == 2
    assert (with_memory.kv - alone.kv).abs().max() > 1e-4
    # Capacity is respected across many refreshes and reset() empties it.
    for i in range(5):
        ctx = tiny_policy.prefill({'image': img_a, 'step': 64 + 32 * i})
    assert ctx.memory_entries == tiny_config.memory.max_entries
    assert len(tiny_policy.planner.memory) == tiny_config.memory.max_entries
    tiny_policy.reset()
    assert len(tiny_policy.planner.memory) == 0
    assert tiny_policy.prefill({'image': img_b, 'step': 32}).memory_entries == 0


def _rotate_time(kv_keys, layout, frames):
    """Rotate post-RoPE keys [T, H*D] further by `frames` of RoPE time (h = w = 0)."""
    t, width = kv_keys.shape
    z = torch.zeros(t)
    cos, sin = rope_3d(torch.full((t,), float(frames)), z, z, layout.head_dim, 10000.0)
    x = kv_keys.reshape(t, layout.num_heads, layout.head_dim).transpose(0, 1).unsqueeze(0)
    return apply_rope(x, cos, sin, pair_swap_matrix(layout.head_dim))[0].transpose(0, 1).reshape(t, width)


def test_positions_are_absolute_across_refreshes(tiny_policy, tiny_config):
    img_a, img_b = random_image(tiny_config, 1), random_image(tiny_config, 2)
    stride = tiny_config.timing.video_stride

    def episode(start_step, gap):
        tiny_policy.reset(task=0)
        first = tiny_policy.prefill({'image': img_a, 'step': start_step})
        second = tiny_policy.prefill({'image': img_b, 'step': start_step + gap})
        return first, second

    a0, b0 = episode(0, 32)
    assert (a0.frame_index, b0.frame_index) == (0, 32 // stride)
    # Cached keys are never re-rotated: the memory still holds the first refresh bit-exactly.
    assert torch.equal(tiny_policy.planner.memory.entries[0].kv, a0.kv)
    assert tiny_policy.planner.memory.frame_indices == [0, 4]
    # Shifting the whole episode by 10 frames: values unchanged (attention is relative), keys rotated by
    # exactly 10 frames of RoPE time (they are stored at absolute time).
    a1, b1 = episode(10 * stride, 32)
    assert b1.frame_index == 14
    assert torch.allclose(b1.kv[:, 1], b0.kv[:, 1], atol=1e-5)
    for layer in range(tiny_config.planner.num_layers):
        assert torch.allclose(b1.keys(layer), _rotate_time(b0.keys(layer), b0.layout, 10), atol=1e-5)
    # A different gap between refreshes (relative time) changes the context.
    _, b2 = episode(0, 64)
    assert (b2.kv[:, 1] - b0.kv[:, 1]).abs().max() > 1e-4


def test_memory_size_matches_the_note_for_paper():
    cfg = get_config('paper')
    entry_bytes = cfg.planner.num_layers * 2 * cfg.tokens_per_frame * cfg.attn_width * 2   # bf16
    assert abs(entry_bytes * cfg.memory.max_entries / 1e6 - 265) < 1.0                      # ~265 MB
