"""Synthetic bags and checkpoints with known content for the offline-evaluation tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from aha_wam.data.topic_map import TopicMap
from aha_wam.runtime.safety import PIPER_UPPER

PERIOD_NS = 20_000_000            # 50 Hz control grid
T0_NS = 1_700_000_000 * 10**9     # epoch-like start: the replay must rebase it
P14 = np.tile(PIPER_UPPER, 2)     # the pose the clamped policy commands (every joint at its upper limit)
SLOPE = np.array([0.001, 0.0, 0.0005, 0.0, 0.0, 0.002, 0.0] * 2)      # recorded-command drift per step
OFFSET = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.0])
GRIPPER_CLOSE_STEP = 50           # recorded gripper command 0.07 m before, 0.0 m from this step on


def recorded_command(k: int) -> np.ndarray:
    a = P14 - OFFSET - SLOPE * k
    if k >= GRIPPER_CLOSE_STEP:
        a[[6, 13]] = 0.0
    return a


def write_bag(path, steps: int = 100, image_every: int = 3, topics: dict | None = None, storage: str = 'mcap',
              joint_names=('joint1', 'joint2', 'joint3', 'joint4', 'joint5', 'joint6', 'gripper'),
              skip_roles=(), types: dict | None = None, no_messages: bool = False, hw=(24, 32),
              meta: dict | None = None, proprio=None) -> Path:
    """Images every `image_every` steps, joint states (= P14) and commands (`recorded_command`) every step,
    all exactly on the 50 Hz grid from T0_NS; topic names from `topics` (role -> topic, default ours)."""
    import json
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore
    ts = get_typestore(Stores.ROS2_HUMBLE)
    T = ts.types
    roles = {r: t for r, t in TopicMap().topics.items() if not r.startswith('leader_')}
    roles.update({r: t for r, t in (topics or {}).items() if not r.startswith('leader_') or t})
    kinds = {'image': 'sensor_msgs/msg/Image', 'instruction': 'std_msgs/msg/String',
             'task_status': 'std_msgs/msg/String', **{r: 'sensor_msgs/msg/JointState' for r in
                                                      ('joint_states_left', 'joint_states_right', 'commands_left',
                                                       'commands_right', 'leader_left', 'leader_right')}}
    kinds.update(types or {})
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    w = Writer(Path(path), version=9, storage_plugin=plugin)
    w.open()
    conns = {r: w.add_connection(roles[r], kinds[r], typestore=ts) for r in roles if roles[r] and r not in skip_roles}

    def header(ns):
        return T['std_msgs/msg/Header'](stamp=T['builtin_interfaces/msg/Time'](sec=ns // 10**9, nanosec=ns % 10**9),
                                        frame_id='')

    def put(role, msg, ns):
        if role in conns:
            w.write(conns[role], ns, ts.serialize_cdr(msg, kinds[role]))

    rng = np.random.default_rng(0)
    state = P14 if proprio is None else np.asarray(proprio, np.float64)
    if not no_messages:
        put('instruction', T['std_msgs/msg/String'](data='lift the box'), T0_NS)
        for k in range(steps):
            ns = T0_NS + k * PERIOD_NS
            if k % image_every == 0 and kinds['image'] == 'sensor_msgs/msg/Image':
                img = rng.integers(0, 255, (*hw, 3), dtype=np.uint8)
                put('image', T['sensor_msgs/msg/Image'](header=header(ns), height=hw[0], width=hw[1], encoding='rgb8',
                                                        is_bigendian=0, step=3 * hw[1], data=img.reshape(-1)), ns)
            for i, arm in enumerate(('left', 'right')):
                for role, q in ((f'joint_states_{arm}', state[7 * i:7 * i + 7]),
                                (f'commands_{arm}', recorded_command(k)[7 * i:7 * i + 7])):
                    if kinds[role] != 'sensor_msgs/msg/JointState':
                        put(role, T['std_msgs/msg/String'](data='x'), ns)
                        continue
                    put(role, T['sensor_msgs/msg/JointState'](
                        header=header(ns), name=list(joint_names), position=np.asarray(q, np.float64),
                        velocity=np.zeros(0), effort=np.zeros(0)), ns)
        put('task_status', T['std_msgs/msg/String'](data=json.dumps({'success': True})), T0_NS + steps * PERIOD_NS)
    if meta is not None:
        w.set_custom_data('aha_wam.episode', json.dumps(meta))
    w.close()
    return Path(path)


def clamped_checkpoint(directory) -> str:
    """A real tiny AhaWamPolicy whose every action lands exactly on P14: the action mean sits 0.01 beyond each
    upper limit (inside the guard's 0.02 tolerance) with a 1e-4 spread, so the executor's ChunkGuard clamps
    every predicted action to the limit. Planner, executor, schedule and streamer all run for real."""
    import torch
    from aha_wam.checkpoint import save_checkpoint
    from aha_wam.config import get_config
    from aha_wam.policy import AhaWamPolicy
    torch.manual_seed(0)
    policy = AhaWamPolicy(get_config('tiny'))
    policy.normalizer.set_stats({'state_mean': P14, 'state_std': np.ones(14), 'action_mean': P14 + 0.01,
                                 'action_std': np.full(14, 1e-4)})
    return str(save_checkpoint(policy, Path(directory) / 'clamped', data='offline test: every action clamped to P14'))
