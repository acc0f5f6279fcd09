"""The left_/right_ bimanual URDF for rviz and the joint-state relay that feeds robot_state_publisher."""
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import yaml

from aha_wam import system
from piper_bringup.joint_state_relay import urdf_joint_state
from piper_core.sim.kinematics import JOINT_LOWER, JOINT_UPPER, fk_frames, rpy_matrix
from piper_core.sim.mjcf import ARM_BASES
from piper_core.urdf import bimanual_urdf


def urdf_chain_fk(robot, arm, q):
    """world -> <arm>_link6 by composing the URDF joint origins (translation, rpy, rotation about z by q)."""
    joints = {j.get('name'): j for j in robot.findall('joint')}
    T = np.eye(4)
    T[:3, 3] = [float(v) for v in joints[f'{arm}_base_joint'].find('origin').get('xyz').split()]
    for i in range(6):
        origin = joints[f'{arm}_joint{i + 1}'].find('origin')
        step = np.eye(4)
        step[:3, :3] = rpy_matrix(*[float(v) for v in origin.get('rpy').split()])
        step[:3, 3] = [float(v) for v in origin.get('xyz').split()]
        rot = np.eye(4)
        rot[:3, :3] = rpy_matrix(0.0, 0.0, q[i])
        T = T @ step @ rot
    return T


@pytest.mark.parametrize('arm', ['left', 'right'])
def test_urdf_flange_matches_modified_dh_within_1mm(arm):
    robot = ET.fromstring(bimanual_urdf())
    rng = np.random.default_rng(1)
    for _ in range(50):
        q = rng.uniform(JOINT_LOWER, JOINT_UPPER)
        got = urdf_chain_fk(robot, arm, q)[:3, 3] - np.array(ARM_BASES[arm])
        want = fk_frames(q)[-1][:3, 3]
        assert np.linalg.norm(got - want) < 1e-3


def test_urdf_names_are_prefixed_and_fingers_are_half_openings():
    robot = ET.fromstring(bimanual_urdf())
    names = {j.get('name') for j in robot.findall('joint')}
    for arm in ('left', 'right'):
        assert {f'{arm}_joint{i}' for i in range(1, 9)} <= names
    links = {l.get('name') for l in robot.findall('link')}
    assert {'world', 'left_base_link', 'right_base_link'} <= links     # the executor's marker frames


def test_relay_maps_piper_names_to_urdf_joints():
    names, pos = urdf_joint_state('left', ['gripper', 'joint1', 'joint2', 'joint3', 'joint4', 'joint5', 'joint6'],
                                  [0.06, 0.1, 0.2, -0.3, 0.4, 0.5, 0.6])
    assert names == [f'left_joint{i}' for i in range(1, 9)]
    assert pos == pytest.approx([0.1, 0.2, -0.3, 0.4, 0.5, 0.6, 0.03, -0.03])
    with pytest.raises(ValueError, match='lacks'):
        urdf_joint_state('left', ['joint1'], [0.0])


def test_rviz_option_adds_the_visualisation_nodes():
    specs = {s.name: s for s in system.nodes('sim', {'rviz': 'true'})}
    assert specs['robot_state_publisher'].parameters['robot_description'].startswith('<?xml')
    assert specs['rviz2'].command_line('/share')[:2] == ['-d', '/share/config/aha_wam.rviz']
    assert specs['joint_state_relay'].module == 'piper_bringup.joint_state_relay'
    assert 'rviz2' not in {s.name for s in system.nodes('sim')}
    rviz = yaml.safe_load((Path(__file__).resolve().parents[2] / 'config' / 'aha_wam.rviz').read_text())
    topics = {d.get('Topic', {}).get('Value') for d in rviz['Visualization Manager']['Displays'] if 'Topic' in d}
    assert {'/aha_wam/markers', '/camera/ego/image_raw'} <= topics
