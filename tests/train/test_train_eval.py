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
    from piper_bringup.sim.bimanual import BimanualPiperSim
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
