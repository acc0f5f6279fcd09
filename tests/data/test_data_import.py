"""Published demonstration layouts written by the test -> `aha-wam dataset import` -> exactly the expected tensors;
bad files fail with one line naming the file and the key; training reads the imported directory."""
import json
import subprocess
import sys

import numpy as np
import pytest

import _data_support as S
from aha_wam.cli import main
from aha_wam.data.episode import load_episode


def _import(tmp_path, capsys, *argv):
    code = main(['dataset', 'import', *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(code, err):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and 'Traceback' not in err, err
    assert lines[0].startswith('aha-wam dataset: error: ')
    return lines[0]


def test_cobot_magic_hdf5_imports_exactly(tmp_path, capsys):
    src = tmp_path / 'pick_cup'
    for i in (0, 1):
        S.write_cobot_magic(src / f'episode_{i}.hdf5', t=6 + i, depth=(i == 1))
    code, out, err = _import(tmp_path, capsys, src, '--format', 'cobot_magic', '--out', tmp_path / 'imp')
    assert code == 0, err
    summary = json.loads(out)
    assert summary['episodes'] == 2 and summary['cameras'] == {c: [48, 64] for c in S.CAMS}
    for i in (0, 1):
        ep = load_episode(tmp_path / 'imp' / f'episode_{i:06d}.npz')
        t = 6 + i
        assert ep.length == t and ep.camera == 'cam_high' and list(ep.cameras) == list(S.CAMS)
        np.testing.assert_array_equal(ep.proprio, S.state(t))          # /observations/qpos row t
        np.testing.assert_array_equal(ep.actions, S.action(t))         # /action row t (leader), rows kept aligned
        for c, cam in enumerate(S.CAMS):
            steps, frames = ep.cameras[cam]
            np.testing.assert_array_equal(steps, np.arange(t))
            np.testing.assert_array_equal(frames, np.stack([S.frame(k, c) for k in range(t)]))   # native, exact
        assert ep.meta['task'] == 'pick_cup' and ep.meta['seed'] == i and ep.meta['control_hz'] == 30.0
    assert load_episode(tmp_path / 'imp' / 'episode_000001.npz').meta['depth_cameras_ignored'] == list(S.CAMS)


@pytest.mark.parametrize('case,expect', [
    ({'drop': '/observations/qpos'}, 'missing key /observations/qpos'),
    ({'drop': '/action'}, 'missing key /action'),
    ({'bad_dtype': 'i4'}, 'key /action is int32 (6, 14), expected float (T, 14)'),
])
def test_cobot_magic_bad_files_name_the_file_and_key(tmp_path, capsys, case, expect):
    bad = S.write_cobot_magic(tmp_path / 'bad' / 'episode_0.hdf5', **case)
    line = _one_line_error(*_import(tmp_path, capsys, bad, '--format', 'cobot_magic', '--out', tmp_path / 'o')[::2])
    assert str(bad) in line and expect in line, line
    assert not (tmp_path / 'o').exists(), 'nothing half-written'
    (tmp_path / 'junk.hdf5').write_bytes(b'not hdf5 at all')
    line = _one_line_error(*_import(tmp_path, capsys, tmp_path / 'junk.hdf5', '--format', 'cobot_magic',
                                    '--out', tmp_path / 'o')[::2])
    assert 'junk.hdf5: not a readable HDF5 file' in line


@pytest.mark.parametrize('version', ['v21', 'v3'])
def test_lerobot_datasets_import_exactly(tmp_path, capsys, version):
    src = (S.write_lerobot_v21 if version == 'v21' else S.write_lerobot_v3)(tmp_path / f'ds_{version}')
    code, out, err = _import(tmp_path, capsys, src, '--format', 'lerobot', '--out', tmp_path / 'imp')
    assert code == 0, err
    assert json.loads(out)['episodes'] == len(S.LENGTHS)
    for e, t in enumerate(S.LENGTHS):
        ep = load_episode(tmp_path / 'imp' / f'episode_{e:06d}.npz')
        np.testing.assert_array_equal(ep.proprio, S.state(t, e))
        np.testing.assert_array_equal(ep.actions, S.action(t, e))
        assert list(ep.cameras) == list(S.CAMS2) and ep.camera == 'cam_high'
        for c, cam in enumerate(S.CAMS2):
            steps, frames = ep.cameras[cam]
            np.testing.assert_array_equal(steps, np.arange(t))
            S.assert_close_images(frames, S.expected_frames(e, t, c))   # video: within codec tolerance
        assert ep.meta['instruction'] == S.TASKS[e] and ep.meta['control_hz'] == 30.0


def test_lerobot_bad_inputs_name_the_file_and_key(tmp_path, capsys):
    src = S.write_lerobot_v3(tmp_path / 'ds')
    info = json.loads((src / 'meta' / 'info.json').read_text())
    del info['features']['action']
    (src / 'meta' / 'info.json').write_text(json.dumps(info))
    line = _one_line_error(*_import(tmp_path, capsys, src, '--format', 'lerobot', '--out', tmp_path / 'o')[::2])
    assert str(src / 'meta' / 'info.json') in line and 'missing key features.action' in line, line
    src = S.write_lerobot_v3(tmp_path / 'ds2')
    (src / 'videos' / 'observation.images.cam_left_wrist' / 'chunk-000' / 'file-000.mp4').write_bytes(b'\0' * 100)
    line = _one_line_error(*_import(tmp_path, capsys, src, '--format', 'lerobot', '--out', tmp_path / 'o')[::2])
    assert 'file-000.mp4: cannot decode' in line and 'observation.images.cam_left_wrist' in line, line
    src = S.write_lerobot_v21(tmp_path / 'ds3')
    (src / 'data' / 'chunk-000' / 'episode_000001.parquet').unlink()
    line = _one_line_error(*_import(tmp_path, capsys, src, '--format', 'lerobot', '--out', tmp_path / 'o')[::2])
    assert 'episode_000001.parquet: missing file' in line, line
    assert not (tmp_path / 'o').exists()


def test_training_reads_an_imported_directory_with_several_cameras(tmp_path):
    from aha_wam.config import get_config
    from aha_wam.data.cache import TrainingCache
    from aha_wam.data.windows import WindowSampler, WindowSpec
    S.write_cobot_magic(tmp_path / 'src' / 'episode_0.hdf5', t=40)
    p = subprocess.run([sys.executable, '-m', 'aha_wam.cli', 'dataset', 'import', str(tmp_path / 'src'),
                        '--format', 'cobot_magic', '--task', 'lift_box', '--out', str(tmp_path / 'imp')],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and json.loads(p.stdout)['episodes'] == 1, p.stderr
    cache = TrainingCache.from_paths(tmp_path / 'imp', image_hw=(32, 32), cameras=['cam_high', 'cam_left_wrist'])
    cache = TrainingCache.load(cache.save(tmp_path / 'cache'))
    assert cache.cameras == ['cam_high', 'cam_left_wrist'] and cache.images.shape == (40, 32, 32, 3)
    assert cache.control_hz == 30.0 and cache.episodes[0]['task'] == 'lift_box'
    np.testing.assert_array_equal(cache.actions, S.action(40))
    sampler = WindowSampler(cache, get_config('tiny'), history_spacing=(4, 4), extra_cameras=['cam_left_wrist'])
    batch = sampler.collate([sampler.window(WindowSpec(0, 10, 2, 4))])
    assert tuple(batch['video_frames'].shape[2:]) == (32, 32, 3)
    wrist = batch['cameras/cam_left_wrist/video_frames']
    assert wrist.shape == batch['video_frames'].shape and not np.array_equal(wrist.numpy(), batch['video_frames'].numpy())
    # an imported task name outside the policy's table extends the cache's table
    cache2 = TrainingCache.from_paths(S.write_cobot_magic(tmp_path / 'pour_tea' / 'episode_0.hdf5', t=8))
    assert cache2.tasks[-1] == 'pour_tea' and cache2.episodes[0]['task_id'] == len(cache2.tasks) - 1
