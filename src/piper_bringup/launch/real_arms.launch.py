"""Two real AgileX Piper arms through piper_ros (branch humble) plus our trajectory streamer.

Needs a full ROS 2 install with AgileX piper_ros built in the workspace (package ``piper``, executable
``piper_single_ctrl``; it brings its own piper_msgs: skip ours, see src/piper_msgs/README.md) and both
CAN adapters up at 1 Mbit/s (src/piper_bringup/README.md).

Each arm runs in its own namespace, so every name is per arm, including ``enable_flag`` and
``enable_srv`` (AgileX's start_two_piper.launch.py leaves those shared: /enable_srv collides):

  /left/joint_states_single ... /left/enable_srv      (can_left_port)
  /right/joint_states_single ... /right/enable_srv    (can_right_port)

  ros2 launch piper_bringup real_arms.launch.py can_left_port:=can_left can_right_port:=can_right
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

try:  # Jazzy and later
    from launch_ros.actions import PushROSNamespace
except ImportError:  # Humble
    from launch_ros.actions import PushRosNamespace as PushROSNamespace


def _arm(name, port_arg):
    return GroupAction([
        PushROSNamespace(name),
        Node(
            package='piper',
            executable='piper_single_ctrl',
            name='piper_ctrl_single_node',
            output='screen',
            parameters=[{
                'can_port': LaunchConfiguration(port_arg),
                'auto_enable': LaunchConfiguration('auto_enable'),
                'gripper_exist': LaunchConfiguration('gripper_exist'),
                'gripper_val_mutiple': LaunchConfiguration('gripper_val_mutiple'),
            }],
        ),
    ])


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument('can_left_port', default_value='can_left',
                              description='SocketCAN interface of the left arm (1 Mbit/s, up)'),
        DeclareLaunchArgument('can_right_port', default_value='can_right',
                              description='SocketCAN interface of the right arm (1 Mbit/s, up)'),
        DeclareLaunchArgument('auto_enable', default_value='true',
                              description='driver enables the arm at start (gives up after 5 s)'),
        DeclareLaunchArgument('gripper_exist', default_value='true', description='send gripper commands'),
        DeclareLaunchArgument('gripper_val_mutiple', default_value='1',
                              description='gripper multiplier, an INTEGER 0..10 (2.0 is rejected)'),
        _arm('left', 'can_left_port'),
        _arm('right', 'can_right_port'),
        # One streamer process for both arms (one 200 Hz loop keeps them in step).
        Node(
            package='piper_bringup',
            executable='trajectory_streamer',
            name='trajectory_streamer',
            output='screen',
            parameters=[{'arms': ['left', 'right'], 'rate': 200.0}],
        ),
    ])
