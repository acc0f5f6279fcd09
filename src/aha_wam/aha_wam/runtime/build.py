"""Building the sessions from a checkpoint: the one place the nodes, the ClosedLoop and `aha-wam eval-*` share.

    policy, provenance = load_policy('checkpoints/cpu')
    planner = make_planner_session(policy, provenance, PlannerOptions(task=resolve_task(provenance, 'lift_box')), ...)
    executor = make_executor_session(policy, provenance, ExecutorOptions(...), backend='onnxruntime')

Inference artefacts (ONNX graphs) are cached next to the checkpoint in `.artefacts/<key>/`, keyed by the
checkpoint's weights and config hashes and the export format, so the second start of a node loads them instead
of exporting again (a read-only checkpoint directory falls back to ~/.cache/aha_wam/artefacts/<key>/).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from aha_wam.context.channel import ContextReader, ContextWriter
from aha_wam.runtime.executor_session import ExecutorOptions, ExecutorSession
from aha_wam.runtime.planner_session import PlannerOptions, PlannerSession

# Bump when the exported graphs change meaning (onnx_export.py): cached artefacts of older code are ignored.
ARTEFACT_FORMAT = 1


def load_policy(checkpoint: str | os.PathLike, device: str = 'cpu'):
    """-> (policy, provenance); the provenance also carries `checkpoint_dir`."""
    from aha_wam.checkpoint import load_checkpoint
    policy, provenance = load_checkpoint(checkpoint, device=device)
    provenance = dict(provenance, checkpoint_dir=str(Path(checkpoint).resolve()))
    return policy, provenance


def task_table(provenance: dict) -> dict[str, int]:
    """Task name -> id of the policy's task table: the checkpoint's own list, else the project's default."""
    from aha_wam.data.episode import TASKS
    names = (provenance.get('extra') or {}).get('tasks') or list(TASKS)
    return {str(name): i for i, name in enumerate(names)}


INSTRUCTION_CACHE = 'instructions.safetensors'     # next to a checkpoint without a task table (official ones)


def resolve_task(provenance: dict, task: str | int, policy=None, instruction_cache: str = ''):
    """What the policy is told to do: a task id of the checkpoint's task table (a name, or an id as text), or,
    for a checkpoint conditioned on instructions (the official ones: no task table), the instruction's UMT5
    embedding from `instruction_cache` (default: <checkpoint>/instructions.safetensors, written by
    `aha-wam embed-instructions`). A known task name stands for its task's instruction (piper_core task YAML).
    Unknown names and missing embeddings raise one clear line."""
    if policy is not None and policy.task_table is None:
        from pathlib import Path
        from aha_wam.interop.text import instruction_tokens
        cache = instruction_cache or str(Path(provenance.get('checkpoint_dir', '.')) / INSTRUCTION_CACHE)
        if not Path(cache).is_file():
            raise ValueError(f'this checkpoint is conditioned on instructions and has no {INSTRUCTION_CACHE}; '
                             f'run `aha-wam embed-instructions ... --out {cache}` (or set instruction_cache)')
        return instruction_tokens(cache, _instruction_of(str(task)))
    table = task_table(provenance)
    if isinstance(task, int) or (isinstance(task, str) and task.strip().isdigit()):
        tid = int(task)
        if not 0 <= tid < len(table):
            raise ValueError(f'task id {tid} is outside the checkpoint task table {list(table)}')
        return tid
    if task not in table:
        raise ValueError(f'unknown task {task!r}: this checkpoint knows {", ".join(table)}')
    return table[task]


def _instruction_of(task: str) -> str:
    """A simulator task's instruction (its YAML), or the text itself."""
    from piper_core.sim.tasks import available_tasks, load_task_spec
    return load_task_spec(task).instruction if task in available_tasks() else task


def contract_of(policy, provenance: dict):
    """The checkpoint's embodiment contract (embodiment.yaml, or the default for its config)."""
    from aha_wam.interop.contract import contract_for_checkpoint, default_contract
    directory = provenance.get('checkpoint_dir')
    return contract_for_checkpoint(directory, policy.config) if directory else default_contract(policy.config)


