"""Real-time inference paths of the executor (and the planner prefill): backends behind one switch.

    from aha_wam.export import make_backend
    backend = make_backend(policy, 'onnxruntime', steps=10)   # see BACKENDS
    runtime = ExecutorRuntime(policy, steps=10, backend=backend)

- `backends`: the ExecutorBackend interface (prepare/denoise with the policy's semantics), eager torch,
  torch.compile, CUDA-graph capture of the whole update; `BackendUnavailable`.
- `factory`: `make_backend(policy, name)`, the one switch.
- `onnx_export`: ONNX graphs of prepare, one denoise step, the unrolled N-step denoise and the prefill.
- `ort_backend`: onnxruntime executor backend and prefill runner.
- `trt_backend`: TensorRT engine builder (tensorrt Python API) and runtime.
Heavy optional packages (onnxruntime, tensorrt) are imported only when their backend is built.
"""
from aha_wam.export.backends import BACKENDS, BackendUnavailable, CudaGraphBackend, ExecutorBackend, TorchBackend
from aha_wam.export.factory import make_backend

__all__ = ['BACKENDS', 'BackendUnavailable', 'CudaGraphBackend', 'ExecutorBackend', 'TorchBackend', 'make_backend']
