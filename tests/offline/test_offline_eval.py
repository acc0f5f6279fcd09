"""eval-bag end to end: exact metrics on a synthetic bag, renamed topics + sqlite3, report files, determinism,
and internal consistency with an untrained tiny checkpoint.

Headline case (_offline_support): a real tiny policy whose every action is clamped by the executor's guard to
P14 (each joint at its upper limit); the bag's arms rest at P14, its commands are P14 - OFFSET - SLOPE*k with
the grippers closing at step 50. With the deployed schedule and modelled latency (planner 2 Hz, +40 ms; executor
20 Hz phase-locked to frames due within 15 ms, 15 + 3*steps ms) and images every 3 steps (60 ms), everything
below follows by hand:
  - t=0: the planner refreshes on frame 0 (context ready at 40 ms); the executor's tick at 0 has no context;
  - its 50 ms tick waits for the frame due at 60 ms and runs on it: phase offset 3, with 2 denoising steps the
    chunk is ready at 81 ms and handed over from action ceil(21/20) = 2, i.e. it starts at 100 ms:
    steps 5..99 are evaluated (95 steps);
  - predicted = P14 at every step, so error = OFFSET + SLOPE*k exactly; gripper error 0.07 m from step 50;
  - the chunk delay is (image age in steps) + 2; the context age at update k is k*20 ms minus the stamp of the
    newest delivered refresh's image.
"""
import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest

from _offline_support import GRIPPER_CLOSE_STEP, OFFSET, P14, SLOPE, clamped_checkpoint, recorded_command, write_bag
from aha_wam.offline.evaluate import evaluate_bags
from aha_wam.offline.report import PLOT_SIZES
from aha_wam.data.topic_map import load_topic_map

STEPS = 2


@pytest.fixture(scope='module')
def clamped(tmp_path_factory):
    return clamped_checkpoint(tmp_path_factory.mktemp('ckpt'))


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b'\x89PNG\r\n\x1a\n' and len(data) > 2000
    return struct.unpack('>II', data[16:24])


def _strip_timing(summary: dict) -> dict:
    s = json.loads(json.dumps(summary))
    for key in ('timing', 'checkpoint', 'topic_map', 'report'):
        s.pop(key, None)
    for b in s['bags']:
        b.pop('bag')
    return s


