"""The ClosedLoop: the scripted expert scored by it, reproducibility for a fixed seed (modelled latency),
the deployed schedule read from the node YAMLs, DART-style demonstrations recorded by it."""
import dataclasses

import numpy as np
import pytest
import torch

from aha_wam.runtime.environment import SimEnvironment
from aha_wam.runtime.expert_agent import ExpertAgent
from aha_wam.runtime.loop import ClosedLoop, wilson_interval
from aha_wam.runtime.recording import Recorder
from aha_wam.runtime.schedule import LoopSchedule


def test_wilson_interval():
    lo, hi = wilson_interval(40, 50)
    assert lo == pytest.approx(0.6696, abs=1e-3) and hi == pytest.approx(0.8875, abs=1e-3)
    assert wilson_interval(0, 10)[0] == pytest.approx(0.0) and wilson_interval(10, 10)[1] == pytest.approx(1.0)


def test_deployed_schedule_comes_from_the_node_yamls(tmp_path):
    import shutil
    from aha_wam.runtime.schedule import config_directory
    s = LoopSchedule.deployed()
    assert (s.control_rate, s.refresh_rate, s.stream_rate, s.latency) == (20.0, 2.0, 200.0, 'measured')
    cfg = tmp_path / 'config'
    shutil.copytree(config_directory(), cfg)
    text = (cfg / 'executor.yaml').read_text().replace('control_rate: 20.0', 'control_rate: 25.0')
    (cfg / 'executor.yaml').write_text(text)
    assert LoopSchedule.deployed(cfg).control_rate == 25.0
    from aha_wam.runtime.schedule import deployed_executor_options
    assert deployed_executor_options() == {'execute_actions': 0}
    text = text.replace('execute_actions: 0', 'execute_actions: 8')
    (cfg / 'executor.yaml').write_text(text)
    assert deployed_executor_options(cfg) == {'execute_actions': 8}     # what eval-sim gives ExecutorOptions
    (cfg / 'planner.yaml').write_text('planner: [')
    with pytest.raises(ValueError, match='planner.yaml'):
        LoopSchedule.deployed(cfg)


def test_scripted_expert_scored_by_the_same_loop():
    from aha_wam.eval.run import evaluate
    report = evaluate(ExpertAgent, ['lift_box', 'place_cube_in_bowl', 'handover_cube'], [0, 1],
                      LoopSchedule.deployed(latency='modelled'))
    ok = sum(r['successes'] for r in report.values())
    n = sum(r['episodes'] for r in report.values())
    assert ok / n >= 0.95, report


def test_policy_episode_is_reproducible_for_a_seed_with_modelled_latency(tiny_checkpoint):
    from aha_wam.eval.run import PolicyAgentFactory, Variant
    torch.set_num_threads(1)
    schedule = LoopSchedule.deployed(latency='modelled', refresh_rate=5.0)
    make = PolicyAgentFactory(Variant('full', 'test', str(tiny_checkpoint), 2), schedule)
    env = SimEnvironment('lift_box', 'clean', seed=3)
    runs = []
    try:
        for _ in range(2):
            agent, recorder = make(), Recorder(50.0)
            loop = ClosedLoop(env, agent, schedule, hooks=[recorder], task_ids=make.task_ids)
            result = loop.run_episode('lift_box', 3, timeout_s=0.8, record_hz=50.0)
            agent.close()
            runs.append((result, recorder.episode))
    finally:
        env.close()
    (r0, e0), (r1, e1) = runs
    assert r0.updates == r1.updates >= 14 and r0.refreshes == r1.refreshes >= 3   # 20 Hz, 5 Hz for 0.8 s
    assert r0.phase_offsets == r1.phase_offsets and r0.delays == r1.delays
    assert max(r0.phase_offsets) > 0                     # the executor ran on stale contexts (async schedule)
    np.testing.assert_array_equal(e0.actions, e1.actions)
    np.testing.assert_array_equal(e0.proprio, e1.proprio)
    assert np.abs(np.diff(e0.actions, axis=0)).max() > 0   # the policy's chunks actually moved the arms


def test_ablations_are_options_not_model_edits(tiny_checkpoint):
    from aha_wam.eval.run import PolicyAgentFactory, variant
    schedule = LoopSchedule.deployed(latency='modelled')
    for name, check in (('no-memory', lambda a: a.planner.memory.max_entries == 0),
                        ('no-offset', lambda a: a.executor.options.zero_offset),
                        ('no-ovcr', lambda a: a.executor.options.ovcr is False)):
        v = variant(name, str(tiny_checkpoint), None, 2)
        make = PolicyAgentFactory(v, dataclasses.replace(schedule, **v.schedule))
        agent = make()
        try:
            assert check(agent), name
            assert make.policy.executor.ovcr is not None       # the model itself is untouched
        finally:
            agent.close()
    assert variant('synchronous', str(tiny_checkpoint), None, 2).schedule == {'synchronous': True}


def test_perturbed_expert_executes_noise_but_labels_the_clean_plan():
    """DART-style demos: within the first phase (planned from the same start state either way) the recorded
    actions are the clean plan's, while the measured joints are pushed off it; same seed, same episode."""
    from piper_core.sim.expert import make_expert
    env = SimEnvironment('lift_box', 'clean', seed=5)
    try:
        env.reset(5)
        first_phase_s = make_expert('lift_box').next_plan(env.sim.scene_state()).duration
        horizon = min(first_phase_s, 1.5)
        schedule = LoopSchedule(camera_rate=5.0, latency='modelled')
        episodes = {}
        for name, std in (('clean', 0.0), ('noisy', 0.08), ('again', 0.08)):
            recorder = Recorder(50.0)
            ClosedLoop(env, ExpertAgent(perturb_std=std), schedule, hooks=[recorder]).run_episode(
                'lift_box', 5, timeout_s=horizon, record_hz=50.0)
            episodes[name] = recorder.episode
    finally:
        env.close()
    clean, noisy, again = episodes['clean'], episodes['noisy'], episodes['again']
    n = min(len(clean.actions), len(noisy.actions))
    assert n >= 0.8 * horizon * 50
    np.testing.assert_allclose(noisy.actions[:n], clean.actions[:n], atol=1e-9)       # labels: the clean plan
    off_path = np.abs(noisy.proprio[:n, :6] - clean.proprio[:n, :6]).max()
    assert off_path > 0.02, off_path                                                     # execution: perturbed
    assert noisy.meta['perturb_std'] == 0.08 and clean.meta['perturb_std'] == 0.0
    np.testing.assert_array_equal(noisy.proprio, again.proprio)                          # seeded noise
    with pytest.raises(ValueError, match='perturb_std'):
        ExpertAgent(perturb_std=-0.1)
    with pytest.raises(ValueError, match='perturb_prob'):
        ExpertAgent(perturb_std=0.1, perturb_prob=1.5)
