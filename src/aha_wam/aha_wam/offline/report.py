"""The `eval-bag` report folder: report.md + report.html (same content), PNG plots, summary.json.

Plots (matplotlib Agg, fixed size, see PLOT_SIZES) per bag: `joints_<n>.png` (per joint predicted vs
recorded command, measured state faint, the span before the policy's first command shaded), `error_<n>.png`
(|error| over time: max over each arm's joints, grippers), `ee_<n>.png` (predicted vs recorded end-effector
paths, x-y and x-z); for all bags: `latency.png` (executor update and planner refresh wall time, context age,
inference delay in steps).
"""
from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np

from aha_wam.offline import metrics as M

DPI = 80
FIGSIZES = {'joints': (12, 14), 'error': (10, 5), 'ee': (10, 8), 'latency': (16, 4)}
PLOT_SIZES = {k: (int(w * DPI), int(h * DPI)) for k, (w, h) in FIGSIZES.items()}     # (width, height) px


def _safe(name: str) -> str:
    return re.sub(r'[^A-Za-z0-9_.-]+', '_', name)[:80]


def _fig(kind, rows=1, cols=1, **kw):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(rows, cols, figsize=FIGSIZES[kind], dpi=DPI, squeeze=False, **kw)
    return plt, fig, axes


def _save(plt, fig, path: Path) -> str:
    fig.savefig(path, dpi=DPI)      # no bbox 'tight': the pixel size stays exactly FIGSIZES x DPI
    plt.close(fig)
    return path.name


def plot_joints(r, path: Path) -> str:
    plt, fig, axes = _fig('joints', 7, 2, sharex=True)
    start = r.chunks[0]['t_start'] if r.chunks else r.t[-1] if r.t.size else 0.0
    for i, arm in enumerate(M.ARMS):
        for j, joint in enumerate(M.JOINTS):
            ax, d = axes[j, i], 7 * i + j
            ax.plot(r.t, r.proprio[:, d], color='0.7', lw=0.8, label='measured')
            ax.plot(r.t, r.recorded[:, d], color='tab:blue', lw=1.2, label='recorded command')
            ax.plot(r.t, r.predicted[:, d], color='tab:orange', lw=1.2, label='predicted command')
            ax.axvspan(r.t[0] if r.t.size else 0.0, start, color='0.92', lw=0)
            ax.set_ylabel(f'{arm} {joint}\n[{"m" if joint == "gripper" else "rad"}]', fontsize=8)
            ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7, loc='best')
    for ax in axes[-1]:
        ax.set_xlabel('time [s]')
    fig.suptitle(f'{r.name}: predicted vs recorded commands (shaded: before the first chunk)', fontsize=10)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.05, top=0.95, wspace=0.22, hspace=0.12)
    return _save(plt, fig, path)


def plot_error(r, path: Path) -> str:
    plt, fig, axes = _fig('error', 2, 1, sharex=True)
    err = np.abs(r.predicted - r.recorded)
    err[~r.active] = np.nan
    for i, arm in enumerate(M.ARMS):
        joints = np.where(r.active, np.abs(r.predicted - r.recorded)[:, 7 * i:7 * i + 6].max(axis=1), np.nan)
        axes[0, 0].plot(r.t, joints, label=f'{arm} max over joint1-6')
        axes[1, 0].plot(r.t, err[:, 7 * i + 6], label=f'{arm} gripper')
    axes[0, 0].set_ylabel('|error| [rad]')
    axes[1, 0].set_ylabel('|error| [m]')
    axes[1, 0].set_xlabel('time [s]')
    for ax in axes[:, 0]:
        ax.legend(fontsize=8)
    fig.suptitle(f'{r.name}: command error over time', fontsize=10)
    fig.tight_layout()
    return _save(plt, fig, path)


def plot_ee(r, path: Path) -> str:
    plt, fig, axes = _fig('ee', 2, 2)
    m = r.active
    for i, arm in enumerate(M.ARMS):
        if m.any():
            p = M.ee_positions(r.predicted[m, 7 * i:7 * i + 7])
            q = M.ee_positions(r.recorded[m, 7 * i:7 * i + 7])
        else:
            p = q = np.zeros((0, 3))
        for c, (a, b, la, lb) in enumerate(((0, 1, 'x', 'y'), (0, 2, 'x', 'z'))):
            ax = axes[i, c]
            ax.plot(q[:, a], q[:, b], color='tab:blue', label='recorded')
            ax.plot(p[:, a], p[:, b], color='tab:orange', label='predicted')
            if len(q):
                ax.plot(q[:1, a], q[:1, b], 'o', color='tab:blue')
                ax.plot(p[:1, a], p[:1, b], 'o', color='tab:orange')
            ax.set_xlabel(f'{la} [m]')
            ax.set_ylabel(f'{lb} [m]')
            ax.set_title(f'{arm} arm flange, {la}-{lb}', fontsize=9)
            ax.axis('equal')
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f'{r.name}: end-effector paths (arm base frames)', fontsize=10)
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.08, top=0.9, wspace=0.3, hspace=0.4)
    return _save(plt, fig, path)


