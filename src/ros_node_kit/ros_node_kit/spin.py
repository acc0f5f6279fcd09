"""The main() of every node process in the workspace: one `run_node`, one exit convention.

    0  requested stop (Ctrl-C, SIGTERM, `rclpy.shutdown()` from elsewhere)
    1  the node could not be built (missing checkpoint, contract mismatch, ...): one line on stderr
    2  a parameter is invalid (`ParameterError`, or out of its declared range): one line on stderr

Signals never raise KeyboardInterrupt once the node spins: a terminal's Ctrl-C reaches every process of the
group and `ros2 launch` forwards one more, so each node gets SIGINT twice, and a KeyboardInterrupt raised
wherever the main thread happens to be (in the middle of the node's cleanup) printed tracebacks. Instead, rclpy's
own handler (which shuts the context down and so ends `spin`) chains to a Python handler that only counts; a
signal while the node is still being built stops the build (KeyboardInterrupt, caught here). Further signals
during shutdown are absorbed, and the node's own cleanup runs to its end.
"""
from __future__ import annotations

import os
import signal
import sys
from typing import Callable

import rclpy
from rclpy.executors import ExternalShutdownException

from .params import ParameterError


def make_executor(threads: int = 1):
    """SingleThreadedExecutor (MultiThreadedExecutor with `threads` > 1, for nodes whose callbacks wait on
    their own service calls); AHA_WAM_EXECUTOR=events tries rclpy's experimental EventsExecutor (in the
    Kilted wheels here it received nothing from other processes and busy-spun, so it is opt-in only)."""
    if threads > 1:
        from rclpy.executors import MultiThreadedExecutor
        return MultiThreadedExecutor(num_threads=int(threads))
    if os.environ.get('AHA_WAM_EXECUTOR', 'single') == 'events':
        try:
            from rclpy.experimental import EventsExecutor
            return EventsExecutor()
        except Exception as exc:  # Humble has no rclpy.experimental: say so instead of switching silently
            print(f'[WARN] AHA_WAM_EXECUTOR=events: EventsExecutor unavailable ({exc}); using '
                  f'SingleThreadedExecutor', file=sys.stderr, flush=True)
    from rclpy.executors import SingleThreadedExecutor
    return SingleThreadedExecutor()


class _QuietInterrupts:
    """The Python-level SIGINT/SIGTERM handler under rclpy's (which calls it after shutting the context down).

    Raises KeyboardInterrupt only for the first signal while the node is being built (loading a model or a scene
    can take seconds and should stop at once); otherwise it only counts, so no traceback can come from it."""

    def __init__(self):
        self.count = 0
        self.building = True

    def __call__(self, signum, frame):
        self.count += 1
        if self.building and self.count == 1:
            raise KeyboardInterrupt

    def install(self) -> None:
        """Before rclpy.init, so that rclpy's handler chains to this one instead of Python's default."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                signal.signal(sig, self)
            except (ValueError, OSError):  # not the main thread (tests): leave the handlers alone
                pass


def _absorb_further_interrupts() -> None:
    """From now on SIGINT/SIGTERM do nothing: we are already shutting down."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, signal.SIG_IGN)
        except (ValueError, OSError):  # not the main thread / platform without the signal
            pass


def run_node(make_node: Callable, label: str | None = None, argv=None, threads: int = 1) -> int:
    """Build the node with `make_node()`, spin it until shutdown, clean up; return the exit code above."""
    label = label or getattr(make_node, '__name__', 'node')
    interrupts = _QuietInterrupts()
    interrupts.install()
    rclpy.init(args=argv if argv is not None else sys.argv)
    node = None
    code = 0
    try:
        node = make_node()
        executor = make_executor(threads)
        executor.add_node(node)
        interrupts.building = False     # from here a signal ends spin through rclpy's shutdown of the context
        try:
            executor.spin()
        finally:
            _absorb_further_interrupts()
            executor.shutdown()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except ParameterError as exc:
        print(f'[ERROR] {label}: bad parameter: {exc}', file=sys.stderr, flush=True)
        code = 2
    except Exception as exc:  # cannot build the node: one clear line, no traceback
        if interrupts.count or not rclpy.ok():
            # a stop was requested: a signal (or rclpy.shutdown) invalidated the context under spin or the build,
            # and rclpy raised from it ("failed to initialize wait set: the given context is not valid")
            pass
        else:
            print(f'[ERROR] {label}: error: {exc}', file=sys.stderr, flush=True)
            code = 1
    finally:
        _absorb_further_interrupts()
        if node is not None:
            close = getattr(node, 'close', None)
            if close is not None:
                try:
                    close()
                except Exception as exc:  # noqa: BLE001 - cleanup must not hide the exit code
                    print(f'[WARN] {label}: cleanup: {exc}', file=sys.stderr, flush=True)
            node.destroy_node()
        rclpy.try_shutdown()
    return code
