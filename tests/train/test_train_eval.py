"""Closed-loop evaluation harness: the scripted expert scored by it, reproducibility for a fixed seed."""
import numpy as np
import pytest
import torch

from aha_wam.eval.harness import ExpertController, PolicyController, Schedule, evaluate, run_episode, wilson_interval


def test_wilson_interval():
    lo, hi = wilson_interval(40, 50)
    assert lo == pytest.approx(0.6696, abs=1e-3) and hi == pytest.approx(0.8875, abs=1e-3)
    assert wilson_interval(0, 10)[0] == pytest.approx(0.0) and wilson_interval(10, 10)[1] == pytest.approx(1.0)


def test_scripted_expert_scored_by_the_same_harness():
    report = evaluate(ExpertController, ['lift_box', 'place_cube_in_bowl', 'handover_cube'], [0, 1])
    ok = sum(r['successes'] for r in report.values())
    n = sum(r['episodes'] for r in report.values())
    assert ok / n >= 0.95, report


def test_policy_episode_is_reproducible_for_a_seed(tiny_checkpoint):
    from piper_core.sim.bimanual import BimanualPiperSim
    from aha_wam.checkpoint import load_checkpoint
    torch.set_num_threads(1)
    policy, _ = load_checkpoint(tiny_checkpoint)
    schedule = Schedule(planner_every=10)
    sim = BimanualPiperSim('lift_box', 'clean', seed=3)
    runs = []
    for _ in range(2):
        controller = PolicyController(policy, steps=2, schedule=schedule)
        result, episode = run_episode(sim, controller, 'lift_box', 3, schedule, record=True, timeout_s=0.8)
        controller.close()
        runs.append((result, episode))
    (r0, e0), (r1, e1) = runs
    assert r0.updates == r1.updates > 5 and r0.refreshes == r1.refreshes >= 3
    assert r0.phase_offsets == r1.phase_offsets and r0.delays == r1.delays
    assert max(r0.phase_offsets) > 0                     # the executor ran on stale contexts (async schedule)
    np.testing.assert_array_equal(e0.actions, e1.actions)
    np.testing.assert_array_equal(e0.proprio, e1.proprio)
    assert np.abs(np.diff(e0.actions, axis=0)).max() > 0   # the policy's chunks actually moved the arms
    sim.close()


def test_perturbed_expert_executes_noise_but_labels_the_clean_plan():
    """DART-style demos: within the first phase (planned from the same start state either way) the recorded
    actions are the clean plan's, while the measured joints are pushed off it; same seed, same episode."""
    from piper_core.sim.bimanual import BimanualPiperSim
    from piper_core.sim.expert import make_expert
    sim = BimanualPiperSim('lift_box', 'clean', seed=5)
    try:
        sim.reset(5)
        first_phase_s = make_expert('lift_box').next_plan(sim.scene_state()).duration
        horizon = min(first_phase_s, 1.5)
        schedule = Schedule(camera_every=10)
        episodes = {}
        for name, std in (('clean', 0.0), ('noisy', 0.08), ('again', 0.08)):
            _, episodes[name] = run_episode(sim, ExpertController(perturb_std=std), 'lift_box', 5, schedule,
                                            record=True, timeout_s=horizon)
    finally:
        sim.close()
    clean, noisy, again = episodes['clean'], episodes['noisy'], episodes['again']
    n = min(len(clean.actions), len(noisy.actions))
    assert n >= 0.8 * horizon * 50
    np.testing.assert_allclose(noisy.actions[:n], clean.actions[:n], atol=1e-9)       # labels: the clean plan
    off_path = np.abs(noisy.proprio[:n, :6] - clean.proprio[:n, :6]).max()
    assert off_path > 0.02, off_path                                                     # execution: perturbed
    assert noisy.meta['perturb_std'] == 0.08 and clean.meta['perturb_std'] == 0.0
    np.testing.assert_array_equal(noisy.proprio, again.proprio)                          # seeded noise
    with pytest.raises(ValueError, match='perturb_std'):
        ExpertController(perturb_std=-0.1)
    with pytest.raises(ValueError, match='perturb_prob'):
        ExpertController(perturb_std=0.1, perturb_prob=1.5)
