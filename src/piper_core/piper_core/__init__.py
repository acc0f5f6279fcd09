"""piper_core: the ROS-free floor of the workspace for a bimanual AgileX Piper.

The bimanual layout (``layout``), the piper_ros driver semantics (``piper_interface``), the joint-trajectory
streamer core (``trajectory``), the URDF (``urdf``) and the MuJoCo simulator with its tasks and scripted
experts (``sim``). It imports neither rclpy nor aha_wam: the ROS nodes in piper_bringup and the AHA-WAM core
both stand on it.
"""
