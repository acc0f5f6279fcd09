"""Pure unit tests (no ROS) of the streamer math and the joint_ctrl_single semantics."""
import numpy as np
import pytest

from piper_core.piper_interface import (CommandError, GRIPPER_NODE_CLAMP, JOINT_UPPER, err_code_from_flags,
                                           parse_joint_ctrl_single)
from piper_core.trajectory import ArmStreamer, Limits, TrajectoryError, parse_trajectory

J6 = ['joint1', 'joint2', 'joint3', 'joint4', 'joint5', 'joint6']
HOME = np.array([0.0, 0.5, -0.5, 0.0, 0.0, 0.0, 0.02])


def pts(*rows):
    """rows of (t, positions[, velocities]) -> parse_trajectory points."""
    return [(r[0], r[1], r[2] if len(r) > 2 else [], []) for r in rows]


def run(streamer, t0, t1, dt=0.005):
    out = []
    for i in range(int(round((t1 - t0) / dt)) + 1):
        t = round(t0 + i * dt, 9)
        out.append((t, streamer.step(t).copy()))
    return out


def make(start_q=HOME):
    s = ArmStreamer()
    s.set_measured(start_q)
    return s


# --- joint_ctrl_single semantics ---------------------------------------------------------------

def test_by_name_mapping_missing_is_zero_and_gripper_by_index():
    cmd = parse_joint_ctrl_single(['joint3', 'joint1', 'foo', 'whatever'], [-0.3, 0.2, 9.0, 0.05])
    assert np.allclose(cmd.q, [0.2, 0, -0.3, 0, 0, 0])
    assert cmd.gripper is None                            # fewer than 7 positions: no gripper command
    cmd = parse_joint_ctrl_single(['a', 'b', 'c', 'd', 'e', 'f', 'g'], [1, 1, 1, 1, 1, 1, 0.04])
    assert np.allclose(cmd.q, 0) and cmd.gripper == pytest.approx(0.04)   # by index, not by name
    assert parse_joint_ctrl_single([], [0] * 7 + [0.5], gripper_multiplier=2).gripper == pytest.approx(0.0)
    assert parse_joint_ctrl_single([], [0] * 6 + [0.03], gripper_multiplier=2).gripper == pytest.approx(0.06)
    assert parse_joint_ctrl_single([], [0] * 6 + [0.5]).gripper == pytest.approx(GRIPPER_NODE_CLAMP)
    assert parse_joint_ctrl_single([], [0] * 6 + [-0.5]).gripper == 0.0


def test_speed_percent_and_effort():
    p = [0] * 7
    assert parse_joint_ctrl_single(J6, p).speed_pct == 100
    assert parse_joint_ctrl_single(J6, p, velocity=[0] * 7).speed_pct == 100
    assert parse_joint_ctrl_single(J6, p, velocity=[0] * 6 + [30.4]).speed_pct == 30
    assert parse_joint_ctrl_single(J6, p, velocity=[1] * 6 + [0]).speed_pct == 1
    assert parse_joint_ctrl_single(J6, p, velocity=[0] * 6 + [500]).speed_pct == 100
    assert parse_joint_ctrl_single(J6, p, velocity=[0] * 6).speed_pct == 100
    assert parse_joint_ctrl_single(J6, p).gripper_effort == 1.0
    assert parse_joint_ctrl_single(J6, p, effort=[0] * 6 + [0.1]).gripper_effort == 0.5
    assert parse_joint_ctrl_single(J6, p, effort=[0] * 6 + [2.5]).gripper_effort == 2.5
    assert parse_joint_ctrl_single(J6, p, effort=[0] * 6 + [9]).gripper_effort == 3.0
    with pytest.raises(CommandError):
        parse_joint_ctrl_single(J6, [0] * 5)
    with pytest.raises(CommandError):
        parse_joint_ctrl_single(J6, [0, 0, float('nan'), 0, 0, 0])


def test_limit_flags_and_err_code():
    q = np.zeros(6)
    q[1] = JOINT_UPPER[1] + 0.1
    q[4] = -2.0
    cmd = parse_joint_ctrl_single(J6, q)
    assert cmd.over_limit().tolist() == [False, True, False, False, True, False]
    assert err_code_from_flags(cmd.over_limit()) == 0b10010


# --- validation ----------------------------------------------------------------------------------

@pytest.mark.parametrize('names,points,why', [
    ([], pts((1, [])), 'no joint_names'),
    (['joint1', 'joint1'], pts((1, [0, 0])), 'duplicate'),
    (['joint9'], pts((1, [0])), 'unknown'),
    (['joint1'], [], 'no points'),
    (['joint1'], pts((1, [0, 0])), 'positions for'),
    (['joint1'], pts((1, [0]), (1, [0.1])), 'strictly increasing'),
    (['joint1'], pts((1, [0]), (0.5, [0.1])), 'strictly increasing'),
    (['joint1'], pts((-1, [0])), 'negative'),
    (['joint1'], pts((1, [float('nan')])), 'non-finite'),
    (['joint2'], pts((1, [-0.5])), 'outside limits'),
    (['joint1'], pts((1, [0], [0]), (2, [0])), 'velocities'),
])
def test_malformed_rejected(names, points, why):
    with pytest.raises(TrajectoryError, match=why):
        parse_trajectory(names, points, 0.0, Limits())


