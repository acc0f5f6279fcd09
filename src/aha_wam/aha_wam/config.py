"""Model configurations: frozen dataclasses validated on construction, a named registry, YAML with overrides.

Three sizes are registered: `tiny` (unit tests, seconds on CPU), `small` (CPU-trainable demo, meets the
CPU latency targets) and `paper` (AHA-WAM dimensions; instantiate on the meta device to count parameters),
and the official checkpoint layouts `robotwin`, `robotwin_offset`, `ahawam_pretrained` (OFFICIAL_PRESETS,
what `aha-wam convert-official --preset` writes).

Numbers that describe time are set ONCE, in `TimingConfig`; everything else (RoPE time of a frame, the
window a training sample spans) is derived from it, because a stride set twice is how a deploy config ended
up advancing RoPE 32 instead of 4 per prefill (notes/aha-wam.md §10).

    cfg = get_config('small', overrides=['planner.num_layers=8', 'ovcr.enabled=false'])
    cfg = load_config('config/models/small.yaml')
    text = dump_config(cfg)          # YAML, round-trips through load_config
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Iterable, Mapping

import yaml

from piper_core.layout import ACTION_DIM  # noqa: E402  left (j1..j6, gripper) then right (j1..j6, gripper)


def _positive(owner: str, **values: Any) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f'{owner}.{name} must be a positive int, got {value!r}')


def _non_negative(owner: str, **values: Any) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f'{owner}.{name} must be a non-negative int, got {value!r}')


@dataclasses.dataclass(frozen=True)
class ImageEncoderConfig:
    """Ego image -> latent grid. `kind` picks a factory in `aha_wam.models.vae.IMAGE_ENCODERS`.

    Input images are uint8 HWC RGB of exactly (image_height, image_width); they are mapped to [-1, 1] only
    inside the encoder. The latent grid is (image / downsample) with `latent_channels` channels.
    """

    kind: str = 'conv'
    image_height: int = 96
    image_width: int = 96
    latent_channels: int = 8
    downsample: int = 8            # power of two; one stride-2 conv stage per factor 2
    base_channels: int = 16
    trainable_with_policy: bool = False   # False: frozen inside the policy loss (trained on its own)
    # kind 'wan22': the Wan2.2 VAE (diffusers AutoencoderKLWan) from a local diffusers `vae` directory or a
    # single weights file, read when the encoder is first used; the environment variable AHA_WAM_WAN22_VAE
    # overrides it (weights stay outside the checkpoint: the same 1.4 GB VAE serves every checkpoint).
    weights: str | None = None

    def __post_init__(self):
        _positive('encoder', image_height=self.image_height, image_width=self.image_width,
                  latent_channels=self.latent_channels, downsample=self.downsample,
                  base_channels=self.base_channels)
        if self.downsample & (self.downsample - 1):
            raise ValueError(f'encoder.downsample must be a power of two, got {self.downsample}')
        for name in ('image_height', 'image_width'):
            if getattr(self, name) % self.downsample:
                raise ValueError(f'encoder.{name}={getattr(self, name)} is not divisible by '
                                 f'encoder.downsample={self.downsample}')

    @property
    def latent_height(self) -> int:
        return self.image_height // self.downsample

    @property
    def latent_width(self) -> int:
        return self.image_width // self.downsample


@dataclasses.dataclass(frozen=True)
class PlannerConfig:
    """Video DiT (Wan2.2-style blocks: self-attn with 3-D RoPE, text cross-attn, FFN, AdaLN)."""

    hidden: int = 256
    num_layers: int = 6
    num_heads: int = 4
    head_dim: int = 64
    ffn_dim: int = 1024
    patch_size: int = 2            # spatial patch (1 x p x p), as Wan's 1x2x2
    freq_dim: int = 256            # sinusoidal timestep embedding width
    rope_theta: float = 10000.0
    eps: float = 1e-6

    def __post_init__(self):
        _positive('planner', hidden=self.hidden, num_layers=self.num_layers, num_heads=self.num_heads,
                  head_dim=self.head_dim, ffn_dim=self.ffn_dim, patch_size=self.patch_size,
                  freq_dim=self.freq_dim)
        if self.head_dim % 2:
            raise ValueError(f'planner.head_dim must be even for RoPE, got {self.head_dim}')
        if self.freq_dim % 2:
            raise ValueError(f'planner.freq_dim must be even, got {self.freq_dim}')
        split = rope_split(self.head_dim)
        if min(split) <= 0 or any(s % 2 for s in split):
            raise ValueError(f'planner.head_dim={self.head_dim} gives 3-D RoPE split {split}; every part '
                             'must be positive and even (use a multiple of 12 or 16, e.g. 16, 64, 128)')


EXECUTOR_HEADS = ('linear', 'adaln')


def rope_split(head_dim: int) -> tuple[int, int, int]:
    """Channels of one head given to (time, height, width) rotary features, as Wan: 128 -> 44/42/42."""
    hw = 2 * (head_dim // 6)
    return head_dim - 2 * hw, hw, hw


@dataclasses.dataclass(frozen=True)
class ExecutorConfig:
    """Action DiT. `num_layers`, `num_heads`, `head_dim` default to the planner's (None) and must equal it:
    every executor layer attends over the same layer's planner K/V."""

    hidden: int = 256
    ffn_dim: int = 1024
    action_dim: int = ACTION_DIM
    chunk_size: int = 16
    num_layers: int | None = None
    num_heads: int | None = None
    head_dim: int | None = None
    freq_dim: int = 256
    rope_theta: float = 10000.0
    eps: float = 1e-6
    # Output head. 'linear': a bare Linear on the residual stream (official AHA-WAM, `action_dit.head`);
    # 'adaln': LayerNorm + timestep (shift, scale) modulation first (this project's checkpoints before
    # 2026-12; a saved config without this field is read as 'adaln', see LEGACY_DEFAULTS).
    head: str = 'linear'

    def __post_init__(self):
        _positive('executor', hidden=self.hidden, ffn_dim=self.ffn_dim, action_dim=self.action_dim,
                  chunk_size=self.chunk_size, freq_dim=self.freq_dim)
        if self.head not in EXECUTOR_HEADS:
            raise ValueError(f'executor.head must be one of {EXECUTOR_HEADS}, got {self.head!r}')
        for name in ('num_layers', 'num_heads', 'head_dim'):
            if getattr(self, name) is not None:
                _positive('executor', **{name: getattr(self, name)})
        if self.head_dim is not None and self.head_dim % 2:
            raise ValueError(f'executor.head_dim must be even for RoPE, got {self.head_dim}')


