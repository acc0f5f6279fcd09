"""Resumable training state without pickles: tensors in safetensors, everything else in JSON.

    <run>/state/model.safetensors       policy.state_dict()
    <run>/state/optimizer.safetensors   optimiser tensors, keys 'state.<param index>.<name>'
    <run>/state/ema.safetensors         EMA shadow of the trainable parameters (if EMA is on)
    <run>/state/trainer.json            step, optimiser param_groups (lr, betas, ...), world size
    <run>/state/rank<r>.safetensors     per-process RNG states (torch global, noise generator)
    <run>/state/rank<r>.json            per-process sampler RNG (numpy bit generator state)
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def optimizer_to_flat(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, state in sd['state'].items():
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f'state.{idx}.{name}'] = value.detach().cpu().contiguous()
            else:
                scalars[f'{idx}.{name}'] = value
    return tensors, {'param_groups': sd['param_groups'], 'scalars': scalars}


def optimizer_from_flat(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        _, idx, name = key.split('.', 2)
        state.setdefault(int(idx), {})[name] = value
    for key, value in meta.get('scalars', {}).items():
        idx, name = key.split('.', 1)
        state.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({'state': state, 'param_groups': meta['param_groups']})


def _atomic_json(path: Path, data) -> None:
    tmp = path.with_name(path.name + '.tmp')
    tmp.write_text(json.dumps(data, indent=1, default=_jsonable))
    os.replace(tmp, path)


def _atomic_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    tmp = path.with_name(path.name + '.tmp')
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)


def save_shared(directory: Path, model_state: dict, optimizer: torch.optim.Optimizer,
                ema: dict[str, torch.Tensor] | None, trainer: dict) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    _atomic_tensors(directory / 'model.safetensors', model_state)
    tensors, meta = optimizer_to_flat(optimizer)
    _atomic_tensors(directory / 'optimizer.safetensors', tensors or {'_empty': torch.zeros(0)})
    if ema is not None:
        _atomic_tensors(directory / 'ema.safetensors', ema)
    _atomic_json(directory / 'trainer.json', {**trainer, 'optimizer': meta})


def save_rank(directory: Path, rank: int, torch_state: dict[str, torch.Tensor], other: dict) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    _atomic_tensors(directory / f'rank{rank}.safetensors', torch_state)
    _atomic_json(directory / f'rank{rank}.json', other)


def load_state(directory: Path, rank: int) -> dict:
    trainer = json.loads((directory / 'trainer.json').read_text())
    opt = load_file(str(directory / 'optimizer.safetensors'))
    opt.pop('_empty', None)
    return {
        'model': load_file(str(directory / 'model.safetensors')),
        'optimizer': opt,
        'ema': load_file(str(directory / 'ema.safetensors')) if (directory / 'ema.safetensors').exists() else None,
        'trainer': trainer,
        'rank_tensors': load_file(str(directory / f'rank{rank}.safetensors')),
        'rank': json.loads((directory / f'rank{rank}.json').read_text()),
    }


def _jsonable(v):
    if isinstance(v, torch.Tensor):
        return v.tolist()
    if hasattr(v, 'item'):
        return v.item()
    return str(v)
