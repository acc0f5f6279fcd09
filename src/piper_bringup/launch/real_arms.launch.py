"""Two real AgileX Piper arms through piper_ros (branch humble) plus our trajectory streamer, no policy.

    ros2 launch piper_bringup real_arms.launch.py can_left_port:=can_left can_right_port:=can_right

Each arm runs its own `piper_single_ctrl` in namespace left/ or right/, so enable_flag / enable_srv are per
arm (AgileX's start_two_piper.launch.py shares them). Needs piper_ros in the workspace (it brings its own
piper_msgs: skip ours, see src/piper_msgs/README.md) and both CAN links up at 1 Mbit/s (README.md here).
The node set is `aha_wam.system.nodes('real')` — the same as `ros2 launch aha_wam bimanual.launch.py`
without `checkpoint:=`; driver parameters are in config/piper/piper_real.yaml of package aha_wam.
"""
from aha_wam.ros.launch import profile_launch_description


def generate_launch_description():
    return profile_launch_description('real')
