"""`aha-wam record --ros`: a real episode recorded from the piper_sim + trajectory_streamer nodes (separate
processes, real rclpy, DDS) into an MCAP bag that the training cache is built from."""
import subprocess
import sys

import numpy as np
import pytest

from _support import spawn_python, stop
from aha_wam.data.bag import IMAGE_TOPIC, read_bag_meta, read_episode_bag
from aha_wam.data.cache import TrainingCache

pytestmark = pytest.mark.ros


def test_record_a_live_episode_into_an_mcap_bag(tmp_path):
    sim = spawn_python('-m', 'piper_bringup.piper_sim', '--ros-args', '-p', 'task:=lift_box', '-p', 'seed:=0')
    streamer = spawn_python('-m', 'piper_bringup.trajectory_streamer')
    try:
        rec = subprocess.run([sys.executable, '-m', 'aha_wam.ros.record', '--out', str(tmp_path), '--task', 'lift_box',
                              '--episodes', '1', '--first-seed', '2', '--timeout', '12'],
                             capture_output=True, text=True, timeout=150)
    finally:
        out = stop(sim) + stop(streamer)
    assert rec.returncode == 0, rec.stdout + rec.stderr + out
    bag = tmp_path / 'bag_lift_box_000002'
    assert list(bag.glob('*.mcap')), list(bag.iterdir())
    meta = read_bag_meta(bag)
    assert meta['task'] == 'lift_box' and meta['seed'] == 2 and isinstance(meta['success'], bool)
    assert meta['instruction'].startswith('Grasp both ends')
    ep = read_episode_bag(bag, image_hw=(32, 32))
    assert ep.length > 100 and ep.images.shape[0] > 20          # seconds of 50 Hz grid, ~15 Hz camera
    assert np.abs(ep.actions[-1] - ep.actions[0]).max() > 0.1   # the expert's commands were recorded
    assert np.abs(ep.proprio[-1] - ep.proprio[0]).max() > 0.1   # and the arms moved
    cache = TrainingCache.build([ep], only_successful=False)
    assert cache.describe()['steps'] == ep.length
    assert IMAGE_TOPIC in rec.stdout
