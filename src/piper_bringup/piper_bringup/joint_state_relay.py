"""joint_state_relay: both arms' piper_ros joint states -> one /joint_states for robot_state_publisher.

piper_ros publishes `<arm>/joint_states_single` with names joint1..joint6, gripper (total opening, m); the
bimanual URDF (urdf.py) names `<arm>_joint1..6` and two fingers `<arm>_joint7 = +opening/2`,
`<arm>_joint8 = -opening/2`. One message per incoming state keeps the TF fresh at the arms' rate.
"""
from __future__ import annotations

import sys

from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState

from ros_node_kit import run_node

from piper_core.layout import JOINT_NAMES as PIPER_NAMES  # noqa: E402


def urdf_joint_state(arm: str, names, positions) -> tuple[list[str], list[float]]:
    """piper_ros names/positions of one arm -> URDF joint names/positions (fingers split from the opening)."""
    by_name = dict(zip(names, positions))
    missing = [n for n in PIPER_NAMES if n not in by_name]
    if missing:
        raise ValueError(f'{arm}: joint state lacks {missing}')
    opening = float(by_name['gripper'])
    out_names = [f'{arm}_joint{i}' for i in range(1, 9)]
    out_pos = [float(by_name[f'joint{i}']) for i in range(1, 7)] + [opening / 2, -opening / 2]
    return out_names, out_pos


class JointStateRelay(Node):
    def __init__(self):
        super().__init__('joint_state_relay')
        self.declare_parameter('arms', ['left', 'right'])
        arms = list(self.get_parameter('arms').value)
        self.pub = self.create_publisher(JointState, '/joint_states', 10)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
        for arm in arms:
            self.create_subscription(JointState, f'/{arm}/joint_states_single',
                                     lambda msg, arm=arm: self._relay(arm, msg), qos)

    def _relay(self, arm: str, msg: JointState) -> None:
        try:
            names, positions = urdf_joint_state(arm, msg.name, msg.position)
        except ValueError as exc:
            self.get_logger().warning(str(exc), throttle_duration_sec=5.0)
            return
        self.pub.publish(JointState(header=msg.header, name=names, position=positions))


def main(argv=None) -> int:
    return run_node(JointStateRelay, 'joint_state_relay', argv)


if __name__ == '__main__':
    sys.exit(main())
