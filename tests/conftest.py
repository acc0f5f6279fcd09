"""Test-session setup shared by every test.

ROS isolation: each pytest session picks its own ROS_DOMAIN_ID and keeps discovery on localhost, before
anything imports rclpy, so parallel runs (two developers, CI next to a demo) never see each other's
topics. Child processes inherit the environment and therefore the same domain.
"""
import os
import random

import numpy as np
import pytest

# Domain IDs 1..101 are safe with Fast DDS' default port mapping on Linux; 0 is the shared default.
os.environ['ROS_DOMAIN_ID'] = os.environ.get('AHA_WAM_TEST_DOMAIN_ID') or str(random.SystemRandom().randint(1, 101))
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
os.environ.setdefault('MUJOCO_GL', 'osmesa')
os.environ.setdefault('PYTHONUNBUFFERED', '1')


def _adopt_node_environment():
    """Node processes a test starts get what `aha-wam up` gives them (the project's Fast DDS profile), so tests
    run the discovery users run."""
    try:
        from aha_wam.supervisor import adopt_node_environment
        adopt_node_environment()
    except (ImportError, LookupError):     # the ROS-free 3.10 subset: no workspace, no nodes to start
        pass


_adopt_node_environment()


def pytest_report_header(config):
    profile = os.environ.get('FASTDDS_DEFAULT_PROFILES_FILE') or os.environ.get('FASTRTPS_DEFAULT_PROFILES_FILE')
    return (f"ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']} ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST "
            f"Fast DDS profile: {profile or 'none'}")


def pytest_sessionfinish(session, exitstatus):
    """Stop every process a test spawned and left running (see _support.SPAWNED)."""
    from _support import SPAWNED, stop
    for proc in SPAWNED:
        if proc.poll() is None:
            stop(proc, timeout=5.0)


def pytest_configure(config):
    config.addinivalue_line('markers', 'gpu: needs a CUDA device; skipped with the reason on CPU machines')
    config.addinivalue_line('markers', 'ros: starts real rclpy nodes / processes over DDS')


@pytest.fixture
def cuda_device():
    """A CUDA device, or a skip that says why there is none."""
    import torch
    if not torch.cuda.is_available():
        pytest.skip('GPU-only test: torch.cuda.is_available() is False on this machine')
    return torch.device('cuda')


@pytest.fixture(scope='session')
def tiny_checkpoint(tmp_path_factory):
    """An untrained tiny policy whose action statistics keep every chunk near mid-range (inside limits)."""
    import torch
    from aha_wam.checkpoint import save_checkpoint
    from aha_wam.config import get_config
    from aha_wam.policy import AhaWamPolicy
    from aha_wam.runtime.safety import PIPER_LOWER, PIPER_UPPER
    torch.manual_seed(0)
    policy = AhaWamPolicy(get_config('tiny'))
    mid = np.tile((PIPER_LOWER + PIPER_UPPER) / 2, 2)
    policy.normalizer.set_stats({'state_mean': mid, 'state_std': np.ones(14), 'action_mean': mid,
                                 'action_std': np.full(14, 1e-3)})
    return str(save_checkpoint(policy, tmp_path_factory.mktemp('ckpt') / 'tiny', data='untrained test fixture'))
