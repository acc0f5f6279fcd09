"""The package metadata that `ros2 run` relies on, and the parameter files of the piper_bringup nodes.
(The launch files live in package aha_wam; tests/system checks them.)"""
import ast
import configparser
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / 'src' / 'piper_bringup'


def test_entry_points_and_data_files():
    setup_src = (PKG / 'setup.py').read_text()
    assert "'piper_sim = piper_bringup.piper_sim:main'" in setup_src
    assert "'trajectory_streamer = piper_bringup.trajectory_streamer:main'" in setup_src
    cfg = configparser.ConfigParser()
    cfg.read(PKG / 'setup.cfg')
    assert cfg['install']['install_scripts'].endswith('lib/piper_bringup')
    manifest = (PKG / 'package.xml').read_text()
    assert '<exec_depend>piper_msgs</exec_depend>' in manifest
    assert '<exec_depend>piper_core</exec_depend>' in manifest and '<exec_depend>aha_wam' not in manifest


@pytest.mark.parametrize('name,node', [('piper_sim.yaml', 'piper_sim'),
                                       ('trajectory_streamer.yaml', 'trajectory_streamer')])
def test_param_files_match_declared_parameters(name, node):
    """Every parameter in config/piper/<node>.yaml is one the node declares (a typo would be ignored)."""
    data = yaml.safe_load((ROOT / 'config' / 'piper' / name).read_text())
    assert set(data) == {'/**', node}
    params = set(data[node]['ros__parameters'])
    src = (PKG / 'piper_bringup' / f'{node}.py').read_text()
    declared = {n.args[1].value for n in ast.walk(ast.parse(src))
                if isinstance(n, ast.Call) and getattr(n.func, 'id', '') == 'declare'}
    assert params <= declared, params - declared
    assert declared <= params, f'undocumented parameters: {declared - params}'
