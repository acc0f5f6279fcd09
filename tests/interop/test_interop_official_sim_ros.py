"""The converted tiny official AHA-WAM model drives the sim profile through the planner and executor nodes.

Everything as a user would run an official checkpoint: `aha-wam convert-official` output (Wan2.2 VAE image
encoder, the RoboTwin embodiment contract: three-camera composite, normalised grippers, commanded state), its
UMT5 instruction embeddings next to it, and `aha-wam up sim checkpoint:=... camera_topics:=...` with the
simulator's ego camera standing in for the head and both wrist cameras. Random weights do not do the task; the
test checks that contexts flow, nothing is rejected, and no update fails or holds for a shape or unit error.
"""
import subprocess
import sys
import time

import pytest
import torch

diffusers = pytest.importorskip('diffusers')
transformers = pytest.importorskip('transformers')

import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402

from _interop_support import (load_fixture, make_tiny_tokenizer, make_tiny_umt5, make_tiny_vae,  # noqa: E402
                              official_payload, tiny_official_config)
from aha_wam.runtime.faults import Fault  # noqa: E402
from aha_wam_msgs.msg import ExecutorStatus  # noqa: E402

RUN_S = 20.0
EGO = '/camera/ego/image_raw'


@pytest.fixture(scope='module')
def official_checkpoint(tmp_path_factory):
    from aha_wam.interop.official import convert_official
    from aha_wam.interop.text import embed_instructions, prompt_of
    from aha_wam.runtime.build import INSTRUCTION_CACHE
    from piper_core.sim.tasks import load_task_spec
    root = tmp_path_factory.mktemp('official_sim')
    tensors, meta = load_fixture()
    torch.save(official_payload(tensors, meta), root / 'ckpt.pt')
    (root / 'stats.json').write_text(meta['dataset_stats'])
    cfg = tiny_official_config(meta)
    vae = make_tiny_vae(root / 'vae')
    out = convert_official(root / 'ckpt.pt', root / 'stats.json', root / 'ckpt', cfg, vae_weights=str(vae))
    instruction = load_task_spec('lift_box').instruction
    tokenizer = make_tiny_tokenizer(root / 'tokenizer', [prompt_of(instruction)])
    encoder = make_tiny_umt5(root / 'umt5', d_model=cfg.task.text_dim, num_layers=1)
    embed_instructions(encoder, [instruction], out / INSTRUCTION_CACHE, tokenizer=tokenizer,
                       max_length=cfg.task.text_tokens, dtype='float32')
    return out


@pytest.mark.ros
def test_converted_official_model_drives_the_sim_profile(official_checkpoint):
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('official_listener', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    status = []
    node.create_subscription(ExecutorStatus, '/aha_wam/executor/status', lambda m: status.append((time.monotonic(), m)),
                             100)
    up = subprocess.Popen([sys.executable, '-m', 'aha_wam.cli', 'up', 'sim', f'checkpoint:={official_checkpoint}',
                           'backend:=torch', 'denoise_steps:=10', f'camera_topics:={EGO},{EGO},{EGO}',
                           '--duration', str(RUN_S + 40)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + RUN_S + 40
        first = None
        while up.poll() is None and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
            if first is None and any(m.context_version > 0 for _, m in status):
                first = time.monotonic()
            if first is not None and time.monotonic() - first > RUN_S:
                break
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)
        if up.poll() is None:
            up.send_signal(2)
        out, _ = up.communicate(timeout=60)
    assert first is not None, 'no context ever reached the executor:\n' + out[-4000:]
    window = [m for t, m in status if t >= first]
    assert len(window) >= 5 * RUN_S, f'{len(window)} updates in {RUN_S} s'          # the executor kept running
    versions = [m.context_version for m in window]
    assert versions[-1] >= versions[0] + 0.5 * RUN_S, 'contexts did not keep flowing'   # planner at 2 Hz
    bad = Fault.CONTEXT_REJECTED | Fault.INFERENCE_ERROR | Fault.NO_CONTEXT | Fault.STALE_CONTEXT | Fault.STALE_IMAGE \
        | Fault.STALE_JOINTS | Fault.NONFINITE_ACTION
    flagged = [(Fault(m.fault_flags).names, m.detail) for m in window if m.fault_flags & bad]
    assert not flagged, flagged[:5]
    assert "contract 'robotwin_aloha_agilex'" in out and 'configure failed' not in out
