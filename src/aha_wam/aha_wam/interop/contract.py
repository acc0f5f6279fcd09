"""Embodiment contract: what a checkpoint's model units, cameras and timing mean on the bimanual Piper.

A checkpoint's actions and states are in the units of the embodiment it was trained on. This project's own
checkpoints use piper_ros units (joint1..6 in rad, gripper total opening in metres, one ego camera); the
official RoboTwin checkpoint uses the simulated aloha-agilex: grippers normalised 0..1 (0 closed), joints as
sim drive targets, the commanded targets as state, and a 384 x 320 composite of three cameras. The contract
(`embodiment.yaml` in the checkpoint directory; `contract_for_checkpoint` gives a default when absent) says so,
and this module applies it, ROS-free:

    contract = contract_for_checkpoint(ckpt_dir)
    check_contract(contract, policy.config, camera_topics=[...], control_hz=50.0)   # ContractError, one line
    image = contract.compose({'head': rgb0, 'left_wrist': rgb1, 'right_wrist': rgb2})  # model image
    state_model = contract.robot_to_model(piper_state_14)         # before policy.prepare / act
    chunk_piper = contract.model_to_robot(chunk_model_14)         # before the trajectory goes to piper_ros

Per arm and joint: piper = sign * model + offset (rad); grippers: piper_m = closed_m + g (open_m - closed_m)
for normalised models (g clipped to 0..1), identity for metres. `joint_map_verified: false` marks a map not
yet checked against both URDFs; `check_contract(..., require_verified=True)` (real arms) refuses it.
"""
from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import yaml

from piper_core.layout import ARMS, GRIPPER_MAX, gripper_dim, joints_slice

from aha_wam.preprocess import COMPOSITIONS, RESIZE_METHODS, compose_views

FORMAT = 'aha_wam.embodiment'
VERSION = 1
CONTRACT_FILE = 'embodiment.yaml'
GRIPPER_UNITS = ('metres', 'normalized')
STATE_SOURCES = ('measured', 'commanded')
COMPOSITION_VIEWS = {'single': 1, 'head_over_wrists': 3}


class ContractError(ValueError):
    """A contract that is malformed or does not fit what a node sees; the message is one line."""


@dataclasses.dataclass(frozen=True)
class CameraView:
    name: str
    topic: str


@dataclasses.dataclass(frozen=True)
class CameraContract:
    composition: str                  # 'single' | 'head_over_wrists'
    resize: str                       # 'area' (this project) | 'pil_bilinear' (official)
    height: int
    width: int
    views: tuple[CameraView, ...]     # in composition order (head, left wrist, right wrist)


@dataclasses.dataclass(frozen=True)
class ArmMap:
    sign: tuple[float, ...]           # 6 values, +1 or -1
    offset: tuple[float, ...]         # 6 values, rad


@dataclasses.dataclass(frozen=True)
class GripperUnits:
    model: str                        # 'metres' (piper total opening) | 'normalized' (0 closed .. 1 open)
    open_m: float = GRIPPER_MAX       # piper opening at model 1.0 (normalised)
    closed_m: float = 0.0             # piper opening at model 0.0


@dataclasses.dataclass(frozen=True)
class EmbodimentContract:
    name: str
    cameras: CameraContract
    joints: Mapping[str, ArmMap]      # per arm in piper_core.layout.ARMS
    gripper: GripperUnits
    state_source: str                 # 'measured' joint states, or the last 'commanded' targets (official)
    control_hz: float
    chunks_per_prefill: int           # chunks executed per planner refresh (official RoboTwin eval: 2)
    execute_per_chunk: int            # actions executed of each chunk (official: all 16)
    joint_map_verified: bool = True
    notes: str = ''

    # -------------------------------------------------------------------------------------- apply
    def model_to_robot(self, x) -> np.ndarray:
        """[..., 14] model units -> piper_ros units (rad, m). Grippers of a normalised model are clipped to 0..1
        first; joints are not clamped here (the runtime's guard owns joint limits)."""
        x = _as14(x, 'action')
        out = np.array(x, dtype=np.float64, copy=True)
        for arm in ARMS:
            m = self.joints[arm]
            out[..., joints_slice(arm)] = np.asarray(m.sign) * x[..., joints_slice(arm)] + np.asarray(m.offset)
            g = gripper_dim(arm)
            if self.gripper.model == 'normalized':
                span = self.gripper.open_m - self.gripper.closed_m
                out[..., g] = self.gripper.closed_m + np.clip(x[..., g], 0.0, 1.0) * span
        return out

    def robot_to_model(self, x) -> np.ndarray:
        """[..., 14] piper_ros units -> model units (the inverse map; grippers clipped to 0..1 when normalised)."""
        x = _as14(x, 'state')
        out = np.array(x, dtype=np.float64, copy=True)
        for arm in ARMS:
            m = self.joints[arm]
            out[..., joints_slice(arm)] = (x[..., joints_slice(arm)] - np.asarray(m.offset)) * np.asarray(m.sign)
            g = gripper_dim(arm)
            if self.gripper.model == 'normalized':
                span = self.gripper.open_m - self.gripper.closed_m
                out[..., g] = np.clip((x[..., g] - self.gripper.closed_m) / span, 0.0, 1.0)
        return out

    def compose(self, images) -> np.ndarray:
        """The model image from camera images: a mapping view name -> uint8 RGB, or a sequence in view order."""
        c = self.cameras
        if isinstance(images, Mapping):
            missing = [v.name for v in c.views if v.name not in images]
            if missing:
                raise ContractError(f'contract {self.name!r} needs camera views {missing} (got {sorted(images)})')
            images = [images[v.name] for v in c.views]
        return compose_views(images, c.composition, c.height, c.width, c.resize)

    @property
    def camera_topics(self) -> list[str]:
        return [v.topic for v in self.cameras.views]


