"""Metric functions on hand-made arrays, and topic-map parsing."""
import numpy as np
import pytest

from aha_wam.offline import metrics as M
from aha_wam.data.topic_map import TopicMapError, load_topic_map, parse_topic_map


def test_offline_action_error_per_joint_and_arm():
    rec = np.zeros((4, 14))
    pred = np.zeros((4, 14))
    pred[:, 0] = [1.0, -1.0, 2.0, 0.0]           # left joint1
    pred[:, 13] = 0.01                           # right gripper
    mask = np.array([True, True, True, False])   # last step not evaluated
    e = M.action_error(pred, rec, mask)
    assert e['steps'] == 3
    assert e['per_joint']['left_joint1'] == {'mse': 2.0, 'max': 2.0}
    assert e['per_arm']['left']['joints_mse'] == pytest.approx(2.0 / 6)
    assert e['per_arm']['left']['joints_max'] == 2.0
    assert e['per_arm']['right']['gripper_mse'] == pytest.approx(1e-4)
    assert e['per_arm']['right']['joints_mse'] == 0.0


def test_offline_chunk_discontinuity_and_sampling():
    a = {'t_start': 0.0, 'period': 0.02, 'actions': np.outer(np.arange(5), np.ones(14)) * 0.1}
    b = {'t_start': 0.03, 'period': 0.02, 'actions': np.full((5, 14), 0.5)}
    assert M.sample_chunk(a, 0.03)[0] == pytest.approx(0.15)      # halfway between 0.1 and 0.2
    assert M.sample_chunk(a, 1.0)[0] == pytest.approx(0.4)        # held after the end
    jumps = M.chunk_discontinuity([a, b])
    assert jumps.shape == (1, 14) and jumps[0] == pytest.approx(np.full(14, 0.35))
    s = M.discontinuity_summary(jumps)
    assert s['switches'] == 1 and s['left']['joints_max_abs_max'] == pytest.approx(0.35)


def test_offline_gripper_timing_matches_events():
    t = np.arange(10) * 0.1
    rec = np.array([0.07] * 4 + [0.0] * 4 + [0.07] * 2)          # close between 0.3-0.4, open 0.7-0.8
    pred = np.array([0.07] * 5 + [0.0] * 5)                      # close between 0.4-0.5, never opens
    g = M.gripper_timing(t, rec, pred)
    assert g['threshold'] == pytest.approx(0.035)
    assert (g['recorded_events'], g['predicted_events'], g['matched'], g['missed'], g['extra']) == (2, 1, 1, 1, 0)
    assert g['errors_s'] == [pytest.approx(0.1)]                  # 0.45 - 0.35
    flat = M.gripper_timing(t, np.full(10, 0.03), pred)           # no recorded range: no events
    assert flat['recorded_events'] == 0


def test_offline_ee_path_and_distribution():
    from piper_core.sim.kinematics import fk_frames
    q = np.zeros((3, 14))
    q[:, 1] = [0.5, 1.0, 1.5]
    r = np.zeros((3, 14))
    out = M.ee_path(q, r, np.ones(3, bool))
    d = [np.linalg.norm(fk_frames(qi[:6])[-1][:3, 3] - fk_frames(np.zeros(6))[-1][:3, 3]) for qi in q]
    assert out['left']['mean_error_m'] == pytest.approx(np.mean(d))
    assert out['right']['max_error_m'] == 0.0 and out['left']['recorded_length_m'] == 0.0
    dist = M.distribution([1.0, 2.0, 3.0, None])
    assert dist['count'] == 3 and dist['p50'] == 2.0 and dist['max'] == 3.0


def test_offline_topic_maps():
    agilex = load_topic_map('agilex')
    assert agilex.topic('joint_states_left') == '/joint_states_single_l'
    assert agilex.topic('image') == '/camera_f/color/image_raw'
    assert load_topic_map('agilex_aloha').joint_names is None
    assert load_topic_map('aha_wam').topics == load_topic_map(None).topics
    with pytest.raises(TopicMapError, match='required roles'):
        parse_topic_map({'topics': {'image': '/x'}})
    with pytest.raises(TopicMapError, match='unknown roles'):
        parse_topic_map({'topics': {'camera': '/x'}})
    with pytest.raises(TopicMapError, match='neither a file nor a bundled map'):
        load_topic_map('no_such_map')
