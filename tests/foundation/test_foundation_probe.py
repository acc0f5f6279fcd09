"""Two separate processes exchange aha_wam_msgs/PlannerContext over real DDS, every field checked."""
import json
import sys

from _support import spawn_python, stop

from aha_wam.cli import run_probe


def test_planner_context_round_trips_between_processes_with_1mb_payload():
    report = run_probe(count=5, payload_bytes=1 << 20)
    assert report['listener_exit'] == 0 and report['talker_exit'] == 0, report
    assert report['ok'] and report['received'] == 5 and report['mismatches'] == {}, report
    assert report['payload_bytes'] == 1 << 20


def test_probe_detects_content_that_differs():
    """Negative control: a listener expecting other content reports the mismatching fields."""
    base = ['-m', 'aha_wam.ros.context_probe']
    listener = spawn_python(*base, 'listen', '--count', '2', '--payload-bytes', '4096', '--seed', '1')
    talker = spawn_python(*base, 'talk', '--count', '2', '--payload-bytes', '4096', '--seed', '2')
    listener.wait(60)
    out = stop(listener)
    stop(talker)
    report = json.loads([line for line in out.splitlines() if line.startswith('{') and 'ok' in line][-1])
    assert listener.returncode == 1 and not report['ok']
    assert 'payload' in report['mismatches']['0'] and 'session_id' in report['mismatches']['0']
