"""policy_manager: brings the planner and executor (managed nodes) to active, and starts episodes.

    start       configure planner and executor (checkpoint load, cached inference artefacts, warm-up) in
                parallel, then -- with `start_episode` (the sim profile) -- reset the simulator and the
                planner memory, then activate planner and executor. The episode therefore starts only once the
                policy is ready: loading never eats episode time.
    ~/start_episode   std_srvs/Trigger: hold (executor inactive), sim/reset with the simulator's `seed`
                parameter (set it first), planner memory reset, executor active again. `aha-wam eval-live`
                runs N seeded episodes this way.
    /aha_wam/policy_state   std_msgs/String JSON (reliable, transient local): {"state": "configuring" |
                "active" | "failed", "detail", "configure_s", "active_after_s" (since this node started),
                "episode"}

A configure or activate failure stops this node with one line naming the node and the reason (exit 1), so
`aha-wam up` / `ros2 launch` stop the whole system instead of leaving arms without a policy.
"""
from __future__ import annotations

import json
import sys
import threading
import time

import rclpy
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String
from std_srvs.srv import Trigger

from ros_node_kit import declare_table, run_node

STATE_TOPIC = '/aha_wam/policy_state'
PARAMETERS = {
    'managed_nodes': (['/planner', '/executor'], 'lifecycle nodes to bring up, planner first'),
    'start_episode': (False, 'reset simulator and planner memory before activating (sim profile)'),
    'sim_reset_service': ('/sim/reset', 'std_srvs/Trigger of the simulator (start_episode)'),
    'planner_reset_service': ('/planner/reset_episode', 'std_srvs/Trigger clearing the planner memory'),
    'transition_timeout': (300.0, 's allowed for one transition (configure exports on a first start)', (1.0, 3600.0)),
}


def state_qos() -> QoSProfile:
    return QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


class ManagerError(RuntimeError):
    pass


class PolicyManager(Node):
    def __init__(self):
        super().__init__('policy_manager')
        self.params = declare_table(self, PARAMETERS)
        self.t0 = time.monotonic()
        self.group = ReentrantCallbackGroup()
        self.state_pub = self.create_publisher(String, STATE_TOPIC, state_qos())
        self.change = {n: self.create_client(ChangeState, f'{n}/change_state', callback_group=self.group)
                       for n in self.params['managed_nodes']}
        self.sim_reset = self.create_client(Trigger, self.params['sim_reset_service'], callback_group=self.group)
        self.planner_reset = self.create_client(Trigger, self.params['planner_reset_service'], callback_group=self.group)
        self.create_service(Trigger, '~/start_episode', self._on_start_episode, callback_group=self.group)
        self.episode = 0
        self.status = {'state': 'configuring'}
        self._busy = threading.Lock()
        self.failed: str | None = None
        self._publish('configuring')
        threading.Thread(target=self._bring_up, name='bring_up', daemon=True).start()

    # ---------------------------------------------------------------------------------- calls
    def _call(self, client, request, timeout: float):
        if not client.wait_for_service(timeout_sec=timeout):
            raise ManagerError(f'service {client.srv_name} is not available after {timeout:.0f} s')
        future = client.call_async(request)
        done = threading.Event()
        future.add_done_callback(lambda _f: done.set())
        if not done.wait(timeout):
            raise ManagerError(f'service {client.srv_name} did not answer within {timeout:.0f} s')
        return future.result()

    def _transition(self, nodes, transition_id: int, label: str) -> None:
        """Run one transition on several nodes at once; raise naming the first that failed."""
        timeout = self.params['transition_timeout']
        errors, threads = {}, []

        def one(node):
            try:
                reply = self._call(self.change[node], ChangeState.Request(transition=Transition(id=transition_id)),
                                   timeout)
                if not reply.success:
                    errors[node] = f'{label} failed (see its log)'
            except Exception as exc:  # noqa: BLE001 - reported below
                errors[node] = str(exc)
        for node in nodes:
            t = threading.Thread(target=one, args=(node,))
            t.start()
            threads.append(t)
        for t in threads:
            t.join()
        if errors:
            node = next(iter(errors))
            raise ManagerError(f'{node}: {errors[node]}')

    def _trigger(self, client, what: str) -> str:
        reply = self._call(client, Trigger.Request(), 60.0)
        if not reply.success:
            raise ManagerError(f'{what} failed: {reply.message}')
        return reply.message

    # ---------------------------------------------------------------------------------- sequences
    def _bring_up(self) -> None:
        nodes = list(self.params['managed_nodes'])
        try:
            t = time.monotonic()
            self._transition(nodes, Transition.TRANSITION_CONFIGURE, 'configure')
            configure_s = time.monotonic() - t
            with self._busy:
                if self.params['start_episode']:
                    self._reset_episode()
                self._transition(nodes, Transition.TRANSITION_ACTIVATE, 'activate')
            self._publish('active', configure_s=round(configure_s, 2))
            self.get_logger().info(f'policy active {time.monotonic() - self.t0:.1f} s after start '
                                   f'(configure {configure_s:.1f} s)')
        except Exception as exc:  # noqa: BLE001 - one line, then stop the node (the supervisor stops the rest)
            self.failed = str(exc)
            self._publish('failed', detail=self.failed)
            self.get_logger().error(f'bring-up failed: {exc}')
            self._stop_process()

    def _reset_episode(self) -> str:
        reply = self._trigger(self.sim_reset, 'sim/reset') if self.params['start_episode'] else ''
        self._trigger(self.planner_reset, 'planner reset')
        self.episode += 1
        return reply

    def _on_start_episode(self, request, response):
        executor = self.params['managed_nodes'][-1]
        if self.status.get('state') != 'active' or not self._busy.acquire(blocking=False):
            response.success, response.message = False, f"policy is not ready ({self.status.get('state')})"
            return response
        try:
            self._transition([executor], Transition.TRANSITION_DEACTIVATE, 'deactivate')
            sim = self._reset_episode()
            self._transition([executor], Transition.TRANSITION_ACTIVATE, 'activate')
            self._publish('active')
            response.success, response.message = True, json.dumps({'episode': self.episode, 'sim': sim})
        except Exception as exc:  # noqa: BLE001 - reported to the caller
            response.success, response.message = False, str(exc)
        finally:
            self._busy.release()
        return response

    def _publish(self, state: str, **fields) -> None:
        now = round(time.monotonic() - self.t0, 2)
        self.status.update(fields, state=state, episode=self.episode, since_start_s=now)
        if state == 'active':
            self.status.setdefault('active_after_s', now)
        self.state_pub.publish(String(data=json.dumps(self.status)))

    def _stop_process(self) -> None:
        print(f'[ERROR] policy_manager: {self.failed}', file=sys.stderr, flush=True)
        self.exit_code = 1
        rclpy.shutdown()


def main(argv=None) -> int:
    node_holder = {}

    def make():
        node_holder['node'] = PolicyManager()
        return node_holder['node']
    code = run_node(make, 'policy_manager', argv, threads=4)
    node = node_holder.get('node')
    return code or getattr(node, 'exit_code', 0)


if __name__ == '__main__':
    sys.exit(main())
