"""RoPE tables: a true rotation of channel pairs, relative in attention, split 44/42/42 at head_dim 128."""
import torch

from aha_wam.config import rope_split
from aha_wam.models.rope import apply_rope, pair_swap_matrix, rope_1d, rope_3d


def _reference(x, positions, theta=10000.0):
    """Complex-number RoPE (Wan's formulation) for x [N, D]."""
    d = x.shape[-1]
    freqs = theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    rot = torch.polar(torch.ones(len(positions), d // 2, dtype=torch.float64),
                      positions.double()[:, None] * freqs)
    xc = torch.view_as_complex(x.double().reshape(len(positions), d // 2, 2).contiguous())
    return torch.view_as_real(xc * rot).reshape(len(positions), d).float()


def test_matches_complex_rotation_and_is_relative():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 32, generator=g)
    pos = torch.tensor([0, 1, 7, 100, 1000])
    cos, sin = rope_1d(pos, 32, 10000.0)
    out = apply_rope(x[None, None], cos, sin, pair_swap_matrix(32))[0, 0]
    assert torch.allclose(out, _reference(x, pos), atol=1e-5)
    q, k = torch.randn(32, generator=g), torch.randn(32, generator=g)

    def score(pq, pk):
        cq, sq = rope_1d(torch.tensor([pq]), 32, 10000.0)
        ck, sk = rope_1d(torch.tensor([pk]), 32, 10000.0)
        r = pair_swap_matrix(32)
        return float((apply_rope(q[None, None, None], cq, sq, r) * apply_rope(k[None, None, None], ck, sk, r)).sum())
    assert abs(score(3, 1) - score(103, 101)) < 1e-4          # depends on the offset only
    assert abs(score(3, 1) - score(3, 2)) > 1e-4


def test_3d_split_and_axes():
    assert rope_split(128) == (44, 42, 42) and rope_split(64) == (24, 20, 20) and rope_split(16) == (8, 4, 4)
    cos, sin = rope_3d(torch.tensor([2]), torch.tensor([0]), torch.tensor([0]), 16, 10000.0)
    # Only the time channels rotate when h = w = 0.
    assert torch.all(cos[0, 8:] == 1) and torch.all(sin[0, 8:] == 0) and not torch.all(cos[0, :8] == 1)
