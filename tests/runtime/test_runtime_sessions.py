"""ExecutorRuntime / PlannerRuntime with a real (tiny, untrained) policy and a real shm context channel."""
import numpy as np
import pytest
import torch

from aha_wam.config import get_config
from aha_wam.context.channel import ContextReader, ContextWriter
from aha_wam.policy import AhaWamPolicy
from aha_wam.runtime.executor_runtime import ExecutorRuntime, Freshness, Observation
from aha_wam.runtime.faults import Fault
from aha_wam.runtime.planner_runtime import PlannerRuntime
from aha_wam.runtime.safety import PIPER_LOWER, PIPER_UPPER

MS = 1_000_000


@pytest.fixture(scope='module')
def policy():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    p = AhaWamPolicy(get_config('tiny')).eval()
    mid = np.tile((PIPER_LOWER + PIPER_UPPER) / 2, 2)
    # Untrained weights: a tiny action std keeps the denormalised chunk near mid-range, inside the limits.
    p.normalizer.set_stats({'state_mean': mid, 'state_std': np.ones(14), 'action_mean': mid,
                            'action_std': np.full(14, 1e-3)})
    return p


@pytest.fixture
def channel(policy, tmp_path):
    writer = ContextWriter(policy.planner.layout, node_name=f'test_rt_{tmp_path.name[-12:]}', transport='shm')
    reader = ContextReader(expected_layout=policy.planner.layout)
    yield writer, reader
    reader.close()
    writer.close()


def image(h=120, w=160, value=100):
    return np.full((h, w, 3), value, np.uint8)      # another size than the encoder's: resized on the way


def obs_at(t_ns, proprio=None):
    return Observation(image=image(), image_stamp_ns=t_ns,
                       proprio=np.tile((PIPER_LOWER + PIPER_UPPER) / 2, 2) if proprio is None else proprio,
                       joint_stamps_ns=(t_ns, t_ns))


