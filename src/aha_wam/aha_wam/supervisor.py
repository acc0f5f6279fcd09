"""Start a profile's node set as child processes where `ros2 launch` is unavailable (`aha-wam up`).

Every child's output is prefixed with its node name; SIGINT/SIGTERM are forwarded to all children; when a
required node exits, the others are stopped and the supervisor returns with a message naming it. ROS-free:
it only starts processes (`python -m <module> --ros-args ...`) from `aha_wam.system` specs.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Mapping, Sequence

from aha_wam.system import NodeSpec, node_environment, nodes


class NodeProcess:
    """One running node, its output pumped to our stdout line by line with a `[name]` prefix."""

    def __init__(self, spec: NodeSpec, share_dir: str, overrides_dir: str, env: Mapping[str, str] | None = None):
        if spec.module is None:
            raise RuntimeError(f'{spec.package}/{spec.executable} ({spec.name}) can only be started by a full '
                               f'ROS 2 install: use `ros2 launch aha_wam ...` there')
        self.spec = spec
        self.label = f'{spec.namespace}/{spec.name}'.strip('/')
        cmd = [sys.executable, '-u', '-m', spec.module, *spec.command_line(share_dir, overrides_dir)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, **(env or {})}, start_new_session=True)
        self._pump = threading.Thread(target=self._forward_output, daemon=True)
        self._pump.start()

    def _forward_output(self):
        for line in self.proc.stdout:
            sys.stdout.write(f'[{self.label}] {line}')
            sys.stdout.flush()

    def stop(self, timeout: float) -> None:
        """SIGINT (rclpy's clean shutdown), then SIGTERM, then SIGKILL to the child's process group."""
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        self._pump.join(1.0)


class Supervisor:
    """Runs a list of node specs until a signal arrives or a required node exits."""

    def __init__(self, specs: Sequence[NodeSpec], share_dir: str, stop_timeout: float = 5.0):
        self.specs = list(specs)
        self.share_dir = share_dir
        self.stop_timeout = stop_timeout
        self.children: list[NodeProcess] = []
        self._stop = threading.Event()
        self.reason = ''

    def _on_signal(self, signum, frame):
        self.reason = f'received {signal.Signals(signum).name}'
        self._stop.set()

    def run(self, duration: float | None = None) -> int:
        """Start everything, supervise, stop everything. Returns 0 on a requested stop, 1 if a node died."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        failed = False
        overrides = tempfile.TemporaryDirectory(prefix='aha_wam_up_')
        env = node_environment(self.share_dir)
        try:
            for spec in self.specs:
                self.children.append(NodeProcess(spec, self.share_dir, overrides.name, env))
            print(f'aha-wam up: started {", ".join(c.label for c in self.children)}', flush=True)
            deadline = None if duration is None else time.monotonic() + duration
            while not self._stop.wait(0.2):
                dead = [c for c in self.children if c.proc.poll() is not None and c.spec.required]
                if dead:
                    c = dead[0]
                    self.reason = f'node {c.label} exited with code {c.proc.returncode}; stopping the others'
                    failed = True
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    self.reason = f'ran for the requested {duration:g} s'
                    break
        except Exception as exc:  # a node that cannot start stops the whole system with the reason
            self.reason = f'could not start the system: {exc}'
            failed = True
        finally:
            for child in reversed(self.children):
                child.stop(self.stop_timeout)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            overrides.cleanup()
        print(f'aha-wam up: {self.reason}', flush=True)
        return 1 if failed else 0


def share_directory() -> str:
    """share/aha_wam of the installed package (where the params_files of the specs live)."""
    from ament_index_python.packages import get_package_share_directory
    return get_package_share_directory('aha_wam')


def adopt_node_environment() -> None:
    """Give this process the environment the node processes get (`system.node_environment`; what the caller
    already set wins), before its own rclpy.init: a client that watches the node set (eval-live, the demo, the
    start-up benchmark) then discovers it as quickly as the nodes discover each other."""
    for name, value in node_environment(share_directory()).items():
        os.environ.setdefault(name, value)


def up(profile: str, arguments: Mapping[str, str], duration: float | None = None) -> int:
    return Supervisor(nodes(profile, arguments), share_directory()).run(duration)
