"""launch_ros actions from `aha_wam.system`: what every launch file in launch/ returns.

Needs a full ROS 2 install (launch, launch_ros); on the PyPI-wheel setup use `aha-wam up`, which starts
the very same specs. Humble API only (tests/foundation/test_humble_api.py checks it).

What a deployment relies on: every package the profile needs is checked before any action is returned, so a
missing one stops the launch with one line and no node running (an action failing after others started would
leave those running: ros2/launch#747); the node-keyed parameter files live in one temporary directory that is
removed when launch shuts down.
"""
from __future__ import annotations

import shutil
import tempfile

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, RegisterEventHandler, Shutdown
from launch.event_handlers import OnShutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from aha_wam import system


def _node_actions(context, profile: str):
    given = {a.name: LaunchConfiguration(a.name).perform(context) for a in system.ARGUMENTS[profile]}
    specs = system.nodes(profile, given)
    system.check_packages(specs)        # raises one line (MissingPackage) before anything is started
    share = get_package_share_directory('aha_wam')
    env = system.node_environment(share)    # the same Fast DDS profile `aha-wam up` gives its nodes
    overrides_dir = tempfile.mkdtemp(prefix='aha_wam_launch_')
    actions = [RegisterEventHandler(OnShutdown(
        on_shutdown=lambda event, context: shutil.rmtree(overrides_dir, ignore_errors=True)))]
    for spec in specs:
        files = [f'{share}/{path}' for path in spec.params_files]
        if spec.parameters:    # a node-keyed file, not a dict: see NodeSpec.overrides_yaml for why
            files.append(spec.write_overrides(overrides_dir))
        actions.append(Node(
            package=spec.package, executable=spec.executable, name=spec.name,
            namespace=spec.namespace, output='screen',
            parameters=files,
            remappings=list(spec.remappings),
            ros_arguments=list(spec.ros_arguments) or None,    # [] would still add a second --ros-args
            arguments=[a.replace('{share}', share) for a in spec.arguments],
            additional_env=env or None,
            on_exit=Shutdown(reason=f'{spec.name} exited') if spec.required else None))
    return actions


def profile_launch_description(profile: str) -> LaunchDescription:
    """Launch arguments of `profile` plus its node set, resolved when the launch runs."""
    arguments = [DeclareLaunchArgument(a.name, default_value=a.default, description=a.description,
                                       **({'choices': list(a.choices)} if a.choices else {}))
                 for a in system.ARGUMENTS[profile]]
    return LaunchDescription(arguments + [OpaqueFunction(function=_node_actions, args=[profile])])
