"""The start-up check of an arm driver's joint names (piper_core.joint_names), ROS-free."""
import pytest

from piper_core.joint_names import LEGACY_PIPER_ROS_NAMES, JointNameError, name_map
from piper_core.layout import JOINT_NAMES

SHUFFLED = ('gripper', 'joint3', 'joint1', 'joint2', 'joint6', 'joint5', 'joint4')


def test_suite_names_in_any_order_with_extras():
    m = name_map('identity')
    assert m.order(JOINT_NAMES) == tuple(range(7))
    assert m.select(SHUFFLED, [7, 3, 1, 2, 6, 5, 4]) == [1, 2, 3, 4, 5, 6, 7]
    assert m.order(JOINT_NAMES + ('joint7',)) == tuple(range(7))      # extra names are ignored


def test_legacy_driver_names_need_the_map_and_the_error_names_both_lists():
    with pytest.raises(JointNameError) as err:
        name_map('identity').order(LEGACY_PIPER_ROS_NAMES)
    text = str(err.value)
    assert '\n' not in text
    assert str(list(LEGACY_PIPER_ROS_NAMES)) in text and str(list(JOINT_NAMES)) in text
    assert "missing ['gripper']" in text and 'joint_name_map:=piper_ros_legacy fits' in text
    legacy = name_map('piper_ros_legacy')
    assert legacy.select(LEGACY_PIPER_ROS_NAMES, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.03]) == \
        [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.03]                           # joint0 is motor 1, joint6 the gripper


def test_auto_accepts_exactly_the_two_known_layouts():
    auto = name_map()                                                  # the default
    assert auto.order(JOINT_NAMES) == tuple(range(7))
    assert auto.order(LEGACY_PIPER_ROS_NAMES) == tuple(range(7))
    with pytest.raises(JointNameError, match=r"missing \['joint6'\]"):
        auto.order(('joint1', 'joint2', 'joint3', 'joint4', 'joint5', 'gripper'))
    with pytest.raises(JointNameError, match='do not give the expected'):
        auto.order(LEGACY_PIPER_ROS_NAMES[:6])                         # a legacy driver without the gripper


def test_wrong_preset_names_the_mapped_list_and_the_preset_that_fits():
    with pytest.raises(JointNameError) as err:
        name_map('piper_ros_legacy').order(JOINT_NAMES)
    text = str(err.value)
    assert 'after the piper_ros_legacy name map' in text and 'joint_name_map:=identity fits' in text


def test_custom_maps_from_text_list_and_dict():
    received = ('j1', 'j2', 'j3', 'j4', 'j5', 'j6', 'grip')
    text = ','.join(f'{r}:{e}' for r, e in zip(received, JOINT_NAMES))
    for spec in (text, text.split(','), dict(zip(received, JOINT_NAMES))):
        assert name_map(spec).order(received) == tuple(range(7))
    with pytest.raises(JointNameError, match="got 'j1'"):
        name_map('j1,j2:joint2')
    with pytest.raises(JointNameError, match='duplicated'):
        name_map('identity').order(JOINT_NAMES + ('gripper',))
    with pytest.raises(JointNameError, match='only 3 values'):
        name_map('identity').select(JOINT_NAMES, [0.0, 0.0, 0.0])
