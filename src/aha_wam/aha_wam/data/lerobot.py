"""LeRobot datasets in (v2.1 and v3.0) and out (v3.0), with pyarrow and PyAV (no `lerobot` install needed).

v2.1 (the official AHA-WAM / Fast-WAM loaders): `meta/info.json` (codebase_version "v2.1", data_path and
video_path templates with {episode_chunk}, chunks_size), `meta/episodes.jsonl` ({episode_index, tasks,
length}), `meta/tasks.jsonl` ({task_index, task}), one parquet and one mp4 per camera per episode, video
time 0 at the episode's first frame.

v3.0 (current LeRobot, `lerobot/datasets/utils.py`):

    meta/info.json                            codebase_version "v3.0", fps, features, data_path / video_path
                                              templates with {chunk_index}/{file_index}, chunks_size, ...
    meta/stats.json                           per feature min/max/mean/std/count (+ q01..q99)
    meta/tasks.parquet                        task (index column) -> task_index
    meta/episodes/chunk-000/file-000.parquet  per episode: episode_index, tasks, length, data/chunk_index,
                                              data/file_index, dataset_from_index, dataset_to_index,
                                              videos/<key>/{chunk_index,file_index,from_timestamp,to_timestamp},
                                              meta/episodes/{chunk_index,file_index}, stats/<feature>/<stat>
    data/chunk-000/file-000.parquet           many episodes per file: timestamp, frame_index, episode_index,
                                              index, task_index + features
    videos/<key>/chunk-000/file-000.mp4       many episodes per file, per camera; an episode's frame t is at
                                              from_timestamp + timestamp[t]

Features read: `observation.state` (or `observation.state.default`, the official AHA-WAM naming) -> proprio,
`action` (or `action.default`) -> actions, both 14-D in the bimanual Piper order; every `video` or `image`
feature `observation.images.<name>` -> camera `<name>` at native resolution, a frame at every step.
Every malformed input raises `DatasetError` with one line naming the file and the key.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from aha_wam.data.episode import Episode
from aha_wam.data.errors import DatasetError
from piper_core.layout import ACTION_DIM, ARMS, JOINT_NAMES

STATE_KEYS = ('observation.state', 'observation.state.default')
ACTION_KEYS = ('action', 'action.default')
IMAGE_PREFIX = 'observation.images.'
V3_DATA_PATH = 'data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet'
V3_VIDEO_PATH = 'videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4'
V3_EPISODES_PATH = 'meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet'
META_COLUMN = 'aha_wam/meta'      # extra episodes column written by our exporter (LeRobot ignores it)
PRIMARY_PREFERENCE = ('cam_high', 'ego', 'front')


def is_lerobot_dataset(path: Path) -> bool:
    return (Path(path) / 'meta' / 'info.json').is_file()


# ------------------------------------------------------------------------------------------------- reading
@dataclasses.dataclass
class _EpisodeRef:
    index: int
    length: int
    tasks: list
    data_file: Path
    videos: dict            # key -> (file, from_timestamp s)
    meta: dict


class LeRobotReader:
    """Episodes of a LeRobot v2.1 or v3.0 dataset directory, one at a time (`len`, `read(i)`, iteration)."""

    def __init__(self, root: str | os.PathLike, task: str | None = None):
        self.root = Path(root)
        info_path = self.root / 'meta' / 'info.json'
        self.info = _json(info_path)
        self.version = str(self.info.get('codebase_version', ''))
        if not self.version.startswith(('v2.', 'v3.')):
            raise DatasetError(f'{info_path}: key codebase_version is {self.version!r}, expected v2.1 or v3.0')
        for key in ('fps', 'features', 'data_path'):
            if key not in self.info:
                raise DatasetError(f'{info_path}: missing key {key}')
        self.fps = float(self.info['fps'])
        features = self.info['features']
        self.state_key = _pick(features, STATE_KEYS, info_path)
        self.action_key = _pick(features, ACTION_KEYS, info_path)
        for key in (self.state_key, self.action_key):
            shape = list(features[key].get('shape', []))
            if shape != [ACTION_DIM]:
                raise DatasetError(f'{info_path}: key features.{key}.shape is {shape}, expected [{ACTION_DIM}] '
                                   f'(left j1..j6, gripper, right ...)')
        self.cameras = {k[len(IMAGE_PREFIX):] if k.startswith(IMAGE_PREFIX) else k: k
                        for k, ft in features.items() if ft.get('dtype') in ('video', 'image')}
        if not self.cameras:
            raise DatasetError(f'{info_path}: key features has no video or image feature (no camera)')
        if any(features[k]['dtype'] == 'video' for k in self.cameras.values()) and not self.info.get('video_path'):
            raise DatasetError(f'{info_path}: missing key video_path (the dataset has video features)')
        self.task_override = task
        self.episodes = self._episodes_v3() if self.version.startswith('v3.') else self._episodes_v2()
        self._decoded: dict = {}          # video file -> (times, frames): v3 files hold many episodes

    def __len__(self) -> int:
        return len(self.episodes)

    def __iter__(self):
        for i in range(len(self.episodes)):
            yield self.read(i)

    # -- metadata -------------------------------------------------------------------------------------
    def _episodes_v2(self) -> list[_EpisodeRef]:
        chunks = int(self.info.get('chunks_size', 1000))
        rows = _jsonl(self.root / 'meta' / 'episodes.jsonl')
        out = []
        for row in rows:
            for key in ('episode_index', 'length'):
                if key not in row:
                    raise DatasetError(f'{self.root / "meta" / "episodes.jsonl"}: missing key {key} in {row}')
            e = int(row['episode_index'])
            fmt = {'episode_chunk': e // chunks, 'episode_index': e}
            videos = {k: (self.root / self.info['video_path'].format(video_key=k, **fmt), 0.0)
                      for k in self.cameras.values() if self.info['features'][k]['dtype'] == 'video'}
            out.append(_EpisodeRef(e, int(row['length']), list(row.get('tasks', [])),
                                   self.root / self.info['data_path'].format(**fmt), videos, {}))
        return out

    def _episodes_v3(self) -> list[_EpisodeRef]:
        import pyarrow.parquet as pq
        files = sorted((self.root / 'meta' / 'episodes').glob('chunk-*/file-*.parquet'))
        if not files:
            raise DatasetError(f'{self.root / "meta" / "episodes"}: no chunk-*/file-*.parquet episode files')
        out = []
        for f in files:
            rows = _read_parquet(f, pq).to_pylist()
            for row in rows:
                need = ['episode_index', 'length', 'data/chunk_index', 'data/file_index']
                need += [f'videos/{k}/{p}' for k in self.cameras.values()
                         if self.info['features'][k]['dtype'] == 'video'
                         for p in ('chunk_index', 'file_index', 'from_timestamp')]
                missing = [k for k in need if row.get(k) is None]
                if missing:
                    raise DatasetError(f'{f}: missing key {missing[0]} (episode row {row.get("episode_index")})')
                data = self.root / self.info['data_path'].format(chunk_index=int(row['data/chunk_index']),
                                                                 file_index=int(row['data/file_index']))
                videos = {}
                for k in self.cameras.values():
                    if self.info['features'][k]['dtype'] != 'video':
                        continue
                    videos[k] = (self.root / self.info['video_path'].format(
                        video_key=k, chunk_index=int(row[f'videos/{k}/chunk_index']),
                        file_index=int(row[f'videos/{k}/file_index'])), float(row[f'videos/{k}/from_timestamp']))
                meta = {}
                if row.get(META_COLUMN):
                    try:
                        meta = json.loads(row[META_COLUMN])
                    except ValueError:
                        raise DatasetError(f'{f}: key {META_COLUMN} is not JSON') from None
                out.append(_EpisodeRef(int(row['episode_index']), int(row['length']), list(row.get('tasks') or []),
                                       data, videos, meta))
        return sorted(out, key=lambda r: r.index)

    def _task_names(self) -> dict:
        """task_index -> task string."""
        if self.version.startswith('v2.'):
            path = self.root / 'meta' / 'tasks.jsonl'
            return {int(r['task_index']): str(r['task']) for r in _jsonl(path)} if path.is_file() else {}
        import pyarrow.parquet as pq
        path = self.root / 'meta' / 'tasks.parquet'
        if not path.is_file():
            return {}
        table = _read_parquet(path, pq)
        names = next((c for c in ('task', '__index_level_0__') if c in table.column_names), None)
        if names is None or 'task_index' not in table.column_names:
            raise DatasetError(f'{path}: missing key task / task_index')
        return dict(zip((int(i) for i in table.column('task_index').to_pylist()),
                        (str(t) for t in table.column(names).to_pylist())))

    # -- one episode ----------------------------------------------------------------------------------
    def read(self, i: int) -> Episode:
        import pyarrow.parquet as pq
        ref = self.episodes[i]
        table = _read_parquet(ref.data_file, pq)
        for key in ('episode_index', 'frame_index', 'timestamp', self.state_key, self.action_key):
            if key not in table.column_names:
                raise DatasetError(f'{ref.data_file}: missing key {key}')
        ep_col = np.asarray(table.column('episode_index').to_numpy(zero_copy_only=False), dtype=np.int64)
        rows = np.flatnonzero(ep_col == ref.index)
        if rows.size == 0:
            raise DatasetError(f'{ref.data_file}: key episode_index has no rows of episode {ref.index}')
        table = table.take(rows)
        order = np.argsort(table.column('frame_index').to_numpy(zero_copy_only=False), kind='stable')
        table = table.take(order)
        if table.num_rows != ref.length:
            raise DatasetError(f'{ref.data_file}: episode {ref.index} has {table.num_rows} rows, its metadata '
                               f'key length says {ref.length}')
        state = _matrix(table, self.state_key, ref.data_file)
        action = _matrix(table, self.action_key, ref.data_file)
        ts = np.asarray(table.column('timestamp').to_numpy(zero_copy_only=False), dtype=np.float64)
        cameras = {}
        for name, key in self.cameras.items():
            if self.info['features'][key]['dtype'] == 'video':
                file, start = ref.videos[key]
                cameras[name] = (np.arange(ref.length), self._frames(file, key, start + ts))
            else:
                cameras[name] = (np.arange(ref.length), _image_column(table, key, ref.data_file))
        names = self._task_names()
        if ref.tasks:
            text = str(ref.tasks[0])
        elif 'task_index' in table.column_names and table.num_rows:
            text = names.get(int(table.column('task_index')[0].as_py()), '')
        else:
            text = ''
        meta = {'task': self.task_override or text or 'task', 'instruction': text, 'seed': ref.index,
                'success': True, 'control_hz': self.fps, 'robot_type': self.info.get('robot_type'),
                **ref.meta, 'source': f'lerobot:{self.root.name}#{ref.index}',
                'lerobot_version': self.version}
        if self.task_override:
            meta['task'] = self.task_override       # (the exported metadata may name another one)
        meta.pop('camera', None)
        primary = ref.meta.get('camera') if ref.meta.get('camera') in cameras else \
            next((p for p in PRIMARY_PREFERENCE if p in cameras), next(iter(cameras)))
        return Episode.from_cameras(state, action, cameras, meta, primary=primary)

    def _frames(self, file: Path, key: str, wanted: np.ndarray) -> np.ndarray:
        from aha_wam.data.video import VideoError, decode, frames_at
        try:
            if file not in self._decoded:
                self._decoded = {file: decode(file)}      # keep one file: episodes are read in file order
            times, frames = self._decoded[file]
            return frames_at(file, times, frames, wanted, self.fps)
        except VideoError as exc:
            raise DatasetError(f'{exc} (feature {key})') from None


def read_lerobot(root: str | os.PathLike, task: str | None = None) -> list[Episode]:
    return list(LeRobotReader(root, task))


def _json(path: Path):
    if not path.is_file():
        raise DatasetError(f'{path}: missing file')
    try:
        return json.loads(path.read_text(encoding='utf-8'))
    except ValueError as exc:
        raise DatasetError(f'{path}: not valid JSON ({exc})') from None


def _jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        raise DatasetError(f'{path}: missing file')
    out = []
    for n, line in enumerate(path.read_text(encoding='utf-8').splitlines(), 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError:
                raise DatasetError(f'{path}: line {n} is not valid JSON') from None
    return out


def _read_parquet(path: Path, pq):
    if not path.is_file():
        raise DatasetError(f'{path}: missing file')
    try:
        return pq.read_table(path)
    except Exception as exc:
        raise DatasetError(f'{path}: not a readable parquet file ({type(exc).__name__}: {exc})') from None


def _pick(features: dict, keys: tuple, where: Path) -> str:
    for k in keys:
        if k in features:
            return k
    raise DatasetError(f'{where}: missing key features.{keys[0]} (or {", ".join(keys[1:])})')


def _matrix(table, key: str, where: Path) -> np.ndarray:
    try:
        values = table.column(key).to_pylist()
        arr = np.asarray(values, dtype=np.float64)
    except (ValueError, TypeError):
        raise DatasetError(f'{where}: key {key} is not a list of numbers per row') from None
    if arr.ndim != 2 or arr.shape[1] != ACTION_DIM:
        raise DatasetError(f'{where}: key {key} has shape {arr.shape}, expected (T, {ACTION_DIM})')
    if not np.all(np.isfinite(arr)):
        raise DatasetError(f'{where}: key {key} has non-finite values')
    return arr.astype(np.float32)


def _image_column(table, key: str, where: Path) -> np.ndarray:
    from aha_wam.data.images import ImageError, encoded_to_rgb
    if key not in table.column_names:
        raise DatasetError(f'{where}: missing key {key}')
    out = []
    for v in table.column(key).to_pylist():
        data = v.get('bytes') if isinstance(v, dict) else v
        if not data:
            raise DatasetError(f'{where}: key {key} has a row without image bytes')
        try:
            out.append(encoded_to_rgb(data, 'png/jpeg'))
        except ImageError as exc:
            raise DatasetError(f'{where}: key {key}: {exc}') from None
    return np.stack(out)


# ------------------------------------------------------------------------------------------------- writing
def feature_names() -> list[str]:
    return [f'{arm}_{joint}.pos' for arm in ARMS for joint in JOINT_NAMES]


def _stats(x: np.ndarray) -> dict:
    """LeRobot's per-feature statistics over axis 0 (min, max, mean, std, count, q01..q99)."""
    x = np.asarray(x, dtype=np.float64)
    out = {'min': x.min(0), 'max': x.max(0), 'mean': x.mean(0), 'std': x.std(0), 'count': np.array([x.shape[0]])}
    for q in (1, 10, 50, 90, 99):
        out[f'q{q:02d}'] = np.quantile(x, q / 100.0, axis=0)
    return {k: v.tolist() for k, v in out.items()}


