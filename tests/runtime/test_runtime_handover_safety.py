"""Chunk hand-over timing and the safety guard (pure functions, no ROS graph)."""
import numpy as np
import pytest

from aha_wam.runtime.handover import hand_over
from aha_wam.runtime.safety import PIPER_LOWER, PIPER_UPPER, ChunkGuard

DT = 20_000_000   # 50 Hz action steps


def chunk(h=16):
    return np.arange(h * 14, dtype=float).reshape(h, 14)


def test_no_delay_keeps_the_whole_chunk():
    h = hand_over(chunk(), obs_ns=10**9, now_ns=10**9, period_ns=DT)
    assert h.first == 0 and h.start_ns == 10**9 and h.actions.shape == (16, 14)


@pytest.mark.parametrize('delay_ns, first', [(1, 1), (DT, 1), (DT + 1, 2), (5 * DT - 1, 5), (5 * DT, 5)])
def test_delay_is_counted_in_consumed_steps_and_starts_at_the_due_action(delay_ns, first):
    h = hand_over(chunk(), obs_ns=0, now_ns=delay_ns, period_ns=DT)
    assert h.first == first
    assert h.start_ns == first * DT >= delay_ns          # never schedules an action in the past
    np.testing.assert_array_equal(h.actions, chunk()[first:])
    np.testing.assert_allclose(h.times_from_start(), np.arange(16 - first) * 0.02)


def test_a_chunk_entirely_in_the_past_is_empty():
    assert hand_over(chunk(), obs_ns=0, now_ns=100 * DT, period_ns=DT).empty


def test_clock_going_backwards_counts_as_no_delay():
    assert hand_over(chunk(), obs_ns=5 * DT, now_ns=0, period_ns=DT).first == 0


def test_guard_accepts_a_chunk_inside_limits():
    mid = np.tile((PIPER_LOWER + PIPER_UPPER) / 2, 2)
    assert ChunkGuard().check(np.tile(mid, (16, 1))).ok


def test_guard_rejects_nan_and_inf_naming_the_place():
    c = np.tile(np.tile((PIPER_LOWER + PIPER_UPPER) / 2, 2), (16, 1))
    c[3, 9] = np.nan
    v = ChunkGuard().check(c)
    assert not v.ok and v.nonfinite and 'step 3, dim 9' in v.detail
    c[3, 9] = np.inf
    assert ChunkGuard().check(c).nonfinite


def test_guard_rejects_out_of_limit_targets_but_tolerates_small_overshoot():
    c = np.tile(np.tile((PIPER_LOWER + PIPER_UPPER) / 2, 2), (16, 1))
    c[0, 2] = 0.01                       # joint3 upper limit is 0.0: inside the tolerance
    assert ChunkGuard().check(c).ok
    assert ChunkGuard().clamp(c)[0, 2] == 0.0
    c[0, 2] = 0.5
    v = ChunkGuard().check(c)
    assert not v.ok and v.out_of_limits and 'dim 2' in v.detail


def test_guard_rejects_wrong_shapes():
    assert not ChunkGuard().check(np.zeros((16, 7))).ok


def test_guard_clamps_a_gripper_closing_past_zero_but_rejects_garbage():
    # Demonstrations command exactly 0 m (fully closed); a policy overshoots by centimetres and the driver
    # clamps the command anyway: that chunk must run, clamped, not make the arms hold mid-grasp.
    c = np.tile(np.tile((PIPER_LOWER + PIPER_UPPER) / 2, 2), (16, 1))
    c[:, 13] = -0.065
    assert ChunkGuard().check(c).ok
    assert np.all(ChunkGuard().clamp(c)[:, 13] == 0.0)
    c[:, 13] = -0.2                      # beyond a whole stroke outside: not a gripper command
    v = ChunkGuard().check(c)
    assert not v.ok and v.out_of_limits and 'dim 13' in v.detail
    c[:, 13] = 0.0
    c[0, 1] = -0.065                     # arm joints keep the tight tolerance (joint2 lower limit 0 rad)
    assert not ChunkGuard().check(c).ok
