"""Training: `TrainConfig` (YAML in config/train/) and the `Workspace` that owns a run (see workspace.py)."""
from aha_wam.train.workspace import TrainConfig, Workspace, load_train_config  # noqa: F401
