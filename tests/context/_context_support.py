"""Helpers for the context-channel tests: unique segment prefixes, /dev/shm cleanup, JSON-line processes."""
from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid

import pytest

from aha_wam.context.shm_ring import _shm_unlink


def unique_prefix() -> str:
    """A segment-name prefix unique to this test session (and pid), so runs never collide."""
    return f'ahatest{os.getpid()}x{uuid.uuid4().hex[:6]}'


def segments_with(prefix: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir('/dev/shm') if n.startswith(prefix))
    except FileNotFoundError:
        return []


def remove_segments(prefix: str) -> None:
    for name in segments_with(prefix):
        try:
            _shm_unlink(name)
        except OSError:
            pass


class JsonLines:
    """Collects a child's stdout lines on a thread; JSON lines are parsed, others kept for error messages."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.lines: list[str] = []
        self.events: list[dict] = []
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self):
        for line in self.proc.stdout:
            line = line.rstrip('\n')
            self.lines.append(line)
            if line.startswith('{'):
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                self.events.append(event)

    def wait(self, predicate, timeout: float = 30.0) -> dict:
        """First event so far or later that matches `predicate`; raises with the output on timeout."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            events = self.events[seen:]
            for event in events:
                if predicate(event):
                    return event
            seen += len(events)
            if time.monotonic() > deadline or (self.proc.poll() is not None and not self._thread.is_alive()
                                              and seen == len(self.events)):
                raise AssertionError(f'no matching event within {timeout}s (exit {self.proc.poll()}); output:\n'
                                     + '\n'.join(self.lines[-40:]))
            time.sleep(0.02)

    def output(self) -> str:
        return '\n'.join(self.lines)

    def stop(self, timeout: float = 15.0) -> str:
        """SIGINT, escalate to SIGKILL; return the full output."""
        if self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self._thread.join(5.0)
        return self.output()


@pytest.fixture
def shm_prefix():
    """A unique segment prefix for one test; every segment under it is unlinked afterwards."""
    prefix = unique_prefix()
    yield prefix
    remove_segments(prefix)
