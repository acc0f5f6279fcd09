"""AgileX Cobot Magic / ALOHA HDF5 episodes (`agilexrobotics/cobot_magic: collect_data/collect_data.py`) -> Episode.

One `episode_<i>.hdf5` per episode, one row per recorded frame (default 30 Hz):

    /observations/qpos, /qvel, /effort   float32 (T, 14)  follower (puppet) arms, [left j1..j6, gripper, right ...]
    /action                              float32 (T, 14)  leader (master) arms' joint positions
    /base_action                         float32 (T, 2)   mobile base (ignored)
    /observations/images/<cam>           uint8 (T, 480, 640, 3)  cam_high, cam_left_wrist, cam_right_wrist
    /observations/images_depth/<cam>     uint16 (T, 480, 640)    optional (ignored)
    attrs sim=False, compress=False

The recorder's first frame is observation-only: row i pairs observation i with the leader's position read with
frame i+1, i.e. the command that followed observation i. The rows are kept as they are (ACT and the LeRobot
converters do the same), so step t = row t: proprio = qpos[t], actions = action[t], every camera has a
frame at every step. Units are piper_ros units (rad, gripper opening m), so no conversion.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from aha_wam.data.episode import Episode
from aha_wam.data.errors import DatasetError
from piper_core.layout import ACTION_DIM

FPS = 30.0
PRIMARY = 'cam_high'


def _array(root, path: Path, key: str, dtype_kind: str, shape_tail: tuple, length: int | None = None):
    if key not in root:
        raise DatasetError(f'{path}: missing key {key}')
    ds = root[key]
    if not hasattr(ds, 'shape'):
        raise DatasetError(f'{path}: key {key} is a group, expected a dataset')
    if ds.dtype.kind != dtype_kind or tuple(ds.shape[1:]) != shape_tail or len(ds.shape) != 1 + len(shape_tail):
        want = 'float' if dtype_kind == 'f' else 'uint8'
        raise DatasetError(f'{path}: key {key} is {ds.dtype} {tuple(ds.shape)}, expected {want} (T, '
                           f'{", ".join(map(str, shape_tail))})')
    if length is not None and ds.shape[0] != length:
        raise DatasetError(f'{path}: key {key} has {ds.shape[0]} rows, /observations/qpos has {length}')
    return ds[()]


def read_cobot_magic(path: str | os.PathLike, fps: float = FPS, task: str | None = None,
                     primary: str | None = None) -> Episode:
    """One Cobot-Magic HDF5 episode at native resolution. DatasetError (one line, file and key) if malformed."""
    import h5py
    path = Path(path)
    try:
        root = h5py.File(path, 'r')
    except Exception as exc:
        raise DatasetError(f'{path}: not a readable HDF5 file ({type(exc).__name__}: {exc})') from None
    with root:
        if bool(root.attrs.get('compress', False)):
            raise DatasetError(f'{path}: attrs compress=True (JPEG-compressed images) is not supported; '
                               f'record with compress=False')
        qpos = _array(root, path, '/observations/qpos', 'f', (ACTION_DIM,))
        t = qpos.shape[0]
        if t < 1:
            raise DatasetError(f'{path}: key /observations/qpos has no rows')
        action = _array(root, path, '/action', 'f', (ACTION_DIM,), t)
        if '/observations/images' not in root or not len(root['/observations/images']):
            raise DatasetError(f'{path}: missing key /observations/images (no camera)')
        cameras = {}
        for name in root['/observations/images']:
            key = f'/observations/images/{name}'
            ds = root[key]
            if not hasattr(ds, 'shape') or ds.dtype != np.uint8 or len(ds.shape) != 4 or ds.shape[3] != 3:
                raise DatasetError(f'{path}: key {key} is {getattr(ds, "dtype", "a group")} '
                                   f'{tuple(getattr(ds, "shape", ()))}, expected uint8 (T, H, W, 3)')
            if ds.shape[0] != t:
                raise DatasetError(f'{path}: key {key} has {ds.shape[0]} rows, /observations/qpos has {t}')
            cameras[name] = (np.arange(t), ds[()])
        depth = sorted(root['/observations/images_depth']) if '/observations/images_depth' in root else []
        for key, arr in (('/observations/qpos', qpos), ('/action', action)):
            if not np.all(np.isfinite(arr)):
                raise DatasetError(f'{path}: key {key} has non-finite values')
        match = re.search(r'(\d+)$', path.stem)
        meta = {'task': task or path.parent.name, 'seed': int(match.group(1)) if match else 0, 'success': True,
                'instruction': str(root.attrs.get('instruction', '')) or (task or path.parent.name),
                'control_hz': float(fps), 'source': f'cobot_magic:{path.name}', 'actions_from': ['leader'],
                'sim': bool(root.attrs.get('sim', False))}
        if depth:
            meta['depth_cameras_ignored'] = depth
    if primary is None:
        primary = PRIMARY if PRIMARY in cameras else next(iter(cameras))
    return Episode.from_cameras(qpos, action, cameras, meta, primary=primary)


def find_cobot_magic(path: Path) -> list[Path]:
    """`episode_*.hdf5` / `*.hdf5` / `*.h5` files at or under `path`."""
    path = Path(path)
    if path.is_file():
        return [path]
    return sorted(set(path.rglob('*.hdf5')) | set(path.rglob('*.h5')),
                  key=lambda p: (str(p.parent), _natural(p.stem)))


def _natural(stem: str):
    return [int(x) if x.isdigit() else x for x in re.split(r'(\d+)', stem)]