@dataclasses.dataclass(frozen=True)
class OvcrConfig:
    """Observation-conditioned K/V editing of the planner context (identity at init)."""

    enabled: bool = True
    num_queries: int = 16
    query_dim: int = 256           # width of the routing queries (paper 4096)
    delta_hidden: int | None = None  # hidden width of the delta MLP; None = heads * head_dim
    gate_init: float = -4.0
    # Routing queries = out(out_norm(gathered)) (False, official `query_proj`), or queries + that (True,
    # this project's checkpoints before 2026-12).
    query_residual: bool = False

    def __post_init__(self):
        _positive('ovcr', num_queries=self.num_queries, query_dim=self.query_dim)
        if not isinstance(self.query_residual, bool):
            raise ValueError(f'ovcr.query_residual must be true or false, got {self.query_residual!r}')
        if self.delta_hidden is not None:
            _positive('ovcr', delta_hidden=self.delta_hidden)


@dataclasses.dataclass(frozen=True)
class MemoryConfig:
    max_entries: int = 4           # past current-frame K/V kept by the planner (FIFO); 0 disables memory

    def __post_init__(self):
        _non_negative('memory', max_entries=self.max_entries)


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """Task conditioning: `task_tokens` text-like tokens of width `text_dim` per task.

    With `num_tasks` > 0 the policy owns a learned table (task id -> tokens); the batch/obs may instead
    carry precomputed tokens (e.g. UMT5 embeddings at paper scale), zero-padded to `text_tokens`.
    """

    text_dim: int = 256
    text_tokens: int = 8
    num_tasks: int = 16

    def __post_init__(self):
        _positive('task', text_dim=self.text_dim, text_tokens=self.text_tokens)
        _non_negative('task', num_tasks=self.num_tasks)


