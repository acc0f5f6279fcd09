"""onnxruntime backend: the executor update (prepare graph + one-step denoise graph looped N times) and the
planner prefill (fixed memory slots + validity mask), exported from the policy at construction.

Threads: `threads` intra-op threads (default: torch's current count, so torch and onnxruntime compare at
the same fixed count), one inter-op thread, and no spin-waiting by default (`allow_spinning=False`): on a
shared CPU a spinning worker steals the core from the planner / simulator, as OMP_WAIT_POLICY=PASSIVE does
for torch.
"""
from __future__ import annotations

import os
import tempfile
from typing import Any, Mapping

import numpy as np
import torch

from aha_wam.context.layout import PlannerContext
from aha_wam.export import onnx_export
from aha_wam.export.backends import BackendUnavailable, ExecutorBackend, chunk_inputs
from aha_wam.models.executor import PreparedChunk


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendUnavailable("backend 'onnxruntime' needs the Python package 'onnxruntime' (pip install "
                                 f"onnxruntime; onnxruntime-gpu for CUDA): {exc}") from exc
    return onnxruntime


def make_session(path: str, threads: int | None = None, allow_spinning: bool = False, device: str = 'cpu'):
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads or torch.get_num_threads())
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry('session.intra_op.allow_spinning', '1' if allow_spinning else '0')
    providers = ['CPUExecutionProvider']
    if device == 'cuda':
        if 'CUDAExecutionProvider' not in ort.get_available_providers():
            raise BackendUnavailable("backend 'onnxruntime' on a CUDA policy needs the package 'onnxruntime-gpu' "
                                     f'(available providers: {ort.get_available_providers()})')
        providers = ['CUDAExecutionProvider', 'CPUExecutionProvider']
    return ort.InferenceSession(path, options, providers=providers)


class _OrtBase:
    def __init__(self, policy, cache_dir, threads, allow_spinning):
        import_onnxruntime()
        if policy.executor.action_in.weight.dtype != torch.float32:
            raise BackendUnavailable("backend 'onnxruntime' runs float32 policies (numpy has no bfloat16); "
                                     f'this policy is {policy.executor.action_in.weight.dtype}')
        self.policy = policy
        if cache_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix='aha_wam_onnx_')
            cache_dir = self._tmp.name
        self.cache_dir = os.fspath(cache_dir)
        self.threads, self.allow_spinning = threads, allow_spinning
        self.device = policy.device

    def _session(self, filename: str, export):
        """An onnxruntime session of `filename` in the cache directory, exported first if it is not there.

        The caller keys the directory by the checkpoint's content (aha_wam.runtime.build.artefact_dir), so a
        file found there belongs to these weights; it is written under a temporary name and renamed, so a
        crash mid-export never leaves a truncated graph that a later start would trust."""
        path = os.path.join(self.cache_dir, filename)
        self.reused = getattr(self, 'reused', [])
        if os.path.isfile(path):
            self.reused.append(filename)
        else:
            partial = f'{path}.{os.getpid()}.partial'
            try:
                export(self.policy, partial)
                os.replace(partial, path)
            finally:
                if os.path.exists(partial):
                    os.unlink(partial)
        return make_session(path, self.threads, self.allow_spinning, self.device.type)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().contiguous().numpy()


