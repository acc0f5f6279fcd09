"""TensorRT backend: one engine per step count, built from the unrolled denoise ONNX through the `tensorrt`
Python API (fp16 / bf16 / fp32), run on torch CUDA tensors (no extra copies, torch's current stream).

prepare stays in PyTorch (once per update; the context-side work is hoisted out of the loop, and
`capture_prepare` replays it as a CUDA graph, as the cudagraph backend does). The ONNX is exported from a
float32 copy of the executor so that TensorRT chooses the reduced precision itself (`precision`); weights
over 2 GB go to external data next to the .onnx, which the parser reads from the same folder.

Needs: the `tensorrt` package (>= 8.6; bf16 needs >= 9) and a CUDA device; otherwise BackendUnavailable
names what is missing.
"""
from __future__ import annotations

import copy
import os
import tempfile

import torch

from aha_wam.export import onnx_export
from aha_wam.export.backends import BackendUnavailable, CudaGraphBackend, ExecutorBackend, require_cuda
from aha_wam.models.executor import PreparedChunk

PRECISIONS = ('fp32', 'fp16', 'bf16')


def import_tensorrt():
    try:
        import tensorrt
    except ImportError as exc:
        cuda = 'available' if torch.cuda.is_available() else 'not available either'
        raise BackendUnavailable("backend 'tensorrt' needs the Python package 'tensorrt' (NVIDIA TensorRT >= 8.6, "
                                 f"e.g. pip install tensorrt) and a CUDA device (CUDA is {cuda} here): {exc}") from exc
    return tensorrt


def _major(trt) -> int:
    return int(str(trt.__version__).split('.')[0])


def build_engine(onnx_path: str, precision: str = 'bf16', workspace_gib: float = 8.0, log_level: str = 'WARNING'
                 ) -> bytes:
    """Serialized engine for `onnx_path` (static shapes, so no optimisation profile is needed)."""
    if precision not in PRECISIONS:
        raise ValueError(f'precision must be one of {PRECISIONS}, got {precision!r}')
    trt = import_tensorrt()
    logger = trt.Logger(getattr(trt.Logger, log_level))
    builder = trt.Builder(logger)
    flags = 0
    if _major(trt) < 10:   # explicit batch is the only mode (and the flag deprecated) from TensorRT 10
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(os.fspath(onnx_path)):
        errors = '; '.join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f'TensorRT could not parse {onnx_path}: {errors}')
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if precision == 'fp16':
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision == 'bf16':
        if not hasattr(trt.BuilderFlag, 'BF16'):
            raise BackendUnavailable(f'TensorRT {trt.__version__} has no bf16 (needs >= 9); use precision fp16')
        config.set_flag(trt.BuilderFlag.BF16)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f'TensorRT engine build failed for {onnx_path} (see the TensorRT log above)')
    return bytes(serialized)


class TrtEngine:
    """A deserialized engine with named I/O; __call__(**inputs) -> dict of outputs (torch CUDA tensors,
    preallocated once and overwritten by the next call)."""

    def __init__(self, serialized: bytes, device: torch.device):
        trt = self.trt = import_tensorrt()
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(serialized)
        if self.engine is None:
            raise RuntimeError('TensorRT could not deserialize the engine (version / GPU mismatch?)')
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        mode = self.engine.get_tensor_mode
        self.inputs = [n for n in names if mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = {n: torch.empty(tuple(self.engine.get_tensor_shape(n)), device=device,
                                       dtype=self._torch_dtype(self.engine.get_tensor_dtype(n)))
                        for n in names if mode(n) == trt.TensorIOMode.OUTPUT}
        self.input_dtypes = {n: self._torch_dtype(self.engine.get_tensor_dtype(n)) for n in self.inputs}
        for n, t in self.outputs.items():
            self.context.set_tensor_address(n, t.data_ptr())

    def _torch_dtype(self, dt):
        trt = self.trt
        table = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16,
                 trt.DataType.INT32: torch.int32, trt.DataType.BOOL: torch.bool, trt.DataType.INT8: torch.int8}
        for name, torch_dtype in (('BF16', torch.bfloat16), ('INT64', torch.int64), ('UINT8', torch.uint8)):
            if hasattr(trt.DataType, name):
                table[getattr(trt.DataType, name)] = torch_dtype
        return table[dt]

    def __call__(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        missing = set(self.inputs) - set(inputs)
        if missing:
            raise ValueError(f'TensorRT engine inputs missing: {sorted(missing)}')
        keep = []                                  # alive until the (stream-ordered) launch is enqueued
        for name in self.inputs:
            t = inputs[name].to(self.input_dtypes[name]).contiguous()
            keep.append(t)
            self.context.set_tensor_address(name, t.data_ptr())
        if not self.context.execute_async_v3(torch.cuda.current_stream().cuda_stream):
            raise RuntimeError('TensorRT execute_async_v3 failed')
        return self.outputs


class TensorRTBackend(ExecutorBackend):
    """denoise: TensorRT engine of the unrolled N-step loop (built on first use of N, or by warmup(N));
    prepare: PyTorch, replayed as a CUDA graph when `capture_prepare`."""

    name = 'tensorrt'

    def __init__(self, policy, precision: str = 'bf16', cache_dir: str | os.PathLike | None = None,
                 capture_prepare: bool = True, workspace_gib: float = 8.0):
        import_tensorrt()                   # the package first: the refusal names it even without a GPU
        require_cuda(self.name, policy)
        super().__init__(policy)
        if precision not in PRECISIONS:
            raise ValueError(f'precision must be one of {PRECISIONS}, got {precision!r}')
        self.precision, self.workspace_gib = precision, workspace_gib
        if cache_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix='aha_wam_trt_')
            cache_dir = self._tmp.name
        self.cache_dir = os.fspath(cache_dir)
        self._prepare = CudaGraphBackend(policy, capture_prepare=True) if capture_prepare else None
        self._engines: dict[int, TrtEngine] = {}

    def prepare(self, context, image, proprio, offset: int = 0) -> PreparedChunk:
        if self._prepare is not None:
            return self._prepare.prepare(context, image, proprio, offset)
        return self.policy.prepare(context, image, proprio, offset)

    def engine(self, steps: int) -> TrtEngine:
        if steps not in self._engines:
            folder = os.path.join(self.cache_dir, f'denoise_{steps}')
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, 'denoise.onnx')
            executor32 = copy.deepcopy(self.policy.executor).float()
            onnx_export.export_denoise(self.policy, path, steps, executor=executor32)
            del executor32
            torch.cuda.empty_cache()
            engine = build_engine(path, self.precision, self.workspace_gib)
            with open(os.path.join(folder, f'denoise_{self.precision}.engine'), 'wb') as f:
                f.write(engine)
            self._engines[steps] = TrtEngine(engine, self.policy.device)
        return self._engines[steps]

    def denoise(self, prepared: PreparedChunk, noise: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        steps = self.steps_or_default(steps)
        feeds = dict(zip(onnx_export.PREPARED_NAMES, prepared))
        out = self.engine(steps)(noise=noise, **feeds)['x']
        return out.to(self.policy.executor.action_in.weight.dtype, copy=True)
