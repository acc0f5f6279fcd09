"""MJCF generation for the AgileX Piper arm and the bimanual table scene (ROS-free, no mesh files).

The kinematic chain is built from the URDF joint origins of ``piper_description`` (notes §5; the
old-firmware variant changes the joint2/joint3 origins), so the MJCF flange matches the modified-DH
FK in ``kinematics.py`` within ~0.15 mm. Links are simple capsules (visual only, no self-collision, to
keep the simulator lean); the gripper palm and the two fingers collide with the table and the objects.

Names (``<p>`` = ``left_`` / ``right_``): joints ``<p>joint1..6``, fingers ``<p>finger_a/b`` (slide,
0..0.035 m each, total opening = sum), actuators with the same names, site ``<p>flange`` at link6,
site ``<p>tcp`` between the finger pads, body ``<p>base_link``. Objects: free body ``obj_<name>``.
"""
from __future__ import annotations

import math

import numpy as np

from .kinematics import (GRIPPER_MAX, JOINT_LOWER, JOINT_UPPER, TCP_OFFSET, mat_to_quat_xyzw, rpy_matrix,
                         urdf_joints)

ARM_BASES = {'left': (0.0, 0.3, 0.0), 'right': (0.0, -0.3, 0.0)}

# Link masses (kg) from the notes (§5); gripper = palm on link6.
LINK_MASS = (0.71, 1.16, 0.5, 0.38, 0.383, 0.007)
BASE_MASS = 1.02
GRIPPER_MASS = 0.45
FINGER_MASS = 0.025

# Position servo gains (N·m/rad, N·m·s/rad) and torque limits (N·m) per joint.
KP = (400.0, 500.0, 300.0, 60.0, 60.0, 40.0)
KV = (25.0, 30.0, 18.0, 3.0, 3.0, 2.0)
TORQUE_LIMIT = (40.0, 60.0, 40.0, 15.0, 15.0, 10.0)
ARMATURE = (0.05, 0.05, 0.05, 0.02, 0.02, 0.01)
JOINT_DAMPING = (0.8, 0.8, 0.5, 0.1, 0.1, 0.05)   # passive: what a disabled (limp) arm feels
FINGER_KP = 1000.0                                  # N/m
FINGER_KV = 10.0
FINGER_FORCE_PER_EFFORT = 10.0                      # finger force limit N per unit gripper effort (N·m)

# Finger pad geometry (in the link6 frame; z = approach axis, y = closing axis).
PAD_HALF = (0.01, 0.004, 0.025)     # x (width), y (thickness), z (length)
PAD_CENTER_Z = 0.135                # pads span z 0.11 .. 0.16; the TCP is at TCP_OFFSET = 0.14
PALM_HALF = (0.03, 0.05, 0.04)
PALM_CENTER_Z = 0.07                # palm spans z 0.03 .. 0.11


def _f(v) -> str:
    return ' '.join(f'{float(a):.6g}' for a in np.ravel(v))


def _quat_wxyz(R) -> str:
    x, y, z, w = mat_to_quat_xyzw(R)
    return _f((w, x, y, z))


def _rod_inertia(mass, length, radius):
    i_perp = mass * (length ** 2 / 12.0 + radius ** 2 / 4.0) + 1e-5
    i_ax = 0.5 * mass * radius ** 2 + 1e-5
    return i_perp, i_ax


