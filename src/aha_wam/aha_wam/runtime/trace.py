"""Executor traces: every tick's inputs and outputs, to replay a node's own stream through a fresh session.

The executor node (parameter `trace_dir`) writes, per control tick: the descriptors offered since the last
tick, the observation, the ROS time, every reading of the stage clock, and the fault flags and commands the
session returned. `replay_trace` feeds the same inputs, with the same clock readings, to a new
`ExecutorSession` through the ClosedLoop's `PolicyAgent` code path and returns what it decides, so a test
can check that the node runs the session and nothing else (identical commands and fault flags).

Format (no pickle): `ticks.jsonl` (one JSON object per tick) + `arrays.npz` (images, proprio, payloads).
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from aha_wam.context.channel import Rejection
from aha_wam.context.descriptor import ContextDescriptor
from aha_wam.runtime.executor_session import ExecutorOptions, ExecutorSession, Observation


class TraceWriter:
    def __init__(self, directory, options: ExecutorOptions):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._readings: list[int] = []
        self._arrays: dict[str, np.ndarray] = {}
        self._ticks = open(self.dir / 'ticks.jsonl', 'w')
        (self.dir / 'options.json').write_text(json.dumps(_options_dict(options)))
        self._n = 0

    def _encode(self, descriptor) -> dict:
        if isinstance(descriptor, Rejection):
            return {'rejection': [descriptor.reason, descriptor.detail]}
        d = dataclasses.asdict(dataclasses.replace(descriptor, payload=None))
        if descriptor.payload is not None:
            key = f'payload_{len(self._arrays)}'
            self._arrays[key] = np.frombuffer(memoryview(descriptor.payload).cast('B'), np.uint8).copy()
            d['payload'] = key
        return {'descriptor': d}

    def clock(self):
        """The stage clock for this tick: monotonic time, every reading kept."""
        self._readings = []

        def read() -> int:
            t = time.monotonic_ns()
            self._readings.append(t)
            return t
        return read

    def reset(self, **kwargs) -> None:
        """Record an episode reset of the session (its keyword arguments, replayed at the same place)."""
        self._ticks.write(json.dumps({'reset': kwargs}) + '\n')
        self._ticks.flush()

    def tick(self, obs: Observation | None, now_ns: int, update, delivered=()) -> None:
        """Record one tick: `delivered` = the descriptors the session examined in it (session.delivered)."""
        offered = [self._encode(d) for d in delivered]
        k = self._n
        self._n += 1
        rec = {'tick': k, 'now_ns': int(now_ns), 'clock': list(self._readings), 'offered': offered,
               'faults': int(update.faults), 'kind': update.kind, 'commands': _commands_dict(update.commands)}
        if obs is not None:
            rec['obs'] = {'image_stamp_ns': int(obs.image_stamp_ns), 'joint_stamps_ns': list(obs.joint_stamps_ns),
                          'image': obs.image is not None, 'proprio': obs.proprio is not None}
            if obs.image is not None:
                self._arrays[f'image_{k}'] = obs.image
            if obs.proprio is not None:
                self._arrays[f'proprio_{k}'] = np.asarray(obs.proprio)
        self._ticks.write(json.dumps(rec) + '\n')
        self._ticks.flush()

    def close(self) -> None:
        self._ticks.close()
        np.savez(self.dir / 'arrays.npz', **self._arrays)


def _options_dict(o: ExecutorOptions) -> dict:
    task = o.task if isinstance(o.task, int) else np.asarray(o.task, dtype=np.float32).tolist()  # instruction tokens
    d = dataclasses.asdict(dataclasses.replace(o, task=0))
    d['task'] = task
    return d


def _commands_dict(commands) -> dict | None:
    if commands is None:
        return None
    return {arm: {'start_ns': int(c.start_ns), 'times_s': np.asarray(c.times_s).tolist(),
                  'positions': np.asarray(c.positions).tolist()} for arm, c in commands.items()}


def read_trace(directory) -> tuple[dict, list[dict], dict]:
    d = Path(directory)
    ticks = [json.loads(line) for line in (d / 'ticks.jsonl').read_text().splitlines() if line.strip()]
    with np.load(d / 'arrays.npz', allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return json.loads((d / 'options.json').read_text()), ticks, arrays


def options_from(d: dict) -> ExecutorOptions:
    from aha_wam.runtime.executor_session import Freshness
    d = dict(d)
    d['freshness'] = Freshness(**d['freshness'])
    if not isinstance(d['task'], int):
        import torch
        d['task'] = torch.tensor(d['task'])
    return ExecutorOptions(**d)


class _ReplayClock:
    def __init__(self, readings):
        self._r, self._i = list(readings), 0

    def __call__(self) -> int:
        t = self._r[min(self._i, len(self._r) - 1)]
        self._i += 1
        return t


def replay_trace(directory, session: ExecutorSession) -> list[dict]:
    """Feed a node's trace to `session` tick by tick (and its resets where they happened); returns per tick
    {'faults', 'kind', 'commands'}."""
    _, ticks, arrays = read_trace(directory)
    out = []
    for rec in ticks:
        if 'reset' in rec:
            session.reset(**rec['reset'])
            continue
        for item in rec['offered']:
            if 'rejection' in item:
                session.offer(Rejection(*item['rejection']))
                continue
            fields = dict(item['descriptor'])
            if fields.get('payload'):
                fields['payload'] = arrays[fields['payload']].tobytes()
            session.offer(ContextDescriptor(**fields))
        o = rec.get('obs')
        obs = None
        if o is not None:
            k = rec['tick']
            obs = Observation(image=arrays.get(f'image_{k}') if o['image'] else None,
                              image_stamp_ns=o['image_stamp_ns'],
                              proprio=arrays.get(f'proprio_{k}') if o['proprio'] else None,
                              joint_stamps_ns=tuple(o['joint_stamps_ns']))
        update = session.step(obs, now_ns=rec['now_ns'], clock_ns=_ReplayClock(rec['clock']))
        out.append({'faults': int(update.faults), 'kind': update.kind, 'commands': _commands_dict(update.commands)})
    return out
