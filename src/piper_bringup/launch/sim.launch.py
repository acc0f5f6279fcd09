"""Simulated bimanual Piper (piper_sim, the piper_ros interface under /left and /right) plus the
trajectory streamer; the same topics as real_arms.launch.py. Full ROS 2 installs only (no launch
here: start the two executables directly, see README.md).

  ros2 launch piper_bringup sim.launch.py task:=handover_cube level:=randomized seed:=3
"""
import os

from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def _config(name):
    try:
        path = os.path.join(get_package_share_directory('aha_wam'), 'config', 'piper', name)
        return [path] if os.path.exists(path) else []
    except PackageNotFoundError:
        return []


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument('task', default_value='lift_box'),
        DeclareLaunchArgument('level', default_value='clean'),
        DeclareLaunchArgument('seed', default_value='0'),
        Node(
            package='piper_bringup',
            executable='piper_sim',
            name='piper_sim',
            output='screen',
            parameters=[*_config('piper_sim.yaml'), {
                'task': LaunchConfiguration('task'),
                'level': LaunchConfiguration('level'),
                'seed': LaunchConfiguration('seed'),
            }],
        ),
        Node(
            package='piper_bringup',
            executable='trajectory_streamer',
            name='trajectory_streamer',
            output='screen',
            parameters=_config('trajectory_streamer.yaml'),
        ),
    ])