@dataclasses.dataclass(frozen=True)
class FlowConfig:
    """Flow matching, Wan convention: x_s = (1 - s) x0 + s eps, target v = eps - x0, s = 1 is noise."""

    shift: float = 5.0
    train_timesteps: int = 1000
    inference_steps: int = 10
    loss_weighting: str = 'wan'    # 'wan' (Gaussian bump over the shifted grid) or 'uniform'
    # 'official': the timestep t = sigma * 1000 is rounded to the model dtype before a float64 sinusoid
    # (AHA-WAM trains and samples only bf16-representable t), the inference sigma grid is computed in fp32
    # and every Euler step size sigma[i+1] - sigma[i] in fp32, rounded once to the state dtype.
    # 'legacy': fp32 sinusoid of unrounded t; the grid is cast to the state dtype before differencing
    # (in bf16 that made the first step sizes wrong by up to 8 %).
    numerics: str = 'official'
    # Training noise levels: 'continuous' u ~ U(0, 1) (official), or 'grid' (one of train_timesteps values).
    train_sampling: str = 'continuous'
    # Executor noise when the caller gives none: 'horizon' draws [1, horizon, A] and takes the rows of the
    # chunk index (official, identical outputs for the same seed); 'chunk' draws [1, chunk, A] per update.
    noise_layout: str = 'horizon'

    def __post_init__(self):
        if not self.shift > 0:
            raise ValueError(f'flow.shift must be > 0, got {self.shift}')
        _positive('flow', train_timesteps=self.train_timesteps, inference_steps=self.inference_steps)
        if self.loss_weighting not in ('wan', 'uniform'):
            raise ValueError(f"flow.loss_weighting must be 'wan' or 'uniform', got {self.loss_weighting!r}")
        for name, allowed in (('numerics', ('official', 'legacy')), ('train_sampling', ('continuous', 'grid')),
                              ('noise_layout', ('horizon', 'chunk'))):
            if getattr(self, name) not in allowed:
                raise ValueError(f'flow.{name} must be one of {allowed}, got {getattr(self, name)!r}')


@dataclasses.dataclass(frozen=True)
class NormalizeConfig:
    """z-score semantics of the 14-D state and action (statistics live in the checkpoint's normaliser).

    'add_eps' (official `SingleFieldLinearNormalizer`): x * 1/(std + eps) - mean/(std + eps), eps 1e-8;
    'clamp_min' (legacy): (x - mean) / max(std, eps), eps 1e-4. `clamp` bounds normalised states and
    training actions to [-clamp, clamp] (official 5); None = unbounded. Unnormalising never clamps.
    """

    std_mode: str = 'add_eps'
    eps: float = 1e-8
    clamp: float | None = 5.0

    def __post_init__(self):
        if self.std_mode not in ('add_eps', 'clamp_min'):
            raise ValueError(f"normalize.std_mode must be 'add_eps' or 'clamp_min', got {self.std_mode!r}")
        if not (isinstance(self.eps, (int, float)) and self.eps > 0):
            raise ValueError(f'normalize.eps must be > 0, got {self.eps!r}')
        if self.clamp is not None and not (isinstance(self.clamp, (int, float)) and self.clamp > 0):
            raise ValueError(f'normalize.clamp must be > 0 or null, got {self.clamp!r}')


