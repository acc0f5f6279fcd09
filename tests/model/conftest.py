"""Fixtures for the model-core tests: tiny configs and policies, one CPU thread (helpers: _model_support)."""
from __future__ import annotations

import os
import sys

import pytest
import torch

try:
    import aha_wam  # noqa: F401  (installed overlay sourced)
except ImportError:   # plain venv: use the source tree
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'src', 'aha_wam'))

from _model_support import randomise_zero_inits  # noqa: E402
from aha_wam.config import get_config  # noqa: E402
from aha_wam.policy import AhaWamPolicy  # noqa: E402


@pytest.fixture(autouse=True)
def one_cpu_thread():
    """One intra-op thread: these tensors are tiny, and on a shared 2-core machine a second thread mostly
    waits for the other processes (measured ~5x slower per training step). Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_config():
    return get_config('tiny')


@pytest.fixture
def tiny_policy(tiny_config):
    torch.manual_seed(0)
    return AhaWamPolicy(tiny_config).eval()


@pytest.fixture
def trained_like_policy(tiny_config):
    """Tiny policy whose zero-initialised layers (output heads, OVCR delta) are random, as after training,
    so that every path actually carries signal in topology tests."""
    torch.manual_seed(0)
    policy = AhaWamPolicy(tiny_config).eval()
    randomise_zero_inits(policy)
    return policy
