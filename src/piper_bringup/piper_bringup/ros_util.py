"""Small rclpy helpers shared by the piper_bringup nodes (parameters, drift-free loops, spinning)."""
from __future__ import annotations

import os
import threading
import time
import traceback

import rclpy
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.parameter import Parameter
from rcl_interfaces.msg import ParameterDescriptor


class ParameterError(ValueError):
    """A parameter value is invalid; the node logs it and exits with a clear message."""


def declare(node, name: str, default, description: str, read_only: bool = False):
    """Declare a parameter with a description (units, range) and return its value."""
    node.declare_parameter(name, default, ParameterDescriptor(description=description, read_only=read_only))
    return node.get_parameter(name).value


def stamp_to_sec(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def sec_to_stamp(t: float, msg_stamp) -> None:
    """Write float seconds into a builtin_interfaces/Time in place."""
    ns = int(round(t * 1e9))
    msg_stamp.sec, msg_stamp.nanosec = divmod(ns, 1_000_000_000)


class DeadlineLoop:
    """Calls ``fn()`` every ``period`` s at absolute deadlines (monotonic clock, no drift).

    When more than ``max_lag`` periods late (e.g. after a stall) it skips ahead instead of bursting.
    Records the lateness of each wake-up for jitter statistics (``lateness`` ring, seconds).
    """

    def __init__(self, period: float, fn, name: str = 'loop', max_lag: int = 5):
        self.period = float(period)
        self.fn = fn
        self.max_lag = max_lag
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.ticks = 0
        self.skipped = 0
        self._last_error = -1e9
        self.deadline = 0.0       # scheduled (not actual) monotonic time of the tick being run

    def start(self):
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0):
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._stop.is_set()

    def _run(self):
        next_t = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now < next_t:
                self._stop.wait(next_t - now)
                if self._stop.is_set():
                    break
            self.deadline = next_t
            try:
                self.fn()
            except Exception:  # never let one bad tick kill the loop; stop quietly on shutdown
                if not rclpy.ok():
                    break
                if now - self._last_error > 1.0:
                    self._last_error = now
                    traceback.print_exc()
            self.ticks += 1
            next_t += self.period
            late = time.monotonic() - next_t
            if late > self.max_lag * self.period:
                skip = int(late // self.period) + 1
                next_t += skip * self.period
                self.skipped += skip


class PolledSubscription:
    """A subscription that no executor waits on: its owner takes messages from its own loop.

    rclpy's executors cost about 0.4-0.5 ms of CPU per delivered message on this class of machine; a
    200 Hz x 2-arm stream through them burns ~20 % of a core. Polling the (depth-1) reader once per
    control tick costs a few microseconds when empty and one deserialisation when not.
    """

    def __init__(self, node, msg_type, topic: str, qos):
        self._node = node
        # no QoS-event handlers: an executor would wait on them and (rmw_fastrtps) wake on every sample
        self.sub = node.create_subscription(msg_type, topic, lambda _msg: None, qos,
                                            event_callbacks=SubscriptionEventCallbacks(use_default_callbacks=False))
        assert not self.sub.event_handlers
        # hide it from executors (they iterate node.subscriptions); we own its destruction
        node._subscriptions.remove(self.sub)
        self.msg_type = msg_type

    def take(self):
        """The next message or None (non-blocking)."""
        try:
            with self.sub.handle:
                got = self.sub.handle.take_message(self.msg_type, False)
        except Exception:  # destroyed during shutdown
            return None
        return None if got is None else got[0]

    def take_latest(self, max_n: int = 64):
        """Drain up to ``max_n`` messages and return the newest (or None)."""
        last = None
        for _ in range(max_n):
            m = self.take()
            if m is None:
                break
            last = m
        return last

    def destroy(self):
        try:
            self.sub.destroy()
        except Exception:
            pass


def make_executor():
    """SingleThreadedExecutor; AHA_WAM_EXECUTOR=events tries rclpy's experimental EventsExecutor (in the
    Kilted wheels here it received nothing from other processes and busy-spun, so it is opt-in only)."""
    if os.environ.get('AHA_WAM_EXECUTOR', 'single') == 'events':
        try:
            from rclpy.experimental import EventsExecutor
            return EventsExecutor()
        except Exception:  # pragma: no cover - older rclpy
            pass
    from rclpy.executors import SingleThreadedExecutor
    return SingleThreadedExecutor()


def run_node(node_factory, args=None):
    """rclpy init, build the node, spin until Ctrl-C / shutdown, clean up. Parameter errors exit 2."""
    rclpy.init(args=args)
    node = None
    code = 0
    try:
        node = node_factory()
        executor = make_executor()
        executor.add_node(node)
        try:
            executor.spin()
        finally:
            executor.shutdown() if hasattr(executor, 'shutdown') else None
    except KeyboardInterrupt:
        pass
    except ParameterError as exc:
        print(f'[ERROR] bad parameter: {exc}', flush=True)
        code = 2
    except rclpy.executors.ExternalShutdownException:
        pass
    finally:
        if node is not None:
            try:
                node.close()
            except Exception:
                pass
            node.destroy_node()
        if rclpy.ok():
            rclpy.try_shutdown()
    return code


__all__ = ['ParameterError', 'declare', 'stamp_to_sec', 'sec_to_stamp', 'DeadlineLoop', 'make_executor',
           'run_node', 'Parameter', 'PolledSubscription']
