"""launch_ros actions from `aha_wam.system`: what every launch file in launch/ returns.

Needs a full ROS 2 install (launch, launch_ros); on the PyPI-wheel setup use `aha-wam up`, which starts
the very same specs. Humble-compatible: only DeclareLaunchArgument, OpaqueFunction, Shutdown and Node.
"""
from __future__ import annotations

import tempfile

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from aha_wam import system


def _node_actions(context, profile: str):
    given = {a.name: LaunchConfiguration(a.name).perform(context) for a in system.ARGUMENTS[profile]}
    share = get_package_share_directory('aha_wam')
    overrides_dir = tempfile.mkdtemp(prefix='aha_wam_launch_')
    actions = []
    for spec in system.nodes(profile, given):
        files = [f'{share}/{path}' for path in spec.params_files]
        if spec.parameters:    # a node-keyed file, not a dict: see NodeSpec.overrides_yaml for why
            files.append(spec.write_overrides(overrides_dir))
        actions.append(Node(
            package=spec.package, executable=spec.executable, name=spec.name,
            namespace=spec.namespace, output='screen',
            parameters=files,
            remappings=list(spec.remappings),
            arguments=[a.replace('{share}', share) for a in spec.arguments],
            on_exit=Shutdown(reason=f'{spec.name} exited') if spec.required else None))
    return actions


def profile_launch_description(profile: str) -> LaunchDescription:
    """Launch arguments of `profile` plus its node set, resolved when the launch runs."""
    arguments = [DeclareLaunchArgument(a.name, default_value=a.default, description=a.description,
                                       **({'choices': list(a.choices)} if a.choices else {}))
                 for a in system.ARGUMENTS[profile]]
    return LaunchDescription(arguments + [OpaqueFunction(function=_node_actions, args=[profile])])
