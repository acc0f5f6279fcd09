"""The `paper` config instantiates on the meta device with AHA-WAM's parameter counts (within 3 %)."""
import torch

from aha_wam.config import get_config
from aha_wam.models.layers import count_parameters
from aha_wam.policy import AhaWamPolicy

TARGETS = {
    'video DiT blocks': 4.91e9,       # Wan2.2-TI2V-5B: 30 blocks, d 3072, FFN 14336, text cross-attn
    'action DiT': 1.02e9,             # d 1024, 30 layers, 24 x 128 attention, FFN 4096 (+ embeddings, head)
    'OVCR editor': 1.23e9,            # 30 layers x 40.9 M
    'OVCR query encoder': 84e6 + 17e6,  # 32 x 4096 queries + key/value/output MLPs; obs projection 48 -> 4096
}


def paper_counts() -> dict:
    with torch.device('meta'):
        policy = AhaWamPolicy(get_config('paper'))
    ex = policy.executor
    assert all(p.device.type == 'meta' for p in policy.parameters())
    return {
        'video DiT blocks': count_parameters(policy.planner.blocks),
        'action DiT': count_parameters(ex) - count_parameters(ex.ovcr),
        'OVCR editor': count_parameters(ex.ovcr.editor),
        'OVCR query encoder': count_parameters(ex.ovcr.query_encoder),
        'video DiT total': count_parameters(policy.planner),
    }


def test_paper_parameter_counts_within_3_percent():
    counts = paper_counts()
    for name, target in TARGETS.items():
        assert abs(counts[name] / target - 1) <= 0.03, f'{name}: {counts[name]:,} vs target {target:,.0f}'
    assert counts['OVCR editor'] / 30 == 40_921_089             # per layer, as the note's 40.9 M