def _as14(x, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.shape[-1:] != (14,):
        raise ContractError(f'{what} must end in 14 values (left j1..j6, gripper, right ...), got {a.shape}')
    return a


# ------------------------------------------------------------------------------------------- build, read
def _fail(where: str, message: str):
    raise ContractError(f'{where}: {message}')


def _arm_map(data: Any, where: str) -> ArmMap:
    if not isinstance(data, Mapping):
        _fail(where, 'must be a mapping with sign and offset')
    sign = tuple(float(v) for v in data.get('sign', [1.0] * 6))
    offset = tuple(float(v) for v in data.get('offset', [0.0] * 6))
    if len(sign) != 6 or any(s not in (1.0, -1.0) for s in sign):
        _fail(where, f'sign must be 6 values of +1/-1, got {list(sign)}')
    if len(offset) != 6 or not all(math.isfinite(v) for v in offset):
        _fail(where, f'offset must be 6 finite values (rad), got {list(offset)}')
    unknown = sorted(set(data) - {'sign', 'offset'})
    if unknown:
        _fail(where, f'unknown field(s) {unknown}')
    return ArmMap(sign, offset)


def contract_from_dict(data: Mapping[str, Any], where: str = 'contract') -> EmbodimentContract:
    """Strict: unknown fields, wrong units or shapes raise ContractError naming the field."""
    if not isinstance(data, Mapping):
        _fail(where, f'must be a mapping, got {type(data).__name__}')
    if data.get('format', FORMAT) != FORMAT or int(data.get('version', VERSION)) != VERSION:
        _fail(where, f'format {data.get("format")!r} version {data.get("version")!r} is not {FORMAT} {VERSION}')
    known = {'format', 'version', 'name', 'cameras', 'joints', 'gripper', 'state_source', 'control_hz',
             'chunks_per_prefill', 'execute_per_chunk', 'joint_map_verified', 'notes'}
    unknown = sorted(set(data) - known)
    if unknown:
        _fail(where, f'unknown field(s) {unknown}; known: {sorted(known)}')
    cams = data.get('cameras')
    if not isinstance(cams, Mapping):
        _fail(where, 'cameras must be a mapping (composition, resize, height, width, views)')
    composition, resize = cams.get('composition'), cams.get('resize', 'area')
    if composition not in COMPOSITIONS:
        _fail(where, f'cameras.composition must be one of {COMPOSITIONS}, got {composition!r}')
    if resize not in RESIZE_METHODS:
        _fail(where, f'cameras.resize must be one of {RESIZE_METHODS}, got {resize!r}')
    views = []
    for i, v in enumerate(cams.get('views') or []):
        if not isinstance(v, Mapping) or not v.get('name') or not str(v.get('topic', '')).startswith('/'):
            _fail(where, f'cameras.views[{i}] needs a name and an absolute topic, got {v!r}')
        views.append(CameraView(str(v['name']), str(v['topic'])))
    if len(views) != COMPOSITION_VIEWS[composition]:
        _fail(where, f'composition {composition!r} takes {COMPOSITION_VIEWS[composition]} camera view(s), '
                     f'the contract lists {len(views)}')
    try:
        height, width = int(cams['height']), int(cams['width'])
    except (KeyError, TypeError, ValueError):
        _fail(where, 'cameras.height and cameras.width must be integers')
    joints = data.get('joints') or {}
    if not isinstance(joints, Mapping) or sorted(joints) != sorted(ARMS):
        _fail(where, f'joints must map each arm {ARMS} to {{sign, offset}}')
    gripper = data.get('gripper') or {}
    if not isinstance(gripper, Mapping) or gripper.get('model') not in GRIPPER_UNITS:
        _fail(where, f'gripper.model must be one of {GRIPPER_UNITS}')
    g = GripperUnits(str(gripper['model']), float(gripper.get('open_m', GRIPPER_MAX)),
                     float(gripper.get('closed_m', 0.0)))
    if g.model == 'normalized' and not g.open_m != g.closed_m:
        _fail(where, 'gripper.open_m must differ from gripper.closed_m')
    state_source = data.get('state_source', 'measured')
    if state_source not in STATE_SOURCES:
        _fail(where, f'state_source must be one of {STATE_SOURCES}, got {state_source!r}')
    try:
        control_hz = float(data['control_hz'])
        chunks, execute = int(data['chunks_per_prefill']), int(data['execute_per_chunk'])
    except (KeyError, TypeError, ValueError):
        _fail(where, 'control_hz, chunks_per_prefill and execute_per_chunk are required numbers')
    if not control_hz > 0 or chunks <= 0 or execute <= 0:
        _fail(where, 'control_hz, chunks_per_prefill and execute_per_chunk must be > 0')
    return EmbodimentContract(
        name=str(data.get('name', 'unnamed')),
        cameras=CameraContract(composition, resize, height, width, tuple(views)),
        joints={arm: _arm_map(joints[arm], f'{where}: joints.{arm}') for arm in ARMS}, gripper=g,
        state_source=state_source, control_hz=control_hz, chunks_per_prefill=chunks, execute_per_chunk=execute,
        joint_map_verified=bool(data.get('joint_map_verified', True)), notes=str(data.get('notes', '')))


def contract_to_dict(contract: EmbodimentContract) -> dict:
    c = contract.cameras
    return {'format': FORMAT, 'version': VERSION, 'name': contract.name,
            'cameras': {'composition': c.composition, 'resize': c.resize, 'height': c.height, 'width': c.width,
                        'views': [{'name': v.name, 'topic': v.topic} for v in c.views]},
            'joints': {arm: {'sign': list(m.sign), 'offset': list(m.offset)} for arm, m in contract.joints.items()},
            'gripper': dataclasses.asdict(contract.gripper), 'state_source': contract.state_source,
            'control_hz': contract.control_hz, 'chunks_per_prefill': contract.chunks_per_prefill,
            'execute_per_chunk': contract.execute_per_chunk, 'joint_map_verified': contract.joint_map_verified,
            'notes': contract.notes}


def load_contract(path: str | os.PathLike) -> EmbodimentContract:
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding='utf-8'))
    except OSError as exc:
        raise ContractError(f'{p}: {exc}') from None
    except yaml.YAMLError as exc:
        raise ContractError(f'{p}: not valid YAML ({str(exc).splitlines()[0]})') from None
    return contract_from_dict(data, str(p))


