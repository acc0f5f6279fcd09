"""`aha-wam record --ros --teleop`: record leader/follower teleoperation into one MCAP bag per episode.

AgileX leader/follower mode (the Cobot-Magic way of collecting demonstrations): the operator moves the leader
arms; their control frames go over the CAN bus to the follower arms, whose firmware follows them directly,
and the follower's piper_ros driver publishes what it sees: `joint_states_single` (the follower's joints) and
`joint_ctrl` (the joint/gripper control frames on its bus, i.e. the leader's commands). This recorder writes,
as they arrive (raw CDR from rclpy, stamps from the message headers):

    follower states   topic map role joint_states_<arm>   (default /<arm>/joint_states_single)
    leader commands   topic map role leader_<arm>         (default /<arm>/joint_ctrl)   -> the actions
    every camera      topic map `cameras:` + `image`      (default /camera/ego/image_raw)
    instruction       /aha_wam/instruction (written once at the start, from --instruction)

Episodes: `~/start`, `~/stop` (keep) and `~/discard` (delete) services (std_srvs/Trigger; the answer's message
is the bag path), and the keyboard when stdin is a terminal: `s` start, `e` stop, `d` discard, `q` quit
(each followed by Enter). A stopped bag carries the metadata {task, instruction, success, control_hz,
source: teleop, actions_from: leader, topic_map, cameras} and reads back with `aha_wam.data` like any bag.
Ctrl-C while recording keeps the bag, marked `complete: false`.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import threading
from pathlib import Path

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import serialize_message
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger

from aha_wam.data.bag import INSTRUCTION_TOPIC, BagWriter
from aha_wam.data.topic_map import TopicMap, load_topic_map
from piper_core.layout import ARMS

JOINT_TYPE, IMAGE_TYPE, STRING_TYPE = 'sensor_msgs/msg/JointState', 'sensor_msgs/msg/Image', 'std_msgs/msg/String'


class TeleopRecorder(Node):
    def __init__(self, out: Path, tmap: TopicMap, task: str, instruction: str, control_hz: float,
                 first_index: int = 0, log=print):
        super().__init__('aha_wam_teleop_recorder')
        missing = [f'leader_{a}' for a in ARMS if not tmap.topic(f'leader_{a}')]
        if missing:
            raise ValueError(f'topic map {tmap.name!r} has no topic for {missing} (the leader commands that '
                             f'piper_ros publishes as joint_ctrl in leader/follower mode)')
        self.out, self.tmap, self.task, self.instruction = out, tmap, task, instruction
        self.control_hz, self.index, self.log = float(control_hz), int(first_index), log
        self.topics = {tmap.topic(f'joint_states_{a}'): JOINT_TYPE for a in ARMS}
        self.topics.update({tmap.topic(f'leader_{a}'): JOINT_TYPE for a in ARMS})
        self.topics.update({t: IMAGE_TYPE for t in tmap.camera_topics().values()})
        self.topics[INSTRUCTION_TOPIC] = STRING_TYPE
        self._lock = threading.Lock()
        self.writer: BagWriter | None = None
        self.started_ns = 0
        self.saved: list[Path] = []
        self.discarded = 0
        sensor = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.BEST_EFFORT)
        for topic, kind in self.topics.items():
            if kind == STRING_TYPE:
                continue
            cls = JointState if kind == JOINT_TYPE else Image
            # best effort matches both the driver's reliable and the cameras' best-effort publishers
            self.create_subscription(cls, topic, lambda m, t=topic: self._on(t, m), sensor)
        self.create_service(Trigger, '~/start', lambda req, res: self._answer(res, self.start))
        self.create_service(Trigger, '~/stop', lambda req, res: self._answer(res, self.stop))
        self.create_service(Trigger, '~/discard', lambda req, res: self._answer(res, self.discard))

    @staticmethod
    def _answer(res, action):
        try:
            res.message = str(action())
            res.success = True
        except RuntimeError as exc:
            res.success, res.message = False, str(exc)
        return res

    def _on(self, topic: str, msg) -> None:
        stamp = int(msg.header.stamp.sec) * 10**9 + int(msg.header.stamp.nanosec)
        with self._lock:
            if self.writer is None:
                return
            self.writer.write_raw(topic, serialize_message(msg), stamp or self.get_clock().now().nanoseconds)

    @property
    def recording(self) -> bool:
        return self.writer is not None

    def start(self) -> Path:
        with self._lock:
            if self.writer is not None:
                raise RuntimeError(f'already recording {self.writer.path}')
            path = self.out / f'teleop_{self.index:06d}'
            while path.exists():
                self.index += 1
                path = self.out / f'teleop_{self.index:06d}'
            self.writer = BagWriter(path, self.topics)
            self.started_ns = self.get_clock().now().nanoseconds
            self.writer.write_raw(INSTRUCTION_TOPIC, serialize_message(String(data=self.instruction)), self.started_ns)
        self.log(json.dumps({'event': 'start', 'bag': str(path)}))
        return path

    def _close(self, complete: bool = True) -> BagWriter:
        with self._lock:
            writer, self.writer = self.writer, None
        if writer is None:
            raise RuntimeError('not recording')
        meta = {'task': self.task, 'instruction': self.instruction, 'success': True, 'complete': complete,
                'control_hz': self.control_hz, 'source': 'teleop', 'actions_from': ['leader'],
                'topic_map': self.tmap.name, 'cameras': self.tmap.camera_topics(), 'seed': self.index,
                'duration_s': (self.get_clock().now().nanoseconds - self.started_ns) * 1e-9}
        writer.close(meta)
        self.index += 1
        return writer

    def stop(self, complete: bool = True) -> Path:
        writer = self._close(complete)
        self.saved.append(writer.path)
        self.log(json.dumps({'event': 'saved', 'bag': str(writer.path), 'messages': writer.counts}))
        return writer.path

    def discard(self) -> Path:
        writer = self._close()
        shutil.rmtree(writer.path, ignore_errors=True)
        self.discarded += 1
        self.log(json.dumps({'event': 'discarded', 'bag': str(writer.path)}))
        return writer.path


def _keyboard(node: TeleopRecorder, quit_event: threading.Event) -> None:
    """s / e / d / q + Enter on a terminal."""
    actions = {'s': node.start, 'e': node.stop, 'd': node.discard}
    print('teleop recorder: s = start, e = stop (keep), d = discard, q = quit (then Enter)', file=sys.stderr,
          flush=True)
    for line in sys.stdin:
        key = line.strip().lower()[:1]
        if key == 'q':
            break
        if key in actions:
            try:
                actions[key]()
            except RuntimeError as exc:
                print(f'teleop recorder: {exc}', file=sys.stderr, flush=True)
    quit_event.set()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description='Record leader/follower teleoperation (one MCAP bag per episode).')
    ap.add_argument('--out', default='runs/teleop')
    ap.add_argument('--topic-map', default=None, help='topic map YAML or bundled name (default aha_wam)')
    ap.add_argument('--task', default='lift_box', help='task name stored with each episode')
    ap.add_argument('--instruction', default='', help='natural-language instruction stored with each episode')
    ap.add_argument('--episodes', type=int, default=0, help='exit after this many saved episodes (0: never)')
    ap.add_argument('--control-hz', type=float, default=50.0, help='control grid the episodes are read on')
    ap.add_argument('--first-index', type=int, default=0)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        tmap = load_topic_map(args.topic_map)
    except ValueError as exc:
        print(f'aha-wam record: {exc}', file=sys.stderr)
        return 2
    rclpy.init()
    try:
        node = TeleopRecorder(out, tmap, args.task, args.instruction or args.task, args.control_hz,
                              args.first_index, log=lambda s: print(s, flush=True))
    except ValueError as exc:
        print(f'aha-wam record: {exc}', file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    quit_event = threading.Event()
    if sys.stdin is not None and sys.stdin.isatty():
        threading.Thread(target=_keyboard, args=(node, quit_event), daemon=True).start()
    print(json.dumps({'event': 'ready', 'services': [f'{node.get_fully_qualified_name()}/{s}'
                                                     for s in ('start', 'stop', 'discard')],
                      'topics': sorted(node.topics)}), flush=True)
    try:
        while rclpy.ok() and not quit_event.is_set():
            executor.spin_once(timeout_sec=0.1)
            if args.episodes and len(node.saved) >= args.episodes:
                break
    except KeyboardInterrupt:
        pass
    finally:
        if node.recording:
            node.stop(complete=False)          # nothing is lost: the partial episode is kept, marked incomplete
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