class OnnxRuntimeBackend(_OrtBase, ExecutorBackend):
    """prepare: the ONNX prepare graph; denoise: the one-step graph run `steps` times (schedule inputs per
    step count precomputed once). Outputs come back as tensors on the policy's device."""

    name = 'onnxruntime'

    def __init__(self, policy, cache_dir: str | os.PathLike | None = None, threads: int | None = None,
                 allow_spinning: bool = False):
        ExecutorBackend.__init__(self, policy)
        _OrtBase.__init__(self, policy, cache_dir, threads, allow_spinning)
        with torch.no_grad():
            self.prepare_session = self._session('prepare.onnx', onnx_export.export_prepare)
            self.step_session = self._session('denoise_step.onnx', onnx_export.export_denoise_step)
        # A linear executor head ignores the timestep embedding, and the exporter drops unused inputs.
        self._step_inputs = {i.name for i in self.step_session.get_inputs()}
        self._schedules: dict[int, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}

    def prepare(self, context: PlannerContext, image: Any, proprio: Any, offset: int = 0) -> PreparedChunk:
        inputs = chunk_inputs(self.policy, context, image, proprio, offset)
        feeds = {name: _np(t) for name, t in zip(onnx_export.PREPARE_INPUTS, inputs)}
        outs = self.prepare_session.run(list(onnx_export.PREPARED_NAMES), feeds)
        return PreparedChunk(*(torch.from_numpy(o).to(self.device) for o in outs))

    def schedule(self, steps: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        if steps not in self._schedules:
            sigmas = self.policy.inference_sigmas(steps)
            emb, mod, ds = onnx_export.schedule_inputs(self.policy.executor, sigmas)
            self._schedules[steps] = [(_np(emb[i]), _np(mod[i]), _np(ds[i])) for i in range(steps)]
        return self._schedules[steps]

    def denoise(self, prepared: PreparedChunk, noise: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        steps = self.steps_or_default(steps)
        feeds = {name: _np(t) for name, t in zip(onnx_export.PREPARED_NAMES, prepared)}
        x = _np(noise.float())
        for emb, mod, ds in self.schedule(steps):
            feeds['x'], feeds['mod'], feeds['ds'] = x, mod, ds
            if 'emb' in self._step_inputs:
                feeds['emb'] = emb
            x = self.step_session.run(['x_next'], feeds)[0]
        return torch.from_numpy(x).to(self.device)


class OnnxRuntimePrefill(_OrtBase):
    """`AhaWamPolicy.prefill` through onnxruntime, with its own rolling memory (M fixed slots, oldest first,
    invalid slots masked) — the policy's planner memory is left alone. Same observation contract."""

    def __init__(self, policy, cache_dir: str | os.PathLike | None = None, threads: int | None = None,
                 allow_spinning: bool = False, max_entries: int | None = None):
        super().__init__(policy, cache_dir, threads, allow_spinning)
        with torch.no_grad():
            self.session = self._session('prefill.onnx', onnx_export.export_prefill)
        cfg = policy.config
        layout = policy.planner.layout
        self.slots = cfg.memory.max_entries
        # Fewer entries than the exported graph's slots (e.g. the no-memory ablation): the oldest slots stay
        # masked invalid, which is exactly a shorter FIFO.
        self.max_entries = self.slots if max_entries is None else int(max_entries)
        if not 0 <= self.max_entries <= self.slots:
            raise ValueError(f'max_entries={max_entries} must be in 0..{self.slots} (the exported memory slots)')
        self.tokens = layout.tokens_per_frame
        w = layout.num_heads * layout.head_dim
        self._memory = np.zeros((1, layout.num_layers, 2, self.slots * self.tokens, w), np.float32)
        self._valid = np.zeros((1, self.slots), bool)
        self._count = 0

    def reset(self) -> None:
        self._memory[:] = 0.0
        self._valid[:] = False
        self._count = 0

    def _append(self, kv: np.ndarray) -> None:
        if self.max_entries == 0:
            return
        t = self.tokens
        self._memory[0, :, :, :-t] = self._memory[0, :, :, t:].copy()    # FIFO: drop the oldest slot
        self._memory[0, :, :, -t:] = kv
        self._valid[0, :-1] = self._valid[0, 1:].copy()
        self._valid[0, -1] = True
        self._valid[0, :self.slots - self.max_entries] = False
        self._count = min(self._count + 1, self.max_entries)

    def prefill(self, obs: Mapping[str, Any]) -> PlannerContext:
        p = self.policy
        for key in ('image', 'step'):
            if key not in obs:
                raise ValueError(f'prefill observation is missing {key!r}')
        if obs.get('task') is not None:
            p.set_task(obs['task'])
        step = int(obs['step'])
        if step < 0:
            raise ValueError(f'obs step must be >= 0, got {step}')
        image = obs['image']
        image = _np(image) if isinstance(image, torch.Tensor) else np.ascontiguousarray(image)
        if image.ndim == 3:
            image = image[None]
        frame = p.config.timing.frame_index(step)
        feeds = {'image': image, 'task_tokens': _np(p._current_task()),
                 'frame_time': np.array([[frame]], np.int64)}
        if self.slots:
            feeds['memory_kv'], feeds['memory_valid'] = self._memory, self._valid
        kv = self.session.run(['kv'], feeds)[0]
        context = PlannerContext(kv=torch.from_numpy(kv).to(self.device), layout=p.planner.layout,
                                 frame_index=frame, memory_entries=self._count, stamp_ns=int(obs.get('stamp_ns', 0)))
        self._append(kv)
        return context
