"""PlannerSession / ExecutorSession with a real (tiny, untrained) policy and a real shm context channel."""
import numpy as np
import pytest
import torch

from aha_wam.config import get_config
from aha_wam.context.channel import ContextWriter
from aha_wam.policy import AhaWamPolicy
from aha_wam.runtime.executor_session import ExecutorOptions, ExecutorSession, Freshness, Observation
from aha_wam.runtime.faults import BLOCKING, Fault
from aha_wam.runtime.planner_session import PlannerOptions, PlannerSession
from aha_wam.runtime.safety import PIPER_LOWER, PIPER_UPPER
from piper_core.layout import ARMS

MS = 1_000_000
MID = np.tile((PIPER_LOWER + PIPER_UPPER) / 2, 2)


@pytest.fixture(scope='module')
def policy():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    p = AhaWamPolicy(get_config('tiny')).eval()
    # Untrained weights: a tiny action std keeps the denormalised chunk near mid-range, inside the limits.
    p.normalizer.set_stats({'state_mean': MID, 'state_std': np.ones(14), 'action_mean': MID,
                            'action_std': np.full(14, 1e-3)})
    return p


@pytest.fixture
def planner(policy, tmp_path):
    writer = ContextWriter(policy.planner.layout, node_name=f'test_rt_{tmp_path.name[-12:]}', transport='shm')
    session = PlannerSession(policy, writer)
    yield session
    session.close()


def executor(policy, **options) -> ExecutorSession:
    return ExecutorSession(policy, ExecutorOptions(**options))


def image(h=120, w=160, value=100):
    return np.full((h, w, 3), value, np.uint8)      # another size than the encoder's: resized on the way


def obs_at(t_ns, proprio=None):
    return Observation(image=image(), image_stamp_ns=t_ns, proprio=MID.copy() if proprio is None else proprio,
                       joint_stamps_ns=(t_ns, t_ns))


