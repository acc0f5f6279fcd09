"""The main() of a node process: init, spin, clean shutdown on Ctrl-C/SIGTERM, one-line configuration errors."""
from __future__ import annotations

import sys
from typing import Callable

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


def run_node(make_node: Callable[[], Node], label: str, argv=None) -> int:
    """Spin the node `make_node()` builds until shutdown. 0 on a requested stop; 1 (with one line on stderr
    naming `label`) when the node cannot be built, e.g. a bad parameter or a missing checkpoint."""
    rclpy.init(args=argv if argv is not None else sys.argv)
    node = None
    try:
        node = make_node()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):   # Ctrl-C / SIGTERM: clean shutdown
        pass
    except Exception as exc:   # configuration errors: one clear line, non-zero exit
        print(f'{label}: error: {exc}', file=sys.stderr, flush=True)
        return 1
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
