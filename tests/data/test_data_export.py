"""`aha-wam dataset export DIR --to lerobot --out DIR2`: our episodes -> a LeRobot v3.0 dataset that matches the
documented v3 schema (lerobot/datasets/utils.py, shared/notes/peers.md; the `lerobot` package itself is not
installable beside the CPU torch here) and round-trips through our importer exactly (images within codec
tolerance)."""
import json

import numpy as np
import pyarrow.parquet as pq

import _data_support as S
from aha_wam.cli import main
from aha_wam.data.episode import Episode, save_episode
from aha_wam.data.lerobot import read_lerobot

HW, WRIST_HW = (32, 48), (24, 32)


def our_episode(i: int, t: int) -> Episode:
    """A recorded-like episode: ego camera every 2nd step, a wrist camera every 3rd, at their own sizes."""
    ego_steps, wrist_steps = np.arange(0, t, 2), np.arange(0, t, 3)
    cams = {'ego': (ego_steps, np.stack([S.frame(k + i, 0, HW) for k in ego_steps])),
            'wrist': (wrist_steps, np.stack([S.frame(k + i, 1, WRIST_HW) for k in wrist_steps]))}
    return Episode.from_cameras(S.state(t, i), S.action(t, i), cams,
                                {'task': ['handover_cube', 'lift_box'][i], 'seed': 100 + i, 'success': True,
                                 'control_hz': 50.0, 'instruction': f'instruction {i}'})


