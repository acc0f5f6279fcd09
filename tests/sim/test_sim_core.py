"""ROS-free tests of the bimanual Piper simulator core: FK agreement, MOVE J semantics, limits, enable."""
import numpy as np
import pytest

from piper_core.sim import ARMS, JOINT_NAMES, BimanualPiperSim
from piper_core.sim import kinematics as kin


@pytest.fixture(scope='module')
def sim():
    s = BimanualPiperSim('lift_box', 'clean', seed=0)
    yield s
    s.close()


@pytest.mark.parametrize('old_firmware', [False, True])
def test_sim_mjcf_fk_matches_modified_dh(old_firmware):
    """Flange site of the MJCF (built from URDF origins) vs modified-DH FK at 50 random configurations: < 1 mm."""
    import mujoco
    s = BimanualPiperSim('lift_box', 'clean', seed=0, old_firmware=old_firmware)
    rng = np.random.default_rng(42)
    worst_pos, worst_rot = 0.0, 0.0
    for _ in range(50):
        for k, arm in enumerate(ARMS):
            q = rng.uniform(kin.JOINT_LOWER, kin.JOINT_UPPER)
            s.data.qpos[s._qadr[k, :6]] = q
            mujoco.mj_kinematics(s.model, s.data)
            pos, quat = s.end_pose(arm)
            T = kin.fk(q, old_firmware)
            worst_pos = max(worst_pos, float(np.linalg.norm(pos - T[:3, 3])))
            worst_rot = max(worst_rot, float(np.linalg.norm(kin.rotation_error(T[:3, :3], kin.quat_xyzw_to_mat(quat)))))
    assert worst_pos < 1e-3, f'max flange position error {worst_pos * 1e3:.3f} mm'
    assert worst_rot < 2e-3, f'max flange orientation error {worst_rot:.4f} rad'


def test_sim_home_pose_matches_notes(sim):
    sim.reset(0)
    pos, _ = sim.end_pose('left')
    assert np.allclose(pos, [0.0561, 0.0, 0.2133], atol=1e-3)   # notes §5: q = 0 -> (56.1, 0, 213.3) mm
    assert np.allclose(sim.joint_positions('right'), 0.0, atol=1e-6)
    assert JOINT_NAMES == ('joint1', 'joint2', 'joint3', 'joint4', 'joint5', 'joint6')


def test_sim_move_j_speed_and_tracking(sim):
    sim.reset(0)
    target = np.array([0.6, 1.2, -1.0, 0.3, 0.4, -0.5, 0.05])
    assert sim.command('left', target, speed_pct=50.0)
    # 50 % of 3 rad/s: a 1.2 rad move of joint2 needs >= 0.8 s
    sim.step(int(0.4 / sim.physics_dt))
    q = sim.joint_positions('left')
    assert q[1] < 0.75, q
    assert np.max(np.abs(sim.joint_velocities('left'))) < 1.5 * 1.15
    sim.step(int(1.6 / sim.physics_dt))
    q = sim.joint_positions('left')
    assert np.allclose(q[:6], target[:6], atol=0.01), q
    assert abs(q[6] - 0.05) < 2e-3
    assert np.allclose(sim.joint_positions('right'), 0.0, atol=0.01)   # the other arm holds
    pos, quat = sim.end_pose('left')
    T = kin.fk(q[:6])
    assert np.linalg.norm(pos - T[:3, 3]) < 1e-3
    assert abs(np.linalg.norm(quat) - 1) < 1e-9 and quat.shape == (4,)
    assert sim.joint_efforts('left').shape == (7,) and sim.joint_velocities('left').shape == (6,)


def test_sim_limits_clamped_and_reported(sim):
    sim.reset(0)
    assert sim.command('right', [0.0, 3.5, 0.2, 0.0, 0.0, 0.0, 0.1]) is False
    assert list(sim.limit_flags('right')) == [False, True, True, False, False, False]
    assert np.allclose(sim.commanded_positions('right'), [0.0, 3.14, 0.0, 0.0, 0.0, 0.0, 0.07])
    assert sim.command('right', [0.1, 0.2, -0.2, 0, 0, 0, 0.0]) is True
    assert not sim.limit_flags('right').any()
    with pytest.raises(ValueError):
        sim.command('middle', np.zeros(7))
    with pytest.raises(ValueError):
        sim.command('left', [np.nan] * 7)


def test_sim_disable_goes_limp_and_ignores_commands(sim):
    sim.reset(0)
    sim.command('left', [0.0, 1.5, -0.6, 0.0, 0.0, 0.0, 0.0])
    sim.step(1000)
    z_before = sim.end_pose('left')[0][2]
    sim.set_enabled('left', False)
    assert not sim.enabled('left')
    sim.command('left', [0.0, 1.0, -1.0, 0.0, 0.0, 0.0, 0.0])
    sim.step(750)
    z_after = sim.end_pose('left')[0][2]
    assert z_after < z_before - 0.05, (z_before, z_after)    # dropped under gravity
    sim.set_enabled('left', True)                              # re-enable holds where it is
    q0 = sim.joint_positions('left')
    sim.step(250)
    assert np.allclose(sim.joint_positions('left')[:6], q0[:6], atol=0.03)


def test_sim_render_and_status(sim):
    sim.reset(0)
    img = sim.render()
    assert img.shape == (96, 96, 3) and img.dtype == np.uint8 and img.std() > 5
    st = sim.task_status()
    assert st.success is False and isinstance(st.stage, str)
    assert 'box' in sim.instruction()


def test_sim_seeded_layout_reproducible():
    a = BimanualPiperSim('place_cube_in_bowl', 'randomized', seed=7)
    b = BimanualPiperSim('place_cube_in_bowl', 'randomized', seed=7)
    for n in a.object_names:
        assert np.allclose(a.object_pos(n), b.object_pos(n))
        assert np.allclose(a.object_quat(n), b.object_quat(n))
    a.reset(8)
    moved = any(not np.allclose(a.object_pos(n), b.object_pos(n)) for n in a.object_names)
    assert moved
    a.reset(7)
    for n in a.object_names:
        assert np.allclose(a.object_pos(n), b.object_pos(n))


def test_sim_unknown_task_lists_known():
    with pytest.raises(ValueError, match='known tasks: .*handover_cube.*lift_box.*place_cube_in_bowl'):
        BimanualPiperSim('juggle')
    with pytest.raises(ValueError, match='level'):
        BimanualPiperSim('lift_box', level='hard')


def test_sim_gripper_effort_and_speed_pct(sim):
    sim.reset(0)
    sim.command('left', [0, 0, 0, 0, 0, 0, 0.07], gripper_effort=2.0)
    fa = sim._act[0, 6]
    assert np.allclose(sim.model.actuator_forcerange[fa], [-20.0, 20.0])
    sim.step(250)                                   # 0.5 s at 0.2 m/s: fully open
    assert abs(sim.joint_positions('left')[6] - 0.07) < 2e-3
    sim.command('right', [1.0, 0, 0, 0, 0, 0, 0], speed_pct=10.0)   # 0.3 rad/s
    sim.step(500)
    assert 0.2 < sim.joint_positions('right')[0] < 0.4
