"""Fixtures for the interop tests: one CPU thread, the official parity fixture (helpers: _interop_support)."""
from __future__ import annotations

import os
import sys

import pytest
import torch

try:
    import aha_wam  # noqa: F401  (installed overlay sourced)
except ImportError:   # plain venv: use the source tree
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'src', 'aha_wam'))


@pytest.fixture(autouse=True)
def one_cpu_thread():
    """Tiny tensors on a shared 2-core machine: one intra-op thread, restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