def test_planner_refresh_goes_through_the_channel_and_counts_steps(policy, planner):
    period = int(1e9 / policy.config.timing.control_hz)
    d0 = planner.refresh(image(), 5 * 10**9)
    d1 = planner.refresh(image(value=30), 5 * 10**9 + 32 * period)
    stride = policy.config.timing.video_stride
    assert (d0.frame_index, d1.frame_index) == (0, 32 // stride)    # physical time, from the episode start
    ex = executor(policy)
    ex.offer(d1)
    ex.step(obs_at(d1.stamp_ns), now_ns=d1.stamp_ns)
    assert ex.context.version == 2 and ex.context.memory_entries == 1
    planner.reset()
    assert planner.refresh(image(), 9 * 10**9).frame_index == 0


def test_planner_cadence_and_image_use(planner):
    period = planner.options.period_ns                      # 2 Hz
    assert planner.due(0) and planner.usable(0, 0)
    planner.refresh(image(), 0, now_ns=0)
    assert not planner.usable(0, 10 * MS)                   # the same frame is never refreshed on twice
    assert not planner.due(period - 1) and planner.due(period)
    assert not planner.usable(1, 600 * MS)                  # a new frame, but older than max_image_age (0.5 s)
    assert planner.skipped_stale == 1


def test_no_memory_ablation_is_a_session_option(policy, tmp_path):
    writer = ContextWriter(policy.planner.layout, node_name=f'test_nm_{tmp_path.name[-12:]}', transport='inline')
    session = PlannerSession(policy, writer, PlannerOptions(memory_size=0))
    try:
        for k in range(3):
            d = session.refresh(image(value=10 * k), 10**9 + k * 500 * MS)
        assert d.memory_entries == 0 and session.memory.max_entries == 0
    finally:
        session.close()


def test_executor_step_sends_both_arms_one_start_stamp(policy, planner):
    d = planner.refresh(image(), 10**9)
    ex = executor(policy, steps=2)
    ex.offer(d)
    period = ex.action_period_ns
    out = ex.step(obs_at(10**9 + 5 * period), now_ns=10**9 + 5 * period + 1)
    assert out.faults == Fault.NONE, out.detail
    assert out.phase_offset == 5 and out.context_version == 1 and out.kind == 'chunk'
    assert out.handover.first >= 1                          # at least the step now due is skipped
    assert set(out.commands) == set(ARMS)
    left, right = (out.commands[a] for a in ARMS)
    assert left.start_ns == right.start_ns == out.handover.start_ns
    assert left.positions.shape == (out.handover.actions.shape[0], 7)
    np.testing.assert_array_equal(np.concatenate([left.positions, right.positions], axis=1), out.handover.actions)


def test_a_chunk_that_would_arrive_too_late_is_not_sent(policy, planner):
    ex = executor(policy, steps=1, freshness=Freshness(2.0, 2.0, 2.0))
    ex.offer(planner.refresh(image(), 10**9))
    late = 10**9 + 15 * ex.action_period_ns     # 15 of 16 actions already due: fewer than min_actions left
    out = ex.step(obs_at(10**9), now_ns=late)
    assert out.handover is None and out.faults == Fault.LATE_CHUNK and not out.holding and 'late' in out.detail
    assert out.commands is None


def test_overrun_means_only_that_the_update_took_longer_than_the_period(policy, planner):
    ex = executor(policy, steps=1, control_rate=20.0)
    ex.offer(planner.refresh(image(), 10**9))
    ticks = iter([0, 0, 10 * MS, 60 * MS, 60 * MS])         # the update takes 60 ms > 50 ms
    out = ex.step(obs_at(10**9), now_ns=10**9, clock_ns=lambda: next(ticks))
    assert out.faults == Fault.OVERRUN and out.kind == 'chunk'       # reported, still sent


def test_execute_actions_runs_a_chunk_before_the_next_inference(policy, planner):
    ex = executor(policy, steps=1, execute_actions=8, freshness=Freshness(2.0, 2.0, 2.0))
    ex.offer(planner.refresh(image(), 10**9))
    period = ex.action_period_ns
    assert ex.step(obs_at(10**9), now_ns=10**9).kind == 'chunk'
    coast = ex.step(obs_at(10**9 + 5 * period), now_ns=10**9 + 5 * period)     # 5 of 8 actions run so far
    assert coast.coasting and coast.commands is None and coast.faults == Fault.NONE and ex.chunks == 1
    again = ex.step(obs_at(10**9 + 8 * period), now_ns=10**9 + 8 * period)
    assert again.kind == 'chunk' and not again.coasting and ex.chunks == 2
    stale = obs_at(10**9 + 9 * period)
    stale.joint_stamps_ns = ()                   # a fault while a chunk runs on still holds the arms at once
    assert ex.step(stale, now_ns=10**9 + 9 * period).kind == 'hold'
    with pytest.raises(ValueError, match='longer than'):
        executor(policy, execute_actions=policy.config.executor.chunk_size + 1)


def test_no_context_never_moves(policy):
    out = executor(policy, steps=1).step(obs_at(10**9), now_ns=10**9)
    assert out.holding and out.faults & Fault.NO_CONTEXT and out.commands is None


@pytest.mark.parametrize('what, fault', [('context', Fault.STALE_CONTEXT), ('image', Fault.STALE_IMAGE),
                                         ('joints', Fault.STALE_JOINTS)])
def test_stale_inputs_hold_and_say_why(policy, planner, what, fault):
    now = 10 * 10**9
    ex = executor(policy, steps=1, freshness=Freshness(1.0, 0.5, 0.25))
    ex.offer(planner.refresh(image(), now - (2000 if what == 'context' else 10) * MS))
    obs = obs_at(now - 10 * MS)
    if what == 'image':
        obs.image_stamp_ns = now - 900 * MS
    if what == 'joints':
        obs.joint_stamps_ns = (now, now - 400 * MS)
    out = ex.step(obs, now_ns=now)
    assert out.holding and out.faults == fault and out.commands is None
    assert 'old' in out.detail


def test_hold_state_machine_sends_one_hold_per_fault_episode(policy, planner):
    ex = executor(policy, steps=1, freshness=Freshness(1.0, 0.5, 0.25))
    ex.offer(planner.refresh(image(), 10**9))
    assert ex.step(obs_at(10**9), now_ns=10**9).kind == 'chunk'
    stale = obs_at(10**9)
    stale.joint_stamps_ns = ()                              # joint states lost
    first = ex.step(stale, now_ns=10**9 + 50 * MS)
    assert first.kind == 'hold' and first.faults & Fault.STALE_JOINTS
    hold = first.commands['left']
    assert hold.start_ns == 0 and hold.positions.shape == (1, 7)
    np.testing.assert_array_equal(hold.positions[0], MID[:7])       # stop where the arm is
    assert ex.step(stale, now_ns=10**9 + 100 * MS).commands is None  # once per fault episode
    assert ex.step(obs_at(10**9 + 150 * MS), now_ns=10**9 + 150 * MS).kind == 'chunk'   # recovers


def test_every_queued_descriptor_is_examined_newest_valid_wins(policy, planner):
    import dataclasses
    ex = executor(policy, steps=1)
    good_old = planner.refresh(image(value=10), 10**9)
    good_new = planner.refresh(image(value=20), 10**9 + 100 * MS)
    junk = dataclasses.replace(good_new, version=good_new.version + 1, slot=99)
    for d in (good_old, good_new, junk):
        ex.offer(d)
    out = ex.step(obs_at(10**9 + 100 * MS), now_ns=10**9 + 100 * MS)
    assert ex.context.version == good_new.version and out.kind == 'chunk'
    assert sum(ex.reader.rejections.values()) >= 1
    assert [d.version for d in ex.delivered] == [good_old.version, good_new.version, junk.version]


def test_out_of_limit_and_nonfinite_chunks_are_discarded(policy, planner):
    d = planner.refresh(image(), 10**9)
    stats = policy.normalizer.stats()
    try:
        policy.normalizer.set_stats(dict(stats, action_mean=[v + 5.0 for v in stats['action_mean']]))
        ex = executor(policy, steps=1)
        ex.offer(d)
        out = ex.step(obs_at(10**9), now_ns=10**9)
        assert out.faults == Fault.JOINT_LIMIT and out.commands is None and 'outside' in out.detail
    finally:
        policy.normalizer.set_stats(stats)
    ex = executor(policy, steps=1)
    ex.offer(d)
    out = ex.step(obs_at(10**9, proprio=np.full(14, np.nan)), now_ns=10**9)
    assert out.faults & Fault.NONFINITE_ACTION and out.commands is None


def test_inference_errors_hold_instead_of_raising(policy, planner):
    ex = executor(policy, steps=1)
    ex.offer(planner.refresh(image(), 10**9))
    out = ex.step(obs_at(10**9, proprio=np.zeros(7)), now_ns=10**9)     # one arm only: wrong shape
    assert out.faults & Fault.INFERENCE_ERROR and 'proprio' in out.detail and out.faults & BLOCKING


@pytest.mark.parametrize('bad', [dict(steps=0), dict(control_rate=500.0), dict(queue_depth=0), dict(execute_actions=-1),
                                 dict(execute_actions=65)])
def test_executor_options_refuse_bad_values(bad):
    with pytest.raises(ValueError):
        ExecutorOptions(**bad)


@pytest.mark.parametrize('bad', [dict(refresh_rate=0.0), dict(memory_size=17), dict(max_image_age=0.0)])
def test_planner_options_refuse_bad_values(bad):
    with pytest.raises(ValueError):
        PlannerOptions(**bad)


@pytest.mark.parametrize('entries', [-1, 1, 0])
def test_planner_onnxruntime_prefill_runner_matches_the_policy(policy, tmp_path, entries):
    """The planner's onnxruntime fast path publishes the same context as eager torch, memory included,
    also with a shorter memory (the planner node's memory_size option)."""
    from aha_wam.context.channel import ContextReader
    from aha_wam.export.ort_backend import OnnxRuntimePrefill
    options = PlannerOptions(memory_size=entries)
    w1 = ContextWriter(policy.planner.layout, node_name=f'test_e_{tmp_path.name[-10:]}', transport='shm')
    w2 = ContextWriter(policy.planner.layout, node_name=f'test_o_{tmp_path.name[-10:]}', transport='shm')
    eager = PlannerSession(policy, w1, options)
    size = eager.memory.max_entries
    ort = PlannerSession(policy, w2, options, prefill_runner=OnnxRuntimePrefill(policy, threads=1, max_entries=size))
    reader = ContextReader(expected_layout=policy.planner.layout)
    try:
        period = int(1e9 / policy.config.timing.control_hz)
        eager.reset()
        for k in range(3):                                   # fills the rolling memory on both paths
            stamp = 10**9 + k * 25 * period
            want = reader.read(eager.refresh(image(value=40 * k), stamp)).kv.clone()
            got = reader.read(ort.refresh(image(value=40 * k), stamp)).kv
            # fp32 kernels differ in summation order: relative error of the whole tensor (issue 9's criterion)
            assert float((got - want).norm() / want.norm()) <= 1e-4
    finally:
        reader.close()
        eager.close()
        ort.close()


def test_inference_artefacts_are_cached_by_checkpoint_content(tiny_checkpoint, tmp_path):
    """The second start of an onnxruntime session loads the graphs the first exported (keyed by the weights'
    and config's hashes), so start-up does not export again; another checkpoint gets its own directory."""
    import shutil
    from aha_wam.runtime.build import artefact_dir, load_policy, make_executor_session
    ckpt = tmp_path / 'ckpt'
    shutil.copytree(tiny_checkpoint, ckpt, ignore=shutil.ignore_patterns('.artefacts'))   # a first start
    policy, provenance = load_policy(ckpt)
    first = make_executor_session(policy, provenance, ExecutorOptions(steps=2), backend='onnxruntime')
    second = make_executor_session(policy, provenance, ExecutorOptions(steps=2), backend='onnxruntime')
    try:
        assert first.backend.reused == [] and sorted(second.backend.reused) == ['denoise_step.onnx', 'prepare.onnx']
        where = artefact_dir(provenance)
        assert where.parent == ckpt / '.artefacts' and sorted(p.name for p in where.glob('*.onnx')) == \
            ['denoise_step.onnx', 'prepare.onnx']
        assert not list(where.glob('*.partial'))
        other = dict(provenance, weights_sha256='0' * 64)
        assert artefact_dir(other) != where
    finally:
        first.close()
        second.close()


def test_a_new_episode_uses_nothing_captured_before_it(policy, planner):
    """After a reset the planner refreshes only on frames captured after it, and the executor neither keeps the
    old context nor computes on an old frame: both would describe the scene before the reset."""
    ex = executor(policy, steps=1, freshness=Freshness(2.0, 2.0, 2.0))
    ex.offer(planner.refresh(image(), 10**9))
    assert ex.step(obs_at(10**9), now_ns=10**9).kind == 'chunk'
    start = 10**9 + 200 * MS
    planner.reset(not_before_ns=start)
    assert not planner.usable(start - 30 * MS, start + 10 * MS) and planner.usable(start + 5 * MS, start + 10 * MS)
    ex.reset(forget_context=True, not_before_ns=start)
    out = ex.step(obs_at(start - 30 * MS), now_ns=start + 10 * MS)
    assert out.faults & Fault.NO_CONTEXT and out.faults & Fault.STALE_IMAGE and 'this episode' in out.detail
