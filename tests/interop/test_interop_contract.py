"""Embodiment contracts (ROS-free): YAML round trip and strict parsing, unit maps between model units and
piper_ros units, the three-camera 384 x 320 composite, and the checks a node runs at configure."""
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from aha_wam.config import get_config
from aha_wam.interop.contract import (CONTRACT_FILE, ArmMap, ContractError, check_contract, contract_for_checkpoint,
                                      contract_from_dict, contract_to_dict, load_contract, piper_native_contract,
                                      robotwin_contract, write_contract)
from aha_wam.preprocess import compose_views, head_over_wrists, resize_rgb
from _interop_support import load_fixture, official_payload, tiny_official_config


@pytest.fixture
def robotwin():
    return robotwin_contract(get_config('robotwin'))


def test_yaml_round_trip_and_strict_fields(robotwin, tmp_path):
    path = write_contract(robotwin, tmp_path)
    assert path.name == CONTRACT_FILE and load_contract(path) == robotwin
    data = contract_to_dict(robotwin)
    for bad, match in ((dict(data, speed=3), 'unknown field'),
                       (dict(data, gripper={'model': 'inches'}), 'gripper.model'),
                       (dict(data, cameras=dict(data['cameras'], views=data['cameras']['views'][:1])), 'takes 3'),
                       (dict(data, joints={'left': data['joints']['left']}), 'each arm'),
                       (dict(data, joints=dict(data['joints'], left={'sign': [1, 1, 2, 1, 1, 1]})), 'joints.left'),
                       (dict(data, state_source='guessed'), 'state_source')):
        with pytest.raises(ContractError, match=match) as err:
            contract_from_dict(bad)
        assert '\n' not in str(err.value)
    (tmp_path / 'broken.yaml').write_text('cameras: [')
    with pytest.raises(ContractError, match='not valid YAML'):
        load_contract(tmp_path / 'broken.yaml')


def test_gripper_and_joint_units(robotwin):
    model = np.zeros(14)
    model[6], model[13] = 1.0, 0.25                       # left open, right quarter open (RoboTwin 0..1)
    model[[0, 7]] = 0.5
    piper = robotwin.model_to_robot(model)
    assert piper[6] == pytest.approx(0.07) and piper[13] == pytest.approx(0.0175) and piper[0] == 0.5
    assert np.allclose(robotwin.robot_to_model(piper), model)
    assert robotwin.model_to_robot(np.full(14, 1.3))[6] == pytest.approx(0.07)      # clipped to fully open
    chunk = np.random.default_rng(0).uniform(0, 1, (16, 14))
    assert robotwin.model_to_robot(chunk).shape == (16, 14)
    mapped = dataclasses.replace(robotwin, joints={'left': ArmMap((1, -1, 1, 1, 1, 1), (0.1, 0, 0, 0, 0, -0.2)),
                                                   'right': ArmMap((1,) * 6, (0,) * 6)})
    out = mapped.model_to_robot(model)
    assert out[0] == pytest.approx(0.6) and out[1] == 0.0 and out[5] == pytest.approx(-0.2)
    assert np.allclose(mapped.robot_to_model(out), model)
    native = piper_native_contract(get_config('tiny'))
    assert np.array_equal(native.model_to_robot(model * 0.05), model * 0.05)         # identity for this project
    with pytest.raises(ContractError, match='14 values'):
        robotwin.model_to_robot(np.zeros(7))


def test_three_camera_composite(robotwin):
    rng = np.random.default_rng(0)
    head, left, right = (rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(3))
    image = robotwin.compose({'head': head, 'left_wrist': left, 'right_wrist': right})
    assert image.shape == (384, 320, 3) and image.dtype == np.uint8
    pil = lambda a, w, h: np.asarray(Image.fromarray(a).resize((w, h), resample=Image.BILINEAR))   # noqa: E731
    assert np.array_equal(image[:256], pil(head, 320, 256))                   # official eval resize, exactly
    assert np.array_equal(image[256:, :160], pil(left, 160, 128))
    assert np.array_equal(image[256:, 160:], pil(right, 160, 128))
    assert np.array_equal(head_over_wrists(head, left, right), image)
    with pytest.raises(ContractError, match='right_wrist'):
        robotwin.compose({'head': head, 'left_wrist': left})
    with pytest.raises(ValueError, match='takes 3'):
        compose_views([head], 'head_over_wrists', 384, 320)
    assert np.array_equal(compose_views(head, 'single', 64, 64, 'area'), resize_rgb(head, 64, 64))


def test_checks_a_node_runs_at_configure(robotwin):
    cfg = get_config('robotwin')
    check_contract(robotwin, cfg, camera_topics=robotwin.camera_topics, control_hz=50.0)
    cases = [(dict(camera_topics=['/camera/ego/image_raw']), 'needs 3 camera topic'),
             (dict(control_hz=30.0), '30.0 Hz'),
             (dict(chunks_per_prefill=5), 'chunk index 4'),
             (dict(require_verified=True), 'not verified')]
    for kwargs, match in cases:
        with pytest.raises(ContractError, match=match) as err:
            check_contract(robotwin, cfg, **kwargs)
        assert '\n' not in str(err.value)
    with pytest.raises(ContractError, match='model input'):
        check_contract(robotwin, get_config('tiny'))


def test_contract_for_checkpoint(tmp_path):
    from aha_wam.interop.official import convert_official
    tensors, meta = load_fixture()
    torch.save(official_payload(tensors, meta), tmp_path / 'ckpt.pt')
    (tmp_path / 'stats.json').write_text(meta['dataset_stats'])
    out = convert_official(tmp_path / 'ckpt.pt', tmp_path / 'stats.json', tmp_path / 'ckpt',
                           tiny_official_config(meta))
    contract = contract_for_checkpoint(out)
    assert contract.name == 'robotwin_aloha_agilex' and contract.gripper.model == 'normalized'
    assert (contract.cameras.height, contract.cameras.width) == (96, 128)
    assert yaml.safe_load((out / CONTRACT_FILE).read_text())['state_source'] == 'commanded'
    root = Path(__file__).resolve().parents[2]
    if (root / 'checkpoints' / 'cpu' / 'config.yaml').is_file():
        native = contract_for_checkpoint(root / 'checkpoints' / 'cpu')   # this project's: no file, the default
        assert native.name == 'piper_native' and native.camera_topics == ['/camera/ego/image_raw']
