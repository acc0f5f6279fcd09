"""ONNX export of the executor update (prepare + denoise) and of the planner prefill.

All graphs have static shapes (batch 1, the config's token counts) and use the legacy TorchScript exporter
(`dynamo=False`: fast, and needs no onnxscript). Graphs and their inputs, in order:

    prepare       context_kv [1, L, 2, T, H*D] (policy dtype), image uint8 [1, H, W, 3], proprio float32
                  [1, A] (raw robot units), task_tokens [1, Nt, text_dim], chunk_index int64 [1]
                  -> ctx_k, ctx_v, cross_k, cross_v, rope_cos, rope_sin     (PreparedChunk, in order)
    denoise_step  x [1, c, A], emb [1, 1, d], mod [1, 1, 6, d], ds [1], ctx_k .. rope_sin
                  -> x + ds * velocity(x)                                   (one Euler step; any schedule)
    denoise       noise [1, c, A], ctx_k .. rope_sin -> x after `steps` Euler steps (loop unrolled, the
                  schedule's timestep conditioning folded into constants; what TensorRT builds)
    prefill       image uint8 [1, H, W, 3], task_tokens, frame_time int64 [1, 1], memory_kv
                  [1, L, 2, M*T, H*D] (M = memory.max_entries slots, oldest first), memory_valid bool [1, M]
                  -> kv [L, 2, T, H*D]   (memory slots that are not valid are masked out)

The step graph does not depend on the number of steps, so one export serves 10-step AHA-WAM and 1/2/4-step
Flash: the caller feeds emb/mod/ds of the schedule (computed once per step count by `schedule_inputs`).
"""
from __future__ import annotations

import contextlib
import os
import warnings

import torch
import torch.nn as nn

from aha_wam.models.executor import PreparedChunk

OPSET = 17
PREPARED_NAMES = PreparedChunk._fields            # ctx_k, ctx_v, cross_k, cross_v, rope_cos, rope_sin
PREPARE_INPUTS = ('context_kv', 'image', 'proprio', 'task_tokens', 'chunk_index')
STEP_INPUTS = ('x', 'emb', 'mod', 'ds') + PREPARED_NAMES
DENOISE_INPUTS = ('noise',) + PREPARED_NAMES
PREFILL_INPUTS = ('image', 'task_tokens', 'frame_time', 'memory_kv', 'memory_valid')


# ------------------------------------------------------------------------------------------ export wrappers
class PrepareGraph(nn.Module):
    """What `AhaWamPolicy.prepare` computes after its input checks: encoder, state normalisation, OVCR,
    context K/V in head layout, cross-attention K/V, RoPE tables."""

    def __init__(self, policy):
        super().__init__()
        self.policy = policy

    def forward(self, context_kv, image, proprio, task_tokens, chunk_index):
        p = self.policy
        state = p.normalizer.normalize_state(proprio.float())
        return tuple(p.executor.prepare(context_kv, p.encoder.encode(image), state, task_tokens, chunk_index))


class DenoiseStepGraph(nn.Module):
    """One Euler step x + ds * v(x) with the step's timestep conditioning (emb, mod) as inputs."""

    def __init__(self, executor):
        super().__init__()
        self.executor = executor

    def forward(self, x, emb, mod, ds, *prepared):
        v = self.executor._velocity(x, emb, mod, PreparedChunk(*prepared))
        return x + ds * v


class DenoiseGraph(nn.Module):
    """The whole `steps`-step Euler loop, unrolled (sigmas are a constant of the graph)."""

    def __init__(self, executor, sigmas: torch.Tensor):
        super().__init__()
        self.executor = executor
        self.register_buffer('sigmas', sigmas.detach().clone(), persistent=False)

    def forward(self, noise, *prepared):
        return self.executor.denoise(PreparedChunk(*prepared), noise, self.sigmas)[0]


class PrefillGraph(nn.Module):
    """`VideoPlanner.prefill` as a pure function of a fixed number of memory slots and their validity."""

    def __init__(self, policy):
        super().__init__()
        self.policy = policy

    def forward(self, image, task_tokens, frame_time, memory_kv=None, memory_valid=None):
        planner = self.policy.planner
        latent = self.policy.encoder.encode(image)                                  # [1, C, h, w]
        valid = None
        if memory_valid is not None:
            valid = memory_valid.repeat_interleave(planner.tokens_per_frame, dim=1)  # per memory token
        sigmas = torch.zeros(1, 1, dtype=torch.float32, device=latent.device)
        _, kv = planner(latent.unsqueeze(1), sigmas, frame_time, task_tokens, memory_kv=memory_kv,
                        memory_valid=valid, kv_frames=1, kv_only=True)
        return kv[0]


# ----------------------------------------------------------------------------------------------- helpers
def schedule_inputs(executor, sigmas: torch.Tensor, dtype: torch.dtype | None = None):
    """Per-step inputs of the step graph for one schedule: emb [S, 1, 1, d], mod [S, 1, 1, 6, d], ds [S, 1],
    exactly as `ActionExecutor.denoise` / `euler_sample` compute them."""
    dtype = dtype or executor.action_in.weight.dtype
    with torch.no_grad():
        emb, mod, ds = executor.step_schedule(sigmas, dtype)     # official or legacy step sizes, as denoise
    return emb, mod, ds.view(-1, 1)