@dataclasses.dataclass(frozen=True)
class TimingConfig:
    """All time bookkeeping, in control steps (50 Hz on the Piper).

    - a video frame is taken every `video_stride` control steps; RoPE time of a frame = step // video_stride;
    - consecutive latent frames are `latent_stride` video frames apart (1 for the per-frame conv AE,
      4 for Wan2.2's temporally compressed VAE);
    - a training window holds the current frame plus `future_latent_frames` noisy future latent frames and
      `horizon_chunks` action chunks starting at offset in [0, max_offset].
    """

    control_hz: float = 50.0
    video_stride: int = 8
    latent_stride: int = 2
    future_latent_frames: int = 5
    horizon_chunks: int = 4
    max_offset: int = 15
    history_frames: int = 4        # past frames given to the planner in training (<= memory.max_entries)

    def __post_init__(self):
        _positive('timing', video_stride=self.video_stride, latent_stride=self.latent_stride,
                  future_latent_frames=self.future_latent_frames, horizon_chunks=self.horizon_chunks)
        _non_negative('timing', max_offset=self.max_offset, history_frames=self.history_frames)
        if not self.control_hz > 0:
            raise ValueError(f'timing.control_hz must be > 0, got {self.control_hz}')

    @property
    def latent_step(self) -> int:
        """Control steps between consecutive latent frames."""
        return self.video_stride * self.latent_stride

    @property
    def window_steps(self) -> int:
        """Control steps covered by the future latent frames of one training window."""
        return self.future_latent_frames * self.latent_step

    def frame_index(self, step: int) -> int:
        """RoPE time (in video frames) of the frame captured at control step `step`."""
        return int(step) // self.video_stride


@dataclasses.dataclass(frozen=True)
class LossConfig:
    lambda_action: float = 1.0
    lambda_video: float = 1.0

    def __post_init__(self):
        for name in ('lambda_action', 'lambda_video'):
            if getattr(self, name) < 0:
                raise ValueError(f'loss.{name} must be >= 0, got {getattr(self, name)}')