def test_planner_refresh_goes_through_the_channel_and_counts_steps(policy, channel):
    writer, reader = channel
    planner = PlannerRuntime(policy, writer)
    period = int(1e9 / policy.config.timing.control_hz)
    d0 = planner.refresh(image(), 5 * 10**9)
    d1 = planner.refresh(image(value=30), 5 * 10**9 + 32 * period)
    stride = policy.config.timing.video_stride
    assert (d0.frame_index, d1.frame_index) == (0, 32 // stride)    # physical time, from the episode start
    ctx = reader.read(d1)
    assert ctx.version == 2 and ctx.stamp_ns == 5 * 10**9 + 32 * period and ctx.memory_entries == 1
    planner.reset()
    assert planner.refresh(image(), 9 * 10**9).frame_index == 0


def test_executor_update_produces_a_handed_over_chunk(policy, channel):
    writer, reader = channel
    ctx = reader.read(PlannerRuntime(policy, writer).refresh(image(), 10**9))
    rt = ExecutorRuntime(policy, steps=2)
    period = rt.period_ns
    out = rt.update(ctx, obs_at(10**9 + 5 * period), now_ns=10**9 + 5 * period + 1)
    assert out.faults == Fault.NONE, out.detail
    assert out.phase_offset == 5 and out.context_version == 1
    assert out.handover is not None and out.handover.first >= 1      # at least the step now due is skipped
    assert out.handover.actions.shape[1] == 14 and out.ovcr_ms > 0 and out.denoise_ms > 0


def test_a_chunk_that_would_arrive_too_late_is_not_sent(policy, channel):
    writer, reader = channel
    ctx = reader.read(PlannerRuntime(policy, writer).refresh(image(), 10**9))
    rt = ExecutorRuntime(policy, steps=1, freshness=Freshness(2.0, 2.0, 2.0))
    late = 10**9 + 15 * rt.period_ns            # 15 of 16 actions already due: fewer than min_actions left
    out = rt.update(ctx, obs_at(10**9), now_ns=late)
    assert out.handover is None and out.faults == Fault.OVERRUN and not out.holding and 'late' in out.detail


def test_no_context_never_moves(policy):
    out = ExecutorRuntime(policy, steps=1).update(None, obs_at(10**9), now_ns=10**9)
    assert out.holding and out.faults & Fault.NO_CONTEXT and out.handover is None


@pytest.mark.parametrize('what, fault', [('context', Fault.STALE_CONTEXT), ('image', Fault.STALE_IMAGE),
                                         ('joints', Fault.STALE_JOINTS)])
def test_stale_inputs_hold_and_say_why(policy, channel, what, fault):
    writer, reader = channel
    now = 10 * 10**9
    ctx = reader.read(PlannerRuntime(policy, writer).refresh(image(), now - (2000 if what == 'context' else 10) * MS))
    obs = obs_at(now - 10 * MS)
    if what == 'image':
        obs.image_stamp_ns = now - 900 * MS
    if what == 'joints':
        obs.joint_stamps_ns = (now, now - 400 * MS)
    out = ExecutorRuntime(policy, steps=1, freshness=Freshness(1.0, 0.5, 0.25)).update(ctx, obs, now_ns=now)
    assert out.holding and out.faults == fault and out.handover is None
    assert 'old' in out.detail


def test_out_of_limit_and_nonfinite_chunks_are_discarded(policy, channel):
    writer, reader = channel
    ctx = reader.read(PlannerRuntime(policy, writer).refresh(image(), 10**9))
    stats = policy.normalizer.stats()
    try:
        shifted = dict(stats, action_mean=[v + 5.0 for v in stats['action_mean']])   # far beyond every limit
        policy.normalizer.set_stats(shifted)
        out = ExecutorRuntime(policy, steps=1).update(ctx, obs_at(10**9), now_ns=10**9)
        assert out.faults == Fault.JOINT_LIMIT and out.handover is None and 'outside' in out.detail
    finally:
        policy.normalizer.set_stats(stats)
    bad = obs_at(10**9, proprio=np.full(14, np.nan))
    out = ExecutorRuntime(policy, steps=1).update(ctx, bad, now_ns=10**9)
    assert out.faults & Fault.NONFINITE_ACTION and out.handover is None


def test_inference_errors_hold_instead_of_raising(policy, channel):
    writer, reader = channel
    ctx = reader.read(PlannerRuntime(policy, writer).refresh(image(), 10**9))
    bad = obs_at(10**9, proprio=np.zeros(7))                 # one arm only: wrong shape
    out = ExecutorRuntime(policy, steps=1).update(ctx, bad, now_ns=10**9)
    assert out.faults == Fault.INFERENCE_ERROR and 'proprio' in out.detail


@pytest.mark.parametrize('entries', [None, 1, 0])
def test_planner_onnxruntime_prefill_runner_matches_the_policy(policy, channel, entries):
    """The planner's onnxruntime fast path publishes the same context as eager torch, memory included,
    also with a shorter memory (the planner node's memory_size override)."""
    from aha_wam.export.ort_backend import OnnxRuntimePrefill
    from aha_wam.models.memory import KVMemory
    writer, reader = channel
    configured = policy.planner.memory
    if entries is not None:
        policy.planner.memory = KVMemory(entries)
    try:
        _compare_prefill_paths(policy, writer, reader, OnnxRuntimePrefill(
            policy, threads=1, max_entries=policy.planner.memory.max_entries))
    finally:
        policy.planner.memory = configured        # the module's policy is shared by the other tests


def _compare_prefill_paths(policy, writer, reader, runner):
    eager = PlannerRuntime(policy, writer)
    ort = PlannerRuntime(policy, writer, prefill_runner=runner)
    period = int(1e9 / policy.config.timing.control_hz)
    for k in range(3):                                   # fills the rolling memory on both paths
        stamp = 10**9 + k * 25 * period
        want = reader.read(eager.refresh(image(value=40 * k), stamp)).kv.clone()
        got = reader.read(ort.refresh(image(value=40 * k), stamp)).kv
        # fp32 kernels differ in summation order: relative error of the whole tensor (issue 9's criterion)
        assert float((got - want).norm() / want.norm()) <= 1e-4
