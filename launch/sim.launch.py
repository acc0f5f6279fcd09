"""Simulated bimanual Piper (MuJoCo, piper_ros interface) with the trajectory streamer.

    ros2 launch aha_wam sim.launch.py task:=handover_cube use_sim_time:=true

The node set is `aha_wam.system.nodes('sim')`; `aha-wam up sim ...` starts the same without ros2 launch.
"""
from aha_wam.ros.launch import profile_launch_description


def generate_launch_description():
    return profile_launch_description('sim')
