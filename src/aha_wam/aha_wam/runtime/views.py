"""What the model sees and in which units: the checkpoint's embodiment contract applied in the sessions.

A session holds the checkpoint's contract (aha_wam.interop.contract; this project's checkpoints get the
Piper-native one: one ego camera, piper_ros units). `model_view` turns the newest camera image(s) into the
model image (one camera resized, or the official three-camera composite); `ModelUnits` converts states into
the model's units and chunks back into piper_ros units, and is a no-op for a Piper-native checkpoint, so our
own checkpoints compute exactly what they did.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from piper_core.layout import ARMS


def model_view(contract, image: np.ndarray | None, images: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """The model image: `images` by view name when the contract composes several cameras, else `image`."""
    views = contract.cameras.views
    if len(views) > 1:
        if not images:
            raise ValueError(f'contract {contract.name!r} composes {len(views)} cameras '
                             f'{[v.name for v in views]}: the observation has one image')
        return contract.compose(images)
    return contract.compose([image])


class ModelUnits:
    """robot (piper_ros) <-> model units for one contract; identity maps skip the work entirely."""

    def __init__(self, contract):
        self.contract = contract
        self.identity = contract.gripper.model == 'metres' and all(
            all(s == 1.0 for s in contract.joints[a].sign) and all(o == 0.0 for o in contract.joints[a].offset)
            for a in ARMS)

    def to_model(self, state: np.ndarray) -> np.ndarray:
        return state if self.identity else self.contract.robot_to_model(state)

    def to_robot(self, chunk: np.ndarray) -> np.ndarray:
        return chunk if self.identity else self.contract.model_to_robot(chunk)
