"""Policy checkpoints: a directory that never needs unpickling.

    <dir>/config.yaml         the full AhaWamConfig (load_config-compatible)
    <dir>/model.safetensors   every tensor of policy.state_dict() (weights and normaliser/encoder buffers)
    <dir>/normalization.json  the normaliser statistics, mirrored for humans and other tools
    <dir>/provenance.json     format version, git commit (+ dirty flag), data, steps, time, sha256 of weights

Loading reads YAML with `yaml.safe_load`, JSON and safetensors only. Config fields a checkpoint predates get
their legacy values (config.LEGACY_DEFAULTS), so an old checkpoint computes what it computed when saved. A corrupted weights file (sha256
mismatch, unreadable header), missing/unexpected tensors, wrong shapes or dtypes, stats that disagree, or a
config differing from an expected one raise `CheckpointError` (a ValueError) naming the mismatch.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any, Mapping

import torch
import yaml
from safetensors import safe_open
from safetensors.torch import save_file

from aha_wam.config import AhaWamConfig, config_from_dict, config_to_dict, dump_config, fill_legacy_defaults
from aha_wam.normalize import STAT_NAMES

FORMAT = 'aha_wam.policy'
FORMAT_VERSION = 1
CONFIG_FILE = 'config.yaml'
WEIGHTS_FILE = 'model.safetensors'
NORM_FILE = 'normalization.json'
PROVENANCE_FILE = 'provenance.json'


class CheckpointError(ValueError):
    """A checkpoint directory that cannot be loaded as asked; the message names the mismatch."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def git_revision(path: str | os.PathLike | None = None) -> tuple[str, bool | None]:
    """(commit, dirty) of the git checkout containing `path` (default: this package); ('unknown', None)."""
    where = str(path or Path(__file__).resolve().parent)
    try:
        commit = subprocess.run(['git', '-C', where, 'rev-parse', 'HEAD'], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(['git', '-C', where, 'status', '--porcelain', '--untracked-files=no'],
                                capture_output=True, text=True, timeout=10, check=True).stdout
        return commit, bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        return 'unknown', None


def _write_atomic(path: Path, data: bytes | str) -> None:
    tmp = path.with_name(path.name + '.tmp')
    with open(tmp, 'wb') as f:
        f.write(data.encode('utf-8') if isinstance(data, str) else data)
    os.replace(tmp, path)


def save_checkpoint(policy, directory: str | os.PathLike, *, steps: int = 0, data: Any = None,
                    git_commit: str | None = None, extra: Mapping[str, Any] | None = None,
                    overwrite: bool = False) -> Path:
    """Write `policy` (an AhaWamPolicy) to `directory`. `data` describes the training data (path, hash,
    episodes...), `steps` the optimizer steps taken; both go to provenance.json."""
    state = {k: v.detach().to('cpu').contiguous() for k, v in policy.state_dict().items()}
    return write_checkpoint(state, policy.config, policy.normalizer.stats(), directory, steps=steps, data=data,
                            git_commit=git_commit, extra=extra, overwrite=overwrite,
                            num_parameters=sum(p.numel() for p in policy.parameters()))


def write_checkpoint(state: Mapping[str, torch.Tensor], config: AhaWamConfig, stats: Mapping[str, Any],
                     directory: str | os.PathLike, *, steps: int = 0, data: Any = None,
                     git_commit: str | None = None, extra: Mapping[str, Any] | None = None,
                     overwrite: bool = False, num_parameters: int | None = None) -> Path:
    """Write a checkpoint directory from a policy state dict (every tensor of AhaWamPolicy(config).state_dict(),
    CPU, contiguous) without building the policy: converters of 7 B-parameter checkpoints use this."""
    out = Path(directory)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise CheckpointError(f'{out} exists and is not empty (pass overwrite=True to replace)')
    out.mkdir(parents=True, exist_ok=True)
    cfg_text = dump_config(config)
    weights_tmp = out / (WEIGHTS_FILE + '.tmp')
    save_file(dict(state), str(weights_tmp), metadata={'format': FORMAT, 'format_version': str(FORMAT_VERSION)})
    os.replace(weights_tmp, out / WEIGHTS_FILE)
    _write_atomic(out / CONFIG_FILE, cfg_text)
    _write_atomic(out / NORM_FILE, json.dumps({k: list(stats[k]) for k in STAT_NAMES}, indent=2))
    commit, dirty = git_revision()
    provenance = {
        'format': FORMAT, 'format_version': FORMAT_VERSION,
        'git_commit': git_commit or commit, 'git_dirty': None if git_commit else dirty,
        'data': data, 'steps': int(steps),
        'created_utc': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'torch_version': torch.__version__,
        'num_parameters': int(num_parameters) if num_parameters is not None else None,
        'weights_sha256': _sha256(out / WEIGHTS_FILE),
        'config_sha256': hashlib.sha256(cfg_text.encode('utf-8')).hexdigest(),
        'extra': dict(extra or {}),
    }
    _write_atomic(out / PROVENANCE_FILE, json.dumps(provenance, indent=2, default=str))
    return out


def read_provenance(directory: str | os.PathLike) -> dict:
    path = Path(directory) / PROVENANCE_FILE
    try:
        data = json.loads(path.read_text(encoding='utf-8'))
    except FileNotFoundError:
        raise CheckpointError(f'{path} is missing: not a policy checkpoint directory') from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f'{path} is not valid JSON: {exc}') from None
    if data.get('format') != FORMAT:
        raise CheckpointError(f'{path}: format {data.get("format")!r} is not {FORMAT!r}')
    if data.get('format_version') != FORMAT_VERSION:
        raise CheckpointError(f'{path}: format_version {data.get("format_version")!r} is not supported '
                              f'(this code reads {FORMAT_VERSION})')
    return data


