"""bag_player node: a live node with use_sim_time receives the replayed topics and follows /clock; start paused,
resume service, rate factor, AgileX names republished under ours through a topic map."""
import threading
import time

import numpy as np
import pytest

from _offline_support import P14, PERIOD_NS, T0_NS, recorded_command, write_bag
from _support import spawn_python, stop, wait_for

pytestmark = pytest.mark.ros


def test_offline_bag_player_feeds_live_nodes_with_clock(tmp_path):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import Image, JointState
    from std_srvs.srv import Trigger
    from aha_wam.data.topic_map import load_topic_map

    steps = 30                     # 0.6 s of bag, images every 3 steps
    bag = write_bag(tmp_path / 'agilex', steps=steps, topics=load_topic_map('agilex').topics,
                    joint_names=('joint1', 'joint2', 'joint3', 'joint4', 'joint5', 'joint6', 'joint7'))
    player = spawn_python('-m', 'aha_wam.ros.bag_player', '--ros-args', '-p', f'bag:={bag}', '-p', 'rate:=0.5',
                          '-p', 'start_paused:=true', '-p', 'topic_map:=agilex')
    rclpy.init()
    node = Node('offline_player_probe', parameter_overrides=[Parameter('use_sim_time', value=True)])
    got = {'clock': [], 'image': [], 'cmd': [], 'state': []}
    qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(Clock, '/clock', lambda m: got['clock'].append(m.clock.sec * 10**9 + m.clock.nanosec), qos)
    node.create_subscription(Image, '/camera/ego/image_raw', lambda m: got['image'].append(time.monotonic()), qos)
    node.create_subscription(JointState, '/left/joint_ctrl_single', lambda m: got['cmd'].append(m), qos)
    node.create_subscription(JointState, '/right/joint_states_single', lambda m: got['state'].append(m), qos)
    resume = node.create_client(Trigger, '/bag_player/resume')
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    spin = threading.Thread(target=ex.spin, daemon=True)
    spin.start()
    try:
        assert resume.wait_for_service(timeout_sec=60), stop(player)
        assert wait_for(lambda: len(got['clock']) >= 5, 30)
        time.sleep(0.5)
        assert not got['cmd'] and not got['image'], 'published while paused'
        assert set(got['clock']) == {T0_NS}, 'the paused clock stands at the bag start'
        assert wait_for(lambda: node.count_publishers('/left/joint_ctrl_single') > 0, 20)
        t_resume = time.monotonic()
        future = resume.call_async(Trigger.Request())
        assert wait_for(future.done, 20) and future.result().success
        assert wait_for(lambda: len(got['cmd']) >= steps and len(got['state']) >= steps and len(got['image']) >= 10,
                        60), {k: len(v) for k, v in got.items()}
        assert wait_for(lambda: player.poll() is not None, 30), 'player did not exit at the end of the bag'
        assert player.returncode == 0
        sim_now = node.get_clock().now().nanoseconds      # the live node's ROS time is the bag's
        assert T0_NS + (steps - 1) * PERIOD_NS <= sim_now <= T0_NS + (steps + 60) * PERIOD_NS
    finally:
        ex.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
        out = stop(player)
    assert len(got['cmd']) == steps and len(got['state']) == steps and len(got['image']) == 10, out
    for k, msg in enumerate(got['cmd']):          # content and order as recorded (joint7 = gripper, as named)
        assert np.allclose(msg.position, recorded_command(k)[:7])
        assert msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec == T0_NS + k * PERIOD_NS
    assert np.allclose(got['state'][0].position, P14[7:])
    # /clock follows the bag: never before its start, past the last message at the end
    assert min(got['clock']) == T0_NS and max(got['clock']) >= T0_NS + (steps - 1) * PERIOD_NS
    # rate 0.5: 0.58 s of bag take at least ~1.16 s of wall time (a lower bound holds on a loaded machine)
    assert got['image'][-1] - t_resume >= 0.9 * (9 * 3 * PERIOD_NS * 1e-9) / 0.5