def write_contract(contract: EmbodimentContract, directory: str | os.PathLike) -> Path:
    path = Path(directory) / CONTRACT_FILE
    tmp = path.with_name(path.name + '.tmp')
    tmp.write_text(yaml.safe_dump(contract_to_dict(contract), sort_keys=False), encoding='utf-8')
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------------------------- defaults
_IDENTITY = {arm: ArmMap((1.0,) * 6, (0.0,) * 6) for arm in ARMS}


def piper_native_contract(config) -> EmbodimentContract:
    """This project's checkpoints: piper_ros units, one ego camera resized by area, measured joint states."""
    e = config.encoder
    return EmbodimentContract(
        name='piper_native', cameras=CameraContract('single', 'area', e.image_height, e.image_width,
                                                    (CameraView('ego', '/camera/ego/image_raw'),)),
        joints=dict(_IDENTITY), gripper=GripperUnits('metres'), state_source='measured',
        control_hz=float(config.timing.control_hz), chunks_per_prefill=int(config.timing.horizon_chunks),
        execute_per_chunk=int(config.executor.chunk_size))


def robotwin_contract(config) -> EmbodimentContract:
    """SereneC/AHA-WAM-RoboTwin2.0 (aloha-agilex in RoboTwin 2.0): head + two wrist cameras in the 384 x 320
    composite (PIL bilinear), grippers normalised 0..1, commanded targets as state, 16 actions per chunk at a
    nominal 50 Hz, a prefill every 2 chunks. The joint map to Piper is identity and NOT verified: the sim
    drive targets' zero and sign conventions must be checked against both URDFs before real arms move (and
    the sim-trained checkpoint is not expected to work on hardware without fine-tuning)."""
    e = config.encoder
    views = (CameraView('head', '/camera/head/image_raw'), CameraView('left_wrist', '/camera/left_wrist/image_raw'),
             CameraView('right_wrist', '/camera/right_wrist/image_raw'))
    return EmbodimentContract(
        name='robotwin_aloha_agilex', cameras=CameraContract('head_over_wrists', 'pil_bilinear', e.image_height,
                                                             e.image_width, views),
        joints=dict(_IDENTITY), gripper=GripperUnits('normalized', open_m=GRIPPER_MAX, closed_m=0.0),
        state_source='commanded', control_hz=50.0, chunks_per_prefill=2,
        execute_per_chunk=int(config.executor.chunk_size), joint_map_verified=False,
        notes='RoboTwin 2.0 aloha-agilex; joint map unverified against the Piper URDF')


