"""ROS-free tests of the scripted expert, plan format, harness and task specs (a few seeds per task;
the 50-episode success-rate measurement is `python -m piper_core.sim.harness --episodes 50`)."""
import numpy as np
import pytest

from piper_core.sim import BimanualPiperSim
from piper_core.sim import kinematics as kin
from piper_core.sim.expert import Plan, make_expert
from piper_core.sim.harness import execute_plan, run_episode
from piper_core.sim.tasks import TaskSpecError, load_task_spec

TASKS = ('lift_box', 'handover_cube', 'place_cube_in_bowl')


@pytest.mark.parametrize('task', TASKS)
def test_sim_expert_succeeds(task):
    sim = BimanualPiperSim(task, 'clean', seed=100)
    results = [run_episode(task, seed, sim=sim) for seed in (100, 101)]
    results.append(run_episode(task, 102, level='randomized'))
    for r in results:
        assert r.success, r
        assert r.sim_time < sim.task.spec.episode_timeout
    # headless closed loop (planning included) runs faster than real time even on a loaded 2-core box
    assert sum(r.sim_time for r in results) > sum(r.wall_time for r in results), results


def test_sim_expert_old_firmware():
    sim = BimanualPiperSim('lift_box', 'clean', seed=4, old_firmware=True)
    r = run_episode('lift_box', 4, sim=sim)
    assert r.success, r


def test_sim_plan_format_streamable():
    sim = BimanualPiperSim('handover_cube', 'clean', seed=3)
    exp = make_expert('handover_cube')
    plan = exp.next_plan(sim.scene_state())
    assert isinstance(plan, Plan) and plan.label == 'pick'
    assert plan.times[0] == 0.0 and np.all(np.diff(plan.times) > 0)
    t, q = plan.arm_trajectory('left')
    assert t[0] > 0 and np.all(np.diff(t) > 0) and q.shape == (len(t), 7)
    wps = plan.waypoints()
    assert len(wps) == len(plan) and wps[0][1].shape == (7,) and wps[0][2].shape == (7,)
    assert np.allclose(wps[0][1], sim.joint_positions('left'), atol=1e-9)
    for arm in ('left', 'right'):
        qa = plan.q[arm]
        assert np.all(qa[:, :6] >= kin.JOINT_LOWER - 1e-9) and np.all(qa[:, :6] <= kin.JOINT_UPPER + 1e-9)
        assert np.all((qa[:, 6] >= 0) & (qa[:, 6] <= 0.07))
        vel = np.abs(np.diff(qa[:, :6], axis=0)) / np.diff(plan.times)[:, None]
        assert vel.max() < kin.JOINT_SPEED_MAX, vel.max()
    mid = plan.sample(0.5 * plan.duration)
    assert set(mid) == {'left', 'right'} and mid['left'].shape == (7,)


def test_sim_expert_closed_loop_recovers_from_lost_grasp():
    """Knock the cube out of the gripper after the pick: the expert notices (gripper fully closed) and re-picks."""
    sim = BimanualPiperSim('place_cube_in_bowl', 'clean', seed=5)
    exp = make_expert('place_cube_in_bowl')
    pick = exp.next_plan(sim.scene_state())
    execute_plan(sim, pick)
    sim.step(100)
    arm = sim.task.layout.side
    assert sim.joint_positions(arm)[6] > 0.02          # holding the 4 cm cube
    a = sim._obj_qadr['cube']                           # teleport the cube back onto the table
    sim.data.qpos[a:a + 3] = (0.30, 0.15 if arm == 'left' else -0.15, 0.02)
    sim.data.qvel[sim._obj_dadr['cube']:sim._obj_dadr['cube'] + 6] = 0
    sim.step(300)
    labels = []
    while (plan := exp.next_plan(sim.scene_state())) is not None and sim.time < 30:
        labels.append(plan.label)
        execute_plan(sim, plan)
        sim.step(150)
    assert 'retry' in labels, labels
    sim.step(500)
    assert sim.task_status().success, (labels, sim.task_status())


def test_sim_expert_from_arbitrary_start_state():
    sim = BimanualPiperSim('lift_box', 'clean', seed=9)
    sim.command('left', [0.5, 1.0, -0.8, 0.3, 0.2, 0.4, 0.03])
    sim.command('right', [-0.4, 0.7, -0.5, -0.2, 0.3, -0.6, 0.0])
    sim.step(1000)
    exp = make_expert('lift_box')
    while (plan := exp.next_plan(sim.scene_state())) is not None:
        assert np.allclose(plan.q['left'][0], sim.joint_positions('left'))
        execute_plan(sim, plan)
        sim.step(150)
    assert sim.task_status().success, sim.task_status()


def test_sim_idle_is_not_success():
    sim = BimanualPiperSim('handover_cube', 'clean', seed=1)
    sim.step(500)
    st = sim.task_status()
    assert not st.success and st.stage == 'pick' and not st.timed_out


def test_sim_bad_yaml_names_file_and_field(tmp_path, monkeypatch):
    good = load_task_spec('lift_box')
    text = open(good.path).read()
    bad = tmp_path / 'lift_box.yaml'
    bad.write_text(text.replace('episode_timeout:', 'episode_timeout_typo:'))
    monkeypatch.setenv('AHA_WAM_TASKS_DIR', str(tmp_path))
    with pytest.raises(TaskSpecError, match=r'lift_box\.yaml.*episode_timeout'):
        BimanualPiperSim('lift_box')
    bad.write_text(text.replace('x: [0.22, 0.27]', 'x: [0.3, 0.1]'))
    with pytest.raises(TaskSpecError, match=r'lift_box\.yaml.*objects\.box\.x'):
        load_task_spec('lift_box')
    bad.write_text('name: lift_box\n  : [')
    with pytest.raises(TaskSpecError, match=r'lift_box\.yaml.*invalid YAML'):
        load_task_spec('lift_box')
