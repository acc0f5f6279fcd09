"""ROS-free bimanual Piper simulation: MJCF, kinematics, simulator core, tasks, scripted expert, harness.

Never import rclpy here; the ROS node (piper_bringup.piper_sim) wraps BimanualPiperSim.
"""
from .bimanual import ARMS, JOINT_NAMES, BimanualPiperSim  # noqa: F401
from .tasks import TaskStatus, available_tasks  # noqa: F401
