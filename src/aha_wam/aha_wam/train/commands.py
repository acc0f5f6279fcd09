"""The learning subcommands of `aha-wam` (registered in aha_wam.cli.COMMANDS): record, train-ae, train,
distill, eval-sim. Heavy imports happen inside the functions; nothing here imports rclpy (`record --ros`
starts `python -m aha_wam.ros.record` as a process)."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

TASK_NAMES = ('lift_box', 'handover_cube', 'place_cube_in_bowl')


def _seeds(first: int, count: int) -> list[int]:
    return list(range(first, first + count))


# --------------------------------------------------------------------------------------------- record
def cmd_record(args) -> int:
    """Record expert demonstrations: ROS-free closed loop (default, faster than real time) or live ROS topics
    to one MCAP bag per episode (--ros; --teleop: leader/follower teleoperation)."""
    args.episodes_set = args.episodes is not None
    args.episodes = 30 if args.episodes is None else args.episodes
    if args.ros and args.teleop:           # leader/follower teleoperation on real arms (or the simulator)
        cmd = [sys.executable, '-m', 'aha_wam.ros.teleop', '--out', args.out, '--task', args.tasks[0],
               '--episodes', str(args.episodes if args.episodes_set else 0)]
        if args.topic_map:
            cmd += ['--topic-map', args.topic_map]
        if args.instruction:
            cmd += ['--instruction', args.instruction]
        return subprocess.call(cmd)
    if args.ros:
        cmd = [sys.executable, '-m', 'aha_wam.ros.record', '--out', args.out, '--task', args.tasks[0],
               '--episodes', str(args.episodes), '--first-seed', str(args.first_seed), '--level', args.level]
        if args.start_sim:
            cmd.append('--start-sim')
        return subprocess.call(cmd)
    from aha_wam.runtime.recording import generate
    total = 0
    for task in args.tasks:
        total += len(generate(task, _seeds(args.first_seed, args.episodes), args.out, level=args.level,
                              camera_rate=args.camera_rate, keep_failed=args.keep_failed,
                              perturb_std=args.perturb_std, perturb_prob=args.perturb_prob))
    print(json.dumps({'episodes_written': total, 'out': args.out}))
    return 0


def _record_args(p: argparse.ArgumentParser) -> None:
    p.add_argument('--tasks', nargs='+', default=list(TASK_NAMES), choices=TASK_NAMES)
    p.add_argument('--episodes', type=int, default=None, help='episodes per task (default 30; --teleop: '
                                                               'exit after this many saved, default never)')
    p.add_argument('--first-seed', type=int, default=1000, help='demo seeds start here (eval uses 0..)')
    p.add_argument('--out', default='runs/demos')
    p.add_argument('--level', default='clean', choices=('clean', 'randomized'))
    p.add_argument('--camera-rate', type=float, default=25.0, help='camera frames per second in the recorded episodes')
    p.add_argument('--keep-failed', action='store_true')
    p.add_argument('--perturb-std', type=float, default=0.0,
                   help='DART-style demos: per-phase smooth joint offset std, rad, executed but not labelled (0: off)')
    p.add_argument('--perturb-prob', type=float, default=1.0, help='probability that an arm is perturbed in a phase')
    p.add_argument('--ros', action='store_true', help='record live ROS topics into MCAP bags')
    p.add_argument('--start-sim', action='store_true', help='with --ros: start piper_sim + streamer first')
    p.add_argument('--teleop', action='store_true',
                   help='with --ros: record leader/follower teleoperation (follower states, the leader commands '
                        'the followers\' piper_ros drivers publish as joint_ctrl, every camera); start/stop/discard '
                        'by the keyboard or the ~/start, ~/stop, ~/discard services')
    p.add_argument('--topic-map', default=None, help='with --teleop: topic map (default aha_wam)')
    p.add_argument('--instruction', default=None, help='with --teleop: instruction stored with each episode')


# ------------------------------------------------------------------------------------------- training
def _train_config(args):
    import torch
    from aha_wam.train.workspace import load_train_config
    cfg = load_train_config(args.config, args.set or [])
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)     # before the cache build: more threads thrash a shared CPU
    return cfg


def ensure_cache(cfg, data: str | None):
    """Load cfg.cache, or build it from episode files / bags under `data` at the model's image size."""
    from aha_wam.data.cache import TrainingCache
    root = Path(cfg.cache)
    if (root / 'index.json').exists():
        return TrainingCache.load(root)
    if not data:
        raise SystemExit(f'aha-wam: no training cache at {root}; pass --data <episodes or bags dir> to build it')
    mc = cfg.model_config()
    cache = TrainingCache.from_paths(data, image_hw=(mc.encoder.image_height, mc.encoder.image_width))
    cache.save(root)
    print(json.dumps({'cache': str(root), **cache.describe()}), flush=True)
    return cache


def _common_train_args(p: argparse.ArgumentParser, default_config: str) -> None:
    p.add_argument('--config', default=default_config, help='training YAML (config/train/*.yaml)')
    p.add_argument('--set', nargs='*', metavar='key=value', help='override training config keys')
    p.add_argument('--data', default=None, help='episodes (*.npz) or bag directories to build the cache from')


