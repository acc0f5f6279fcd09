"""Checkpoints saved before the official-parity options existed (tests/fixtures/legacy_checkpoints) load with
their legacy choices filled in and compute what they computed when tests/model/make_legacy_outputs.py recorded
them with the code of that time."""
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from aha_wam.checkpoint import read_provenance

from make_legacy_outputs import CASES, LEGACY, legacy_outputs

RECORDED = Path(__file__).resolve().parent / 'legacy_outputs.safetensors'


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16], ids=['fp32', 'bf16'])
@pytest.mark.parametrize('name', sorted(CASES))
def test_legacy_checkpoints_compute_what_they_did(name, dtype):
    checkpoint = LEGACY / name
    with safe_open(str(RECORDED), framework='pt') as f:
        recorded_sha = (f.metadata() or {}).get(f'{name}.weights_sha256')
    assert recorded_sha == read_provenance(checkpoint)['weights_sha256'], f'{checkpoint} is not what was recorded'
    recorded = load_file(str(RECORDED))
    tag = 'fp32' if dtype == torch.float32 else 'bf16'
    now = legacy_outputs(checkpoint, CASES[name], dtype)
    assert now, 'nothing computed'
    for key, value in now.items():
        want = recorded[f'{name}.{tag}.{key}']
        # Bit-identical on the machine that recorded them; the tolerance only absorbs other CPUs' kernels.
        torch.testing.assert_close(value, want, rtol=1e-6, atol=1e-6, msg=lambda m: f'{name}.{tag}.{key}: {m}')
