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


# ------------------------------------------------------------------------------- official multi-camera input
# Official AHA-WAM checkpoints were trained and evaluated on other preprocessing than this project's own:
# PIL bilinear resizes (antialiased when shrinking) and, for RoboTwin, one 384 x 320 composite of three cameras.
# An embodiment contract (aha_wam.interop.contract) names which one a checkpoint needs.
COMPOSITIONS = ('single', 'head_over_wrists')
RESIZE_METHODS = ('area', 'pil_bilinear')


def _check_rgb(rgb, what: str) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f'{what}: expected an RGB uint8 image [h, w, 3], got '
                         f'{getattr(rgb, "dtype", type(rgb).__name__)} {getattr(rgb, "shape", "")}')
    return rgb


def resize_rgb(rgb: np.ndarray, height: int, width: int, method: str = 'area') -> np.ndarray:
    """uint8 RGB -> [height, width, 3] uint8. 'area': `model_image` (this project's checkpoints);
    'pil_bilinear': PIL's bilinear resize, as the official RoboTwin eval and real-robot server do."""
    if method == 'area':
        return model_image(rgb, height, width)
    if method != 'pil_bilinear':
        raise ValueError(f'resize method must be one of {RESIZE_METHODS}, got {method!r}')
    _check_rgb(rgb, 'image')
    if rgb.shape[:2] == (height, width):
        return np.ascontiguousarray(rgb)
    from PIL import Image          # late: only official-checkpoint preprocessing needs it
    return np.asarray(Image.fromarray(np.ascontiguousarray(rgb), mode='RGB').resize((width, height),
                                                                                  resample=Image.BILINEAR),
                      dtype=np.uint8)


def head_over_wrists(head: np.ndarray, left: np.ndarray, right: np.ndarray, height: int = 384, width: int = 320,
                     method: str = 'pil_bilinear') -> np.ndarray:
    """The official RoboTwin composite [height, width, 3]: the head camera resized to the top 2/3 (256 x 320),
    the left and right wrist cameras to (128 x 160) each, side by side below (left | right)."""
    if height % 3 or width % 2:
        raise ValueError(f'head_over_wrists needs height divisible by 3 and even width, got {height} x {width}')
    top, bottom, half = 2 * height // 3, height // 3, width // 2
    views = [_check_rgb(v, name) for v, name in ((head, 'head'), (left, 'left wrist'), (right, 'right wrist'))]
    upper = resize_rgb(views[0], top, width, method)
    lower = np.concatenate([resize_rgb(views[1], bottom, half, method), resize_rgb(views[2], bottom, half, method)],
                           axis=1)
    return np.ascontiguousarray(np.concatenate([upper, lower], axis=0))


def compose_views(views, composition: str, height: int, width: int, method: str = 'area') -> np.ndarray:
    """The model image from camera views given in the composition's order (a sequence, or one array for
    'single'): 'single' = one camera resized; 'head_over_wrists' = [head, left wrist, right wrist]."""
    if composition not in COMPOSITIONS:
        raise ValueError(f'composition must be one of {COMPOSITIONS}, got {composition!r}')
    if isinstance(views, np.ndarray):
        views = [views]
    views = list(views)
    need = 1 if composition == 'single' else 3
    if len(views) != need:
        raise ValueError(f'composition {composition!r} takes {need} camera image(s), got {len(views)}')
    if composition == 'single':
        return resize_rgb(views[0], height, width, method)
    return head_over_wrists(*views, height=height, width=width, method=method)