def _image_stats(frames: np.ndarray) -> dict:
    """Per channel, pixel values in [0, 1], shaped (3, 1, 1) like LeRobot's."""
    px = frames.reshape(-1, 3).astype(np.float64) / 255.0
    s = _stats(px)
    return {k: (np.asarray(v).reshape(-1, 1, 1).tolist() if k != 'count' else v) for k, v in s.items()}


def dense_frames(episode: Episode, name: str) -> np.ndarray:
    """Camera `name` at every control step (the newest frame at or before it): LeRobot has one frame per row."""
    steps, frames = episode.cameras[name]
    idx = np.searchsorted(steps, np.arange(episode.length), side='right') - 1
    if idx[0] < 0:
        raise ValueError(f'camera {name!r} has no frame at step 0; LeRobot needs a frame in every row')
    return frames[idx]


def write_lerobot_v3(episodes: list[Episode], out: str | os.PathLike, codec: str = 'av1',
                     robot_type: str = 'aha_wam_bimanual_piper') -> Path:
    """Our episodes as a LeRobot v3.0 dataset (one data file, one video file per camera, one episodes file)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from aha_wam.data import video
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f'{out} exists and is not empty: a dataset is never overwritten')
    if not episodes:
        raise ValueError('no episodes to export')
    hz = {float(e.meta.get('control_hz', 50.0)) for e in episodes}
    if len(hz) != 1:
        raise ValueError(f'episodes have different control rates {sorted(hz)}: LeRobot has one fps')
    fps = hz.pop()
    fps = int(fps) if float(fps).is_integer() else fps
    cams = list(episodes[0].cameras)
    for e in episodes:
        if list(e.cameras) != cams:
            raise ValueError(f'episodes have different cameras ({cams} vs {list(e.cameras)}): LeRobot has one set')
    shapes = {c: episodes[0].cameras[c][1].shape[1:] for c in cams}
    for e in episodes:
        for c in cams:
            if e.cameras[c][1].shape[1:] != shapes[c]:
                raise ValueError(f'camera {c!r}: frames {e.cameras[c][1].shape[1:]} differ from {shapes[c]}')
    tasks: dict[str, int] = {}
    for e in episodes:
        tasks.setdefault(_task_text(e), len(tasks))
    cols = {k: [] for k in ('observation.state', 'action', 'timestamp', 'frame_index', 'episode_index', 'index',
                            'task_index')}
    ep_rows, frames_by_cam = [], {c: [] for c in cams}
    start = 0
    for i, e in enumerate(episodes):
        t = e.length
        cols['observation.state'].append(e.proprio)
        cols['action'].append(e.actions)
        cols['timestamp'].append((np.arange(t) / fps).astype(np.float32))
        cols['frame_index'].append(np.arange(t, dtype=np.int64))
        cols['episode_index'].append(np.full(t, i, np.int64))
        cols['index'].append(np.arange(start, start + t, dtype=np.int64))
        cols['task_index'].append(np.full(t, tasks[_task_text(e)], np.int64))
        row = {'episode_index': i, 'tasks': [_task_text(e)], 'length': t, 'data/chunk_index': 0,
               'data/file_index': 0, 'dataset_from_index': start, 'dataset_to_index': start + t}
        for c in cams:
            key = IMAGE_PREFIX + c
            row.update({f'videos/{key}/chunk_index': 0, f'videos/{key}/file_index': 0,
                        f'videos/{key}/from_timestamp': start / fps, f'videos/{key}/to_timestamp': (start + t) / fps})
            frames_by_cam[c].append(dense_frames(e, c))
        row.update({'meta/episodes/chunk_index': 0, 'meta/episodes/file_index': 0})
        for name, arr in (('observation.state', e.proprio), ('action', e.actions)):
            for stat, v in _stats(arr).items():
                row[f'stats/{name}/{stat}'] = v
        row[META_COLUMN] = json.dumps({**{k: v for k, v in e.meta.items() if k not in ('format', 'format_version')},
                                       'camera': e.camera}, default=str)
        ep_rows.append(row)
        start += t
    data = {k: np.concatenate(v) for k, v in cols.items()}
    vec = pa.list_(pa.float32(), ACTION_DIM)
    table = pa.table({
        'observation.state': pa.FixedSizeListArray.from_arrays(pa.array(data['observation.state'].reshape(-1)),
                                                               ACTION_DIM).cast(vec),
        'action': pa.FixedSizeListArray.from_arrays(pa.array(data['action'].reshape(-1)), ACTION_DIM).cast(vec),
        **{k: pa.array(data[k]) for k in ('timestamp', 'frame_index', 'episode_index', 'index', 'task_index')}})
    (out / 'data' / 'chunk-000').mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out / V3_DATA_PATH.format(chunk_index=0, file_index=0))
    features = {
        'observation.state': {'dtype': 'float32', 'shape': [ACTION_DIM], 'names': feature_names()},
        'action': {'dtype': 'float32', 'shape': [ACTION_DIM], 'names': feature_names()},
    }
    stats = {'observation.state': _stats(data['observation.state']), 'action': _stats(data['action'])}
    for c in cams:
        key = IMAGE_PREFIX + c
        frames = np.concatenate(frames_by_cam[c])
        info = video.encode(out / V3_VIDEO_PATH.format(video_key=key, chunk_index=0, file_index=0), frames, fps,
                            codec=codec)
        h, w = frames.shape[1:3]
        features[key] = {'dtype': 'video', 'shape': [int(h), int(w), 3], 'names': ['height', 'width', 'channels'],
                         'info': info}
        stats[key] = _image_stats(frames)
    for k, dtype in (('timestamp', 'float32'), ('frame_index', 'int64'), ('episode_index', 'int64'),
                     ('index', 'int64'), ('task_index', 'int64')):
        features[k] = {'dtype': dtype, 'shape': [1], 'names': None}
        stats[k] = _stats(data[k][:, None])
    for k, ft in features.items():
        if ft['dtype'] != 'video':
            ft['fps'] = fps
    total = int(start)
    info = {'codebase_version': 'v3.0', 'robot_type': robot_type, 'total_episodes': len(episodes),
            'total_frames': total, 'total_tasks': len(tasks), 'chunks_size': 1000, 'data_files_size_in_mb': 100,
            'video_files_size_in_mb': 200, 'fps': fps, 'splits': {'train': f'0:{len(episodes)}'},
            'data_path': 'data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet',
            'video_path': 'videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4',
            'features': features}
    (out / 'meta').mkdir(parents=True, exist_ok=True)
    (out / 'meta' / 'info.json').write_text(json.dumps(info, indent=4))
    (out / 'meta' / 'stats.json').write_text(json.dumps(stats, indent=4))
    pq.write_table(_tasks_table(tasks, pa), out / 'meta' / 'tasks.parquet')
    (out / 'meta' / 'episodes' / 'chunk-000').mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(ep_rows), out / V3_EPISODES_PATH.format(chunk_index=0, file_index=0))
    return out


def _task_text(e: Episode) -> str:
    return str(e.meta.get('instruction') or e.meta.get('task') or 'task')


def _tasks_table(tasks: dict, pa):
    """tasks.parquet as pandas writes LeRobot's DataFrame({'task_index'}, index=Index(tasks, name='task')):
    a `task` column marked as the pandas index, so `pd.read_parquet` gives the same frame."""
    names = list(tasks)
    table = pa.table({'task_index': pa.array([tasks[t] for t in names], pa.int64()),
                      'task': pa.array(names, pa.string())})
    pandas_meta = {'index_columns': ['task'], 'column_indexes': [
        {'name': None, 'field_name': None, 'pandas_type': 'unicode', 'numpy_type': 'object',
         'metadata': {'encoding': 'UTF-8'}}],
        'columns': [{'name': 'task_index', 'field_name': 'task_index', 'pandas_type': 'int64', 'numpy_type': 'int64',
                     'metadata': None},
                    {'name': 'task', 'field_name': 'task', 'pandas_type': 'unicode', 'numpy_type': 'object',
                     'metadata': None}],
        'creator': {'library': 'pyarrow', 'version': pa.__version__}, 'pandas_version': '2.2.3'}
    return table.replace_schema_metadata({b'pandas': json.dumps(pandas_meta).encode()})
