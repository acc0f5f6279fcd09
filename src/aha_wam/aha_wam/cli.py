"""`aha-wam`: the suite's command line.

    aha-wam info                 what this environment has (Python, ROS distro, RMW, torch, MuJoCo, GPU)
    aha-wam probe [--count N]    two processes exchange PlannerContext over DDS; every field is checked
    aha-wam demo                 the main end-to-end job (see README); prints a summary
    aha-wam up PROFILE [k:=v]    start a profile's node set (aha_wam.system) without `ros2 launch`
    aha-wam eval-live ...        seeded episodes through the live node set (the README's "live" numbers)

Each subcommand lives in one function below and is registered in COMMANDS. The CLI itself never imports
rclpy: commands that need ROS start node processes.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from typing import Callable


def cmd_info(args) -> int:
    """Print the environment as JSON."""
    import importlib.metadata as md

    def version(dist):
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            return None

    info = {
        'python': platform.python_version(),
        'ros_distro': os.environ.get('ROS_DISTRO') or ('kilted (PyPI wheels)' if version('ros-rclpy') else None),
        'rclpy': version('ros-rclpy'),
        'rmw_implementation': os.environ.get('RMW_IMPLEMENTATION'),
        'ros_domain_id': os.environ.get('ROS_DOMAIN_ID', '0'),
        'torch': version('torch'),
        'mujoco': version('mujoco'),
        'mujoco_gl': os.environ.get('MUJOCO_GL'),
    }
    try:
        import torch
        info['cuda'] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        info['cuda'] = None
    print(json.dumps(info, indent=2))
    return 0


def run_probe(count: int, payload_bytes: int, timeout: float = 60.0) -> dict:
    """Start a listener and a talker process; return the listener's JSON report (plus wall time)."""
    base = [sys.executable, '-m', 'aha_wam.ros.context_probe']
    common = ['--count', str(count), '--payload-bytes', str(payload_bytes), '--timeout', str(timeout)]
    t0 = time.monotonic()
    listener = subprocess.Popen(base + ['listen'] + common, stdout=subprocess.PIPE, text=True)
    talker = subprocess.Popen(base + ['talk'] + common, stdout=subprocess.PIPE, text=True)
    try:
        out, _ = listener.communicate(timeout=timeout + 30)
        talker.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        for proc in (listener, talker):
            proc.kill()
        return {'ok': False, 'error': f'probe processes did not finish within {timeout + 30:.0f} s'}
    lines = [line for line in out.splitlines() if line.startswith('{')]
    report = json.loads(lines[-1]) if lines else {'ok': False, 'error': 'listener printed no report'}
    report['wall_s'] = round(time.monotonic() - t0, 2)
    report['listener_exit'] = listener.returncode
    report['talker_exit'] = talker.returncode
    return report


def cmd_probe(args) -> int:
    """Exchange PlannerContext messages between two processes and verify them."""
    report = run_probe(args.count, args.payload_bytes)
    print(json.dumps(report, indent=2))
    return 0 if report.get('ok') else 1


def cmd_demo(args) -> int:
    """The main end-to-end job: one simulated episode under the trained policy, recorded, summarised."""
    # The demo needs rclpy: it runs as its own process (the CLI never imports rclpy).
    cmd = [sys.executable, '-m', 'aha_wam.ros.demo', '--checkpoint', args.checkpoint, '--task', args.task,
           '--seed', str(args.seed), '--max-seconds', str(args.max_seconds), '--out', args.out]
    return subprocess.call(cmd)


def cmd_eval_live(args) -> int:
    """N seeded episodes through the live node set (separate processes, DDS, shared memory): success, rates."""
    return subprocess.call([sys.executable, '-m', 'aha_wam.ros.eval_live', *args.rest])


def _eval_live_arguments(p: argparse.ArgumentParser) -> None:
    # Its options live with the command (aha_wam.ros.eval_live, which needs rclpy); main() hands them over as
    # they are, so `aha-wam eval-live --help` shows them.
    p.add_argument('rest', nargs=argparse.REMAINDER, help='see aha-wam eval-live --help')


