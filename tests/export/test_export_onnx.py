"""ONNX export + onnxruntime: the executor update (prepare graph, denoise step graph, unrolled denoise graph)
and the planner prefill agree with eager torch within 1e-4 relative; the backend drives ExecutorSession."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from aha_wam.export import make_backend
from aha_wam.export.backends import chunk_inputs
from conftest import make_policy

pytest.importorskip('onnxruntime', reason='the onnxruntime backend tests need the onnxruntime package')

RTOL = 1e-4


def rel(got: torch.Tensor, want: torch.Tensor) -> float:
    """max |got - want| / max |want| (want must be non-trivial)."""
    scale = float(want.abs().max())
    assert scale > 1e-3, 'reference output is ~0: the parity check would be vacuous'
    return float((got.float() - want.float()).abs().max()) / scale


def random_image(cfg, seed: int) -> torch.Tensor:
    enc = cfg.encoder
    return torch.randint(0, 256, (enc.image_height, enc.image_width, 3), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(seed))


def check_executor_parity(policy, backend, steps_list=(1, 2, 4, 10)) -> dict:
    cfg = policy.config
    policy.planner.reset()
    context = policy.prefill({'image': random_image(cfg, 0), 'step': 0})
    image, proprio = random_image(cfg, 1), torch.randn(14, generator=torch.Generator().manual_seed(2))
    noise = torch.randn(1, 16, 14, generator=torch.Generator().manual_seed(3))
    errors = {}
    with torch.no_grad():
        want = policy.prepare(context, image, proprio, offset=21)        # chunk index 1: non-zero RoPE
        got = backend.prepare(context, image, proprio, offset=21)
        for name, g, w in zip(want._fields, got, want):
            assert g.shape == w.shape and g.dtype == w.dtype, name
            errors[f'prepare.{name}'] = rel(g, w)
        for steps in steps_list:
            errors[f'denoise@{steps}'] = rel(backend.denoise(want, noise, steps), policy.denoise(want, noise, steps))
    return errors


def test_export_onnxruntime_backend_matches_torch_tiny(tiny_policy):
    backend = make_backend(tiny_policy, 'onnxruntime')
    errors = check_executor_parity(tiny_policy, backend)
    print('tiny onnxruntime vs torch, max relative error:', {k: f'{v:.1e}' for k, v in errors.items()})
    assert max(errors.values()) <= RTOL, errors


def test_export_onnxruntime_backend_matches_torch_small():
    policy = make_policy('small')
    backend = make_backend(policy, 'onnxruntime')
    errors = check_executor_parity(policy, backend, steps_list=(1, 10))
    print('small onnxruntime vs torch, max relative error:', {k: f'{v:.1e}' for k, v in errors.items()})
    assert max(errors.values()) <= RTOL, errors


def test_export_unrolled_denoise_graph_matches(tiny_policy, tmp_path):
    """The N-step unrolled graph (what TensorRT builds), here run by onnxruntime."""
    from aha_wam.export.onnx_export import DENOISE_INPUTS, export_denoise
    from aha_wam.export.ort_backend import make_session
    context = tiny_policy.prefill({'image': random_image(tiny_policy.config, 4), 'step': 16})
    with torch.no_grad():
        prepared = tiny_policy.prepare(context, random_image(tiny_policy.config, 5), torch.zeros(14), 3)
        noise = torch.randn(1, 16, 14, generator=torch.Generator().manual_seed(6))
        want = tiny_policy.denoise(prepared, noise, 3)
    session = make_session(export_denoise(tiny_policy, tmp_path / 'denoise3.onnx', 3))
    assert [i.name for i in session.get_inputs()] == list(DENOISE_INPUTS)
    got = session.run(None, dict(zip(DENOISE_INPUTS, [noise.numpy()] + [t.numpy() for t in prepared])))[0]
    assert rel(torch.from_numpy(got), want) <= RTOL


def test_export_prefill_onnxruntime_matches_torch(tiny_policy):
    """Prefill through onnxruntime over more refreshes than memory slots (empty, partial, full, evicting)."""
    from aha_wam.export.ort_backend import OnnxRuntimePrefill
    ort_prefill = OnnxRuntimePrefill(tiny_policy)
    tiny_policy.planner.reset()
    slots = tiny_policy.config.memory.max_entries
    errors = []
    for k in range(slots + 2):
        obs = {'image': random_image(tiny_policy.config, 10 + k), 'step': 32 * k, 'stamp_ns': k}
        want, got = tiny_policy.prefill(obs), ort_prefill.prefill(obs)
        assert (got.frame_index, got.memory_entries, got.stamp_ns) == (want.frame_index, want.memory_entries, k)
        errors.append(rel(got.kv, want.kv))
    print('prefill onnxruntime vs torch, max relative error per refresh:', [f'{e:.1e}' for e in errors])
    assert max(errors) <= RTOL, errors
    ort_prefill.reset()
    tiny_policy.planner.reset()
    obs = {'image': random_image(tiny_policy.config, 99), 'step': 8}
    assert rel(ort_prefill.prefill(obs).kv, tiny_policy.prefill(obs).kv) <= RTOL


def test_export_runtime_update_with_onnxruntime_backend(tiny_policy):
    """ExecutorSession(backend=...) produces the chunk of the default (eager) session."""
    from aha_wam.runtime.executor_session import ExecutorOptions, ExecutorSession, Observation
    from aha_wam.runtime.safety import PIPER_LOWER, PIPER_UPPER
    mid = np.tile((PIPER_LOWER + PIPER_UPPER) / 2, 2)
    tiny_policy.normalizer.set_stats({'state_mean': mid, 'state_std': np.ones(14), 'action_mean': mid,
                                      'action_std': np.full(14, 1e-3)})
    tiny_policy.planner.reset()
    context = tiny_policy.prefill({'image': random_image(tiny_policy.config, 7), 'step': 0, 'stamp_ns': 10**9})
    obs = Observation(image=np.zeros((48, 64, 3), np.uint8), image_stamp_ns=10**9 + 60_000_000,
                      proprio=mid.copy(), joint_stamps_ns=(10**9 + 60_000_000,) * 2)
    now = 10**9 + 61_000_000
    chunks = []
    for backend in (None, make_backend(tiny_policy, 'onnxruntime', steps=4)):
        session = ExecutorSession(tiny_policy, ExecutorOptions(steps=4, seed=3, task=1), backend=backend)
        session.context = context
        out = session.step(obs, now_ns=now, clock_ns=lambda: now)
        assert not out.holding, out.detail
        assert out.phase_offset == 3
        chunks.append(out.chunk)
    assert np.abs(chunks[1] - chunks[0]).max() <= 1e-6    # radians: 1e-3 action std x ~1e-4 relative


def test_export_onnxruntime_refuses_input_errors_like_the_policy(tiny_policy):
    context = tiny_policy.prefill({'image': random_image(tiny_policy.config, 0), 'step': 0})
    image = random_image(tiny_policy.config, 1)
    with pytest.raises(ValueError, match='proprio must have 14 values'):
        chunk_inputs(tiny_policy, context, image, torch.zeros(7))
    with pytest.raises(ValueError, match='offset must be >= 0'):
        chunk_inputs(tiny_policy, context, image, torch.zeros(14), offset=-1)
    with pytest.raises(ValueError, match=r'image must be uint8 \[32, 32, 3\]'):
        chunk_inputs(tiny_policy, context, torch.zeros(32, 32, 3), torch.zeros(14))
