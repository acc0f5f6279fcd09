"""Training: `TrainConfig` (YAML in config/train/) and the `Workspace` that owns a run (see workspace.py).

Nothing is imported here eagerly: `aha_wam.cli` imports `aha_wam.train.commands` for every command, and pulling
torch in through this package would add a second to every `aha-wam` start (and to `aha-wam up`'s start-up).
"""


def __getattr__(name):
    if name in ('TrainConfig', 'Workspace', 'load_train_config'):
        from aha_wam.train import workspace
        return getattr(workspace, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