def cmd_train_ae(args) -> int:
    """Train the image autoencoder on the cached frames (before `train`)."""
    from aha_wam.train.ae import train_autoencoder
    cfg = _train_config(args)
    cache = ensure_cache(cfg, args.data)
    out = args.out or cfg.encoder or str(Path(cfg.out).parent / 'ae')
    report = train_autoencoder(cfg, steps=args.steps, batch_size=args.batch_size, lr=args.lr, cache=cache, out=out,
                               progress=cfg.progress)
    print(json.dumps({'out': out, **{k: report[k] for k in ('steps', 'final', 'wall_s')}}))
    return 0


def _train_ae_args(p):
    _common_train_args(p, 'config/train/cpu.yaml')
    p.add_argument('--steps', type=int, default=1500)
    p.add_argument('--batch-size', type=int, default=32)
    p.add_argument('--lr', type=float, default=1e-3)
    p.add_argument('--out', default=None)


def cmd_train(args) -> int:
    """Train the policy (flow matching on actions + future video latents); resumes from <out>/state.
    Works under `torchrun --nproc_per_node N` (DDP)."""
    from aha_wam.train.workspace import Workspace
    cfg = _train_config(args)
    cache = ensure_cache(cfg, args.data)
    ws = Workspace(cfg, cache=cache)
    last = ws.train(resume=not args.no_resume)
    if ws.rank == 0:
        print(json.dumps({'checkpoint': str(Path(cfg.out) / 'checkpoint'), 'step': ws.step, **last}))
    return 0


def _train_args(p):
    _common_train_args(p, 'config/train/cpu.yaml')
    p.add_argument('--no-resume', action='store_true', help='ignore <out>/state')


def cmd_distill(args) -> int:
    """Distil the Flash executor (1/2/4 steps) from a teacher checkpoint by ODE regression."""
    from aha_wam.checkpoint import load_checkpoint
    from aha_wam.distill import Distiller
    cfg = _train_config(args)
    cache = ensure_cache(cfg, args.data)
    teacher, _ = load_checkpoint(args.teacher)
    d = Distiller(teacher, cfg, cache=cache, teacher_dir=args.teacher)
    last = d.train(progress=cfg.progress)
    print(json.dumps({'checkpoint': str(Path(cfg.out) / 'checkpoint'), 'step': d.step, **last}))
    return 0


def _distill_args(p):
    _common_train_args(p, 'config/train/cpu_distill.yaml')
    p.add_argument('--teacher', required=True, help='teacher policy checkpoint directory')


# ----------------------------------------------------------------------------------------- evaluation
ABLATIONS = ('full', 'no-ovcr', 'no-offset', 'no-memory', 'synchronous', 'flash-1', 'flash-2', 'flash-4')  # = eval.run.VARIANTS


def cmd_eval_sim(args) -> int:
    """Closed-loop success in the simulator with the deployed asynchronous schedule (or the scripted expert)."""
    from aha_wam.eval.run import run_evaluation
    report = run_evaluation(args)
    text = json.dumps(report, indent=1)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text)
    print(text)
    return 0


def _eval_args(p):
    p.add_argument('--checkpoint', default=None, help='policy checkpoint (teacher)')
    p.add_argument('--flash', default=None, help='distilled Flash checkpoint (for the flash-N variants)')
    p.add_argument('--expert', action='store_true', help='score the scripted expert with the same harness')
    p.add_argument('--tasks', nargs='+', default=list(TASK_NAMES), choices=TASK_NAMES)
    p.add_argument('--episodes', type=int, default=50)
    p.add_argument('--first-seed', type=int, default=0)
    p.add_argument('--level', default='clean', choices=('clean', 'randomized'))
    p.add_argument('--steps', type=int, default=10, help='teacher denoising steps')
    p.add_argument('--ablate', nargs='*', default=['full'], choices=ABLATIONS,
                   help='variants to run (full = the deployed async schedule)')
    p.add_argument('--backend', default='torch', help="executor backend, as the executor node's parameter "
                   "(torch | onnxruntime | ...; onnxruntime also runs the planner prefill)")
    p.add_argument('--latency', default='measured', choices=('measured', 'modelled'),
                   help='executor/planner latency: measured on this machine (default) or fixed (reproducible)')
    p.add_argument('--control-rate', type=float, default=None, help='override the executor rate (Hz; default: config/executor.yaml)')
    p.add_argument('--camera-rate', type=float, default=None, help='override the camera rate (Hz; default: the sim profile)')
    p.add_argument('--refresh-rate', type=float, default=None, help='override the planner rate (Hz; default: config/planner.yaml)')
    p.add_argument('--execute-actions', type=int, default=None,
                   help='actions of a chunk run before the next inference (0 = every update; default: config/executor.yaml)')
    p.add_argument('--threads', type=int, default=1, help='torch threads')
    p.add_argument('--json', default=None, help='also write the report here')
    p.add_argument('-v', '--verbose', action='store_true', help='one line per episode on stderr')


COMMANDS = {
    'record': (cmd_record, _record_args),
    'train-ae': (cmd_train_ae, _train_ae_args),
    'train': (cmd_train, _train_args),
    'distill': (cmd_distill, _distill_args),
    'eval-sim': (cmd_eval_sim, _eval_args),
}
