"""Expert demonstrations from the ROS-free closed loop (faster than real time): the fast path to training data.

The episodes are recorded by the same loop that evaluates policies (`aha_wam.eval.harness`), with the
scripted IK expert as controller (optionally perturbed, DART-style); only successful ones are kept by default.
"""
from __future__ import annotations

import json
from pathlib import Path

from aha_wam.data.episode import save_episode


def generate(task: str, seeds, out_dir, level: str = 'clean', camera_every: int = 2, keep_failed: bool = False,
             post_success_s: float = 0.4, perturb_std: float = 0.0, perturb_prob: float = 1.0,
             log=print) -> list[Path]:
    """Expert episodes for `seeds`, saved under `out_dir`. ``perturb_std`` > 0 records DART-style episodes
    (execution perturbed, actions labelled with the clean plan: see `ExpertController`)."""
    from piper_core.sim.bimanual import BimanualPiperSim
    from aha_wam.eval.harness import ExpertController, Schedule, run_episode
    seeds = [int(s) for s in seeds]
    sim = BimanualPiperSim(task, level, seed=seeds[0])
    schedule = Schedule(camera_every=camera_every)
    expert = ExpertController(perturb_std=perturb_std, perturb_prob=perturb_prob)
    paths = []
    try:
        for seed in seeds:
            result, episode = run_episode(sim, expert, task, seed, schedule, record=True,
                                          post_success_s=post_success_s)
            if result.success or keep_failed:
                paths.append(save_episode(episode, out_dir))
            if log:
                log(json.dumps({'task': task, 'seed': seed, 'success': result.success, 'steps': episode.length,
                                'images': int(episode.images.shape[0]), 'wall_s': result.wall_time}))
    finally:
        sim.close()
    return paths
