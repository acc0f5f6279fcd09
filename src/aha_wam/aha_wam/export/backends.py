"""Executor inference backends with the policy's `prepare` / `denoise` semantics, selected by name.

    backend = make_backend(policy, 'onnxruntime', steps=10)      # one of BACKENDS
    prepared = backend.prepare(context, image, proprio, offset)  # once per update (hoisted, loop-invariant)
    x = backend.denoise(prepared, noise, steps)                  # normalised chunk [1, c, A], policy dtype/device

`ExecutorRuntime(policy, backend=backend)` uses it in place of the policy (the policy itself is the 'torch'
backend). A backend that cannot run here raises `BackendUnavailable` at construction, naming the missing
package or device, so a node refuses to start instead of failing on its first update.
"""
from __future__ import annotations

from typing import Any

import torch

from aha_wam.context.layout import PlannerContext
from aha_wam.models.executor import PreparedChunk
from aha_wam.policy import _as_tensor

BACKENDS = ('torch', 'torch_compile', 'cudagraph', 'onnxruntime', 'tensorrt')


class BackendUnavailable(RuntimeError):
    """The requested backend cannot run on this machine (missing package or device)."""


def require_cuda(backend: str, policy) -> None:
    if not torch.cuda.is_available():
        raise BackendUnavailable(f"backend '{backend}' needs a CUDA device: torch.cuda.is_available() is False on "
                                 f"this machine (torch {torch.__version__}); use backend 'torch' or 'onnxruntime'")
    if policy.device.type != 'cuda':
        raise BackendUnavailable(f"backend '{backend}' needs the policy on a CUDA device, it is on "
                                 f"{policy.device} (set the node parameter device: cuda)")


