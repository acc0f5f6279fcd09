"""`ExpertAgent`: the scripted IK expert of piper_core as a ClosedLoop agent (demonstrations, baselines).

One plan per phase, re-planned once the phase has run and settled. With ``perturb_std`` > 0 it records
DART-style demonstrations: each phase is *executed* with a smooth random joint offset (per free arm, joints
1-6, N(0, perturb_std^2) rad, a sine bump that is over before the arm's gripper closes: `_perturbation`),
while the *recorded action* is the clean plan, streamed by a shadow streamer (`action_label`). The states
then leave the expert's path and the labels steer back to it: the corrections a policy needs once its own
errors push it off the demonstrations, which clean demonstrations never show. The next phase is re-planned
from the perturbed scene, so grasp misses become expert retries. Noise is drawn from the episode seed.
"""
from __future__ import annotations

import math

import numpy as np

from piper_core.layout import ARMS, GRIPPER_INDEX, JOINT_NAMES
from piper_core.trajectory import ArmStreamer, Limits, parse_trajectory


def _trajectory(points_t, q, start_s: float, limits: Limits):
    return parse_trajectory(JOINT_NAMES, [(float(t), qi, (), ()) for t, qi in zip(points_t, q)], start_s, limits)


class ExpertAgent:
    def __init__(self, settle_s: float = 0.3, perturb_std: float = 0.0, perturb_prob: float = 1.0,
                 tick_rate: float = 50.0):
        if not (math.isfinite(perturb_std) and perturb_std >= 0):
            raise ValueError(f'perturb_std must be a finite number >= 0 (rad), got {perturb_std}')
        if not 0.0 <= perturb_prob <= 1.0:
            raise ValueError(f'perturb_prob must be in [0, 1], got {perturb_prob}')
        self.settle_s = settle_s
        self.perturb_std, self.perturb_prob = float(perturb_std), float(perturb_prob)
        self.period_ns = int(round(1e9 / tick_rate))
        self.labels: dict | None = None

    def reset(self, env, task: str, task_id: int, seed: int) -> None:
        from piper_core.sim.expert import make_expert
        self.sim, self.limits = env.sim, Limits()
        self.expert = make_expert(task, old_firmware=self.sim.old_firmware)
        self.busy_until_ns = 0
        self.next_tick_ns = 0
        self.done = False
        self.rng = np.random.default_rng([int(seed), 0xDA27])
        self.labels = None
        if self.perturb_std > 0:
            self.labels = {arm: ArmStreamer(self.limits) for arm in ARMS}
            for arm in ARMS:
                self.labels[arm].set_measured(self.sim.joint_positions(arm))

    def _perturbation(self, plan) -> dict:
        """arm -> (N, 7) joint offsets for one phase's waypoints; the gripper itself is never perturbed.

        An arm that holds something at the phase start (gripper measured between closed and open: an object
        is in it) is left alone, or the object slips and the demonstration is lost. A free arm gets a sine
        bump that starts at zero and is back to zero at 70% of the time until its gripper starts to close
        (the whole phase if it never does): the grasp itself happens where the plan puts it."""
        times, g_open = plan.times, float(self.limits.upper[GRIPPER_INDEX])
        out = {}
        for arm in ARMS:
            g = plan.q[arm][:, GRIPPER_INDEX]
            holding = 2e-3 < g[0] < g_open - 2e-3
            closing = np.flatnonzero(np.diff(g) < -1e-5)
            window = 0.7 * float(times[closing[0]] if closing.size else times[-1])
            shape = np.where(times < window, np.sin(np.pi * times / max(window, 1e-9)), 0.0)[:, None]
            delta = np.zeros(len(JOINT_NAMES))
            if not holding and window > 0.2 and self.rng.random() < self.perturb_prob:
                delta[:GRIPPER_INDEX] = self.rng.normal(0.0, self.perturb_std, GRIPPER_INDEX)
            out[arm] = shape * delta
        return out

    def action_label(self, arm: str, now_s: float) -> np.ndarray | None:
        """The clean plan's command now (what a recorded episode stores as the action); None without noise."""
        return None if self.labels is None else self.labels[arm].step(now_s)

    def advance(self, state, result, hooks) -> list:
        now = state.now_ns
        if now < self.next_tick_ns:
            return []
        self.next_tick_ns += self.period_ns
        if self.done or now < self.busy_until_ns:
            return []
        plan = self.expert.next_plan(self.sim.scene_state())
        if plan is None:
            self.done = True
            return []
        start = now * 1e-9
        trajs = {}
        noise = self._perturbation(plan) if self.labels is not None else None
        for arm in ARMS:
            t, q = plan.arm_trajectory(arm)
            if noise is not None:
                self.labels[arm].submit(_trajectory(t, q, start, self.limits), start)
                q = np.clip(q + noise[arm][1:], self.limits.lower, self.limits.upper)
            trajs[arm] = _trajectory(t, q, start, self.limits)
        self.busy_until_ns = now + int((plan.duration + self.settle_s) * 1e9)
        result.updates += 1
        return [(now, trajs)]

    def close(self) -> None:
        pass
