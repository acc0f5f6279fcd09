"""`ManagedLoopNode`: the lifecycle skeleton the planner and executor share.

A managed node whose work is one drift-free loop (`DeadlineLoop`) plus the subscriptions, publishers, timers and
services it makes in `on_configure`. This base owns what is the same for every such node:

    autostart    configure + activate by itself once spinning (`ros2 run` without a lifecycle manager)
    start_loop / stop_loop    the worker loop (activate / deactivate)
    keep         remember entities made in configure; cleanup and shutdown destroy them
    release      subclass hook that frees the node's own resources (sessions, shared memory, files)
    close        what run_node calls last: loop stopped, everything released, with or without a transition

rclpy.lifecycle exists on Humble with these names (Node, State, TransitionCallbackReturn).
"""
from __future__ import annotations

from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.publisher import Publisher
from rclpy.service import Service
from rclpy.subscription import Subscription
from rclpy.timer import Timer

from .loop import DeadlineLoop

SUCCESS = TransitionCallbackReturn.SUCCESS
FAILURE = TransitionCallbackReturn.FAILURE


class ManagedLoopNode(LifecycleNode):
    def __init__(self, name: str, **kwargs):
        super().__init__(name, **kwargs)
        self._loop: DeadlineLoop | None = None
        self._entities: list = []
        self._autostart_timer = None

    def enable_autostart(self, activate_within_s: float = 10.0) -> None:
        """Configure once the node spins, then activate as soon as `ready_to_activate()` holds (checked every
        0.2 s), or after `activate_within_s` regardless; call at the end of the subclass's __init__."""
        self._activate_within_s = float(activate_within_s)
        self._autostart_timer = self.create_timer(0.0, self._on_autostart)

    def ready_to_activate(self) -> bool:
        """Whether what activation checks has arrived (override; e.g. the first message of each input)."""
        return True

    def _one_shot(self) -> None:
        self._autostart_timer.cancel()
        self.destroy_timer(self._autostart_timer)

    def _on_autostart(self) -> None:
        self._one_shot()
        if self.trigger_configure() == SUCCESS:
            self._activate_by = self.get_clock().now().nanoseconds + int(self._activate_within_s * 1e9)
            self._autostart_timer = self.create_timer(0.2, self._on_autoactivate)

    def _on_autoactivate(self) -> None:
        if not self.ready_to_activate() and self.get_clock().now().nanoseconds < self._activate_by:
            return
        self._one_shot()
        self.trigger_activate()

    # ---------------------------------------------------------------------------------- the loop
    def start_loop(self, period_s: float, fn, name: str) -> None:
        self.stop_loop()
        self._loop = DeadlineLoop(period_s, fn, name=name, max_lag=1).start()

    def stop_loop(self) -> None:
        if self._loop is not None:
            self._loop.stop(5.0)
            self._loop = None

    @property
    def looping(self) -> bool:
        return self._loop is not None

    # ---------------------------------------------------------------------------------- entities
    def keep(self, *entities):
        """Remember entities made in configure (returned as given); cleanup destroys them."""
        self._entities.extend(entities)
        return entities[0] if len(entities) == 1 else entities

    def _destroy_entities(self) -> None:
        destroy = {Subscription: self.destroy_subscription, Publisher: self.destroy_publisher,
                   Service: self.destroy_service, Timer: self.destroy_timer}
        for entity in self._entities:
            for kind, fn in destroy.items():
                if isinstance(entity, kind):
                    try:
                        fn(entity)
                    except Exception:  # noqa: BLE001 - already gone during shutdown
                        pass
        self._entities = []

    def release(self) -> None:
        """Free the node's own resources (override; the base frees nothing else)."""

    # ---------------------------------------------------------------------------------- transitions
    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._destroy_entities()
        self.release()
        return SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self.close()
        return SUCCESS

    def close(self) -> None:
        self.stop_loop()
        self._destroy_entities()
        self.release()
