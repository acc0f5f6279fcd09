"""The colcon workspace: packages are built and installed where ament_index finds them."""
import filecmp
import subprocess
import sys
from pathlib import Path

import pytest
from ament_index_python.packages import get_package_share_directory, get_packages_with_prefixes

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ['aha_wam_msgs', 'piper_msgs', 'piper_core', 'ros_node_kit', 'aha_wam', 'aha_wam_planner', 'aha_wam_executor',
            'piper_bringup']


def source_packages():
    return sorted(p.parent.name for p in (ROOT / 'src').glob('*/package.xml'))


def test_every_source_package_is_known():
    assert sorted(PACKAGES) == source_packages()


@pytest.mark.parametrize('package', PACKAGES)
def test_share_directory_found_through_ament_index(package):
    share = Path(get_package_share_directory(package))
    assert (share / 'package.xml').is_file()
    assert get_packages_with_prefixes()[package] == str(ROOT / 'install' / package)


@pytest.mark.parametrize('top', ['launch', 'config'])
def test_top_level_tree_installed_into_share_aha_wam(top):
    share = Path(get_package_share_directory('aha_wam'))
    files = [p for p in (ROOT / top).rglob('*') if p.is_file() and '__pycache__' not in p.parts]
    assert files, f'{top}/ is empty'
    for src in files:
        installed = share / src.relative_to(ROOT)
        assert installed.is_file(), f'{src.relative_to(ROOT)} is not installed at {installed}'
        assert filecmp.cmp(src, installed, shallow=False)


def test_ament_python_executables_go_to_lib_package():
    for package in ('piper_core', 'ros_node_kit', 'aha_wam', 'aha_wam_planner', 'aha_wam_executor', 'piper_bringup'):
        cfg = (ROOT / 'src' / package / 'setup.cfg').read_text()
        assert f'install_scripts=$base/lib/{package}' in cfg
        assert f'script_dir=$base/lib/{package}' in cfg
    assert (ROOT / 'install' / 'aha_wam' / 'lib' / 'aha_wam' / 'aha-wam').is_file()


def test_message_types_import_with_documented_constants():
    from aha_wam_msgs.msg import ExecutorStatus, PlannerContext
    assert (PlannerContext.TRANSPORT_SHM, PlannerContext.TRANSPORT_CUDA_IPC, PlannerContext.TRANSPORT_INLINE) == (0, 1, 2)
    assert ExecutorStatus.FAULT_NONE == 0
    flags = [v for k, v in vars(ExecutorStatus).items() if k.startswith('FAULT_') and v]
    assert all(f & (f - 1) == 0 for f in flags), 'fault flags must be distinct bits'
    assert len(set(flags)) == len(flags)


def test_every_message_field_is_commented_with_meaning():
    for msg in (ROOT / 'src' / 'aha_wam_msgs' / 'msg').glob('*.msg'):
        for line in msg.read_text().splitlines():
            code = line.split('#')[0].strip()
            if code:
                assert '#' in line, f'{msg.name}: field without a comment: {line!r}'


def test_core_library_never_imports_rclpy():
    """Every aha_wam module except the aha_wam.ros adapters imports without pulling in rclpy."""
    code = (
        'import importlib, pkgutil, sys, aha_wam\n'
        'for m in pkgutil.walk_packages(aha_wam.__path__, "aha_wam."):\n'
        '    if m.name.startswith("aha_wam.ros"): continue\n'
        '    importlib.import_module(m.name)\n'
        'bad = [m for m in sys.modules if m.split(".")[0] in ("rclpy", "rcl_interfaces")]\n'
        'print(bad); sys.exit(1 if bad else 0)\n')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_cli_starts_without_torch():
    """`aha-wam` imports every command module to list them; none may pull torch in at import time (it cost a
    second on every command and on `aha-wam up`'s start-up)."""
    code = ('import contextlib, io, sys, aha_wam.cli\n'
            'with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n'
            '    aha_wam.cli.main(["--help"])    # builds every sub-command\'s argument parser\n'
            'print(sorted(m for m in ("torch", "rclpy", "mujoco") if m in sys.modules))')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == '[]', result.stdout + result.stderr