def test_export_writes_lerobot_v3_that_round_trips(tmp_path, capsys):
    eps = [our_episode(0, 9), our_episode(1, 12)]
    for e in eps:
        save_episode(e, tmp_path / 'ours')
    assert main(['dataset', 'export', str(tmp_path / 'ours'), '--to', 'lerobot', '--out', str(tmp_path / 'lr')]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary['episodes'] == 2 and summary['frames'] == 21
    root = tmp_path / 'lr'
    for rel in ('meta/info.json', 'meta/stats.json', 'meta/tasks.parquet', 'meta/episodes/chunk-000/file-000.parquet',
                'data/chunk-000/file-000.parquet', 'videos/observation.images.ego/chunk-000/file-000.mp4',
                'videos/observation.images.wrist/chunk-000/file-000.mp4'):
        assert (root / rel).is_file(), rel

    # --- the documented v3.0 schema
    info = json.loads((root / 'meta/info.json').read_text())
    assert info['codebase_version'] == 'v3.0' and info['fps'] == 50
    assert (info['total_episodes'], info['total_frames'], info['total_tasks']) == (2, 21, 2)
    assert info['data_path'] == 'data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet'
    assert info['video_path'] == 'videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4'
    assert {'chunks_size', 'data_files_size_in_mb', 'video_files_size_in_mb', 'splits', 'robot_type'} <= set(info)
    f = info['features']
    assert f['observation.state'] == {'dtype': 'float32', 'shape': [14], 'names': f['action']['names'], 'fps': 50}
    assert f['observation.state']['names'][:2] == ['left_joint1.pos', 'left_joint2.pos']
    for k, dt in (('timestamp', 'float32'), ('frame_index', 'int64'), ('episode_index', 'int64'), ('index', 'int64'),
                  ('task_index', 'int64')):
        assert f[k]['dtype'] == dt and f[k]['shape'] == [1]
    ego = f['observation.images.ego']
    assert ego['dtype'] == 'video' and ego['shape'] == [32, 48, 3] and ego['names'] == ['height', 'width', 'channels']
    assert ego['info']['video.codec'] == 'av1' and ego['info']['video.pix_fmt'] == 'yuv420p'
    assert f['observation.images.wrist']['shape'] == [24, 32, 3]
    stats = json.loads((root / 'meta/stats.json').read_text())
    for key in ('observation.state', 'action', 'observation.images.ego', 'timestamp'):
        assert {'min', 'max', 'mean', 'std', 'count', 'q01', 'q50', 'q99'} <= set(stats[key]), key
    assert np.allclose(stats['action']['mean'], np.concatenate([S.action(9, 0), S.action(12, 1)]).mean(0))
    assert np.asarray(stats['observation.images.ego']['mean']).shape == (3, 1, 1)
    tasks = pq.read_table(root / 'meta/tasks.parquet')
    assert tasks.column('task').to_pylist() == ['instruction 0', 'instruction 1']
    assert tasks.column('task_index').to_pylist() == [0, 1]
    assert json.loads(tasks.schema.metadata[b'pandas'])['index_columns'] == ['task']   # pandas index "task"
    data = pq.read_table(root / 'data/chunk-000/file-000.parquet')
    vec = data.schema.field('observation.state').type          # HF datasets' Sequence(float32, length=14)
    assert vec.list_size == 14 and str(vec.value_type) == 'float'
    assert data.column('index').to_pylist() == list(range(21))
    assert data.column('frame_index').to_pylist() == list(range(9)) + list(range(12))
    assert np.allclose(data.column('timestamp').to_numpy(), np.r_[np.arange(9), np.arange(12)] / 50.0)
    ep_rows = pq.read_table(root / 'meta/episodes/chunk-000/file-000.parquet').to_pylist()
    for row, (start, t) in zip(ep_rows, ((0, 9), (9, 12))):
        assert (row['length'], row['dataset_from_index'], row['dataset_to_index']) == (t, start, start + t)
        assert row['videos/observation.images.ego/from_timestamp'] == start / 50.0
        assert row['videos/observation.images.ego/to_timestamp'] == (start + t) / 50.0
        assert (row['data/chunk_index'], row['data/file_index'], row['meta/episodes/chunk_index']) == (0, 0, 0)
        assert len(row['stats/action/mean']) == 14
    import av
    with av.open(str(root / 'videos/observation.images.ego/chunk-000/file-000.mp4')) as c:
        st = c.streams.video[0]
        assert st.codec_context.name in ('libdav1d', 'av1') and (st.width, st.height) == (48, 32)
        assert sum(1 for _ in c.decode(st)) == 21            # one frame per data row

    # --- round trip through our importer
    back = read_lerobot(root)
    for e, b in zip(eps, back):
        np.testing.assert_array_equal(b.proprio, e.proprio)
        np.testing.assert_array_equal(b.actions, e.actions)
        assert b.meta['task'] == e.meta['task'] and b.meta['seed'] == e.meta['seed'] and b.camera == 'ego'
        for cam in ('ego', 'wrist'):
            steps, frames = b.cameras[cam]
            np.testing.assert_array_equal(steps, np.arange(e.length))          # LeRobot: a frame per row
            S.assert_close_images(frames, e.cameras[cam][1][e.frame_of_step(cam)])   # held frames, codec tolerance


def test_export_refuses_to_overwrite_and_reports_one_line(tmp_path, capsys):
    save_episode(our_episode(0, 6), tmp_path / 'ours')
    (tmp_path / 'lr').mkdir()
    (tmp_path / 'lr' / 'keep.txt').write_text('x')
    assert main(['dataset', 'export', str(tmp_path / 'ours'), '--to', 'lerobot', '--out', str(tmp_path / 'lr')]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'exists and is not empty' in err
    odd = Episode(S.state(4), S.action(4), np.arange(4), np.stack([S.frame(k, 0, (31, 48)) for k in range(4)]),
                  {'task': 'lift_box', 'control_hz': 50.0})
    save_episode(odd, tmp_path / 'odd')
    assert main(['dataset', 'export', str(tmp_path / 'odd'), '--to', 'lerobot', '--out', str(tmp_path / 'o2')]) == 2
    err = capsys.readouterr().err.strip()
    assert 'even width and height' in err and len(err.splitlines()) == 1 and not (tmp_path / 'o2').exists()
