"""Configs: registry, validation errors that name the field, YAML round trip and overrides."""
from pathlib import Path

import pytest

from aha_wam.config import (CONFIGS, AhaWamConfig, PlannerConfig, ExecutorConfig, TimingConfig, config_from_dict,
                            config_to_dict, dump_config, get_config, load_config)

REPO = Path(__file__).resolve().parents[2]


def test_registry_has_three_sizes_and_executor_inherits_attention_shape():
    assert {'tiny', 'small', 'paper'} <= set(CONFIGS)
    for name in ('tiny', 'small', 'paper'):
        cfg = get_config(name)
        assert cfg.executor.num_layers == cfg.planner.num_layers
        assert cfg.executor.num_heads * cfg.executor.head_dim == cfg.attn_width
    paper = get_config('paper')
    assert paper.tokens_per_frame == 120 and paper.attn_width == 3072 and paper.executor.hidden == 1024


def test_validation_names_the_field():
    with pytest.raises(ValueError, match='executor.num_heads'):
        AhaWamConfig(planner=PlannerConfig(num_heads=4, head_dim=64), executor=ExecutorConfig(num_heads=8))
    with pytest.raises(ValueError, match='chunk_size'):
        AhaWamConfig(executor=ExecutorConfig(chunk_size=12))
    with pytest.raises(ValueError, match='max_offset'):
        AhaWamConfig(timing=TimingConfig(future_latent_frames=4, horizon_chunks=4, max_offset=15))
    with pytest.raises(ValueError, match='planner.num_layers'):
        PlannerConfig(num_layers=0)


def test_yaml_round_trip_and_overrides(tmp_path):
    cfg = get_config('small')
    path = tmp_path / 'c.yaml'
    path.write_text(dump_config(cfg))
    assert load_config(path) == cfg
    changed = get_config('small', overrides=['planner.num_layers=8', 'ovcr.enabled=false'])
    assert changed.planner.num_layers == 8 and changed.executor.num_layers == 8 and not changed.ovcr.enabled
    assert get_config('tiny', {'memory': {'max_entries': 3}}).memory.max_entries == 3
    path.write_text('base: tiny\nplanner:\n  num_layers: 3\n')
    assert load_config(path).planner.num_layers == 3 and load_config(path).executor.num_layers == 3
    with pytest.raises(ValueError, match="unknown field.*'planer_typo'|planer_typo"):
        config_from_dict({**config_to_dict(cfg), 'planner': {'planer_typo': 1}})
    with pytest.raises(ValueError, match='unknown model config'):
        get_config('huge')


@pytest.mark.parametrize('name', ['tiny', 'small', 'paper'])
def test_shipped_yaml_files_match_registry(name):
    assert load_config(REPO / 'config' / 'models' / f'{name}.yaml') == get_config(name)
