"""The closed loop's timing: the deployed node set's rates, read from the files the nodes read.

`LoopSchedule.deployed()` takes the executor's `control_rate` and `max_frame_wait` (config/executor.yaml), the
planner's `refresh_rate` (config/planner.yaml), the streamer's `rate` (config/piper/trajectory_streamer.yaml)
and the sim profile's camera rate (the `camera_rate` launch argument of aha_wam.system), so an evaluation
runs the schedule `aha-wam up sim` runs, not a look-alike.

Latency: 'measured' (default) places each planner context and executor chunk at the sim time its actual
computation on this machine's backend took; 'modelled' uses fixed milliseconds instead, so a run is
reproducible bit for bit for a seed. Reports carry `latency_mode` so the two are never confused.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import yaml

LATENCY_MODES = ('measured', 'modelled')


@dataclasses.dataclass(frozen=True)
class LoopSchedule:
    control_rate: float = 20.0            # Hz, executor updates
    camera_rate: float = 30.0             # Hz, ego camera frames
    refresh_rate: float = 2.0             # Hz, planner prefills
    stream_rate: float = 200.0            # Hz, streamer commands to the arms
    max_frame_wait: float = 0.015         # s, executor phase lock to the camera (0 = off)
    latency: str = 'measured'             # 'measured' | 'modelled'
    planner_latency_ms: float = 40.0      # modelled: prefill + publish
    executor_fixed_ms: float = 15.0       # modelled: context read + image encode + OVCR
    executor_step_ms: float = 3.0         # modelled: per Euler step
    synchronous: bool = False             # ablation: the planner refreshes on the executor's image before every update
    source: str = 'defaults'              # where the rates came from (reports)

    def __post_init__(self):
        for name in ('control_rate', 'camera_rate', 'refresh_rate', 'stream_rate'):
            if not getattr(self, name) > 0:
                raise ValueError(f'{name} must be > 0 Hz, got {getattr(self, name)}')
        if self.latency not in LATENCY_MODES:
            raise ValueError(f'latency must be one of {LATENCY_MODES}, got {self.latency!r}')
        if not 0.0 <= self.max_frame_wait <= 0.05:
            raise ValueError(f'max_frame_wait={self.max_frame_wait} s is outside 0..0.05')

    def period_ns(self, rate_name: str) -> int:
        return int(round(1e9 / getattr(self, rate_name)))

    def modelled_executor_ns(self, steps: int) -> int:
        return int(round((self.executor_fixed_ms + steps * self.executor_step_ms) * 1e6))

    @classmethod
    def deployed(cls, config_dir: str | os.PathLike | None = None, **overrides) -> 'LoopSchedule':
        """The rates of the deployed sim profile (see the module docstring); `overrides` replace fields."""
        from aha_wam.system import ARGUMENTS
        cfg = Path(config_dir) if config_dir else config_directory()
        executor = _node_params(cfg / 'executor.yaml', 'executor')
        planner = _node_params(cfg / 'planner.yaml', 'planner')
        streamer = _node_params(cfg / 'piper' / 'trajectory_streamer.yaml', 'trajectory_streamer')
        camera = next(float(a.default) for a in ARGUMENTS['sim'] if a.name == 'camera_rate')
        values = dict(control_rate=float(executor['control_rate']), max_frame_wait=float(executor['max_frame_wait']),
                      refresh_rate=float(planner['refresh_rate']), stream_rate=float(streamer['rate']),
                      camera_rate=camera, source=str(cfg))
        values.update(overrides)
        return cls(**values)


def deployed_executor_options(config_dir: str | os.PathLike | None = None) -> dict:
    """ExecutorOptions fields of config/executor.yaml that shape the schedule beyond its rates (execute_actions),
    so an evaluation runs the executor the node runs."""
    cfg = Path(config_dir) if config_dir else config_directory()
    executor = _node_params(cfg / 'executor.yaml', 'executor')
    return {'execute_actions': int(executor.get('execute_actions', 0))}


def _node_params(path: Path, node: str) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
        return data[node]['ros__parameters']
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise ValueError(f'{path}: cannot read the ros__parameters of node {node!r}: {exc}') from None


def config_directory() -> Path:
    """The parameter YAMLs: $AHA_WAM_ROOT/config, the source tree's config/, or share/aha_wam/config."""
    candidates = []
    if os.environ.get('AHA_WAM_ROOT'):
        candidates.append(Path(os.environ['AHA_WAM_ROOT']) / 'config')
    candidates.append(Path(__file__).resolve().parents[4] / 'config')
    try:
        from ament_index_python.packages import get_package_share_directory
        candidates.append(Path(get_package_share_directory('aha_wam')) / 'config')
    except Exception:  # noqa: BLE001 - ament index absent: the source tree is enough
        pass
    for c in candidates:
        if (c / 'executor.yaml').is_file():
            return c
    raise FileNotFoundError(f'no config/executor.yaml in {", ".join(map(str, candidates))}')
