"""What a deployment relies on in aha_wam.system (launch-free; the real `ros2 launch` was checked by hand, see
README "Deploy on real arms"): packages checked before any node starts, the real profile's camera, driver log
level and joint-name map, and arm namespaces that reach every node."""
import os
import stat
import subprocess

import pytest

from aha_wam import system
from piper_core.joint_names import name_map


def _prefix(tmp_path, packages: dict[str, tuple[str, ...]]) -> str:
    """A real ament prefix on disk: the index marker of each package and its executables in lib/<package>/."""
    root = tmp_path / 'prefix'
    index = root / 'share' / 'ament_index' / 'resource_index' / 'packages'
    index.mkdir(parents=True, exist_ok=True)
    for package, executables in packages.items():
        (index / package).write_text('')
        for exe in executables:
            path = root / 'lib' / package / exe
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text('#!/bin/sh\n')
            path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(root)


def _installed(specs, skip=()):
    packages = {}
    for spec in specs:
        if spec.package not in skip:
            packages.setdefault(spec.package, ())
            packages[spec.package] += (spec.executable,)
    return packages


def test_missing_driver_stops_everything_with_one_line_naming_it_and_its_source(tmp_path):
    specs = system.nodes('real', {'checkpoint': '/ckpt'})
    prefixes = _prefix(tmp_path, _installed(specs, skip={'piper'}))
    with pytest.raises(system.MissingPackage) as err:
        system.check_packages(specs, prefixes)
    text = str(err.value)
    assert '\n' not in text and text.count("package '") == 1
    assert "package 'piper' is not installed" in text and 'AgileX piper_ros, branch humble' in text
    assert '/left/piper_ctrl_single_node' in text and '/right/piper_ctrl_single_node' in text
    system.check_packages(specs, _prefix(tmp_path, _installed(specs)))      # complete: no error


def test_a_package_without_the_executable_is_named_too(tmp_path):
    specs = system.nodes('real', {})
    packages = _installed(specs)
    packages['piper'] = ()                           # a piper_ros revision without piper_single_ctrl
    with pytest.raises(system.MissingPackage, match="has no executable 'piper_single_ctrl'"):
        system.check_packages(specs, _prefix(tmp_path, packages))


def test_rviz_without_rviz2_is_refused_before_any_node(tmp_path):
    specs = system.nodes('sim', {'rviz': 'true'})
    prefixes = _prefix(tmp_path, _installed(specs, skip={'rviz2', 'robot_state_publisher'}))
    with pytest.raises(system.MissingPackage) as err:
        system.check_packages(specs, prefixes)
    assert "'rviz2' is not installed" in str(err.value) and "'robot_state_publisher'" in str(err.value)
    assert 'leave rviz:=false' in str(err.value)


def test_aha_wam_up_real_without_piper_ros_prints_one_line_and_starts_nothing():
    """The real CLI in this workspace, which has no AgileX piper_ros (nor a camera driver)."""
    result = subprocess.run(['aha-wam', 'up', 'real', 'camera:=none'], capture_output=True, text=True, timeout=60,
                            env=dict(os.environ))
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "package 'piper' is not installed" in lines[0], result.stderr
    assert 'started' not in result.stdout


@pytest.mark.parametrize('camera, package, image_remap', [
    ('realsense', 'realsense2_camera', ('~/color/image_raw', '/camera/ego/image_raw')),
    ('usb_cam', 'usb_cam', ('image_raw', '/camera/ego/image_raw')),
])
def test_real_profile_starts_the_chosen_camera_remapped_to_the_ego_topic(camera, package, image_remap):
    specs = {s.full_name: s for s in system.nodes('real', {'camera': camera, 'camera_device': '/dev/video4'})}
    cam = specs['/camera/ego']
    assert cam.package == package and image_remap in cam.remappings and not cam.required
    assert all(os.path.isfile(os.path.join(os.environ['AHA_WAM_ROOT'], f)) for f in cam.params_files)
    if camera == 'usb_cam':
        assert cam.parameters['video_device'] == '/dev/video4'
    assert '/camera/ego' not in {s.full_name for s in system.nodes('real', {'camera': 'none'})}


def test_real_profile_drivers_log_at_warn_and_the_executor_gets_the_joint_name_map(tmp_path):
    specs = system.nodes('real', {'checkpoint': '/ckpt', 'joint_name_map': 'piper_ros_legacy'})
    drivers = [s for s in specs if s.package == 'piper']
    assert len(drivers) == 2
    for d in drivers:
        assert d.ros_arguments == ('--log-level', 'warn')
        assert d.command_line('/share', str(tmp_path))[:3] == ['--ros-args', '--log-level', 'warn']
    assert system.nodes('real', {'driver_log_level': 'info'})[0].ros_arguments == ('--log-level', 'info')
    executor = next(s for s in specs if s.name == 'executor')
    assert executor.parameters['joint_name_map'] == 'piper_ros_legacy'
    name_map(executor.parameters['joint_name_map'])               # a value piper_core accepts
    name_map(system.resolve_arguments('real')['joint_name_map'])  # the default too


def test_command_line_puts_ros_arguments_after_ros_args(tmp_path):
    spec = system.NodeSpec(package='p', executable='e', name='n', module='m', namespace='left',
                           ros_arguments=('--log-level', 'warn'), parameters={'a': 1})
    line = spec.command_line('/share', str(tmp_path))
    assert line[:3] == ['--ros-args', '--log-level', 'warn'] and '__ns:=/left' in line


@pytest.mark.parametrize('profile', ['sim', 'real'])
def test_arm_namespaces_reach_every_node_that_talks_to_the_arms(profile):
    specs = system.nodes(profile, {'left_ns': 'a', 'right_ns': 'b', 'checkpoint': '/ckpt', 'rviz': 'true'})
    arms_of = {s.name: s.parameters['arms'] for s in specs if 'arms' in s.parameters}
    expected = {'trajectory_streamer', 'executor', 'joint_state_relay'} | ({'piper_sim'} if profile == 'sim' else set())
    assert set(arms_of) == expected and all(v == ['a', 'b'] for v in arms_of.values()), arms_of
    if profile == 'real':
        assert {s.namespace for s in specs if s.package == 'piper'} == {'a', 'b'}