def arm_xml(prefix: str, base_pos, old_firmware: bool = False, rgba=(0.82, 0.82, 0.85, 1)) -> str:
    """One Piper arm as an MJCF <body> tree string (to be placed in a worldbody)."""
    p = prefix
    joints = urdf_joints(old_firmware)
    # next-joint offsets define each link's visual capsule
    nxt = [j[0] for j in joints[1:]] + [(0.0, 0.0, 0.03)]
    col = _f(rgba)
    dark = '0.15 0.15 0.17 1'
    out = [f'<body name="{p}base_link" pos="{_f(base_pos)}">',
           f'<inertial pos="0 0 0.04" mass="{BASE_MASS}" diaginertia="0.002 0.002 0.002"/>',
           f'<geom name="{p}base_vis" type="cylinder" size="0.05 0.04" pos="0 0 0.04" rgba="{dark}" class="visual"/>']
    closes = 1
    radii = (0.045, 0.035, 0.03, 0.03, 0.028, 0.03)
    for i, ((xyz, rpy), mass) in enumerate(zip(joints, LINK_MASS)):
        R = rpy_matrix(*rpy)
        n = i + 1
        out.append(f'<body name="{p}link{n}" pos="{_f(xyz)}" quat="{_quat_wxyz(R)}" gravcomp="1">')
        seg = np.array(nxt[i], dtype=float)
        length = float(np.linalg.norm(seg))
        r = radii[i]
        i_perp, i_ax = _rod_inertia(mass, max(length, 0.06), r)
        com = 0.5 * seg if length > 1e-6 else np.zeros(3)
        out.append(f'<inertial pos="{_f(com)}" mass="{mass}" diaginertia="{i_perp:.6g} {i_perp:.6g} {i_ax:.6g}"/>')
        out.append(f'<joint name="{p}joint{n}" type="hinge" axis="0 0 1" range="{JOINT_LOWER[i]:.5g} {JOINT_UPPER[i]:.5g}"'
                   f' armature="{ARMATURE[i]}" damping="{JOINT_DAMPING[i]}" frictionloss="0.02"/>')
        # joint housing + link body
        out.append(f'<geom type="cylinder" size="{r * 1.05:.4g} {r * 0.9:.4g}" rgba="{dark}" class="visual"/>')
        if length > 1e-6:
            out.append(f'<geom type="capsule" fromto="0 0 0 {_f(seg)}" size="{r * 0.85:.4g}" rgba="{col}" class="visual"/>')
        closes += 1
    # link6 = flange frame: sites, palm, fingers
    out.append(f'<site name="{p}flange" pos="0 0 0" size="0.006" rgba="1 0 0 1" group="3"/>')
    out.append(f'<site name="{p}tcp" pos="0 0 {TCP_OFFSET}" size="0.006" rgba="0 1 0 1" group="3"/>')
    out.append(f'<body name="{p}gripper_base" pos="0 0 0" gravcomp="1">')
    out.append(f'<inertial pos="0 0 {PALM_CENTER_Z}" mass="{GRIPPER_MASS}" diaginertia="0.0008 0.0006 0.0005"/>')
    out.append(f'<geom name="{p}palm" type="box" size="{_f(PALM_HALF)}" pos="0 0 {PALM_CENTER_Z}" rgba="{dark}" class="grip"/>')
    for k, sgn in (('a', 1.0), ('b', -1.0)):
        out.append(f'<body name="{p}finger_{k}" pos="0 0 0" gravcomp="1">')
        out.append(f'<inertial pos="0 {sgn * 0.008:.4g} {PAD_CENTER_Z}" mass="{FINGER_MASS}" diaginertia="1e-5 1e-5 1e-5"/>')
        out.append(f'<joint name="{p}finger_{k}" type="slide" axis="0 {sgn:g} 0" range="0 {GRIPPER_MAX / 2:.4g}"'
                   f' armature="0.01" damping="2"/>')
        out.append(f'<geom name="{p}pad_{k}" type="box" size="{_f(PAD_HALF)}" pos="0 {sgn * PAD_HALF[1]:.4g} {PAD_CENTER_Z}"'
                   f' rgba="0.3 0.3 0.32 1" class="pad"/>')
        # finger stem from the palm to the pad (outside the pad, so it never touches a grasped object)
        out.append(f'<geom type="box" size="0.008 0.004 0.02" pos="0 {sgn * (2 * PAD_HALF[1] + 0.004):.4g} 0.115"'
                   f' rgba="{dark}" class="grip"/>')
        out.append('</body>')
    out.append('</body>')
    out.append('</body>' * closes)
    return '\n'.join(out)


def arm_actuators_xml(prefix: str) -> str:
    p = prefix
    out = []
    for i in range(6):
        out.append(f'<position name="{p}joint{i + 1}" joint="{p}joint{i + 1}" kp="{KP[i]}" kv="{KV[i]}"'
                   f' ctrlrange="{JOINT_LOWER[i]:.5g} {JOINT_UPPER[i]:.5g}" forcerange="{-TORQUE_LIMIT[i]} {TORQUE_LIMIT[i]}"/>')
    for k in ('a', 'b'):
        out.append(f'<position name="{p}finger_{k}" joint="{p}finger_{k}" kp="{FINGER_KP}" kv="{FINGER_KV}"'
                   f' ctrlrange="0 {GRIPPER_MAX / 2:.4g}" forcerange="-{FINGER_FORCE_PER_EFFORT} {FINGER_FORCE_PER_EFFORT}"/>')
    return '\n'.join(out)