@dataclasses.dataclass(frozen=True)
class AhaWamConfig:
    name: str = 'small'
    encoder: ImageEncoderConfig = ImageEncoderConfig()
    planner: PlannerConfig = PlannerConfig()
    executor: ExecutorConfig = ExecutorConfig()
    ovcr: OvcrConfig = OvcrConfig()
    memory: MemoryConfig = MemoryConfig()
    task: TaskConfig = TaskConfig()
    flow: FlowConfig = FlowConfig()
    timing: TimingConfig = TimingConfig()
    loss: LossConfig = LossConfig()
    normalize: NormalizeConfig = NormalizeConfig()

    def __post_init__(self):
        p, e, t = self.planner, self.executor, self.timing
        # The executor shares heads x head_dim and layer count with the planner (layer-wise joint attention).
        shared = {}
        for name in ('num_layers', 'num_heads', 'head_dim'):
            mine, theirs = getattr(e, name), getattr(p, name)
            if mine is None:
                shared[name] = theirs
            elif mine != theirs:
                raise ValueError(f'executor.{name}={mine} must equal planner.{name}={theirs}: executor layer i '
                                 'attends over planner layer i K/V')
        if shared:
            object.__setattr__(self, 'executor', dataclasses.replace(e, **shared))
        for name in ('image_height', 'image_width'):
            lat = getattr(self.encoder, name) // self.encoder.downsample
            if lat % p.patch_size:
                raise ValueError(f'latent {name.split("_")[1]} {lat} (encoder.{name} / encoder.downsample) is not '
                                 f'divisible by planner.patch_size={p.patch_size}')
        if e.chunk_size % t.video_stride:
            raise ValueError(f'executor.chunk_size={e.chunk_size} must be a multiple of timing.video_stride='
                             f'{t.video_stride} so chunk starts fall on video frames')
        if t.max_offset >= e.chunk_size:
            raise ValueError(f'timing.max_offset={t.max_offset} must be < executor.chunk_size={e.chunk_size}')
        horizon = t.horizon_chunks * e.chunk_size
        if horizon + t.max_offset > t.window_steps:
            raise ValueError(f'action horizon {horizon} + timing.max_offset {t.max_offset} exceeds the video window '
                             f'{t.window_steps} steps (timing.future_latent_frames * latent_stride * video_stride); '
                             'add future frames or shorten the horizon')
        if t.history_frames > self.memory.max_entries:
            raise ValueError(f'timing.history_frames={t.history_frames} exceeds memory.max_entries='
                             f'{self.memory.max_entries}: training would show the planner more past frames '
                             'than deployment can keep')

    # Derived quantities used across modules.
    @property
    def attn_width(self) -> int:
        return self.planner.num_heads * self.planner.head_dim

    @property
    def tokens_per_frame(self) -> int:
        p = self.planner.patch_size
        return (self.encoder.latent_height // p) * (self.encoder.latent_width // p)

    @property
    def horizon(self) -> int:
        return self.timing.horizon_chunks * self.executor.chunk_size


# ----------------------------------------------------------------------------------------------- dict / YAML

_SECTIONS: dict[str, type] = {
    'encoder': ImageEncoderConfig, 'planner': PlannerConfig, 'executor': ExecutorConfig, 'ovcr': OvcrConfig,
    'memory': MemoryConfig, 'task': TaskConfig, 'flow': FlowConfig, 'timing': TimingConfig, 'loss': LossConfig,
    'normalize': NormalizeConfig,
}

# What a saved config that predates an option meant by leaving it out: the behaviour of the code that wrote
# it. `fill_legacy_defaults` applies these to checkpoint configs only (checkpoint.read_config); configs
# written today name every field, and new configs get the official defaults above.
LEGACY_DEFAULTS: dict[str, dict[str, Any]] = {
    'executor': {'head': 'adaln'},
    'ovcr': {'query_residual': True},
    'flow': {'numerics': 'legacy', 'train_sampling': 'grid', 'noise_layout': 'chunk'},
    'normalize': {'std_mode': 'clamp_min', 'eps': 1e-4, 'clamp': None},
}


def fill_legacy_defaults(data: Mapping[str, Any]) -> dict:
    """A saved config dict with every field missing from LEGACY_DEFAULTS filled with its legacy value."""
    if not isinstance(data, Mapping):
        return data
    out = dict(data)
    for section, values in LEGACY_DEFAULTS.items():
        current = out.get(section)
        if current is not None and not isinstance(current, Mapping):
            continue                      # config_from_dict reports the malformed section
        merged = dict(current or {})
        for key, value in values.items():
            merged.setdefault(key, value)
        out[section] = merged
    return out


def config_to_dict(cfg: AhaWamConfig) -> dict:
    return dataclasses.asdict(cfg)


def config_from_dict(data: Mapping[str, Any]) -> AhaWamConfig:
    """Strict: an unknown section or field raises ValueError naming it (typos must not pass silently)."""
    if not isinstance(data, Mapping):
        raise ValueError(f'model config must be a mapping, got {type(data).__name__}')
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key == 'name':
            kwargs['name'] = str(value)
            continue
        if key not in _SECTIONS:
            raise ValueError(f'unknown model config section {key!r}; expected one of {sorted(_SECTIONS)}')
        cls = _SECTIONS[key]
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise ValueError(f'model config section {key!r} must be a mapping, got {type(value).__name__}')
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - names)
        if unknown:
            raise ValueError(f'unknown field(s) {unknown} in model config section {key!r}; known: {sorted(names)}')
        kwargs[key] = cls(**value)
    return AhaWamConfig(**kwargs)


def _merge(base: dict, update: Mapping[str, Any], where: str = '') -> dict:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value, f'{where}{key}.')
        else:
            out[key] = value
    return out


def _overrides_to_dict(overrides: Mapping[str, Any] | Iterable[str] | None) -> dict:
    """`{'planner': {'num_layers': 8}}`, `{'planner.num_layers': 8}` or `['planner.num_layers=8']`."""
    if overrides is None:
        return {}
    items: list[tuple[str, Any]] = []
    if isinstance(overrides, Mapping):
        items = list(overrides.items())
    else:
        for text in overrides:
            if '=' not in text:
                raise ValueError(f"override {text!r} must look like 'section.field=value'")
            key, raw = text.split('=', 1)
            items.append((key.strip(), yaml.safe_load(raw)))
    out: dict = {}
    for key, value in items:
        parts = key.split('.')
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if isinstance(value, Mapping) and isinstance(node.get(parts[-1]), Mapping):
            node[parts[-1]] = _merge(node[parts[-1]], value)
        else:
            node[parts[-1]] = value
    return out


