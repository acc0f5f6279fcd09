"""A bimanual Piper URDF with `left_` / `right_` prefixes, generated from the same kinematics tables as the
MuJoCo model (sim/kinematics.py: current-firmware URDF joint origins; sim/mjcf.py: arm base positions), for
robot_state_publisher and rviz. ROS-free: `python -m piper_core.urdf > bimanual_piper.urdf`.

Joint names are `<arm>_joint1..6` (revolute) and `<arm>_joint7` / `<arm>_joint8` (the two prismatic fingers,
each half of the total gripper opening, as piper_description's joint7 / joint8); see joint_state_relay.py.
"""
from __future__ import annotations

import sys

from piper_core.sim.kinematics import GRIPPER_MAX, JOINT_LOWER, JOINT_SPEED_MAX, JOINT_UPPER, urdf_joints
from piper_core.sim.mjcf import ARM_BASES

FINGER_ORIGIN_Z = 0.1358          # m, gripper_base (= link6) -> finger joints (notes/piper.md §5)


def _f(values) -> str:
    return ' '.join(f'{v:.6g}' for v in values)


def _link(name: str, length: float = 0.0, radius: float = 0.03) -> str:
    if length <= 0:
        return f'  <link name="{name}"/>\n'
    return (f'  <link name="{name}"><visual><origin xyz="0 0 {length / 2:.4f}"/><geometry>'
            f'<cylinder radius="{radius}" length="{length:.4f}"/></geometry></visual></link>\n')


def arm_urdf(prefix: str, base_xyz, old_firmware: bool = False) -> str:
    p = prefix
    out = [f'  <joint name="{p}base_joint" type="fixed"><parent link="world"/><child link="{p}base_link"/>'
           f'<origin xyz="{_f(base_xyz)}" rpy="0 0 0"/></joint>\n', _link(f'{p}base_link', 0.1, 0.05)]
    parent = f'{p}base_link'
    for i, (xyz, rpy) in enumerate(urdf_joints(old_firmware)):
        child = f'{p}link{i + 1}'
        out.append(f'  <joint name="{p}joint{i + 1}" type="revolute"><parent link="{parent}"/>'
                   f'<child link="{child}"/><origin xyz="{_f(xyz)}" rpy="{_f(rpy)}"/><axis xyz="0 0 1"/>'
                   f'<limit lower="{JOINT_LOWER[i]}" upper="{JOINT_UPPER[i]}" effort="100" '
                   f'velocity="{JOINT_SPEED_MAX}"/></joint>\n')
        out.append(_link(child, 0.05 if i < 5 else 0.02, 0.025))
        parent = child
    for j, (sign, yaw) in enumerate(((1, 0.0), (-1, -3.1416)), start=7):
        lower, upper = (0.0, GRIPPER_MAX / 2) if sign > 0 else (-GRIPPER_MAX / 2, 0.0)
        out.append(f'  <joint name="{p}joint{j}" type="prismatic"><parent link="{parent}"/>'
                   f'<child link="{p}link{j}"/><origin xyz="0 0 {FINGER_ORIGIN_Z}" rpy="1.5708 0 {yaw}"/>'
                   f'<axis xyz="0 0 1"/><limit lower="{lower}" upper="{upper}" effort="10" velocity="1"/></joint>\n')
        out.append(_link(f'{p}link{j}', 0.04, 0.008))
    return ''.join(out)


def bimanual_urdf(old_firmware: bool = False) -> str:
    arms = ''.join(arm_urdf(f'{arm}_', xyz, old_firmware) for arm, xyz in ARM_BASES.items())
    return f'<?xml version="1.0"?>\n<robot name="bimanual_piper">\n  <link name="world"/>\n{arms}</robot>\n'


if __name__ == '__main__':
    sys.stdout.write(bimanual_urdf(old_firmware='--old-firmware' in sys.argv))
