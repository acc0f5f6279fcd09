"""`aha-wam up`'s supervisor starts real node processes, prefixes their logs, stops them cleanly."""
import os
import subprocess
import sys

from aha_wam.supervisor import Supervisor
from aha_wam.system import NodeSpec

PROBE = 'aha_wam.ros.context_probe'


def listener(name, **kw):
    # A real rclpy node that waits for messages that never come: it runs until it is stopped.
    return NodeSpec(package='aha_wam', executable='context_probe', name=name, module=PROBE,
                    arguments=('listen', '--count', '1', '--timeout', '600'), **kw)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_requested_stop_ends_every_child(capfd):
    sup = Supervisor([listener('probe_a'), listener('probe_b', namespace='left')], share_dir='/nonexistent')
    assert sup.run(duration=4.0) == 0
    pids = [c.proc.pid for c in sup.children]
    assert all(not alive(pid) for pid in pids)
    out = capfd.readouterr().out
    assert '[probe_a] {"role": "listener", "ready": true}' in out
    assert '[left/probe_b]' in out
    assert 'ran for the requested 4 s' in out


def test_a_dying_required_node_stops_the_system_with_its_name(capfd):
    broken = NodeSpec(package='aha_wam', executable='context_probe', name='broken', module=PROBE,
                      arguments=('no-such-role',))
    sup = Supervisor([listener('survivor'), broken], share_dir='/nonexistent')
    assert sup.run(duration=60.0) == 1
    assert all(not alive(c.proc.pid) for c in sup.children)
    assert 'node broken exited with code 2; stopping the others' in capfd.readouterr().out


def test_sigint_to_the_cli_stops_the_nodes_and_exits_zero():
    """`aha-wam up` in its own process: SIGINT (Ctrl-C) is forwarded and the exit is clean."""
    code = ('import sys; from aha_wam.supervisor import Supervisor; from aha_wam.system import NodeSpec\n'
            f'spec = NodeSpec(package="aha_wam", executable="context_probe", name="probe", module="{PROBE}",'
            ' arguments=("listen", "--count", "1", "--timeout", "600"))\n'
            'sys.exit(Supervisor([spec], "/nonexistent").run())\n')
    proc = subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if '"ready": true' in line:
            break
    proc.send_signal(2)
    rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, ''.join(lines) + rest
    assert 'received SIGINT' in rest


def test_a_policy_that_cannot_configure_stops_the_system_with_one_line(tmp_path):
    """A missing checkpoint fails the planner's configure; policy_manager names it and exits; `aha-wam up` stops
    every node and says why, instead of leaving arms up without a policy."""
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, '-m', 'aha_wam.cli', 'up', 'sim', f'checkpoint:={tmp_path / "missing"}',
                           '--duration', '120'], capture_output=True, text=True, timeout=170)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    assert 'node policy_manager exited with code 1' in out, out[-3000:]
    failed = [ln for ln in out.splitlines() if 'bring-up failed' in ln]
    assert failed and 'configure failed' in failed[0] and ('/planner' in failed[0] or '/executor' in failed[0])


def test_eval_live_takes_its_own_options_and_refuses_a_missing_checkpoint(tmp_path):
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, '-m', 'aha_wam.cli', 'eval-live', '--checkpoint', str(tmp_path / 'none'),
                           '--episodes', '2'], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().startswith('aha-wam eval-live: error: no checkpoint at')


def test_nodes_get_the_project_fast_dds_profile_unless_the_user_chose_one(tmp_path):
    from aha_wam.supervisor import share_directory
    from aha_wam.system import node_environment
    share = share_directory()
    env = node_environment(share, {})
    assert list(env) == ['FASTDDS_DEFAULT_PROFILES_FILE'] and os.path.isfile(env['FASTDDS_DEFAULT_PROFILES_FILE'])
    assert list(node_environment(share, {'ROS_DISTRO': 'humble'})) == ['FASTRTPS_DEFAULT_PROFILES_FILE']
    assert node_environment(share, {'RMW_IMPLEMENTATION': 'rmw_fastrtps_cpp'}) == env
    assert node_environment(share, {'FASTRTPS_DEFAULT_PROFILES_FILE': '/mine.xml'}) == {}   # the user's wins
    assert node_environment(share, {'RMW_IMPLEMENTATION': 'rmw_cyclonedds_cpp'}) == {}
    # Fast DDS itself parses the file: a real node starts with it and Fast DDS reports no XML error.
    code = ('import rclpy; rclpy.init(); n = rclpy.create_node("dds_profile_probe"); '
            'print("ok", flush=True); n.destroy_node(); rclpy.shutdown()')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60,
                            env={**os.environ, **env})
    assert result.returncode == 0 and 'ok' in result.stdout, result.stderr
    assert 'Error' not in result.stdout + result.stderr, result.stdout + result.stderr
    # ...and a broken profile would have shown up there (the check can fail).
    broken = tmp_path / 'broken.xml'
    broken.write_text('<dds><profiles><participant profile_name="x" is_default_profile="true"><rtps><oops/>')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60,
                            env={**os.environ, 'FASTDDS_DEFAULT_PROFILES_FILE': str(broken)})
    assert 'Error' in result.stdout + result.stderr