def plot_latency(replays, path: Path) -> str:
    plt, fig, axes = _fig('latency', 1, 4)
    upd = [x for r in replays for x in r.update_wall_ms]
    ref = [x for r in replays for x in r.refresh_wall_ms]
    age = [u['context_age_ms'] for r in replays for u in r.updates if u['context_age_ms'] is not None]
    delay = [u['delay_steps'] for r in replays for u in r.updates if u['delay_steps'] is not None]
    for ax, values, title, unit in ((axes[0, 0], upd, 'executor update (wall, this CPU)', 'ms'),
                                    (axes[0, 1], ref, 'planner refresh (wall, this CPU)', 'ms'),
                                    (axes[0, 2], age, 'context age at executor updates', 'ms')):
        if values:
            ax.hist(values, bins=30, color='tab:blue')
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(unit)
    if delay:
        values, counts = np.unique(delay, return_counts=True)
        axes[0, 3].bar(values, counts, color='tab:orange')
    axes[0, 3].set_title('inference delay (consumed steps)', fontsize=9)
    axes[0, 3].set_xlabel('steps')
    fig.tight_layout()
    return _save(plt, fig, path)


# --------------------------------------------------------------------------------------------- text
def _fmt(v, nd=4):
    if v is None:
        return '-'
    if isinstance(v, float):
        return f'{v:.{nd}g}'
    return str(v)


def _sections(summary: dict, images: dict) -> list:
    """[(heading, paragraphs, table header, table rows, images)]"""
    agg = summary['aggregate']
    t = summary['timing']
    out = []
    out.append(('Run', [
        f"checkpoint `{summary['checkpoint']}` (config {summary['checkpoint_config']}), "
        f"{summary['denoise_steps']} denoising steps, seed {summary['seed']}, topic map "
        f"`{summary['topic_map']['name']}`",
        f"{agg['bags']} bag(s), {agg['duration_s']:.1f} s recorded, {agg['evaluated_steps']} control steps evaluated "
        f"(from each bag's first policy command); replay {t['replay_s']:.1f} s wall "
        f"({_fmt(t['realtime_factor_replay'], 3)}x real time).",
        'Schedule: ' + ', '.join(f'{k}={v}' for k, v in summary['schedule'].items())], None, [], []))
    ae = agg['action_error']
    out.append(('Action error (all bags)', ['Predicted = what the trajectory streamer would have commanded; '
                                            'recorded = the commands in the bag.'],
                ['arm', 'joint1-6 MSE [rad^2]', 'joint1-6 max [rad]', 'gripper MSE [m^2]', 'gripper max [m]'],
                [[a, _fmt(v['joints_mse']), _fmt(v['joints_max']), _fmt(v['gripper_mse']), _fmt(v['gripper_max'])]
                 for a, v in ae.get('per_arm', {}).items()], []))
    out.append(('Per joint', [], ['joint', 'MSE', 'max |error|'],
                [[k, _fmt(v['mse']), _fmt(v['max'])] for k, v in ae.get('per_joint', {}).items()], []))
    cd = agg['chunk_discontinuity']
    out.append(('Chunk-to-chunk discontinuity', [f"{cd['switches']} chunk switches: |first action of the new chunk "
                                                 '- previous chunk at that time|.'],
                ['arm', 'joints max-abs mean [rad]', 'joints max-abs max [rad]', 'gripper mean [m]', 'gripper max [m]'],
                [[a, _fmt(v['joints_max_abs_mean']), _fmt(v['joints_max_abs_max']), _fmt(v['gripper_mean']),
                  _fmt(v['gripper_max'])] for a in M.ARMS if (v := cd.get(a))], []))
    gt = agg['gripper_timing']
    out.append(('Gripper timing', ['Open/close events (crossing the middle of the recorded command range); '
                                   'error = predicted - recorded event time.'],
                ['arm', 'recorded events', 'matched', 'missed', 'extra predicted', 'mean |error| [s]',
                 'max |error| [s]'],
                [[a, v['recorded_events'], v['matched'], v['missed'], v['extra'], _fmt(v['abs_error_s'].get('mean')),
                  _fmt(v['abs_error_s'].get('max'))] for a, v in gt.items()], []))
    ee = agg['ee_path']
    out.append(('End-effector paths', ['Flange position by forward kinematics of the predicted vs recorded commands.'],
                ['arm', 'mean distance [m]', 'max distance [m]'],
                [[a, _fmt(v['mean_error_m']), _fmt(v['max_error_m'])] for a, v in ee.items() if v], []))
    dist_rows = []
    for label, d in (('context age at updates [ms]', agg['context_age_ms']),
                     ('inference delay [steps]', agg['inference_delay_steps']),
                     ('executor update wall [ms]', t['executor_update_wall_ms']),
                     ('planner refresh wall [ms]', t['planner_refresh_wall_ms'])):
        dist_rows.append([label, d.get('count', 0), _fmt(d.get('mean')), _fmt(d.get('p50')), _fmt(d.get('p90')),
                          _fmt(d.get('max'))])
    out.append(('Latency and context age', ['Context age and delay follow the modelled schedule (deterministic); '
                                            'wall times are measured on this machine.'],
                ['quantity', 'n', 'mean', 'p50', 'p90', 'max'], dist_rows, [images.get('latency')]))
    rows = []
    for b in summary['bags']:
        pa = b['action_error'].get('per_arm', {})
        rows.append([b['bag'], b['task'], _fmt(b['duration_s'], 4), b['evaluated_steps'],
                     *[_fmt(pa.get(a, {}).get('joints_mse')) for a in M.ARMS],
                     *[_fmt(pa.get(a, {}).get('gripper_mse')) for a in M.ARMS],
                     _fmt(b['first_command_s'], 3), ', '.join(f'{k} {v}' for k, v in b['executor']['faults'].items())])
    out.append(('Bags', [], ['bag', 'task', 'duration [s]', 'evaluated steps', 'L joints MSE', 'R joints MSE',
                             'L gripper MSE', 'R gripper MSE', 'first command [s]', 'executor faults'], rows, []))
    for b in summary['bags']:
        out.append((f"Bag {b['bag']}", [], None, [], images.get(b['bag'], [])))
    return out


