"""`make_backend`: the one switch from a backend name to a ready ExecutorBackend.

It sits above `backends`, `ort_backend` and `trt_backend` (they never import it), so the heavy optional
packages load only when their backend is asked for and the modules form no import cycle.
"""
from __future__ import annotations

from aha_wam.export.backends import BACKENDS, CudaGraphBackend, ExecutorBackend, TorchBackend


def make_backend(policy, name: str, *, steps: int | None = None, warmup: bool = True, **options) -> ExecutorBackend:
    """Backend `name` for `policy` (see BACKENDS). With `steps`, warm up (export / capture / compile /
    engine build) for that step count now. Raises BackendUnavailable naming what is missing."""
    name = str(name).strip().lower().replace('-', '_')
    if name == 'torch':
        backend: ExecutorBackend = TorchBackend(policy)
    elif name == 'torch_compile':
        backend = TorchBackend(policy, compile=True, **options)
    elif name == 'cudagraph':
        backend = CudaGraphBackend(policy, **options)
    elif name == 'onnxruntime':
        from aha_wam.export.ort_backend import OnnxRuntimeBackend
        backend = OnnxRuntimeBackend(policy, **options)
    elif name == 'tensorrt':
        from aha_wam.export.trt_backend import TensorRTBackend
        backend = TensorRTBackend(policy, **options)
    else:
        raise ValueError(f'unknown executor backend {name!r}; choose one of {", ".join(BACKENDS)}')
    if steps is not None and warmup:
        backend.warmup(steps)
    return backend
