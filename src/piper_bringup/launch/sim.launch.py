"""Simulated bimanual Piper (MuJoCo, piper_ros interface) plus the trajectory streamer, no policy.

    ros2 launch piper_bringup sim.launch.py task:=handover_cube

The node set is `aha_wam.system.nodes('sim')` — the same as `ros2 launch aha_wam sim.launch.py` or
`aha-wam up sim` without `checkpoint:=`.
"""
from aha_wam.ros.launch import profile_launch_description


def generate_launch_description():
    return profile_launch_description('sim')
