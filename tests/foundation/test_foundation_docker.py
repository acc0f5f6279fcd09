"""The deployment image definition passes hadolint (no Docker engine runs here to build it)."""
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_dockerfile_passes_hadolint():
    result = subprocess.run(['hadolint', '--config', str(ROOT / 'docker' / '.hadolint.yaml'),
                             str(ROOT / 'docker' / 'Dockerfile')], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_file_describes_the_two_can_setup():
    compose = yaml.safe_load((ROOT / 'docker' / 'compose.yaml').read_text())
    service = compose['services']['aha_wam']
    assert service['network_mode'] == 'host'     # SocketCAN links live in the host network namespace
    assert 'can_left_port' in service['command'] and 'can_right_port' in service['command']
    assert (ROOT / 'docker' / 'entrypoint.sh').stat().st_mode & 0o111
