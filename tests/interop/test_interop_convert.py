"""`aha-wam convert-official`: refuses unsafe or foreign pickles with one line, checks shapes against the
preset, writes a loadable checkpoint directory; the robotwin preset has the official parameter count."""
import datetime
import json
import pickle

import pytest
import torch

from aha_wam.checkpoint import load_checkpoint, read_provenance
from aha_wam.cli import main as cli_main
from aha_wam.config import OFFICIAL_PRESETS, apply_overrides, get_config
from aha_wam.interop.official import ConversionError, convert_official
from aha_wam.policy import AhaWamPolicy
from _interop_support import load_fixture, official_payload, tiny_official_config


@pytest.fixture(scope='module')
def fixture():
    return load_fixture()


@pytest.fixture
def files(fixture, tmp_path):
    tensors, meta = fixture
    payload = official_payload(tensors, meta)
    torch.save(payload, tmp_path / 'ckpt.pt')
    (tmp_path / 'dataset_stats.json').write_text(meta['dataset_stats'])
    config = tmp_path / 'official_tiny.yaml'
    from aha_wam.config import dump_config
    config.write_text(dump_config(tiny_official_config(meta)))
    return tmp_path, payload, meta


def test_cli_converts_and_the_checkpoint_loads(files, capsys):
    root, _, meta = files
    rc = cli_main(['convert-official', str(root / 'ckpt.pt'), str(root / 'out'), '--stats',
                   str(root / 'dataset_stats.json'), '--config', str(root / 'official_tiny.yaml')])
    assert rc == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line['out'] == str(root / 'out') and len(line['source_sha256']) == 64
    policy, provenance = load_checkpoint(root / 'out')
    assert provenance['num_parameters'] == sum(p.numel() for p in policy.parameters())
    assert policy.config.executor.head == 'linear' and policy.config.encoder.kind == 'wan22'


def test_bf16_output_keeps_stats_float32(files):
    root, _, meta = files
    out = convert_official(root / 'ckpt.pt', root / 'dataset_stats.json', root / 'bf16', tiny_official_config(meta),
                           dtype=torch.bfloat16)
    policy, _ = load_checkpoint(out)
    assert policy.planner.patch_embed.weight.dtype == torch.bfloat16
    assert policy.normalizer.state_mean.dtype == torch.float32


class NotATensor:
    """A class a weights_only unpickler must refuse to construct."""


@pytest.mark.parametrize('bad', [NotATensor(), datetime.date(2026, 1, 1)], ids=['class', 'stdlib-object'])
def test_refuses_a_pickle_with_anything_but_tensors_and_plain_values(files, bad, capsys):
    root, payload, meta = files
    payload = dict(payload, optimizer={'state': bad})
    torch.save(payload, root / 'evil.pt')
    with pytest.raises(ConversionError) as err:
        convert_official(root / 'evil.pt', root / 'dataset_stats.json', root / 'x', tiny_official_config(meta))
    message = str(err.value)
    assert 'refused' in message and '\n' not in message
    assert not (root / 'x').exists()
    rc = cli_main(['convert-official', str(root / 'evil.pt'), str(root / 'y'), '--stats',
                   str(root / 'dataset_stats.json'), '--config', str(root / 'official_tiny.yaml')])
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err_lines) == 1 and 'refused' in err_lines[0]


@pytest.mark.filterwarnings('ignore:Detected pickle protocol')
def test_refuses_plain_pickles_and_foreign_payloads(files):
    root, payload, meta = files
    (root / 'plain.pkl').write_bytes(pickle.dumps({'mot': {}}))
    with pytest.raises(ConversionError, match='not a readable torch checkpoint|refused'):
        convert_official(root / 'plain.pkl', root / 'dataset_stats.json', root / 'x', tiny_official_config(meta))
    torch.save(dict(payload, shared_visual_resampler={}), root / 'da3.pt')
    with pytest.raises(ConversionError, match='DA3'):
        convert_official(root / 'da3.pt', root / 'dataset_stats.json', root / 'x', tiny_official_config(meta))
    torch.save({k: v for k, v in payload.items() if k != 'proprio_encoder'}, root / 'partial.pt')
    with pytest.raises(ConversionError, match='proprio_encoder'):
        convert_official(root / 'partial.pt', root / 'dataset_stats.json', root / 'x', tiny_official_config(meta))


