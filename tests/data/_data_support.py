"""Demonstration fixtures written by the tests themselves in each published layout, with known content.

- Cobot-Magic HDF5 exactly as `agilexrobotics/cobot_magic: collect_data/collect_data.py` writes it (keys, dtypes:
  qpos/qvel/effort/action float32 (T, 14) created without a dtype = h5py's float32, base_action (T, 2), images
  uint8 (T, H, W, 3) chunked per frame, attrs sim/compress), at a small image size.
- LeRobot v2.1 (per-episode parquet and mp4, meta/episodes.jsonl, meta/tasks.jsonl) and v3.0 (several episodes
  per parquet and per mp4, meta/episodes/chunk-000/file-000.parquet, meta/tasks.parquet) written by hand with
  pyarrow and PyAV from the documented layout (shared/notes/peers.md, lerobot/datasets/utils.py), not by our
  exporter, so the importer is checked against the format rather than against itself.

Images are smooth patterns (a colour ramp plus a per-frame offset) so that 4:2:0 video keeps them within a
few grey levels; `CODEC_TOL` is the tolerance the tests allow after a video round trip.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

CAMS = ('cam_high', 'cam_left_wrist', 'cam_right_wrist')
CODEC_MEAN_TOL = 3.0       # mean absolute error per pixel after encode/decode, grey levels
CODEC_MAX_TOL = 24         # worst pixel


def frame(k: int, cam: int, hw=(48, 64)) -> np.ndarray:
    h, w = hw
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 2 + 3 * k, y * 2 + 30 * cam, np.full_like(x, 20 + 5 * k + 30 * cam)], -1)   # no wrap-around
    return np.clip(img, 0, 255).astype(np.uint8)


def state(t: int, episode: int = 0) -> np.ndarray:
    """float32 (t, 14) whose values encode (episode, step, joint); inside every joint range."""
    k = np.arange(t, dtype=np.float32)[:, None]
    j = np.arange(14, dtype=np.float32)[None, :]
    return (0.001 * k + 0.01 * j + 0.1 * episode).astype(np.float32)


def action(t: int, episode: int = 0) -> np.ndarray:
    return (state(t, episode) + np.float32(0.5)).astype(np.float32)


# ------------------------------------------------------------------------------------------ Cobot Magic
def write_cobot_magic(path: Path, t: int = 6, hw=(48, 64), depth: bool = False, drop: str | None = None,
                      bad_dtype: str | None = None) -> Path:
    import h5py
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, 'w', rdcc_nbytes=1024 ** 2 * 2) as root:
        root.attrs['sim'] = False
        root.attrs['compress'] = False
        obs = root.create_group('observations')
        image = obs.create_group('images')
        for c, cam in enumerate(CAMS):
            ds = image.create_dataset(cam, (t, *hw, 3), dtype='uint8', chunks=(1, *hw, 3))
            ds[...] = np.stack([frame(k, c, hw) for k in range(t)])
        if depth:
            d = obs.create_group('images_depth')
            for cam in CAMS:
                d.create_dataset(cam, (t, *hw), dtype='uint16', chunks=(1, *hw))
        for name, value in (('qpos', state(t)), ('qvel', state(t) * 2), ('effort', state(t) * 3)):
            if drop != f'/observations/{name}':
                obs.create_dataset(name, (t, 14))[...] = value
        if drop != '/action':
            dtype = bad_dtype or 'f4'
            root.create_dataset('action', (t, 14), dtype=dtype)[...] = action(t)
        root.create_dataset('base_action', (t, 2))[...] = 0.0
    return path


# ------------------------------------------------------------------------------------------- LeRobot
def _features(fps, hw, cams, video_path_style):
    feats = {
        'observation.state': {'dtype': 'float32', 'shape': [14], 'names': [f'j{i}' for i in range(14)]},
        'action': {'dtype': 'float32', 'shape': [14], 'names': [f'j{i}' for i in range(14)]},
        'timestamp': {'dtype': 'float32', 'shape': [1], 'names': None},
        'frame_index': {'dtype': 'int64', 'shape': [1], 'names': None},
        'episode_index': {'dtype': 'int64', 'shape': [1], 'names': None},
        'index': {'dtype': 'int64', 'shape': [1], 'names': None},
        'task_index': {'dtype': 'int64', 'shape': [1], 'names': None},
    }
    for cam in cams:
        feats[f'observation.images.{cam}'] = {
            'dtype': 'video', 'shape': [hw[0], hw[1], 3], 'names': ['height', 'width', 'channels'],
            'info': {'video.fps': fps, 'video.height': hw[0], 'video.width': hw[1], 'video.channels': 3,
                     'video.codec': 'av1', 'video.pix_fmt': 'yuv420p', 'video.is_depth_map': False,
                     'has_audio': False}}
    return feats


def _data_table(rows):
    import pyarrow as pa
    vec = pa.list_(pa.float32(), 14)
    return pa.table({
        'observation.state': pa.array([r[0].tolist() for r in rows], type=vec),
        'action': pa.array([r[1].tolist() for r in rows], type=vec),
        'timestamp': pa.array([r[2] for r in rows], pa.float32()),
        'frame_index': pa.array([r[3] for r in rows], pa.int64()),
        'episode_index': pa.array([r[4] for r in rows], pa.int64()),
        'index': pa.array([r[5] for r in rows], pa.int64()),
        'task_index': pa.array([r[6] for r in rows], pa.int64()),
    })


def _rows(ep, t, fps, start, task_index):
    s, a = state(t, ep), action(t, ep)
    return [(s[k], a[k], np.float32(k / fps), k, ep, start + k, task_index) for k in range(t)]


def _encode(path: Path, frames, fps, codec='libsvtav1'):
    import av
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), 'w', format='mp4') as c:
        st = c.add_stream(codec, rate=fps)
        st.width, st.height, st.pix_fmt = frames[0].shape[1], frames[0].shape[0], 'yuv420p'
        for f in frames:
            for p in st.encode(av.VideoFrame.from_ndarray(f, format='rgb24')):
                c.mux(p)
        for p in st.encode():
            c.mux(p)


LENGTHS = (5, 7)
TASKS = ('lift the box', 'hand the cube over')
CAMS2 = ('cam_high', 'cam_left_wrist')


def expected_frames(ep: int, t: int, cam: int, hw=(48, 64)) -> np.ndarray:
    return np.stack([frame(k + 10 * ep, cam, hw) for k in range(t)])


def write_lerobot_v21(root: Path, fps: int = 30, hw=(48, 64), codec='libx264') -> Path:
    import pyarrow.parquet as pq
    (root / 'meta').mkdir(parents=True)
    info = {'codebase_version': 'v2.1', 'robot_type': 'piper', 'total_episodes': len(LENGTHS),
            'total_frames': sum(LENGTHS), 'total_tasks': len(TASKS), 'total_videos': len(LENGTHS) * len(CAMS2),
            'total_chunks': 1, 'chunks_size': 1000, 'fps': fps, 'splits': {'train': f'0:{len(LENGTHS)}'},
            'data_path': 'data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet',
            'video_path': 'videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4',
            'features': _features(fps, hw, CAMS2, 'v2')}
    (root / 'meta' / 'info.json').write_text(json.dumps(info, indent=4))
    (root / 'meta' / 'tasks.jsonl').write_text(''.join(json.dumps({'task_index': i, 'task': t}) + '\n'
                                                       for i, t in enumerate(TASKS)))
    (root / 'meta' / 'episodes.jsonl').write_text(''.join(
        json.dumps({'episode_index': e, 'tasks': [TASKS[e]], 'length': t}) + '\n' for e, t in enumerate(LENGTHS)))
    start = 0
    for e, t in enumerate(LENGTHS):
        (root / 'data' / 'chunk-000').mkdir(parents=True, exist_ok=True)
        pq.write_table(_data_table(_rows(e, t, fps, start, e)), root / f'data/chunk-000/episode_{e:06d}.parquet')
        for c, cam in enumerate(CAMS2):
            _encode(root / f'videos/chunk-000/observation.images.{cam}/episode_{e:06d}.mp4',
                    expected_frames(e, t, c, hw), fps, codec)
        start += t
    return root


def write_lerobot_v3(root: Path, fps: int = 30, hw=(48, 64), codec='libsvtav1') -> Path:
    """Both episodes in one data file and, per camera, one video file (episode 1 starts at 5/fps s)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    (root / 'meta' / 'episodes' / 'chunk-000').mkdir(parents=True)
    info = {'codebase_version': 'v3.0', 'robot_type': 'piper', 'total_episodes': len(LENGTHS),
            'total_frames': sum(LENGTHS), 'total_tasks': len(TASKS), 'chunks_size': 1000,
            'data_files_size_in_mb': 100, 'video_files_size_in_mb': 200, 'fps': fps,
            'splits': {'train': f'0:{len(LENGTHS)}'},
            'data_path': 'data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet',
            'video_path': 'videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4',
            'features': _features(fps, hw, CAMS2, 'v3')}
    (root / 'meta' / 'info.json').write_text(json.dumps(info, indent=4))
    pq.write_table(pa.table({'task_index': pa.array(range(len(TASKS)), pa.int64()),
                             'task': pa.array(TASKS)}), root / 'meta' / 'tasks.parquet')
    rows, eps, start = [], [], 0
    for e, t in enumerate(LENGTHS):
        rows += _rows(e, t, fps, start, e)
        ep = {'episode_index': e, 'tasks': [TASKS[e]], 'length': t, 'data/chunk_index': 0, 'data/file_index': 0,
              'dataset_from_index': start, 'dataset_to_index': start + t,
              'meta/episodes/chunk_index': 0, 'meta/episodes/file_index': 0}
        for cam in CAMS2:
            key = f'observation.images.{cam}'
            ep.update({f'videos/{key}/chunk_index': 0, f'videos/{key}/file_index': 0,
                       f'videos/{key}/from_timestamp': start / fps, f'videos/{key}/to_timestamp': (start + t) / fps})
        eps.append(ep)
        start += t
    (root / 'data' / 'chunk-000').mkdir(parents=True)
    pq.write_table(_data_table(rows), root / 'data' / 'chunk-000' / 'file-000.parquet')
    pq.write_table(pa.Table.from_pylist(eps), root / 'meta' / 'episodes' / 'chunk-000' / 'file-000.parquet')
    for c, cam in enumerate(CAMS2):
        frames = np.concatenate([expected_frames(e, t, c, hw) for e, t in enumerate(LENGTHS)])
        _encode(root / f'videos/observation.images.{cam}/chunk-000/file-000.mp4', list(frames), fps, codec)
    return root


def assert_close_images(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape and got.dtype == np.uint8, (got.shape, want.shape, got.dtype)
    err = np.abs(got.astype(int) - want.astype(int))
    assert err.mean() <= CODEC_MEAN_TOL and err.max() <= CODEC_MAX_TOL, (err.mean(), err.max())
