"""Official AHA-WAM checkpoints (Silvernoon/AHA-WAM `save_checkpoint` pickles) -> this project's checkpoint dirs.

This is the ONE place that opens an official pickle, with `torch.load(weights_only=True)`: a file holding
anything but tensors and plain values (dicts, lists, ints, floats, strings, None) is refused with one line.
The payload is

    mot                      MoT.state_dict(): video expert (mixtures.video.*), action expert (mixtures.action.*),
                             action_branch_embedding [2, d_a], chunk_kv_cache_editor.* (OVCR editor)
    proprio_encoder          Linear(14 -> text_dim)
    action_obs_visual_proj   LN(z) - Linear(z, text) - GELU - Linear(text, text)
    chunk_obs_query_encoder  base_queries [1, 1, Nq, text], obs_key_proj, obs_value_proj, query_proj
    step, torch_dtype        (optional optimizer: ignored)

and every tensor maps one-to-one onto AhaWamPolicy(config) (notes/official-parity.md §2): renames, the patch
embedding Conv3d reshaped to a Linear, the video head's rows permuted from channels-last to channels-first,
modulation tables unsqueezed, the action expert's q/k/v fused, the per-layer OVCR editor stacked with its
Linear weights transposed, `base_queries[0, 0]`, and `action_branch_embedding[1]` (row 0 is an unused
leftover of the official code; it is the only official tensor not carried over, 1 x d_a values).
The config must ask for the official function (executor.head linear, ovcr.query_residual false, official
numerics and normaliser, encoder wan22); the presets in aha_wam.config.OFFICIAL_PRESETS do.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from aha_wam.checkpoint import write_checkpoint
from aha_wam.config import AhaWamConfig, config_to_dict, get_config
from aha_wam.normalize import STAT_NAMES, stats_from_dataset_stats

PAYLOAD_MODULES = ('mot', 'proprio_encoder', 'action_obs_visual_proj', 'chunk_obs_query_encoder')
PAYLOAD_IGNORED = ('step', 'torch_dtype', 'optimizer')
CONVERTER = 'aha_wam.interop.official'


class ConversionError(ValueError):
    """An official checkpoint that cannot be converted as asked; the message is one line naming why."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 22), b''):
            h.update(block)
    return h.hexdigest()


def _refusal(exc: Exception) -> str:
    """One line out of torch's multi-paragraph weights_only error."""
    text = str(exc)
    found = re.search(r'Unsupported (?:global|operand)[^\n]*', text)
    return (found.group(0) if found else text.strip().splitlines()[0] if text.strip() else type(exc).__name__)[:300]


def load_official_payload(path: str | os.PathLike) -> dict:
    """The official checkpoint dict, read with torch.load(weights_only=True) (memory-mapped when possible)."""
    p = Path(path)
    if not p.is_file():
        raise ConversionError(f'{p}: no such file')
    try:
        try:
            payload = torch.load(str(p), map_location='cpu', weights_only=True, mmap=True)
        except RuntimeError as exc:
            if 'mmap' not in str(exc):
                raise
            payload = torch.load(str(p), map_location='cpu', weights_only=True)   # legacy (non-zip) format
    except pickle.UnpicklingError as exc:
        raise ConversionError(f'{p}: refused: the pickle holds more than tensors and plain values '
                              f'({_refusal(exc)})') from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise ConversionError(f'{p}: not a readable torch checkpoint ({type(exc).__name__}: {_refusal(exc)})') from None
    if not isinstance(payload, Mapping):
        raise ConversionError(f'{p}: expected a dict payload, got {type(payload).__name__}')
    unknown = sorted(set(payload) - set(PAYLOAD_MODULES) - set(PAYLOAD_IGNORED))
    if unknown:
        raise ConversionError(f'{p}: payload entries {unknown} are not part of the AHA-WAM checkpoint this converter '
                              'knows (DA3 shared-visual variants are not supported)')
    missing = [k for k in PAYLOAD_MODULES if k not in payload]
    if missing:
        raise ConversionError(f'{p}: payload lacks {missing} (not an AHA-WAM chunk checkpoint?)')
    for key in PAYLOAD_MODULES:
        if not isinstance(payload[key], Mapping) or not all(isinstance(v, torch.Tensor) for v in payload[key].values()):
            raise ConversionError(f'{p}: payload[{key!r}] is not a state dict of tensors')
    return dict(payload)


class _Source:
    """Official tensors by key; records which were used so that nothing is silently dropped."""

    def __init__(self, payload: Mapping[str, Any]):
        self.tensors: dict[str, torch.Tensor] = {}
        for module in PAYLOAD_MODULES:
            for name, tensor in payload[module].items():
                self.tensors[f'{module}.{name}'] = tensor
        self.used: set[str] = set()

    def __call__(self, key: str) -> torch.Tensor:
        if key not in self.tensors:
            raise ConversionError(f'official checkpoint lacks {key!r}')
        self.used.add(key)
        return self.tensors[key]

    def has(self, key: str) -> bool:
        return key in self.tensors

    def unused(self) -> list[str]:
        return sorted(set(self.tensors) - self.used)


