"""Setup is idempotent and fails loudly, in one line, when a prerequisite is missing."""
import os
import stat
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / 'scripts' / 'setup.sh'


def run_setup(*args, env=None, timeout=120):
    full = dict(os.environ)
    full.update(env or {})
    return subprocess.run(['bash', str(SETUP), *args], env=full, capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(result, *needles):
    assert result.returncode != 0
    err = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(err) == 1, f'expected one error line, got: {result.stderr!r}'
    assert err[0].startswith('setup: error: ')
    for needle in needles:
        assert needle in err[0], err[0]
    assert 'Traceback' not in result.stdout + result.stderr


def fake_python(tmp_path, version):
    """An executable that answers the version probe like CPython `version` would."""
    path = tmp_path / f'python{version}'
    path.write_text(f'#!/bin/sh\necho {version}\n')
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_second_run_with_nothing_changed_is_fast():
    # `make test` already ran setup once before pytest started, so this run has nothing to do.
    t0 = time.monotonic()
    result = run_setup()
    elapsed = time.monotonic() - t0
    assert result.returncode == 0, result.stderr
    assert elapsed < 30, f'idle setup took {elapsed:.1f} s'
    assert 'installing pinned requirements' not in result.stdout
    assert 'ready in' in result.stdout


def test_python_too_old(tmp_path):
    assert_one_line_error(run_setup(env={'PYTHON': fake_python(tmp_path, '3.9')}), 'too old', '3.9')


def test_python_missing():
    assert_one_line_error(run_setup(env={'PYTHON': '/nonexistent/python3'}), 'python')


def test_no_compiler():
    assert_one_line_error(run_setup(env={'CC': '/nonexistent/cc'}), 'compiler')


def test_package_index_unreachable():
    # Port 9 (discard) on loopback refuses at once; the user's pip config is ignored for this check.
    env = {'PIP_CONFIG_FILE': os.devnull, 'PIP_INDEX_URL': 'http://127.0.0.1:9/simple',
           'PIP_EXTRA_INDEX_URL': '', 'PIP_FIND_LINKS': ''}
    assert_one_line_error(run_setup('--check', env=env), 'package index is unreachable')


def test_prerequisites_ok():
    result = run_setup('--check')
    assert result.returncode == 0, result.stderr
    assert 'prerequisites OK' in result.stdout
