"""Small helpers for tests that run real processes (nodes, writers, readers) over real DDS."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Callable


# Every process started here; tests/conftest.py stops any still running when the session ends, so a failing
# test can never leave node processes behind to disturb later tests or runs.
SPAWNED: list[subprocess.Popen] = []


def spawn_python(*args: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
    """Start `python <args>` as a separate process with the test session's environment (ROS domain)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.Popen([sys.executable, *args], env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)
    SPAWNED.append(proc)
    return proc


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> str:
    """SIGINT a process (clean ROS shutdown), escalate to SIGKILL, and return everything it printed."""
    if proc.poll() is None:
        proc.send_signal(2)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    out = proc.stdout.read() if proc.stdout else ''
    return out or ''
