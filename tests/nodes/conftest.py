"""Fixtures for tests that run the planner/executor nodes as real processes."""
import numpy as np
import pytest
import torch

from aha_wam.checkpoint import save_checkpoint
from aha_wam.config import get_config
from aha_wam.policy import AhaWamPolicy
from aha_wam.runtime.safety import PIPER_LOWER, PIPER_UPPER


@pytest.fixture(scope='session')
def tiny_checkpoint(tmp_path_factory):
    """An untrained tiny policy whose action statistics keep every chunk near mid-range (inside limits)."""
    torch.manual_seed(0)
    policy = AhaWamPolicy(get_config('tiny'))
    mid = np.tile((PIPER_LOWER + PIPER_UPPER) / 2, 2)
    policy.normalizer.set_stats({'state_mean': mid, 'state_std': np.ones(14), 'action_mean': mid,
                                 'action_std': np.full(14, 1e-3)})
    return str(save_checkpoint(policy, tmp_path_factory.mktemp('ckpt') / 'tiny', data='untrained test fixture'))