def _linear(out: dict, dst: str, src: _Source, prefix: str) -> None:
    out[f'{dst}.weight'] = src(f'{prefix}.weight')
    out[f'{dst}.bias'] = src(f'{prefix}.bias')


def _block_common(out: dict, dst: str, src: _Source, prefix: str) -> None:
    """Cross-attention, norm3, FFN, modulation of one official DiTBlock."""
    for name in ('q', 'k', 'v', 'o'):
        _linear(out, f'{dst}.cross.{name}', src, f'{prefix}.cross_attn.{name}')
    for name in ('norm_q', 'norm_k'):
        out[f'{dst}.cross.{name}.weight'] = src(f'{prefix}.cross_attn.{name}.weight')
    _linear(out, f'{dst}.norm3', src, f'{prefix}.norm3')
    _linear(out, f'{dst}.ffn.fc1', src, f'{prefix}.ffn.0')
    _linear(out, f'{dst}.ffn.fc2', src, f'{prefix}.ffn.2')
    out[f'{dst}.modulation'] = src(f'{prefix}.modulation').unsqueeze(0)             # [1, 6, d] -> [1, 1, 6, d]
    for name in ('norm_q', 'norm_k'):
        out[f'{dst}.{name}.weight'] = src(f'{prefix}.self_attn.{name}.weight')


def _embeddings(out: dict, dst: str, src: _Source, prefix: str) -> None:
    _linear(out, f'{dst}.text_embed.fc1', src, f'{prefix}.text_embedding.0')
    _linear(out, f'{dst}.text_embed.fc2', src, f'{prefix}.text_embedding.2')
    _linear(out, f'{dst}.time.embed.0', src, f'{prefix}.time_embedding.0')
    _linear(out, f'{dst}.time.embed.2', src, f'{prefix}.time_embedding.2')
    _linear(out, f'{dst}.time.project.1', src, f'{prefix}.time_projection.1')