def read_config(directory: str | os.PathLike) -> AhaWamConfig:
    path = Path(directory) / CONFIG_FILE
    try:
        raw = yaml.safe_load(path.read_text(encoding='utf-8'))
    except FileNotFoundError:
        raise CheckpointError(f'{path} is missing: not a policy checkpoint directory') from None
    except yaml.YAMLError as exc:
        raise CheckpointError(f'{path} is not valid YAML: {exc}') from None
    try:
        # Options added after a checkpoint was written take the value that reproduces the code that wrote it
        # (config.LEGACY_DEFAULTS), never today's defaults: old checkpoints keep computing what they did.
        return config_from_dict(fill_legacy_defaults(raw))
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f'{path}: {exc}') from None


def _config_differences(a: Mapping, b: Mapping, prefix: str = '') -> list[str]:
    diffs = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, Mapping) and isinstance(vb, Mapping):
            diffs += _config_differences(va, vb, f'{prefix}{key}.')
        elif va != vb:
            diffs.append(f'{prefix}{key}: checkpoint {va!r} != expected {vb!r}')
    return diffs


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        with safe_open(str(path), framework='pt', device='cpu') as f:
            meta = f.metadata() or {}
            if meta.get('format') != FORMAT:
                raise CheckpointError(f'{path}: metadata format {meta.get("format")!r} is not {FORMAT!r}')
            return {k: f.get_tensor(k) for k in f.keys()}
    except CheckpointError:
        raise
    except Exception as exc:   # safetensors raises its own error types for bad headers / truncation
        raise CheckpointError(f'{path} is not a readable safetensors file ({type(exc).__name__}: {exc})') from None


