"""The offline subcommands of `aha-wam` (registered in aha_wam.cli.COMMANDS): eval-bag and play. Heavy imports
happen inside the functions; `play` starts the bag player node as a process (the CLI never imports rclpy)."""
from __future__ import annotations

import json
import subprocess
import sys


def cmd_eval_bag(args) -> int:
    """Offline evaluation: replay recorded bags through planner + executor on the bag's clock; metrics + report."""
    import torch
    from aha_wam.checkpoint import CheckpointError
    from aha_wam.runtime.schedule import LoopSchedule
    from aha_wam.data.rosbag import BagError
    from aha_wam.offline.evaluate import SetupError, evaluate_bags
    from aha_wam.data.topic_map import TopicMapError, load_topic_map
    torch.set_num_threads(max(1, int(args.threads)))
    overrides = {k: v for k, v in (('control_rate', args.control_rate), ('refresh_rate', args.refresh_rate),
                                   ('stream_rate', args.stream_hz)) if v}
    schedule = LoopSchedule.deployed(latency=args.latency, planner_latency_ms=args.planner_latency_ms,
                                     executor_fixed_ms=args.executor_fixed_ms,
                                     executor_step_ms=args.executor_step_ms, **overrides)
    log = (lambda s: print(s, file=sys.stderr, flush=True)) if args.verbose else None
    try:
        tmap = load_topic_map(args.topic_map)
        s = evaluate_bags(args.bags, args.checkpoint, args.out, tmap, steps=args.steps, task=args.task,
                          seed=args.seed, schedule=schedule, plots=not args.no_plots,
                          log=log, backend=args.backend)
    except (BagError, TopicMapError, CheckpointError, SetupError) as exc:
        print(f'aha-wam eval-bag: error: {exc}', file=sys.stderr)
        return 2
    agg = s['aggregate']
    line = {'bags': agg['bags'], 'bag_s': s['timing']['bag_s'], 'evaluated_steps': agg['evaluated_steps'],
            'joints_mse': {a: v['joints_mse'] for a, v in agg['action_error'].get('per_arm', {}).items()},
            'gripper_mse': {a: v['gripper_mse'] for a, v in agg['action_error'].get('per_arm', {}).items()},
            'realtime_factor': s['timing']['realtime_factor_total'], 'report': args.out}
    print(json.dumps(line))
    return 0


def add_arguments(p) -> None:
    p.add_argument('bags', nargs='+', help='rosbag2 directories (MCAP or sqlite3)')
    p.add_argument('--checkpoint', required=True, help='policy checkpoint directory')
    p.add_argument('--topic-map', default=None,
                   help='topic map YAML or bundled name (aha_wam, agilex, agilex_aloha); default: aha_wam')
    p.add_argument('--out', default=None, help='report folder (report.md, report.html, *.png, summary.json)')
    p.add_argument('--steps', type=int, default=None, help='denoising steps (default: the checkpoint config)')
    p.add_argument('--task', default=None, help='task name when the bag metadata has none')
    p.add_argument('--seed', type=int, default=0, help='executor noise seed (same seed, same result)')
    p.add_argument('--latency', default='modelled', choices=('modelled', 'measured'),
                   help='planner/executor latency on the replay clock: fixed (deterministic metrics, default) or '
                        'measured on this machine')
    p.add_argument('--control-rate', type=float, default=None, help='executor rate, Hz (default: config/executor.yaml)')
    p.add_argument('--refresh-rate', type=float, default=None, help='planner rate, Hz (default: config/planner.yaml)')
    p.add_argument('--planner-latency-ms', type=float, default=40.0, help='modelled planner latency')
    p.add_argument('--executor-fixed-ms', type=float, default=15.0, help='modelled executor latency, fixed part')
    p.add_argument('--executor-step-ms', type=float, default=3.0, help='modelled executor latency per denoise step')
    p.add_argument('--backend', default='torch',
                   help="executor backend as in the executor node: torch (default), onnxruntime, torch_compile, ...")
    p.add_argument('--stream-hz', type=float, default=None, help='trajectory streamer rate, Hz (default: its YAML)')
    p.add_argument('--threads', type=int, default=1, help='torch threads')
    p.add_argument('--no-plots', action='store_true', help='JSON + Markdown only')
    p.add_argument('--verbose', action='store_true', help='one JSON line per bag on stderr')


def cmd_play(args) -> int:
    """Replay a bag into live ROS with /clock (the bag_player node; `ros2 bag play --clock` on full installs)."""
    cmd = [sys.executable, '-m', 'aha_wam.ros.bag_player', '--ros-args', '-p', f'bag:={args.bag}',
           '-p', f'rate:={float(args.rate)}', '-p', f'loop:={str(args.loop).lower()}',
           '-p', f'start_paused:={str(args.start_paused).lower()}', '-p', f'clock_hz:={float(args.clock_hz)}']
    if args.topic_map:
        cmd += ['-p', f'topic_map:={args.topic_map}']
    if args.topics:
        cmd += ['-p', 'topics:=[' + ','.join(f"'{t}'" for t in args.topics) + ']']
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return 0


def add_play_arguments(p) -> None:
    p.add_argument('bag', help='rosbag2 directory (MCAP or sqlite3)')
    p.add_argument('--rate', type=float, default=1.0, help='playback speed factor')
    p.add_argument('--loop', action='store_true')
    p.add_argument('--start-paused', action='store_true', help='wait for the ~/resume service (std_srvs/Trigger)')
    p.add_argument('--clock-hz', type=float, default=100.0, help='/clock rate')
    p.add_argument('--topics', nargs='*', default=None, help='only these bag topics')
    p.add_argument('--topic-map', default=None, help='republish the map\'s roles under the suite\'s topic names')


COMMANDS = {'eval-bag': (cmd_eval_bag, add_arguments), 'play': (cmd_play, add_play_arguments)}