class _WithoutCse:
    """torch._C seen by the TorchScript exporter, with its common-subexpression pass switched off: in torch
    2.13 that pass merges distinct nodes of these graphs (a shared dim constant of OVCR's / the planner's
    flatten and unflatten ended up as another constant, so head split/merge reshaped at the wrong axis and
    onnxruntime rejected the model). Everything else is torch._C itself."""

    def __init__(self, real):
        self._real = real

    def __getattr__(self, name):
        if name == '_jit_pass_cse':
            return lambda graph: False          # "graph unchanged"
        return getattr(self._real, name)


@contextlib.contextmanager
def _exporter_fixes():
    from torch.onnx._internal.torchscript_exporter import utils as exporter_utils
    real = exporter_utils._C
    exporter_utils._C = _WithoutCse(real)
    try:
        with warnings.catch_warnings():
            # Legacy exporter deprecation notice and tracer warnings about Python ints/bools taken from
            # tensors (shapes are static by design; the prefill's validity branch is traced on purpose).
            warnings.simplefilter('ignore', DeprecationWarning)
            warnings.simplefilter('ignore', torch.jit.TracerWarning)
            yield
    finally:
        exporter_utils._C = real


def _export(module: nn.Module, args: tuple, path, input_names, output_names) -> str:
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with torch.no_grad(), _exporter_fixes():
        torch.onnx.export(module, args, path, dynamo=False, opset_version=OPSET, do_constant_folding=True,
                          input_names=list(input_names), output_names=list(output_names))
    return path


# ------------------------------------------------------------------------------------------ example inputs
def example_context_kv(policy) -> torch.Tensor:
    layout = policy.planner.layout
    w = layout.num_heads * layout.head_dim
    dtype = policy.planner.patch_embed.weight.dtype
    return torch.randn(1, layout.num_layers, 2, layout.tokens_per_frame, w, generator=torch.Generator().manual_seed(0)
                       ).to(policy.device, dtype)


def example_prepare_inputs(policy) -> tuple:
    cfg = policy.config
    enc = cfg.encoder
    image = torch.randint(0, 256, (1, enc.image_height, enc.image_width, 3), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(1)).to(policy.device)
    proprio = torch.zeros(1, cfg.executor.action_dim, device=policy.device)
    dtype = policy.planner.patch_embed.weight.dtype
    task = torch.zeros(1, cfg.task.text_tokens, cfg.task.text_dim, device=policy.device, dtype=dtype)
    chunk_index = torch.zeros(1, dtype=torch.long, device=policy.device)
    return example_context_kv(policy), image, proprio, task, chunk_index


def _example_prepared(policy) -> PreparedChunk:
    with torch.no_grad():
        return PreparedChunk(*PrepareGraph(policy)(*example_prepare_inputs(policy)))


def _noise(policy) -> torch.Tensor:
    e = policy.config.executor
    dtype = policy.executor.action_in.weight.dtype
    return torch.zeros(1, e.chunk_size, e.action_dim, device=policy.device, dtype=dtype)


# ------------------------------------------------------------------------------------------------ exports
def export_prepare(policy, path) -> str:
    return _export(PrepareGraph(policy), example_prepare_inputs(policy), path, PREPARE_INPUTS, PREPARED_NAMES)


def export_denoise_step(policy, path, executor=None) -> str:
    """One Euler step (any schedule). `executor` defaults to the policy's (e.g. pass a float32 copy)."""
    executor = executor or policy.executor
    prepared = _example_prepared(policy)
    dtype = executor.action_in.weight.dtype
    emb, mod, ds = schedule_inputs(executor, policy.inference_sigmas(2).to(policy.device), dtype)
    args = (_noise(policy).to(dtype), emb[0], mod[0], ds[0], *(t.to(dtype) for t in prepared))
    return _export(DenoiseStepGraph(executor), args, path, STEP_INPUTS, ('x_next',))


def export_denoise(policy, path, steps: int, executor=None) -> str:
    """The `steps`-step loop unrolled into one graph (TensorRT builds one engine per step count)."""
    executor = executor or policy.executor
    dtype = executor.action_in.weight.dtype
    prepared = _example_prepared(policy)
    module = DenoiseGraph(executor, policy.inference_sigmas(int(steps)).to(policy.device))
    args = (_noise(policy).to(dtype), *(t.to(dtype) for t in prepared))
    return _export(module, args, path, DENOISE_INPUTS, ('x',))


def example_prefill_inputs(policy) -> tuple:
    cfg = policy.config
    _, image, _, task, _ = example_prepare_inputs(policy)
    frame_time = torch.zeros(1, 1, dtype=torch.long, device=policy.device)
    m = cfg.memory.max_entries
    if m == 0:
        return image, task, frame_time
    layout = policy.planner.layout
    w = layout.num_heads * layout.head_dim
    dtype = policy.planner.patch_embed.weight.dtype
    memory = torch.zeros(1, layout.num_layers, 2, m * layout.tokens_per_frame, w, device=policy.device, dtype=dtype)
    valid = torch.zeros(1, m, dtype=torch.bool, device=policy.device)
    valid[0, -1] = True     # some slot invalid: the tracer records the masked branch, valid for any pattern
    return image, task, frame_time, memory, valid


def export_prefill(policy, path) -> str:
    args = example_prefill_inputs(policy)
    return _export(PrefillGraph(policy), args, path, PREFILL_INPUTS[:len(args)], ('kv',))
