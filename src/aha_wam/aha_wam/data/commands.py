"""`aha-wam dataset import|export` (registered in aha_wam.cli.COMMANDS): recorded demonstrations in and out.

    aha-wam dataset import SRC... --format {bag,cobot_magic,lerobot} --out DIR   -> DIR/episode_*.npz
    aha-wam dataset export DIR --to lerobot --out DIR2                          -> a LeRobot v3.0 dataset

Imported episodes keep every camera at native resolution; `aha-wam train --data DIR` trains from them (the
cache resizes the training view). Bad input: one line `aha-wam dataset: error: <file>: <key or reason>`,
exit 2, and nothing half-written is left behind. Heavy imports happen inside the functions.
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

FORMATS = ('bag', 'cobot_magic', 'lerobot')


def _fail(exc) -> int:
    print(f'aha-wam dataset: error: {exc}', file=sys.stderr)
    return 2


def _staging(out: Path) -> Path:
    """A hidden directory beside `out` (same file system: the finished result is renamed into place)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f'.{out.name}-', dir=out.parent))


def _replace_dir(tmp: Path, out: Path) -> None:
    if out.exists():
        out.rmdir()                  # empty (checked before starting)
    tmp.rename(out)


def cmd_import(args) -> int:
    from aha_wam.data.episode import save_episode
    from aha_wam.data.errors import DatasetError
    from aha_wam.data.rosbag import BagError
    from aha_wam.data.sources import detect_format, find_episodes, load_source
    from aha_wam.data.topic_map import TopicMapError, load_topic_map
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        return _fail(f'{out} exists and is not empty (imports never overwrite)')
    tmp = _staging(out)
    try:
        tmap = load_topic_map(args.topic_map) if args.format == 'bag' else None
        sources = []
        for src in args.sources:
            src = Path(src)
            if not src.exists():
                raise DatasetError(f'{src}: no such file or directory')
            if detect_format(src) == args.format or (args.format == 'cobot_magic' and src.is_dir()):
                sources.append(src)
            else:
                sources += [s for s in find_episodes(src) if detect_format(s) == args.format]
        if not sources:
            raise DatasetError(f'{", ".join(args.sources)}: no {args.format} source found')
        n, cameras = 0, {}
        for src in sources:
            for ep in load_source(src, fmt=args.format, topic_map=tmap, task=args.task, fps=args.fps):
                save_episode(ep, tmp, name=f'episode_{n:06d}.npz')
                for name, (_, frames) in ep.cameras.items():
                    cameras[name] = list(frames.shape[1:3])
                n += 1
        _replace_dir(tmp, out)
    except (DatasetError, BagError, TopicMapError, ValueError, OSError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        return _fail(exc)
    print(json.dumps({'episodes': n, 'out': str(out), 'format': args.format, 'cameras': cameras}))
    return 0


def cmd_export(args) -> int:
    from aha_wam.data.errors import DatasetError
    from aha_wam.data.lerobot import write_lerobot_v3
    from aha_wam.data.rosbag import BagError
    from aha_wam.data.sources import find_episodes, load_source
    from aha_wam.data.video import VideoError
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        return _fail(f'{out} exists and is not empty (exports never overwrite)')
    tmp = _staging(out)
    try:
        files = find_episodes(args.src)
        if not files:
            raise DatasetError(f'{args.src}: no episodes (*.npz, bags, *.hdf5, LeRobot datasets)')
        episodes = [e for f in files for e in load_source(f)]
        write_lerobot_v3(episodes, tmp / 'ds', codec=args.codec)
        _replace_dir(tmp / 'ds', out)
    except (DatasetError, BagError, VideoError, ValueError, OSError) as exc:
        return _fail(exc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({'episodes': len(episodes), 'frames': sum(e.length for e in episodes), 'out': str(out),
                      'format': 'lerobot v3.0', 'cameras': list(episodes[0].cameras)}))
    return 0


def cmd_dataset(args) -> int:
    """Import recorded demonstrations (bags, Cobot-Magic HDF5, LeRobot) or export ours as a LeRobot v3 dataset."""
    return cmd_import(args) if args.action == 'import' else cmd_export(args)


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest='action', required=True)
    imp = sub.add_parser('import', help='recorded demonstrations -> episode files (every camera, native size)')
    imp.add_argument('sources', nargs='+', help='bag directories, Cobot-Magic *.hdf5 files or folders, LeRobot '
                                                'dataset directories (v2.1 or v3.0)')
    imp.add_argument('--format', required=True, choices=FORMATS)
    imp.add_argument('--out', required=True, help='directory for episode_*.npz (must not exist or be empty)')
    imp.add_argument('--topic-map', default=None, help='bags: topic map YAML or bundled name (default aha_wam)')
    imp.add_argument('--task', default=None, help='task name for every imported episode (default: the '
                                                  "dataset's task text / the HDF5 folder name)")
    imp.add_argument('--fps', type=float, default=None,
                     help='control rate: bags (default: the bag metadata or 50), Cobot-Magic HDF5 (default 30)')
    exp = sub.add_parser('export', help='our episodes (npz, bags, ...) -> a LeRobot v3.0 dataset')
    exp.add_argument('src', help='episodes directory (or any source aha-wam train --data accepts)')
    exp.add_argument('--to', required=True, choices=('lerobot',))
    exp.add_argument('--out', required=True, help='dataset directory (must not exist or be empty)')
    exp.add_argument('--codec', default='av1', choices=('av1', 'h264'),
                     help="video codec (LeRobot's default is AV1: libsvtav1, yuv420p)")


COMMANDS = {'dataset': (cmd_dataset, add_arguments)}