def map_official_state(payload: Mapping[str, Any], config: AhaWamConfig) -> dict[str, torch.Tensor]:
    """Official payload -> {our policy key: tensor} for every learned tensor (normaliser buffers excluded).
    Raises ConversionError if an official tensor would be left over or a needed one is missing."""
    src = _Source(payload)
    out: dict[str, torch.Tensor] = {}
    v, a = 'mot.mixtures.video', 'mot.mixtures.action'
    layers = config.planner.num_layers
    patch = config.planner.patch_size
    channels = config.encoder.latent_channels

    # Video planner.
    w = src(f'{v}.patch_embedding.weight')                                   # Conv3d [d, C, 1, p, p]
    if w.dim() != 5 or tuple(w.shape[2:]) != (1, patch, patch):
        raise ConversionError(f'{v}.patch_embedding.weight has shape {tuple(w.shape)}, expected [d, C, 1, {patch}, '
                              f'{patch}]')
    out['planner.patch_embed.weight'] = w.reshape(w.shape[0], -1)           # (c, kh, kw) = our (C, p, p) order
    out['planner.patch_embed.bias'] = src(f'{v}.patch_embedding.bias')
    _embeddings(out, 'planner', src, v)
    for i in range(layers):
        dst, pre = f'planner.blocks.{i}', f'{v}.blocks.{i}'
        for name in ('q', 'k', 'v', 'o'):
            _linear(out, f'{dst}.{name}', src, f'{pre}.self_attn.{name}')
        _block_common(out, dst, src, pre)
    hw, hb = src(f'{v}.head.head.weight'), src(f'{v}.head.head.bias')       # rows (pt=1, ph, pw, c): channels last
    pp = patch * patch
    out['planner.head.weight'] = hw.reshape(pp, channels, -1).transpose(0, 1).reshape(channels * pp, -1)
    out['planner.head.bias'] = hb.reshape(pp, channels).transpose(0, 1).reshape(-1)
    out['planner.head_modulation'] = src(f'{v}.head.modulation').unsqueeze(0)

    # Action executor.
    _linear(out, 'executor.action_in', src, f'{a}.action_encoder')
    _embeddings(out, 'executor', src, a)
    for i in range(layers):
        dst, pre = f'executor.blocks.{i}', f'{a}.blocks.{i}'
        out[f'{dst}.qkv.weight'] = torch.cat([src(f'{pre}.self_attn.{n}.weight') for n in 'qkv'], 0)
        out[f'{dst}.qkv.bias'] = torch.cat([src(f'{pre}.self_attn.{n}.bias') for n in 'qkv'], 0)
        _linear(out, f'{dst}.o', src, f'{pre}.self_attn.o')
        _block_common(out, dst, src, pre)
    _linear(out, 'executor.head', src, f'{a}.head')
    out['executor.branch'] = src('mot.action_branch_embedding')[1]           # row 0: unused official leftover
    out['executor.proprio_in.weight'] = src('proprio_encoder.weight')
    out['executor.proprio_in.bias'] = src('proprio_encoder.bias')

    # OVCR: observation encoder, routing queries, layer-wise K/V editor.
    q = 'executor.ovcr.query_encoder'
    _linear(out, f'{q}.obs_norm', src, 'action_obs_visual_proj.0')
    _linear(out, f'{q}.obs_proj.fc1', src, 'action_obs_visual_proj.1')
    _linear(out, f'{q}.obs_proj.fc2', src, 'action_obs_visual_proj.3')
    out[f'{q}.queries'] = src('chunk_obs_query_encoder.base_queries')[0, 0]
    _linear(out, f'{q}.key_norm', src, 'chunk_obs_query_encoder.obs_key_proj.0')
    _linear(out, f'{q}.key', src, 'chunk_obs_query_encoder.obs_key_proj.1')
    _linear(out, f'{q}.value_norm', src, 'chunk_obs_query_encoder.obs_value_proj.0')
    _linear(out, f'{q}.value.fc1', src, 'chunk_obs_query_encoder.obs_value_proj.1')
    _linear(out, f'{q}.value.fc2', src, 'chunk_obs_query_encoder.obs_value_proj.3')
    _linear(out, f'{q}.out_norm', src, 'chunk_obs_query_encoder.query_proj.0')
    _linear(out, f'{q}.out.fc1', src, 'chunk_obs_query_encoder.query_proj.1')
    _linear(out, f'{q}.out.fc2', src, 'chunk_obs_query_encoder.query_proj.3')
    e, ed = 'executor.ovcr.editor', 'mot.chunk_kv_cache_editor'

    def stack(fmt: str, transpose: bool = False) -> torch.Tensor:
        parts = [src(fmt.format(i=i)) for i in range(layers)]
        return torch.stack([t.t() if transpose else t for t in parts]).contiguous()
    out[f'{e}.query_norm_weight'] = stack(ed + '.layer_query_proj.{i}.0.weight')
    out[f'{e}.query_norm_bias'] = stack(ed + '.layer_query_proj.{i}.0.bias')
    out[f'{e}.query_weight'] = stack(ed + '.layer_query_proj.{i}.1.weight', transpose=True)
    out[f'{e}.query_bias'] = stack(ed + '.layer_query_proj.{i}.1.bias')
    out[f'{e}.delta_norm_weight'] = stack(ed + '.layer_delta_proj.{i}.0.weight')
    out[f'{e}.delta_norm_bias'] = stack(ed + '.layer_delta_proj.{i}.0.bias')
    out[f'{e}.delta_in_weight'] = stack(ed + '.layer_delta_proj.{i}.1.weight', transpose=True)
    out[f'{e}.delta_in_bias'] = stack(ed + '.layer_delta_proj.{i}.1.bias')
    out[f'{e}.delta_out_weight'] = stack(ed + '.layer_delta_proj.{i}.3.weight', transpose=True)
    out[f'{e}.delta_out_bias'] = stack(ed + '.layer_delta_proj.{i}.3.bias')
    out[f'{e}.gate'] = src(f'{ed}.delta_gate')

    left = src.unused()
    if left:
        raise ConversionError(f'{len(left)} official tensors have no place in config {config.name!r} (layer count '
                              f'or variant differs?): {left[:4]}')
    return out


OFFICIAL_FUNCTION = {('executor', 'head'): 'linear', ('ovcr', 'query_residual'): False,
                     ('ovcr', 'enabled'): True, ('flow', 'numerics'): 'official',
                     ('normalize', 'std_mode'): 'add_eps', ('encoder', 'kind'): 'wan22'}


def check_official_config(config: AhaWamConfig) -> None:
    """The config must compute the official function; one line naming the first option that does not."""
    data = config_to_dict(config)
    for (section, name), want in OFFICIAL_FUNCTION.items():
        if data[section][name] != want:
            raise ConversionError(f'config {config.name!r} has {section}.{name}={data[section][name]!r}; official '
                                  f'weights need {want!r}')
    if config.task.num_tasks:
        raise ConversionError(f'config {config.name!r} has a task table (task.num_tasks={config.task.num_tasks}); '
                              'official checkpoints take UMT5 prompt embeddings (num_tasks 0)')
    if config.ovcr.query_dim != config.task.text_dim:
        raise ConversionError(f'ovcr.query_dim {config.ovcr.query_dim} must equal task.text_dim '
                              f'{config.task.text_dim} (the official queries live in text space)')


