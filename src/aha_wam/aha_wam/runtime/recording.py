"""Recording episodes from the ClosedLoop: the `Recorder` hook and expert demonstrations.

The recorded action of a step is what the streamers commanded then, except with a perturbing expert
(DART-style demonstrations), whose clean plan is the label (`ExpertAgent.action_label`).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from piper_core.layout import ARMS

from aha_wam.data.episode import Episode, save_episode, task_id
from aha_wam.runtime.loop import ClosedLoop, EpisodeResult, Hook


class Recorder(Hook):
    """Collects proprio / action on the record grid and every camera frame into an `Episode`."""

    def __init__(self, record_hz: float = 50.0):
        self.record_hz = float(record_hz)
        self.episode: Episode | None = None

    def episode_start(self, loop: ClosedLoop, task: str, seed: int) -> None:
        self.loop, self.task, self.seed = loop, task, int(seed)
        self.proprio, self.actions, self.image_steps, self.images = [], [], [], []
        self.label = getattr(loop.agent, 'action_label', None)

    def frame(self, now_ns: int, image: np.ndarray) -> None:
        self.image_steps.append(int(round(now_ns * 1e-9 * self.record_hz)))
        self.images.append(image)

    def control_step(self, now_ns: int, proprio: np.ndarray, commands: np.ndarray) -> None:
        action = np.array(commands, dtype=float)
        if self.label is not None:
            labels = [self.label(arm, now_ns * 1e-9) for arm in ARMS]
            if all(lab is not None for lab in labels):
                action = np.concatenate(labels)
        self.proprio.append(np.array(proprio, dtype=float))
        self.actions.append(action)

    def episode_end(self, result: EpisodeResult) -> None:
        env, agent = self.loop.env, self.loop.agent
        meta = {'task': self.task, 'task_id': task_id(self.task), 'seed': self.seed, 'level': env.level,
                'success': result.success, 'instruction': env.instruction(), 'control_hz': self.record_hz,
                'source': type(agent).__name__, 'perturb_std': getattr(agent, 'perturb_std', 0.0)}
        self.episode = Episode(np.stack(self.proprio), np.stack(self.actions), np.array(self.image_steps),
                               np.stack(self.images), meta)


def record_expert(task: str, seed: int, *, level: str = 'clean', camera_rate: float = 25.0,
                  perturb_std: float = 0.0, perturb_prob: float = 1.0, post_success_s: float = 0.4,
                  env=None) -> tuple[EpisodeResult, Episode]:
    """One expert episode on the ClosedLoop, recorded at the policy's 50 Hz action grid."""
    from aha_wam.runtime.environment import SimEnvironment
    from aha_wam.runtime.expert_agent import ExpertAgent
    from aha_wam.runtime.schedule import LoopSchedule
    own = env is None
    env = env or SimEnvironment(task, level, seed=seed)
    recorder = Recorder(50.0)
    loop = ClosedLoop(env, ExpertAgent(perturb_std=perturb_std, perturb_prob=perturb_prob),
                      LoopSchedule(camera_rate=camera_rate, latency='modelled', source='expert recording'),
                      hooks=[recorder])
    try:
        result = loop.run_episode(task, seed, post_success_s=post_success_s, record_hz=50.0)
    finally:
        if own:
            env.close()
    return result, recorder.episode


def generate(task: str, seeds, out_dir, level: str = 'clean', camera_rate: float = 25.0, keep_failed: bool = False,
             post_success_s: float = 0.4, perturb_std: float = 0.0, perturb_prob: float = 1.0,
             log=print) -> list[Path]:
    """Expert episodes for `seeds`, saved under `out_dir` (only successful ones unless `keep_failed`)."""
    from aha_wam.runtime.environment import SimEnvironment
    seeds = [int(s) for s in seeds]
    env = SimEnvironment(task, level, seed=seeds[0])
    paths = []
    try:
        for seed in seeds:
            result, episode = record_expert(task, seed, level=level, camera_rate=camera_rate, perturb_std=perturb_std,
                                            perturb_prob=perturb_prob, post_success_s=post_success_s, env=env)
            if result.success or keep_failed:
                paths.append(save_episode(episode, out_dir))
            if log:
                log(json.dumps({'task': task, 'seed': seed, 'success': result.success, 'steps': episode.length,
                                'images': int(episode.images.shape[0]), 'wall_s': result.wall_time}))
    finally:
        env.close()
    return paths
