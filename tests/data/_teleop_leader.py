"""A scripted "leader" for the teleoperation test, run as its own process: an rclpy node that plays the leader
arms of AgileX leader/follower mode. On the real robot the leader's control frames reach the follower over
their shared CAN bus; the simulator's twin of that bus input is `<arm>/joint_ctrl_single`, so the leader
publishes there at 100 Hz (no trajectory streamer: the follower firmware follows the leader directly), and
piper_sim, like the follower's piper_ros driver, reports the commands it executes on `<arm>/joint_ctrl`.
Every command sent is written to --log (JSON) at exit.

    python _teleop_leader.py --seconds 12 --log leader.json
"""
import argparse
import json
import math
import time

import rclpy
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState

NAMES = ['joint1', 'joint2', 'joint3', 'joint4', 'joint5', 'joint6', 'gripper']


def command(k: int, arm: int) -> list[float]:
    """Leader pose at tick k (held for 4 ticks; rounded so that equality is exact), inside every joint limit."""
    t = (k // 4) * 0.04
    s = math.sin(2 * math.pi * 0.4 * t + arm)
    q = [0.3 * s, 0.8 + 0.3 * s, -0.8 - 0.3 * s, 0.2 * s, 0.3 * s, -0.2 * s, 0.035 + 0.02 * s]
    return [round(v, 4) for v in q]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--seconds', type=float, default=12.0)
    ap.add_argument('--log', required=True)
    args = ap.parse_args()
    rclpy.init()
    node = Node('scripted_leader')
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE)
    pubs = {arm: node.create_publisher(JointState, f'/{arm}/joint_ctrl_single', qos) for arm in ('left', 'right')}
    sent = {'left': [], 'right': []}
    t0 = time.monotonic()
    k = 0
    try:
        while time.monotonic() - t0 < args.seconds:
            for i, arm in enumerate(('left', 'right')):
                q = command(k, i)
                msg = JointState(name=NAMES, position=q)
                msg.header.stamp = node.get_clock().now().to_msg()
                pubs[arm].publish(msg)
                if not sent[arm] or sent[arm][-1] != q:
                    sent[arm].append(q)
            k += 1
            time.sleep(max(0.0, t0 + k * 0.01 - time.monotonic()))
    except KeyboardInterrupt:
        pass
    finally:
        with open(args.log, 'w') as f:
            json.dump(sent, f)
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
