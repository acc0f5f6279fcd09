"""The one image preprocessing shared by the dataset, the planner and the executor.

notes/aha-wam.md §10: a deploy-time resize + centre crop against a training-time direct resize changed
the field of view and broke a policy. So every path that feeds the model goes through `model_image`:
a direct (aspect-changing) area resize of the full frame to the encoder's H x W, uint8 RGB.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def model_image(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """[h, w, 3] uint8 RGB -> [height, width, 3] uint8 RGB (copy; no-op resize when sizes match)."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f'expected an RGB uint8 image [h, w, 3], got '
                         f'{getattr(rgb, "dtype", type(rgb).__name__)} {getattr(rgb, "shape", "")}')
    if rgb.shape[:2] == (height, width):
        return np.ascontiguousarray(rgb)
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float()
    mode = 'area' if rgb.shape[0] >= height and rgb.shape[1] >= width else 'bilinear'
    y = F.interpolate(x, size=(height, width), mode=mode, **({} if mode == 'area' else {'align_corners': False}))
    return y[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
