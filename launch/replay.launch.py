"""Replay a recorded bag into the real planner and executor nodes (sim time from the bag's /clock).

    ros2 launch aha_wam replay.launch.py bag:=/data/episode_0007 checkpoint:=checkpoints/small

The node set is `aha_wam.system.nodes('replay')`; `aha-wam up replay bag:=... checkpoint:=...` starts the
same here. With a full ROS install, `ros2 bag play BAG --clock 100` can stand in for bag_player.
"""
from aha_wam.ros.launch import profile_launch_description


def generate_launch_description():
    return profile_launch_description('replay')