def _object_xml(o, distractor=False) -> str:
    """o: tasks.ObjectSpec-like (name, kind, size, radius, height, mass, rgba)."""
    name = f'obj_{o.name}'
    rgba = _f(o.rgba)
    if o.kind == 'zone':
        return (f'<body name="{name}" mocap="true" pos="0.3 0 0">'
                f'<geom name="{name}_geom" type="cylinder" size="{o.radius:.4g} 0.0008" pos="0 0 0.0008" rgba="{rgba}"'
                f' contype="0" conaffinity="0" group="1"/></body>')
    if o.kind == 'box':
        hs = 0.5 * np.asarray(o.size)
        return (f'<body name="{name}" pos="0.3 0 {hs[2]:.4g}"><freejoint name="{name}"/>'
                f'<geom name="{name}_geom" type="box" size="{_f(hs)}" mass="{o.mass}" rgba="{rgba}" class="object"/></body>')
    if o.kind == 'cylinder':
        return (f'<body name="{name}" pos="0.3 0 {0.5 * o.size[2]:.4g}"><freejoint name="{name}"/>'
                f'<geom name="{name}_geom" type="cylinder" size="{0.5 * o.size[0]:.4g} {0.5 * o.size[2]:.4g}" mass="{o.mass}"'
                f' rgba="{rgba}" class="object"/></body>')
    if o.kind == 'bowl':
        r, h, t = o.radius, o.height, 0.006
        n = 16
        seg_half = r * math.tan(math.pi / n) + 0.5 * t
        parts = [f'<body name="{name}" pos="0.3 0 0"><freejoint name="{name}"/>',
                 f'<geom name="{name}_geom" type="cylinder" size="{r + t:.4g} {0.5 * t:.4g}" pos="0 0 {0.5 * t:.4g}"'
                 f' mass="{0.4 * o.mass:.4g}" rgba="{rgba}" class="object"/>']
        for k in range(n):
            a = 2 * math.pi * k / n
            parts.append(f'<geom type="box" size="{0.5 * t:.4g} {seg_half:.4g} {0.5 * h:.4g}"'
                         f' pos="{(r + 0.5 * t) * math.cos(a):.5g} {(r + 0.5 * t) * math.sin(a):.5g} {0.5 * h:.4g}"'
                         f' euler="0 0 {a:.5g}" mass="{0.6 * o.mass / n:.4g}" rgba="{rgba}" class="object"/>')
        parts.append('</body>')
        return ''.join(parts)
    raise ValueError(f'unknown object kind {o.kind!r}')


def camera_xyaxes(pos, target, up=(0.0, 0.0, 1.0)) -> str:
    pos, target, up = (np.asarray(v, dtype=float) for v in (pos, target, up))
    fwd = target - pos
    fwd /= np.linalg.norm(fwd)
    x = np.cross(fwd, up)
    x /= np.linalg.norm(x)
    y = np.cross(x, fwd)
    return _f(np.r_[x, y])


EGO_CAMERA_POS = (-0.08, 0.0, 0.68)
EGO_CAMERA_TARGET = (0.34, 0.0, 0.0)
EGO_CAMERA_FOVY = 65.0


def scene_xml(objects=(), distractors: int = 0, old_firmware: bool = False, physics_dt: float = 0.002,
              offscreen=(640, 480)) -> str:
    """The bimanual scene: table (top at z = 0), two arms, ego camera, task objects, distractors."""
    objs = '\n'.join(_object_xml(o) for o in objects)
    from types import SimpleNamespace
    dis = '\n'.join(_object_xml(SimpleNamespace(name=f'distractor{i}', kind='box' if i % 2 == 0 else 'cylinder',
                                                size=(0.03, 0.03, 0.03), mass=0.03, rgba=(0.5, 0.5, 0.5, 1)))
                    for i in range(distractors))
    arms = '\n'.join(arm_xml(f'{a}_', pos, old_firmware) for a, pos in ARM_BASES.items())
    acts = '\n'.join(arm_actuators_xml(f'{a}_') for a in ARM_BASES)
    excludes = '\n'.join(f'<exclude body1="{a}_finger_a" body2="{a}_finger_b"/>' for a in ARM_BASES)
    return f"""<mujoco model="bimanual_piper">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{physics_dt}" integrator="implicitfast" cone="elliptic" impratio="10"/>
  <visual>
    <global offwidth="{offscreen[0]}" offheight="{offscreen[1]}"/>
    <quality shadowsize="0" offsamples="0"/>
    <headlight ambient="0.45 0.45 0.45" diffuse="0.5 0.5 0.5" specular="0.05 0.05 0.05"/>
  </visual>
  <default>
    <default class="visual"><geom contype="0" conaffinity="0" group="1" density="0"/></default>
    <default class="grip"><geom contype="1" conaffinity="1" group="1" density="0" friction="1.0 0.02 0.001"/></default>
    <default class="pad"><geom contype="1" conaffinity="1" group="1" density="0" condim="4" friction="1.5 0.02 0.002"
      solref="0.004 1" solimp="0.95 0.99 0.001"/></default>
    <default class="object"><geom contype="1" conaffinity="1" group="1" condim="4" friction="1.0 0.02 0.002"
      solref="0.004 1" solimp="0.95 0.99 0.001"/></default>
  </default>
  <worldbody>
    <light name="key" pos="0.2 0.0 1.5" dir="0 0 -1" directional="true" castshadow="false" diffuse="0.5 0.5 0.5"/>
    <geom name="table" type="box" size="0.45 0.6 0.02" pos="0.25 0 -0.02" rgba="0.55 0.45 0.35 1" friction="0.8 0.02 0.001"/>
    <camera name="ego" pos="{_f(EGO_CAMERA_POS)}" xyaxes="{camera_xyaxes(EGO_CAMERA_POS, EGO_CAMERA_TARGET)}" fovy="{EGO_CAMERA_FOVY}"/>
{arms}
{objs}
{dis}
  </worldbody>
  <contact>
{excludes}
  </contact>
  <actuator>
{acts}
  </actuator>
</mujoco>
"""