def test_shape_and_config_mismatches_are_named(files):
    root, _, meta = files
    cfg = tiny_official_config(meta)
    import dataclasses
    wider = dataclasses.replace(cfg, planner=dataclasses.replace(cfg.planner, ffn_dim=256))
    with pytest.raises(ConversionError, match='ffn'):
        convert_official(root / 'ckpt.pt', root / 'dataset_stats.json', root / 'x', wider)
    deeper = apply_overrides(cfg, ['planner.num_layers=3'])
    with pytest.raises(ConversionError, match='lacks'):
        convert_official(root / 'ckpt.pt', root / 'dataset_stats.json', root / 'x', deeper)
    legacy = dataclasses.replace(cfg, executor=dataclasses.replace(cfg.executor, head='adaln'))
    with pytest.raises(ConversionError, match='executor.head'):
        convert_official(root / 'ckpt.pt', root / 'dataset_stats.json', root / 'x', legacy)
    (root / 'bad_stats.json').write_text(json.dumps({'state': {}}))
    with pytest.raises(ConversionError, match='dataset stats'):
        convert_official(root / 'ckpt.pt', root / 'bad_stats.json', root / 'x', cfg)


def test_presets_have_the_official_parameter_count_on_the_meta_device(fixture):
    _, meta = fixture
    official = json.loads(meta['official_param_count_robotwin'])      # counted from the official classes
    total = sum(official.values())
    assert total == 7_349_428_556
    for name in OFFICIAL_PRESETS:
        config = get_config(name)
        with torch.device('meta'):
            policy = AhaWamPolicy(config)
        ours = sum(p.numel() for p in policy.parameters())
        # The one official tensor not carried over: row 0 of mot.action_branch_embedding (1 x 1024, unused).
        assert ours == total - config.executor.hidden, name
    rt = get_config('robotwin')
    assert (rt.horizon, rt.timing.max_offset, rt.tokens_per_frame) == (64, 0, 120)
    assert (get_config('robotwin_offset').horizon, get_config('robotwin_offset').timing.max_offset) == (80, 15)


def test_large_checkpoints_load_through_the_meta_device(files, monkeypatch):
    """Above checkpoint.LARGE_MODEL_PARAMETERS the policy is built on the meta device and takes the file's
    tensors (no fp32 CPU copy of 7.35 B parameters); forced here on the tiny model: same weights, same outputs."""
    from aha_wam import checkpoint
    root, _, meta = files
    out = convert_official(root / 'ckpt.pt', root / 'dataset_stats.json', root / 'c', tiny_official_config(meta),
                           dtype=torch.bfloat16)
    normal, _ = load_checkpoint(out)
    monkeypatch.setattr(checkpoint, 'LARGE_MODEL_PARAMETERS', 0)
    big, _ = load_checkpoint(out)
    assert not any(t.is_meta for t in list(big.parameters()) + list(big.buffers()))
    for (k, a), (_, b) in zip(normal.state_dict().items(), big.state_dict().items()):
        assert a.dtype == b.dtype and torch.equal(a, b), k
    assert big.planner.rope_swap.dtype == torch.bfloat16 and torch.equal(big.planner.rope_swap, normal.planner.rope_swap)
    tensors, _ = load_fixture()
    latent, text = tensors['in/latent_prefill0'].bfloat16(), tensors['in/context']
    assert torch.equal(big.planner.prefill(latent, text, 0).kv, normal.planner.prefill(latent, text, 0).kv)
