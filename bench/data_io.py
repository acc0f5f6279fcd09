"""Demonstration data in and out: a Cobot-Magic HDF5 episode (3 cameras, 480x640, 30 Hz) -> import ->
LeRobot v3 export (AV1 by default) -> re-import, timed on this machine.

    python bench/data_io.py [--frames 60] [--repeats 3] [--codec av1]

Prints one JSON line: median wall seconds per stage, frames per second of each stage, and the round-trip image
error (mean / max grey levels) of the re-imported frames.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def write_hdf5(path: Path, t: int) -> None:
    import h5py
    y, x = np.mgrid[0:480, 0:640]
    with h5py.File(path, 'w') as root:
        root.attrs['sim'], root.attrs['compress'] = False, False
        img = root.create_group('observations').create_group('images')
        for c, cam in enumerate(('cam_high', 'cam_left_wrist', 'cam_right_wrist')):
            ds = img.create_dataset(cam, (t, 480, 640, 3), dtype='uint8', chunks=(1, 480, 640, 3))
            for k in range(t):
                ds[k] = np.stack([(x // 3 + k) % 256, (y // 2 + 40 * c) % 256, np.full_like(x, 60 * c)], -1)
        for name in ('qpos', 'qvel', 'effort'):
            root['observations'].create_dataset(name, (t, 14))[...] = np.random.default_rng(0).normal(0, .1, (t, 14))
        root.create_dataset('action', (t, 14))[...] = np.random.default_rng(1).normal(0, .1, (t, 14))
        root.create_dataset('base_action', (t, 2))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument('--frames', type=int, default=60)
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--codec', default='av1', choices=('av1', 'h264'))
    args = ap.parse_args()
    from aha_wam.data.cobot_magic import read_cobot_magic
    from aha_wam.data.lerobot import read_lerobot, write_lerobot_v3
    times = {'import_hdf5': [], 'export_lerobot_v3': [], 'import_lerobot_v3': []}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / 'task' / 'episode_0.hdf5'
        src.parent.mkdir()
        write_hdf5(src, args.frames)
        for r in range(args.repeats):
            t0 = time.perf_counter()
            ep = read_cobot_magic(src)
            t1 = time.perf_counter()
            out = write_lerobot_v3([ep], Path(tmp) / f'lr{r}', codec=args.codec)
            t2 = time.perf_counter()
            back = read_lerobot(out)[0]
            t3 = time.perf_counter()
            for k, v in zip(times, (t1 - t0, t2 - t1, t3 - t2)):
                times[k].append(v)
        err = np.abs(back.images.astype(int) - ep.images.astype(int))
    frames = args.frames * 3
    print(json.dumps({'frames_per_camera': args.frames, 'cameras': 3, 'hw': [480, 640], 'codec': args.codec,
                      'median_s': {k: round(statistics.median(v), 3) for k, v in times.items()},
                      'camera_frames_per_s': {k: round(frames / statistics.median(v), 1) for k, v in times.items()},
                      'state_exact': bool(np.array_equal(back.proprio, ep.proprio)),
                      'image_error': {'mean': round(float(err.mean()), 3), 'max': int(err.max())}}))


if __name__ == '__main__':
    main()
