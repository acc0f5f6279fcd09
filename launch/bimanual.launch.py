"""Two real AgileX Piper arms (piper_ros `piper_single_ctrl`, namespaces left/ and right/, one CAN port
each) with the trajectory streamer.

    ros2 launch aha_wam bimanual.launch.py can_left_port:=can_left can_right_port:=can_right

The node set is `aha_wam.system.nodes('real')`. Bring the CAN links up first (README, "Deploy on real arms").
"""
from aha_wam.ros.launch import profile_launch_description


def generate_launch_description():
    return profile_launch_description('real')