def schedule_by_hand(end_ms=1980, frame_ms=60, tick_ms=50, wait_ms=15, refresh_ms=500, planner_lat_ms=40):
    """Executor start times, the frame each used, and its context age (ms) -- the deployed schedule's rules:
    ticks on a 50 ms grid, each one waiting for a frame due within 15 ms; refreshes every 500 ms on the newest
    frame, readable 40 ms later."""
    refreshes = [(t + planner_lat_ms, frame_ms * (t // frame_ms)) for t in range(0, end_ms + 1, refresh_ms)]
    starts, images, ages = [], [], []
    for tick in range(0, end_ms + 1, tick_ms):
        upcoming = frame_ms * math.ceil(tick / frame_ms)
        start = upcoming if 0 < upcoming - tick <= wait_ms else tick
        ready = [stamp for when, stamp in refreshes if when <= start]
        starts.append(start)
        images.append(frame_ms * (start // frame_ms))
        ages.append(start - ready[-1] if ready else None)
    return starts, images, ages


def test_offline_exact_metrics_report_and_renamed_sqlite(clamped, tmp_path):
    bag = write_bag(tmp_path / 'ours_mcap', meta={'task': 'lift_box'})
    out = tmp_path / 'report'
    s = evaluate_bags([bag], clamped, out=str(out), steps=STEPS)
    b = s['bags'][0]
    k = np.arange(5, 100)
    assert (b['control_steps'], b['evaluated_steps']) == (100, 95)
    assert b['first_command_s'] == pytest.approx(0.10)
    err = OFFSET[None, :] + SLOPE[None, :] * k[:, None]
    err[k >= GRIPPER_CLOSE_STEP, 6] = err[k >= GRIPPER_CLOSE_STEP, 13] = 0.07
    ae = b['action_error']
    for d, name in enumerate(ae['per_joint']):
        assert ae['per_joint'][name]['mse'] == pytest.approx(np.mean(err[:, d] ** 2), rel=1e-9, abs=1e-15)
        assert ae['per_joint'][name]['max'] == pytest.approx(err[:, d].max(), rel=1e-9, abs=1e-15)
    assert ae['per_arm']['left']['joints_mse'] == pytest.approx(np.mean(err[:, :6] ** 2), rel=1e-9)
    assert ae['per_arm']['right']['gripper_mse'] == pytest.approx(50 / 95 * 0.07 ** 2, rel=1e-9)
    # every chunk is P14: no discontinuity; the recorded close is missed
    starts, images, ages = schedule_by_hand()
    cd = b['chunk_discontinuity']
    assert cd['switches'] == len(starts) - 2 and cd['left']['joints_max_abs_max'] == 0.0
    assert cd['right']['gripper_max'] == 0.0
    for arm in ('left', 'right'):
        g = b['gripper_timing'][arm]
        assert (g['recorded_events'], g['matched'], g['missed'], g['predicted_events']) == (1, 0, 1, 0)
    # delays and context ages from the schedule (the first update has no context yet)
    delays = [math.ceil((s + 21 - i) / 20) for s, i in zip(starts[1:], images[1:])]
    assert b['inference_delay_steps']['count'] == len(starts) - 1 == 39
    assert b['inference_delay_steps']['mean'] == pytest.approx(np.mean(delays))
    assert b['context_age_ms']['mean'] == pytest.approx(np.mean(ages[1:]))
    assert (b['context_age_ms']['min'], b['context_age_ms']['max']) == (min(ages[1:]), max(ages[1:]))
    assert b['executor']['faults'] == {'NO_CONTEXT': 1} and b['executor']['refreshes'] == 4
    # end-effector paths: FK of P14 against FK of the recorded commands
    from piper_core.sim.kinematics import fk_frames
    for i, arm in enumerate(('left', 'right')):
        p = fk_frames(P14[7 * i:7 * i + 6])[-1][:3, 3]
        d = [np.linalg.norm(p - fk_frames(recorded_command(j)[7 * i:7 * i + 6])[-1][:3, 3]) for j in k]
        assert b['ee_path'][arm]['mean_error_m'] == pytest.approx(np.mean(d), rel=1e-9)
        assert b['ee_path'][arm]['predicted_length_m'] == pytest.approx(0.0, abs=1e-12)

    # report folder: files and plot sizes
    names = {p.name for p in out.iterdir()}
    assert {'report.md', 'report.html', 'summary.json', 'latency.png'} <= names
    for kind in ('joints', 'error', 'ee'):
        pngs = [n for n in names if n.startswith(kind + '_') and n.endswith('.png')]
        assert len(pngs) == 1 and _png_size(out / pngs[0]) == PLOT_SIZES[kind]
    assert _png_size(out / 'latency.png') == PLOT_SIZES['latency']
    md = (out / 'report.md').read_text()
    assert 'Action error' in md and '![latency.png](latency.png)' in md
    assert json.loads((out / 'summary.json').read_text())['bags'][0]['evaluated_steps'] == 95

    # the same content with AgileX topic names (gripper named joint7) in a sqlite3 bag, through the map
    agilex = load_topic_map('agilex')
    renamed = write_bag(tmp_path / 'agilex_sqlite', storage='sqlite3', topics=agilex.topics,
                        joint_names=('joint1', 'joint2', 'joint3', 'joint4', 'joint5', 'joint6', 'joint7'))
    assert list(renamed.glob('*.db3'))
    s2 = evaluate_bags([renamed], clamped, topic_map=agilex, steps=STEPS, task='lift_box')
    assert _strip_timing(s2) == _strip_timing(s)      # identical metrics: mapping, storage, determinism


def test_offline_tiny_checkpoint_internal_consistency(tiny_checkpoint, tmp_path):
    """Untrained weights: every evaluated predicted arm-joint command is the newest started chunk sampled at that
    time (the streamer plays chunks as handed over; grippers are excluded: the untrained chunks jitter faster
    than the 0.1 m/s gripper rate limit), and the reported MSE is the one of those arrays."""
    from aha_wam.data.rosbag import read_bag
    from aha_wam.eval.run import PolicyAgentFactory, Variant
    from aha_wam.offline import metrics as M
    from aha_wam.offline.replay import replay_bag
    from aha_wam.runtime.safety import PIPER_LOWER, PIPER_UPPER
    from aha_wam.runtime.schedule import LoopSchedule
    mid = np.tile((PIPER_LOWER + PIPER_UPPER) / 2, 2)
    bag = write_bag(tmp_path / 'mid', steps=60, proprio=mid)
    schedule = LoopSchedule.deployed(latency='modelled')
    make = PolicyAgentFactory(Variant('full', 'test', str(tiny_checkpoint), STEPS), schedule)
    cfg = make.policy.config
    rec = read_bag(bag, image_hw=(cfg.encoder.image_height, cfg.encoder.image_width))
    agent = make()
    try:
        r = replay_bag(rec, agent, 'lift_box', schedule, seed=3, task_ids=make.task_ids)
    finally:
        agent.close()
    assert r.chunks and r.active.sum() > 30
    for k in np.flatnonzero(r.active):
        started = [c for c in r.chunks if c['t_start'] <= r.t[k] + 1e-9]
        joints = [0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12]
        assert np.allclose(r.predicted[k, joints], M.sample_chunk(started[-1], r.t[k])[joints], atol=1e-9)
    e = M.action_error(r.predicted, r.recorded, r.active)
    assert e['per_joint']['left_joint1']['mse'] == pytest.approx(
        np.mean((r.predicted[r.active, 0] - r.recorded[r.active, 0]) ** 2))
    assert not math.isnan(e['per_arm']['right']['joints_mse'])