def test_within_tolerance_clamped_and_velocity_ratio():
    tr = parse_trajectory(['joint2'], pts((1, [-0.01])), 0.0, Limits())
    assert tr.pos[0, 0] == 0.0
    tr = parse_trajectory(['joint1'], pts((0.0, [0.0]), (0.1, [1.0])), 0.0, Limits())
    assert tr.peak_velocity_ratio == pytest.approx(1.0 / 0.1 / 3.0)


# --- streaming -----------------------------------------------------------------------------------

def test_linear_interpolation_from_desired_state_and_hold():
    s = make()
    tr = parse_trajectory(J6, pts((1.0, [0.5, 0.5, -0.5, 0, 0, 0]), (2.0, [0.5, 1.0, -0.5, 0, 0, 0])), 10.0, Limits())
    s.submit(tr, now=9.0)
    out = dict((round(t, 3), q) for t, q in run(s, 9.0, 13.0))
    assert np.allclose(out[9.5], HOME)                      # before start: hold
    assert out[10.5][0] == pytest.approx(0.25, abs=1e-6)    # pre-segment from desired state
    assert out[11.0][0] == pytest.approx(0.5, abs=1e-6)
    assert out[11.5][1] == pytest.approx(0.75, abs=1e-6)
    assert np.allclose(out[13.0][:6], [0.5, 1.0, -0.5, 0, 0, 0]) and out[13.0][6] == pytest.approx(0.02)
    assert not s.busy


def test_cubic_with_velocities_passes_through_points():
    s = make()
    tr = parse_trajectory(['joint1'], pts((0.5, [0.3], [0.5]), (1.0, [0.5], [0.0])), 0.0, Limits())
    start = s.submit(tr, now=1.0)
    out = dict((round(t, 3), q) for t, q in run(s, 1.0, 2.5))
    assert out[round(start + 0.5, 3)][0] == pytest.approx(0.3, abs=1e-6)
    assert out[round(start + 1.0, 3)][0] == pytest.approx(0.5, abs=1e-6)
    mid = out[round(start + 0.75, 3)][0]
    assert 0.3 < mid < 0.5


def test_replacement_from_start_time():
    s = make()
    a = parse_trajectory(['joint1'], pts((2.0, [1.0])), 10.0, Limits())     # 0 -> 1 rad over 10..12
    b = parse_trajectory(['joint1'], pts((1.0, [-1.0])), 11.0, Limits())    # replaces from t = 11
    s.submit(a, now=9.0)
    s.submit(b, now=9.5)
    out = dict((round(t, 3), q[0]) for t, q in run(s, 9.0, 13.0))
    assert out[10.5] == pytest.approx(0.25, abs=1e-6)       # old one runs until 11
    assert out[11.0] == pytest.approx(0.5, abs=1e-6)
    assert out[11.5] == pytest.approx(-0.25, abs=1e-6)      # new one from 0.5 at 11 to -1 at 12
    assert out[13.0] == pytest.approx(-1.0, abs=1e-6)
    # a later submission starting earlier drops queued ones starting after it
    c = parse_trajectory(['joint1'], pts((1.0, [0.3])), 20.0, Limits())
    d = parse_trajectory(['joint1'], pts((1.0, [0.6])), 19.0, Limits())
    s.submit(c, now=13.0)
    s.submit(d, now=13.0)
    out = dict((round(t, 3), q[0]) for t, q in run(s, 13.0, 22.0))
    assert out[22.0] == pytest.approx(0.6, abs=1e-6)


def test_already_over_rejected_and_not_initialized():
    s = make()
    with pytest.raises(TrajectoryError, match='already over'):
        s.submit(parse_trajectory(['joint1'], pts((1.0, [0.1])), 5.0, Limits()), now=10.0)
    with pytest.raises(TrajectoryError, match='no joint state'):
        ArmStreamer().submit(parse_trajectory(['joint1'], pts((1.0, [0.1])), 0.0, Limits()), now=1.0)
    assert ArmStreamer().step(1.0) is None


def test_velocity_and_position_limits_enforced():
    s = make()
    tr = parse_trajectory(['joint1', 'gripper'], pts((0.0, [0.0, 0.02]), (0.1, [2.0, 0.07])), 0.0, Limits())
    assert tr.peak_velocity_ratio > 1
    s.submit(tr, now=0.0)
    out = run(s, 0.0, 1.5)
    q = np.array([o[1] for o in out])
    dq = np.abs(np.diff(q, axis=0)) / 0.005
    assert dq[:, 0].max() <= 3.0 + 1e-6 and dq[:, 6].max() <= 0.1 + 1e-6
    assert q[-1][0] == pytest.approx(2.0) and q[-1][6] == pytest.approx(0.07)
    assert np.all(q[:, 0] <= 2.618)


def test_two_arms_same_stamp_in_step():
    a, b = make(), make()
    for s in (a, b):
        s.submit(parse_trajectory(['joint1'], pts((1.0, [0.5])), 3.0, Limits()), now=1.0)
    qa = [q[0] for _, q in run(a, 1.0, 5.0)]
    qb = [q[0] for _, q in run(b, 1.0, 5.0)]
    assert np.allclose(qa, qb)