def _policy_spec(config: AhaWamConfig) -> tuple[dict[str, tuple[tuple[int, ...], torch.dtype]], int]:
    """(key -> (shape, dtype) of AhaWamPolicy(config).state_dict(), parameter count), built on the meta device."""
    from aha_wam.policy import AhaWamPolicy
    with torch.device('meta'):
        policy = AhaWamPolicy(config)
    return {k: (tuple(t.shape), t.dtype) for k, t in policy.state_dict().items()}, \
        sum(p.numel() for p in policy.parameters())


def convert_official(checkpoint: str | os.PathLike, stats: str | os.PathLike | Mapping[str, Any],
                     out_dir: str | os.PathLike, config: AhaWamConfig | str = 'robotwin', *,
                     dtype: torch.dtype | None = None, stats_key: str | None = None,
                     overwrite: bool = False, vae_weights: str | None = None, contract=None) -> Path:
    """Convert an official AHA-WAM checkpoint + its dataset_stats.json into a checkpoint directory.

    `config`: a preset name (robotwin, robotwin_offset, ahawam_pretrained) or an AhaWamConfig whose shapes match
    the checkpoint. `dtype`: the weights' dtype in the output (default: the checkpoint's). `vae_weights`:
    recorded as encoder.weights (the Wan2.2 VAE stays outside the checkpoint). `contract`: the embodiment
    contract written as embodiment.yaml (default: the preset's, interop.contract.default_contract).
    Returns the directory."""
    from aha_wam.interop.contract import check_contract, default_contract, write_contract
    cfg = get_config(config) if isinstance(config, str) else config
    if vae_weights is not None:
        import dataclasses
        cfg = dataclasses.replace(cfg, encoder=dataclasses.replace(cfg.encoder, weights=str(vae_weights)))
    check_official_config(cfg)
    contract = contract or default_contract(cfg)
    check_contract(contract, cfg)
    ckpt = Path(checkpoint)
    stats_info: dict[str, Any]
    if isinstance(stats, Mapping):
        raw_stats, stats_info = stats, {'file': None, 'sha256': None}
    else:
        sp = Path(stats)
        try:
            raw_stats = json.loads(sp.read_text(encoding='utf-8'))
        except (OSError, ValueError) as exc:
            raise ConversionError(f'{sp}: cannot read dataset stats JSON ({exc})') from None
        stats_info = {'file': sp.name, 'sha256': _sha256(sp)}
    try:
        norm_stats = stats_from_dataset_stats(raw_stats, key=stats_key, dim=cfg.executor.action_dim)
    except ValueError as exc:
        raise ConversionError(f'dataset stats: {exc}') from None

    payload = load_official_payload(ckpt)
    state = map_official_state(payload, cfg)
    spec, num_parameters = _policy_spec(cfg)
    norm_keys = {f'normalizer.{name}' for name in STAT_NAMES}
    missing = sorted(set(spec) - set(state) - norm_keys)
    extra = sorted(set(state) - set(spec))
    if missing or extra:
        raise ConversionError(f'mapped tensors do not match config {cfg.name!r}: missing {missing[:4]}, '
                              f'unexpected {extra[:4]}')
    wrong = [f'{k} {tuple(t.shape)} vs {spec[k][0]}' for k, t in state.items() if tuple(t.shape) != spec[k][0]]
    if wrong:
        raise ConversionError(f'official tensor shapes do not fit config {cfg.name!r}: ' + '; '.join(wrong[:3]))
    target = dtype or state['planner.patch_embed.weight'].dtype
    if not target.is_floating_point:
        raise ConversionError(f'dtype must be floating point, got {target}')
    state = {k: t.to(target).contiguous() for k, t in state.items()}
    for name in STAT_NAMES:          # normaliser statistics stay float32 whatever the weights' dtype
        state[f'normalizer.{name}'] = torch.tensor(norm_stats[name], dtype=torch.float32)

    source = {'file': ckpt.name, 'sha256': _sha256(ckpt), 'bytes': ckpt.stat().st_size,
              'official_step': payload.get('step'), 'official_torch_dtype': payload.get('torch_dtype')}
    extra_info = {'converted_from': source, 'dataset_stats': stats_info, 'converter': CONVERTER,
                  'official_repository': 'https://github.com/Silvernoon/AHA-WAM',
                  'not_carried_over': ['mot.action_branch_embedding[0] (unused by the official code)']}
    out = write_checkpoint(state, cfg, norm_stats, out_dir, steps=int(payload.get('step') or 0),
                           data={'official_checkpoint': ckpt.name, 'dataset_stats': stats_info['file']},
                           extra=extra_info, overwrite=overwrite, num_parameters=num_parameters)
    write_contract(contract, out)
    return out