def apply_overrides(cfg: AhaWamConfig, overrides: Mapping[str, Any] | Iterable[str] | None) -> AhaWamConfig:
    data = config_to_dict(cfg)
    # Executor fields that were inherited from the planner are re-derived, so overriding the planner's
    # layer count alone stays consistent.
    for name in ('num_layers', 'num_heads', 'head_dim'):
        data['executor'][name] = None
    return config_from_dict(_merge(data, _overrides_to_dict(overrides)))


# ---------------------------------------------------------------------------------------------------- registry

CONFIGS: dict[str, Callable[[], AhaWamConfig]] = {}


def register_config(name: str, factory: Callable[[], AhaWamConfig]) -> None:
    if name in CONFIGS:
        raise ValueError(f'model config {name!r} is already registered')
    CONFIGS[name] = factory


def get_config(name: str, overrides: Mapping[str, Any] | Iterable[str] | None = None) -> AhaWamConfig:
    if name not in CONFIGS:
        raise ValueError(f'unknown model config {name!r}; registered: {sorted(CONFIGS)}')
    return apply_overrides(CONFIGS[name](), overrides) if overrides else CONFIGS[name]()


def load_config(source: str | os.PathLike, overrides: Mapping[str, Any] | Iterable[str] | None = None
                ) -> AhaWamConfig:
    """A registry name or a YAML file. A file may say `base: <registry name>` and list only differences."""
    text = os.fspath(source)
    if text in CONFIGS and not os.path.exists(text):
        return get_config(text, overrides)
    with open(text, encoding='utf-8') as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, Mapping):
        raise ValueError(f'{text}: model config YAML must be a mapping')
    data = dict(data)
    base = data.pop('base', None)
    if base is not None:
        data = _merge(_without_inherited(config_to_dict(get_config(base))), data)
    cfg = config_from_dict(data)
    return apply_overrides(cfg, overrides) if overrides else cfg


def _without_inherited(data: dict) -> dict:
    for name in ('num_layers', 'num_heads', 'head_dim'):
        data['executor'][name] = None
    return data


def dump_config(cfg: AhaWamConfig) -> str:
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)


def _tiny() -> AhaWamConfig:
    return AhaWamConfig(
        name='tiny',
        encoder=ImageEncoderConfig(image_height=32, image_width=32, latent_channels=4, downsample=4,
                                   base_channels=8),
        planner=PlannerConfig(hidden=64, num_layers=2, num_heads=2, head_dim=16, ffn_dim=128, freq_dim=32),
        executor=ExecutorConfig(hidden=64, ffn_dim=128, freq_dim=32),
        ovcr=OvcrConfig(num_queries=8, query_dim=32, delta_hidden=32),
        memory=MemoryConfig(max_entries=2),
        task=TaskConfig(text_dim=32, text_tokens=2, num_tasks=4),
        timing=TimingConfig(video_stride=8, latent_stride=2, future_latent_frames=3, horizon_chunks=2,
                            max_offset=15, history_frames=2),
    )


def _small() -> AhaWamConfig:
    return AhaWamConfig(
        name='small',
        encoder=ImageEncoderConfig(image_height=96, image_width=96, latent_channels=8, downsample=8,
                                   base_channels=16),
        # Attention 4 x 32 (width 128 < hidden 256) and a narrow executor (as the paper's 1024 vs 3072): the
        # executor's 16-token denoise step is latency-bound on CPU (bench/model_latency.py: act@4 <= 40 ms).
        planner=PlannerConfig(hidden=256, num_layers=6, num_heads=4, head_dim=32, ffn_dim=1024),
        executor=ExecutorConfig(hidden=128, ffn_dim=256),
        ovcr=OvcrConfig(num_queries=16, query_dim=128, delta_hidden=128),
        memory=MemoryConfig(max_entries=4),
        task=TaskConfig(text_dim=256, text_tokens=8, num_tasks=16),
        timing=TimingConfig(video_stride=8, latent_stride=2, future_latent_frames=5, horizon_chunks=4,
                            max_offset=15, history_frames=4),
    )