def pretrained_contract(config) -> EmbodimentContract:
    """SereneC/AHA-WAM-Pretrained (RoboCOIN), as the official real-robot server feeds it: one front camera
    resized to 384 x 320 (PIL bilinear), Piper joint states (rad) and gripper metres. Its own model card is the
    authority; re-check before use."""
    e = config.encoder
    return EmbodimentContract(
        name='ahawam_pretrained_front', cameras=CameraContract('single', 'pil_bilinear', e.image_height,
                                                               e.image_width, (CameraView('front', '/camera/ego/image_raw'),)),
        joints=dict(_IDENTITY), gripper=GripperUnits('metres'), state_source='measured', control_hz=50.0,
        chunks_per_prefill=int(config.timing.horizon_chunks), execute_per_chunk=int(config.executor.chunk_size),
        joint_map_verified=False, notes='camera/state contract from the official deploy server; not verified')


PRESET_CONTRACTS = {'robotwin': robotwin_contract, 'robotwin_offset': robotwin_contract,
                    'ahawam_pretrained': pretrained_contract}


def default_contract(config) -> EmbodimentContract:
    if config.name in PRESET_CONTRACTS:
        return PRESET_CONTRACTS[config.name](config)
    if config.encoder.kind == 'wan22':          # an official layout under another name: RoboTwin semantics
        return robotwin_contract(config)
    return piper_native_contract(config)


def contract_for_checkpoint(directory: str | os.PathLike, config=None) -> EmbodimentContract:
    """The checkpoint's embodiment.yaml, or the default for its config (this project's checkpoints have none)."""
    path = Path(directory) / CONTRACT_FILE
    if path.is_file():
        return load_contract(path)
    if config is None:
        from aha_wam.checkpoint import read_config
        config = read_config(directory)
    return default_contract(config)


# ------------------------------------------------------------------------------------------------ check
def check_contract(contract: EmbodimentContract, config, *, camera_topics: Sequence[str] | None = None,
                   control_hz: float | None = None, chunks_per_prefill: int | None = None,
                   require_verified: bool = False) -> None:
    """Raise ContractError (one line) if the contract does not fit the model config, or what the node runs
    with: the camera topics it subscribes (count, and names when the contract's are used), its control rate
    and planner cadence; real arms (`require_verified`) need a verified joint map."""
    c, name = contract.cameras, contract.name
    if (c.height, c.width) != (config.encoder.image_height, config.encoder.image_width):
        raise ContractError(f'contract {name!r}: camera image {c.height}x{c.width} != model input '
                            f'{config.encoder.image_height}x{config.encoder.image_width}')
    if not math.isclose(contract.control_hz, float(config.timing.control_hz), rel_tol=1e-6):
        raise ContractError(f'contract {name!r}: control rate {contract.control_hz} Hz != the model\'s timing '
                            f'{config.timing.control_hz} Hz (RoPE time is control step // video_stride)')
    chunk = config.executor.chunk_size
    if contract.execute_per_chunk > chunk:
        raise ContractError(f'contract {name!r}: executes {contract.execute_per_chunk} actions of a {chunk}-step chunk')
    cadence = contract.chunks_per_prefill if chunks_per_prefill is None else int(chunks_per_prefill)
    if cadence > config.timing.horizon_chunks:
        raise ContractError(f'contract {name!r}: {cadence} chunks per prefill use chunk index {cadence - 1}, the '
                            f'model was trained on 0..{config.timing.horizon_chunks - 1}')
    if camera_topics is not None:
        topics = list(camera_topics)
        if len(topics) != len(c.views):
            raise ContractError(f'contract {name!r}: composition {c.composition!r} needs {len(c.views)} camera '
                                f'topic(s) {contract.camera_topics}, the node has {len(topics)}: {topics}')
    if control_hz is not None and not math.isclose(float(control_hz), contract.control_hz, rel_tol=1e-3):
        raise ContractError(f'contract {name!r}: node runs at {control_hz} Hz, the checkpoint at {contract.control_hz} Hz')
    if require_verified and not contract.joint_map_verified:
        why = contract.notes or 'see embodiment.yaml'
        raise ContractError(f'contract {name!r}: joint map not verified against the robot ({why}); '
                            'refusing to drive real arms')