def artefact_key(provenance: dict) -> str:
    basis = json.dumps({'weights': provenance.get('weights_sha256', ''), 'config': provenance.get('config_sha256', ''),
                        'checkpoint': provenance.get('checkpoint_dir', '') if not provenance.get('weights_sha256')
                        else '', 'format': ARTEFACT_FORMAT}, sort_keys=True)
    return hashlib.sha256(basis.encode()).hexdigest()[:16]


def artefact_dir(provenance: dict) -> Path:
    """Where this checkpoint's exported graphs live (created; writable)."""
    key = artefact_key(provenance)
    candidates = []
    if provenance.get('checkpoint_dir'):
        candidates.append(Path(provenance['checkpoint_dir']) / '.artefacts' / key)
    candidates.append(Path(os.environ.get('XDG_CACHE_HOME', Path.home() / '.cache')) / 'aha_wam' / 'artefacts' / key)
    for c in candidates:
        try:
            c.mkdir(parents=True, exist_ok=True)
            probe = c / f'.probe.{os.getpid()}'
            probe.write_bytes(b'')
            probe.unlink()
            return c
        except OSError:
            continue
    raise OSError(f'no writable directory for inference artefacts among {", ".join(map(str, candidates))}')


def make_planner_session(policy, provenance: dict, options: PlannerOptions, *, transport: str = 'shm',
                         node_name: str = 'planner', namespace: str = '', domain_id=None, num_slots: int = 3,
                         device: str | None = None, backend: str = 'torch', threads: int = 1,
                         segment_name: str | None = None) -> PlannerSession:
    """The planner session with its context writer and prefill backend ('torch' or 'onnxruntime')."""
    cfg = policy.config
    if backend not in ('torch', 'onnxruntime'):
        raise ValueError(f"planner backend {backend!r}: use 'torch' or 'onnxruntime'")
    writer = ContextWriter(
        policy.planner.layout, node_name=node_name, namespace=namespace, domain_id=domain_id, transport=transport,
        num_slots=num_slots, device=device if transport == 'cuda_ipc' else None, segment_name=segment_name,
        frame_period=cfg.timing.video_stride / cfg.timing.control_hz, video_stride=cfg.timing.video_stride,
        video_horizon=cfg.timing.window_steps, control_period=1.0 / cfg.timing.control_hz)
    runner = None
    try:
        if backend == 'onnxruntime':
            from aha_wam.export.ort_backend import OnnxRuntimePrefill
            size = cfg.memory.max_entries if options.memory_size < 0 else options.memory_size
            runner = OnnxRuntimePrefill(policy, cache_dir=artefact_dir(provenance), threads=max(1, threads),
                                        max_entries=size)
        return PlannerSession(policy, writer, options, prefill_runner=runner, contract=contract_of(policy, provenance))
    except BaseException:
        writer.close()
        raise


def make_executor_session(policy, provenance: dict, options: ExecutorOptions, *, backend: str = 'torch',
                          threads: int = 1, log=None) -> ExecutorSession:
    """The executor session on `backend` (aha_wam.export.BACKENDS), warmed up for its step count."""
    from aha_wam.export import make_backend
    extra = {'cache_dir': artefact_dir(provenance), 'threads': max(1, threads)} if backend == 'onnxruntime' else {}
    engine = make_backend(policy, backend, steps=options.steps, **extra)
    reader = ContextReader(max_age_s=options.freshness.max_context_age, expected_layout=policy.planner.layout,
                           transports=('shm', 'cuda_ipc', 'inline') if options.accept_inline else ('shm', 'cuda_ipc'),
                           trusted_segments=options.trusted_segments)
    reader.prepare(policy.planner.layout)
    session = ExecutorSession(policy, options, backend=engine, reader=reader, log=log,
                              contract=contract_of(policy, provenance))
    session.backend_name = backend
    return session