def load_checkpoint(directory: str | os.PathLike, *, device: str | torch.device = 'cpu',
                    expected_config: AhaWamConfig | None = None, verify_hash: bool = True):
    """-> (AhaWamPolicy in eval mode, provenance dict). Never unpickles."""
    from aha_wam.policy import AhaWamPolicy   # late import: policy imports the model stack

    root = Path(directory)
    if not root.is_dir():
        raise CheckpointError(f'checkpoint directory {root} does not exist')
    provenance = read_provenance(root)
    config = read_config(root)
    if expected_config is not None:
        diffs = _config_differences(config_to_dict(config), config_to_dict(expected_config))
        if diffs:
            raise CheckpointError(f'{root / CONFIG_FILE} differs from the expected config: ' + '; '.join(diffs))
    weights_path = root / WEIGHTS_FILE
    if not weights_path.is_file():
        raise CheckpointError(f'{weights_path} is missing')
    if verify_hash and provenance.get('weights_sha256'):
        digest = _sha256(weights_path)
        if digest != provenance['weights_sha256']:
            raise CheckpointError(f'{weights_path} sha256 {digest[:12]}... does not match provenance.json '
                                  f'{provenance["weights_sha256"][:12]}...: the file is corrupted or was replaced')
    state = _read_weights(weights_path)

    policy, on_meta = _build_for_loading(AhaWamPolicy, config, sum(t.numel() for t in state.values()))
    expected = policy.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f'{weights_path} does not match config {config.name!r}: missing tensors '
                              f'{missing[:8]}{"..." if len(missing) > 8 else ""}, unexpected tensors '
                              f'{unexpected[:8]}{"..." if len(unexpected) > 8 else ""}')
    wrong = [f'{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}'
             for k, v in expected.items() if tuple(state[k].shape) != tuple(v.shape)]
    if wrong:
        raise CheckpointError(f'{weights_path} shape mismatch with {root / CONFIG_FILE}: ' + '; '.join(wrong[:8]))
    saved_dtype = state['planner.patch_embed.weight'].dtype
    if saved_dtype != torch.float32:
        policy.to(saved_dtype)              # keep bf16 checkpoints bf16 (normaliser stats stay float32)
    wrong = [f'{k}: checkpoint {state[k].dtype} vs model {v.dtype}'
             for k, v in policy.state_dict().items() if state[k].dtype != v.dtype]
    if wrong:
        raise CheckpointError(f'{weights_path} dtype mismatch: ' + '; '.join(wrong[:8]))
    if on_meta:
        policy.load_state_dict(state, strict=True, assign=True)   # the checkpoint's tensors become the weights
        _materialise_buffers(policy, saved_dtype)
    else:
        policy.load_state_dict(state, strict=True)
    _check_norm_stats(root / NORM_FILE, policy)
    return policy.to(device).eval(), provenance


# Above this many parameters a policy is built on the meta device and takes the checkpoint's tensors as its
# weights: building the official 7.35 B layout on the CPU first would allocate and initialise 29 GB in fp32.
LARGE_MODEL_PARAMETERS = 200_000_000


def _build_for_loading(policy_cls, config: AhaWamConfig, stored_values: int):
    """-> (policy, built_on_meta). The size test uses the checkpoint's own tensor count: building a meta copy
    just to count parameters costs a second construction, and meta tensors route ops through torch._refs,
    which imports torch._dynamo (about 1 s of every node's start-up on a small policy)."""
    if stored_values < LARGE_MODEL_PARAMETERS:
        return policy_cls(config), False        # small: exactly as always (same init, same RNG use)
    with torch.device('meta'):
        return policy_cls(config), True


def _materialise_buffers(policy, dtype: torch.dtype) -> None:
    """Non-persistent buffers (not in the checkpoint) of a meta-built policy, recomputed on the CPU."""
    from aha_wam.models.rope import pair_swap_matrix
    for module in policy.modules():
        reset = getattr(module, 'reset_buffers', None)
        if callable(reset) and any(b.is_meta for b in module.buffers(recurse=False)):
            reset()
        for name, buf in list(module.named_buffers(recurse=False)):
            if buf.is_meta and name == 'rope_swap':
                setattr(module, name, pair_swap_matrix(buf.shape[0]).to(dtype))
    left = [name for name, buf in policy.named_buffers() if buf.is_meta]
    if left:
        raise CheckpointError(f'cannot materialise buffers {left[:4]} of a meta-built policy')


def _check_norm_stats(path: Path, policy) -> None:
    try:
        stats = json.loads(path.read_text(encoding='utf-8'))
    except FileNotFoundError:
        raise CheckpointError(f'{path} is missing') from None
    except ValueError as exc:
        raise CheckpointError(f'{path} is not valid JSON: {exc}') from None
    for name in STAT_NAMES:
        buffer = getattr(policy.normalizer, name).float()
        if name not in stats:
            raise CheckpointError(f'{path} lacks {name!r}')
        value = torch.tensor(stats[name], dtype=torch.float32)
        if value.shape != buffer.shape or not torch.allclose(value, buffer, rtol=1e-6, atol=1e-7):
            raise CheckpointError(f'{path} {name} disagrees with the normaliser stored in {WEIGHTS_FILE}')


__all__ = ['CheckpointError', 'save_checkpoint', 'write_checkpoint', 'load_checkpoint', 'read_provenance',
           'read_config', 'git_revision']