def render_markdown(sections) -> str:
    lines = ['# aha-wam eval-bag report', '']
    for head, paras, header, rows, imgs in sections:
        lines += [f'## {head}', '']
        lines += [p + '\n' for p in paras]
        if header:
            lines.append('| ' + ' | '.join(header) + ' |')
            lines.append('|' + '---|' * len(header))
            lines += ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]
            lines.append('')
        lines += [f'![{img}]({img})\n' for img in imgs if img]
    return '\n'.join(lines) + '\n'


def render_html(sections) -> str:
    def md_inline(s):
        return re.sub(r'`([^`]*)`', r'<code>\1</code>', html.escape(s))
    parts = ['<!doctype html><html><head><meta charset="utf-8"><title>aha-wam eval-bag report</title>',
             '<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}'
             'td,th{border:1px solid #bbb;padding:2px 8px;text-align:right}img{max-width:100%}</style></head><body>',
             '<h1>aha-wam eval-bag report</h1>']
    for head, paras, header, rows, imgs in sections:
        parts.append(f'<h2>{html.escape(head)}</h2>')
        parts += [f'<p>{md_inline(p)}</p>' for p in paras]
        if header:
            parts.append('<table><tr>' + ''.join(f'<th>{html.escape(h)}</th>' for h in header) + '</tr>')
            parts += ['<tr>' + ''.join(f'<td>{html.escape(str(c))}</td>' for c in row) + '</tr>' for row in rows]
            parts.append('</table>')
        parts += [f'<p><img src="{html.escape(img)}" alt="{html.escape(img)}"></p>' for img in imgs if img]
    parts.append('</body></html>')
    return '\n'.join(parts)


def write_report(out: Path, summary: dict, replays, plots: bool = True) -> dict:
    """Write the folder; returns {bag name: [png names], 'latency': png name}."""
    out.mkdir(parents=True, exist_ok=True)
    images: dict = {}
    if plots:
        for n, r in enumerate(replays):
            stem = f'{n:03d}_{_safe(r.name)}'
            images[r.name] = [plot_joints(r, out / f'joints_{stem}.png'), plot_error(r, out / f'error_{stem}.png'),
                              plot_ee(r, out / f'ee_{stem}.png')]
        images['latency'] = plot_latency(replays, out / 'latency.png')
    sections = _sections(summary, images)
    (out / 'report.md').write_text(render_markdown(sections), encoding='utf-8')
    (out / 'report.html').write_text(render_html(sections), encoding='utf-8')
    summary['report'] = {'folder': str(out), 'files': sorted(p.name for p in out.iterdir()) + ['summary.json']}
    return images