PASSTHROUGH = {'eval-live'}     # commands whose own module parses their arguments


def _demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument('--checkpoint', default='checkpoints/cpu', help='policy checkpoint directory')
    p.add_argument('--task', default='lift_box')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--max-seconds', type=float, default=60.0, help='wall-clock limit of the episode, s')
    p.add_argument('--out', default='runs/demo', help='where the bag, node log and summary go')


def parse_launch_arguments(items: list[str]) -> dict[str, str]:
    """`key:=value` items (the `ros2 launch` syntax) as a dict; anything else is an error."""
    parsed = {}
    for item in items:
        key, sep, value = item.partition(':=')
        if not sep or not key:
            raise SystemExit(f'aha-wam: expected key:=value, got {item!r}')
        parsed[key] = value
    return parsed


def cmd_up(args) -> int:
    """Start a profile's node set (same as its launch file) and supervise it."""
    from aha_wam import supervisor, system
    try:
        system.resolve_arguments(args.profile, parse_launch_arguments(args.arguments))
        # every package first: nothing may start when one is missing (one line naming it and where to get it)
        system.check_packages(system.nodes(args.profile, parse_launch_arguments(args.arguments)))
    except ValueError as exc:
        print(f'aha-wam up: {exc}', file=sys.stderr)
        return 2
    return supervisor.up(args.profile, parse_launch_arguments(args.arguments), args.duration)


def _up_arguments(p: argparse.ArgumentParser) -> None:
    from aha_wam import system
    p.add_argument('profile', choices=system.PROFILES)
    p.add_argument('arguments', nargs='*', metavar='key:=value', help='launch arguments of the profile')
    p.add_argument('--duration', type=float, default=None, help='stop after this many seconds')


COMMANDS: dict[str, tuple[Callable, Callable[[argparse.ArgumentParser], None]]] = {
    'info': (cmd_info, lambda p: None),
    'probe': (cmd_probe, lambda p: (p.add_argument('--count', type=int, default=20),
                                    p.add_argument('--payload-bytes', type=int, default=1 << 20))),
    'demo': (cmd_demo, _demo_arguments),
    'up': (cmd_up, _up_arguments),
    'eval-live': (cmd_eval_live, _eval_live_arguments),
}


def _learning_commands() -> dict:
    """record, train-ae, train, distill, eval-sim: defined in aha_wam.train.commands (lazy heavy imports)."""
    from aha_wam.train.commands import COMMANDS as learning
    return learning


COMMANDS.update(_learning_commands())


def _offline_commands() -> dict:
    """eval-bag, play: defined in aha_wam.offline.commands (lazy heavy imports)."""
    from aha_wam.offline.commands import COMMANDS as offline
    return offline


COMMANDS.update(_offline_commands())


def _interop_commands() -> dict:
    """convert-official, embed-instructions: defined in aha_wam.interop.commands (lazy heavy imports)."""
    from aha_wam.interop.commands import COMMANDS as interop
    return interop


COMMANDS.update(_interop_commands())


def _data_commands() -> dict:
    """dataset import/export: defined in aha_wam.data.commands (lazy heavy imports)."""
    from aha_wam.data.commands import COMMANDS as data
    return data


COMMANDS.update(_data_commands())


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in PASSTHROUGH:
        return COMMANDS[argv[0]][0](argparse.Namespace(rest=argv[1:]))
    parser = argparse.ArgumentParser(prog='aha-wam', description='AHA-WAM suite command line')
    sub = parser.add_subparsers(dest='command', required=True)
    for name, (func, add_args) in COMMANDS.items():
        p = sub.add_parser(name, help=(func.__doc__ or '').strip().split('\n')[0])
        add_args(p)
        p.set_defaults(func=func)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == '__main__':
    sys.exit(main())
