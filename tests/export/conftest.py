"""Fixtures for the export / backend tests: tiny policies with non-zero heads, one CPU thread."""
from __future__ import annotations

import pytest
import torch

from aha_wam.config import get_config
from aha_wam.policy import AhaWamPolicy


@pytest.fixture(autouse=True)
def one_cpu_thread():
    """One intra-op thread for torch and (the backends copy torch's count) onnxruntime; restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_policy(name: str, device: str = 'cpu', dtype: torch.dtype = torch.float32) -> AhaWamPolicy:
    """A random policy whose zero-initialised layers (action head, OVCR delta, planner head) are randomised,
    so that parity checks compare non-trivial outputs."""
    torch.manual_seed(0)
    policy = AhaWamPolicy(get_config(name)).eval()
    with torch.no_grad():
        for p in policy.parameters():
            if p.dim() > 0 and not p.any():
                p.normal_(0.0, 0.1)
    policy = policy.to(device, dtype)
    policy.reset(task=1)
    return policy


@pytest.fixture(scope='module')
def tiny_policy():
    return make_policy('tiny')
