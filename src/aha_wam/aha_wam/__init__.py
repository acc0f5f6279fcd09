"""AHA-WAM core library (ROS-free): models, planner-context channel, training, evaluation.

Nothing in this package imports rclpy; the ROS nodes in aha_wam_planner, aha_wam_executor and
piper_bringup are thin adapters around it.
"""
__version__ = '0.1.0'