def _paper() -> AhaWamConfig:
    # AHA-WAM / Wan2.2-TI2V-5B dimensions. The conv encoder here is a stand-in with Wan2.2's latent shape
    # (48 channels, /16, 384x320 composite -> 24x20 -> 120 tokens); the real VAE plugs in through
    # aha_wam.models.vae.register_image_encoder.
    return AhaWamConfig(
        name='paper',
        encoder=ImageEncoderConfig(image_height=384, image_width=320, latent_channels=48, downsample=16,
                                   base_channels=64),
        planner=PlannerConfig(hidden=3072, num_layers=30, num_heads=24, head_dim=128, ffn_dim=14336),
        executor=ExecutorConfig(hidden=1024, ffn_dim=4096),
        ovcr=OvcrConfig(num_queries=32, query_dim=4096),
        memory=MemoryConfig(max_entries=6),
        task=TaskConfig(text_dim=4096, text_tokens=128, num_tasks=0),
        timing=TimingConfig(video_stride=8, latent_stride=4, future_latent_frames=3, horizon_chunks=5,
                            max_offset=15, history_frames=6),
    )


def _official(name: str, horizon_chunks: int, future_latent_frames: int, max_offset: int) -> AhaWamConfig:
    """The official AHA-WAM 7.35 B layout (Silvernoon/AHA-WAM configs/model/ahawam.yaml): Wan2.2-TI2V-5B video
    DiT, 1024-wide action DiT, 32 x 4096 OVCR queries, UMT5-XXL 128 x 4096 prompts, Wan2.2 VAE on the 384 x 320
    three-camera composite (48 x 24 x 20 latents, 120 tokens), 6 history frames, RoPE frame = step // 8."""
    return AhaWamConfig(
        name=name,
        encoder=ImageEncoderConfig(kind='wan22', image_height=384, image_width=320, latent_channels=48,
                                   downsample=16, base_channels=160),
        planner=PlannerConfig(hidden=3072, num_layers=30, num_heads=24, head_dim=128, ffn_dim=14336, freq_dim=256),
        executor=ExecutorConfig(hidden=1024, ffn_dim=4096, freq_dim=256, head='linear'),
        ovcr=OvcrConfig(num_queries=32, query_dim=4096, delta_hidden=None, query_residual=False),
        memory=MemoryConfig(max_entries=6),
        task=TaskConfig(text_dim=4096, text_tokens=128, num_tasks=0),
        timing=TimingConfig(control_hz=50.0, video_stride=8, latent_stride=4, future_latent_frames=future_latent_frames,
                            horizon_chunks=horizon_chunks, max_offset=max_offset, history_frames=6),
    )


def _robotwin() -> AhaWamConfig:
    # SereneC/AHA-WAM-RoboTwin2.0 robotwin_ahawam.pt: the NON-offset task (configs/task/robotwin_ahawam.yaml):
    # action horizon 64 = 4 chunks (RoPE positions 0..63), max_action_offset 0, 65-frame clips (2 future latents).
    return _official('robotwin', horizon_chunks=4, future_latent_frames=2, max_offset=0)


def _robotwin_offset() -> AhaWamConfig:
    # configs/task/robotwin_ahawam_offset.yaml: horizon 80 = 5 chunks, max_action_offset 15 (the layout of the
    # official deploy.yml; same tensor shapes as `robotwin`).
    return _official('robotwin_offset', horizon_chunks=5, future_latent_frames=3, max_offset=15)


def _ahawam_pretrained() -> AhaWamConfig:
    # SereneC/AHA-WAM-Pretrained (RoboCOIN initialisation for real robots): the official real-robot deployment
    # composes configs/deploy.yml = the offset task (horizon 80, offset 15); its camera/state contract is the
    # official server's single front camera resized to 384 x 320 (see interop/contracts).
    return _official('ahawam_pretrained', horizon_chunks=5, future_latent_frames=3, max_offset=15)


register_config('tiny', _tiny)
register_config('small', _small)
register_config('paper', _paper)
register_config('robotwin', _robotwin)
register_config('robotwin_offset', _robotwin_offset)
register_config('ahawam_pretrained', _ahawam_pretrained)
OFFICIAL_PRESETS = ('robotwin', 'robotwin_offset', 'ahawam_pretrained')
