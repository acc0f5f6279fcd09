"""AHA-WAM core library (ROS-free): models, planner-context channel, the deployed sessions and the ClosedLoop,
training, evaluation, official-checkpoint interop.

It stands on piper_core (the robot floor) and never imports rclpy outside `aha_wam.ros`; the planner and
executor nodes (aha_wam_planner, aha_wam_executor) are thin lifecycle adapters around `aha_wam.runtime`.
"""
__version__ = '0.1.0'
