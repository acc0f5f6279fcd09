"""ROS adapters of the core library.

This subpackage is the only part of `aha_wam` that may import rclpy or ROS message types. Nothing else in
`aha_wam` imports it, so the models, the context channel, training and evaluation stay usable (and
testable) without a ROS graph; the nodes in aha_wam_planner / aha_wam_executor / piper_bringup use it.
"""
