"""`aha_wam.system` is the one description of every profile; launch files and `aha-wam up` use it."""
import ast
import subprocess
import sys
import importlib.util
import py_compile
from pathlib import Path

import pytest
import yaml
from ament_index_python.packages import get_package_share_directory

from aha_wam import system

ROOT = Path(__file__).resolve().parents[2]
EXTERNAL_PACKAGES = set(system.PACKAGE_SOURCES)   # piper_ros, camera drivers, rviz: only in a full ROS install


EXAMPLE_ARGUMENTS = {'sim': {'checkpoint': '/ckpt'}, 'real': {'checkpoint': '/ckpt'},
                     'replay': {'checkpoint': '/ckpt', 'bag': '/bag'}}


def test_every_profile_has_example_arguments():
    assert set(EXAMPLE_ARGUMENTS) == set(system.PROFILES)


@pytest.mark.parametrize('profile', system.PROFILES)
def test_every_spec_names_existing_executables_and_files(profile):
    share = Path(get_package_share_directory('aha_wam'))
    for spec in system.nodes(profile, EXAMPLE_ARGUMENTS[profile]):
        for path in spec.params_files:
            assert (share / path).is_file(), f'{spec.name}: {path} is not installed in share/aha_wam'
        if spec.package in EXTERNAL_PACKAGES:
            assert spec.module is None
            continue
        executable = ROOT / 'install' / spec.package / 'lib' / spec.package / spec.executable
        assert executable.is_file(), f'{spec.name}: no executable {executable}'
        assert importlib.util.find_spec(spec.module) is not None, f'{spec.name}: no module {spec.module}'


def test_real_profile_gives_each_arm_its_own_namespace_and_can_port():
    drivers = [s for s in system.nodes('real', {'can_left_port': 'can7', 'can_right_port': 'can8'})
               if s.package == 'piper']
    assert [(d.namespace, d.parameters['can_port']) for d in drivers] == [('left', 'can7'), ('right', 'can8')]


def test_replay_plays_the_bag_on_sim_time_for_the_policy_nodes():
    specs = {s.name: s for s in system.nodes('replay', {'bag': '/data/ep0', 'checkpoint': '/ckpt', 'rate': '0.5'})}
    assert set(specs) == {'bag_player', 'planner', 'executor', 'policy_manager'}
    assert specs['policy_manager'].parameters['start_episode'] is False      # a bag has no episode to start
    assert specs['bag_player'].parameters['bag'] == '/data/ep0' and specs['bag_player'].parameters['rate'] == 0.5
    assert specs['planner'].parameters['use_sim_time'] and specs['executor'].parameters['use_sim_time']
    with pytest.raises(ValueError, match='needs bag'):
        system.nodes('replay', {'checkpoint': '/ckpt'})


def test_arguments_are_validated_with_clear_errors():
    with pytest.raises(ValueError, match='unknown profile'):
        system.nodes('mars')
    with pytest.raises(ValueError, match='has no argument'):
        system.nodes('sim', {'tsak': 'lift_box'})
    with pytest.raises(ValueError, match='not one of'):
        system.nodes('sim', {'use_sim_time': 'yes'})


def test_command_line_carries_name_namespace_params_overrides_and_remaps(tmp_path):
    spec = system.NodeSpec(package='p', executable='e', name='n', module='m', namespace='left',
                           params_files=('config/x.yaml',), parameters={'a': True, 'b': [1.5, 2.0], 'c': ''},
                           remappings=(('from', 'to'),), arguments=('talk',))
    overrides = str(tmp_path / 'left__n.overrides.yaml')
    assert spec.command_line('/share', str(tmp_path)) == [
        'talk', '--ros-args', '-r', '__node:=n', '-r', '__ns:=/left', '--params-file', '/share/config/x.yaml',
        '--params-file', overrides, '-r', 'from:=to']
    assert yaml.safe_load(open(overrides)) == {'/left/n': {'ros__parameters': {'a': True, 'b': [1.5, 2.0], 'c': ''}}}


def test_overrides_beat_the_node_section_of_the_yaml(tmp_path):
    """rcl gives a node's own YAML section precedence over `-p`; our overrides file must still win."""
    (tmp_path / 'config').mkdir()
    (tmp_path / 'config' / 'n.yaml').write_text('/**:\n  ros__parameters:\n    x: 1\n'
                                                'n:\n  ros__parameters:\n    checkpoint: ""\n')
    spec = system.NodeSpec(package='p', executable='e', name='n', module='m', params_files=('config/n.yaml',),
                           parameters={'checkpoint': '/ckpt'})
    code = ('import rclpy, sys; rclpy.init(args=sys.argv); n = rclpy.create_node("n"); '
            'n.declare_parameter("checkpoint", ""); print(n.get_parameter("checkpoint").value)')
    out = subprocess.run([sys.executable, '-c', code, *spec.command_line(str(tmp_path), str(tmp_path))],
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == '/ckpt', out.stderr


@pytest.mark.parametrize('launch_file', sorted((ROOT / 'launch').glob('*.launch.py')),
                         ids=lambda p: f'{p.parent.parent.name}/{p.name}')
def test_launch_files_are_thin_wrappers_of_a_known_profile(launch_file):
    tree = ast.parse(launch_file.read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, 'id', '') == 'profile_launch_description']
    assert len(calls) == 1, 'a launch file returns profile_launch_description(<profile>) and nothing else'
    assert calls[0].args[0].value in system.PROFILES
    assert any(isinstance(n, ast.FunctionDef) and n.name == 'generate_launch_description' for n in tree.body)


def test_launch_support_compiles():
    # launch / launch_ros are not installable here; compiling at least catches syntax errors.
    py_compile.compile(str(ROOT / 'src' / 'aha_wam' / 'aha_wam' / 'ros' / 'launch.py'), doraise=True)


def test_the_task_travels_by_name_and_the_checkpoint_table_resolves_it():
    """Deployment and evaluation map task names to ids the same way: through the checkpoint's own table."""
    from aha_wam.runtime.build import resolve_task, task_table
    for task in system.TASKS:
        for spec in system.nodes('sim', {'checkpoint': '/c', 'task': task}):
            if spec.name in ('planner', 'executor'):
                assert spec.parameters['task'] == task
    provenance = {'extra': {'tasks': ['place_cube_in_bowl', 'lift_box']}}
    assert task_table(provenance) == {'place_cube_in_bowl': 0, 'lift_box': 1}
    assert resolve_task(provenance, 'lift_box') == 1 and resolve_task(provenance, '0') == 0
    with pytest.raises(ValueError, match="unknown task 'fold_towel'.*place_cube_in_bowl, lift_box"):
        resolve_task(provenance, 'fold_towel')
    with pytest.raises(ValueError, match='outside the checkpoint task table'):
        resolve_task(provenance, 5)