def chunk_inputs(policy, context: PlannerContext, image: Any, proprio: Any, offset: int = 0) -> tuple:
    """The checks of `AhaWamPolicy.prepare` (same errors), then its raw graph inputs: (context_kv
    [1, L, 2, T, H*D], image uint8 [1, H, W, 3], proprio float32 [1, A] (raw units), task_tokens
    [1, Nt, text_dim], chunk_index int64 [1]), all on the policy's device."""
    policy._check_context(context)
    if int(offset) < 0:
        raise ValueError(f'offset must be >= 0 control steps since the context, got {offset}')
    cfg = policy.config
    a = cfg.executor.action_dim
    dev = policy.device
    state = _as_tensor(proprio, 'proprio').to(dev, torch.float32)
    if state.numel() != a:
        raise ValueError(f'proprio must have {a} values (left j1..j6, gripper, right ...), got {tuple(state.shape)}')
    img = _as_tensor(image, 'image')
    if img.dim() == 3:
        img = img.unsqueeze(0)
    enc = cfg.encoder
    if img.dtype != torch.uint8 or tuple(img.shape) != (1, enc.image_height, enc.image_width, 3):
        raise ValueError(f'image must be uint8 [{enc.image_height}, {enc.image_width}, 3] (HWC RGB), got '
                         f'{img.dtype} {tuple(img.shape)}')
    chunk_index = torch.tensor([int(offset) // cfg.executor.chunk_size], device=dev)
    dtype = policy.planner.patch_embed.weight.dtype
    return (context.kv.unsqueeze(0).to(dev, dtype), img.to(dev), state.reshape(1, a),
            policy._current_task().to(dev, dtype), chunk_index)


def dummy_context(policy) -> PlannerContext:
    """A zero context with the policy's layout (warm-up / capture before the first real one arrives)."""
    layout = policy.planner.layout
    kv = torch.zeros(layout.num_layers, 2, layout.tokens_per_frame, layout.num_heads * layout.head_dim,
                     dtype=policy.planner.patch_embed.weight.dtype, device=policy.device)
    return PlannerContext(kv=kv, layout=layout, frame_index=0)


class ExecutorBackend:
    """Base: eager `policy.prepare`; subclasses replace `denoise` (and possibly `prepare`)."""

    name = 'torch'

    def __init__(self, policy):
        self.policy = policy
        self.config = policy.config

    def steps_or_default(self, steps: int | None) -> int:
        steps = self.config.flow.inference_steps if steps is None else int(steps)
        if steps < 1:
            raise ValueError(f'denoise steps must be >= 1, got {steps}')
        return steps

    def prepare(self, context: PlannerContext, image: Any, proprio: Any, offset: int = 0) -> PreparedChunk:
        return self.policy.prepare(context, image, proprio, offset)

    def denoise(self, prepared: PreparedChunk, noise: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        return self.policy.denoise(prepared, noise, self.steps_or_default(steps))

    def warmup(self, steps: int | None = None) -> None:
        """Run one update on a zero context (builds/captures/compiles what the first real update would)."""
        policy = self.policy
        enc, e = self.config.encoder, self.config.executor
        task = policy._task_tokens
        if task is None:        # a placeholder task for the warm-up only (the runtime sets the real one)
            policy.set_task(0 if policy.task_table is not None else
                            torch.zeros(self.config.task.text_tokens, self.config.task.text_dim))
        try:
            with torch.no_grad():
                image = torch.zeros(enc.image_height, enc.image_width, 3, dtype=torch.uint8)
                prepared = self.prepare(dummy_context(policy), image, torch.zeros(e.action_dim), 0)
                noise = torch.zeros(1, e.chunk_size, e.action_dim, device=policy.device,
                                    dtype=policy.executor.action_in.weight.dtype)
                self.denoise(prepared, noise, steps)
        finally:
            policy._task_tokens = task

    def describe(self) -> str:
        return f'{self.name} on {self.policy.device}'


class TorchBackend(ExecutorBackend):
    """Eager PyTorch (the reference), or with `compile=True` the denoise loop through `torch.compile`
    (one compiled graph per step count; on CUDA mode 'reduce-overhead', i.e. CUDA graphs via inductor)."""

    def __init__(self, policy, compile: bool = False, mode: str | None = None):
        super().__init__(policy)
        self.compiled = bool(compile)
        self.name = 'torch_compile' if compile else 'torch'
        self._fns: dict[int, Any] = {}
        if compile:
            self.mode = mode or ('reduce-overhead' if policy.device.type == 'cuda' else 'default')

    def denoise(self, prepared: PreparedChunk, noise: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        steps = self.steps_or_default(steps)
        if not self.compiled:
            return self.policy.denoise(prepared, noise, steps)
        fn = self._fns.get(steps)
        if fn is None:
            executor, sigmas = self.policy.executor, self.policy.inference_sigmas(steps)

            def run(noise, *tensors):
                return executor.denoise(PreparedChunk(*tensors), noise, sigmas)[0]
            fn = self._fns[steps] = torch.compile(run, mode=self.mode, dynamic=False)
        out = fn(noise, *prepared)
        # reduce-overhead keeps outputs in graph-owned memory that the next replay overwrites
        return out.clone() if self.policy.device.type == 'cuda' else out


class _Graph:
    def __init__(self, graph, output):
        self.graph, self.output = graph, output


class CudaGraphBackend(ExecutorBackend):
    """CUDA-graph capture of the whole update on static buffers.

    - prepare (when `capture_prepare`): inputs are copied into static buffers (context K/V, image, state,
      task tokens, chunk index) and ONE graph replays encoder + OVCR + context/cross K/V + RoPE tables into
      static PreparedChunk tensors; the returned PreparedChunk IS those buffers (valid until the next
      prepare);
    - denoise: one graph per step count replays the whole N-step Euler loop (N x L blocks, no Python, no
      launch gaps) reading the static PreparedChunk and a static noise buffer; a PreparedChunk from
      elsewhere is copied in first. The output is cloned out of the graph pool.
    All graphs share one memory pool. Capture happens on first use of a step count (`warmup(steps)` does
    it up front).
    """

    name = 'cudagraph'

    def __init__(self, policy, capture_prepare: bool = True, warmup_iters: int = 2):
        require_cuda(self.name, policy)
        super().__init__(policy)
        self.capture_prepare = bool(capture_prepare)
        self.warmup_iters = int(warmup_iters)
        self._pool = torch.cuda.graph_pool_handle()
        self._prepare_in: tuple[torch.Tensor, ...] | None = None
        self._prepare_graph: _Graph | None = None
        self._prepared: PreparedChunk | None = None       # static inputs of the denoise graphs
        self._noise: torch.Tensor | None = None
        self._denoise: dict[int, _Graph] = {}

    def _capture(self, fn):
        """Warm up on a side stream (cuBLAS handles, allocator), then capture fn() into the shared pool."""
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(self.warmup_iters):
                fn()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(graph, pool=self._pool):
            out = fn()
        return _Graph(graph, out)

    def _prepare_fn(self):
        kv, image, proprio, task, chunk_index = self._prepare_in
        p = self.policy
        state = p.normalizer.normalize_state(proprio)
        return p.executor.prepare(kv, p.encoder.encode(image), state, task, chunk_index)

    def prepare(self, context: PlannerContext, image: Any, proprio: Any, offset: int = 0) -> PreparedChunk:
        if not self.capture_prepare:
            return self.policy.prepare(context, image, proprio, offset)
        inputs = chunk_inputs(self.policy, context, image, proprio, offset)
        if self._prepare_graph is None:
            self._prepare_in = tuple(t.clone() for t in inputs)
            self._prepare_graph = self._capture(self._prepare_fn)
            self._set_static_prepared(self._prepare_graph.output)
        for dst, src in zip(self._prepare_in, inputs):
            dst.copy_(src, non_blocking=True)
        self._prepare_graph.graph.replay()
        return self._prepared

    def _set_static_prepared(self, prepared: PreparedChunk) -> None:
        if self._prepared is not None and self._denoise:
            raise RuntimeError('cudagraph backend: static PreparedChunk replaced after denoise capture')
        self._prepared = prepared

    def denoise(self, prepared: PreparedChunk, noise: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        steps = self.steps_or_default(steps)
        if self._prepared is None:
            self._set_static_prepared(PreparedChunk(*(t.clone() for t in prepared)))
        static = self._prepared
        for dst, src in zip(static, prepared):
            if dst.shape != src.shape:
                raise ValueError(f'cudagraph backend: prepared tensor {tuple(src.shape)} differs from the captured '
                                 f'{tuple(dst.shape)} (static shapes: batch 1, this policy config)')
            if dst.data_ptr() != src.data_ptr():
                dst.copy_(src, non_blocking=True)
        if self._noise is None:
            self._noise = noise.detach().clone()
        self._noise.copy_(noise, non_blocking=True)
        graph = self._denoise.get(steps)
        if graph is None:
            self.policy.inference_sigmas(steps)        # the schedule tensor exists before capture
            graph = self._denoise[steps] = self._capture(lambda: self.policy.denoise(static, self._noise, steps))
        graph.graph.replay()
        return graph.output.clone()
