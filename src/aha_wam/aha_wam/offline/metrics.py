"""Offline-evaluation metrics on plain arrays (no policy, no bag): each function is checked on hand-made inputs.

Units: joints rad, gripper m (total opening), times s, end-effector positions m (flange, arm base frame,
modified-DH forward kinematics). Arm joints and grippers are summarised separately (different units).
"""
from __future__ import annotations

import numpy as np

from piper_core.layout import ARMS, JOINT_NAMES as JOINTS  # noqa: E402
DIM_NAMES = tuple(f'{a}_{j}' for a in ARMS for j in JOINTS)


def _f(x) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def distribution(values) -> dict:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return {'count': 0}
    p = np.percentile(v, [50, 90, 99])
    return {'count': int(v.size), 'mean': float(v.mean()), 'min': float(v.min()), 'p50': float(p[0]),
            'p90': float(p[1]), 'p99': float(p[2]), 'max': float(v.max())}


def action_error(predicted: np.ndarray, recorded: np.ndarray, mask: np.ndarray) -> dict:
    """Per joint and per arm: MSE and max |error| over the masked steps ([T, 14] arrays)."""
    err = (np.asarray(predicted, float) - np.asarray(recorded, float))[np.asarray(mask, bool)]
    out = {'steps': int(err.shape[0]), 'per_joint': {}, 'per_arm': {}}
    if err.shape[0] == 0:
        return out
    sq, ab = err ** 2, np.abs(err)
    for d, name in enumerate(DIM_NAMES):
        out['per_joint'][name] = {'mse': float(sq[:, d].mean()), 'max': float(ab[:, d].max())}
    for i, arm in enumerate(ARMS):
        j = slice(7 * i, 7 * i + 6)
        g = 7 * i + 6
        out['per_arm'][arm] = {'joints_mse': float(sq[:, j].mean()), 'joints_max': float(ab[:, j].max()),
                               'gripper_mse': float(sq[:, g].mean()), 'gripper_max': float(ab[:, g].max())}
    return out


def sample_chunk(chunk: dict, t: float) -> np.ndarray:
    """A chunk's linear interpolation at time t (held at its ends), as the streamer plays it."""
    acts = chunk['actions']
    tau = (t - chunk['t_start']) / chunk['period']
    if tau <= 0:
        return acts[0].copy()
    if tau >= acts.shape[0] - 1:
        return acts[-1].copy()
    i = int(np.floor(tau))
    s = tau - i
    return acts[i] * (1 - s) + acts[i + 1] * s


def chunk_discontinuity(chunks: list) -> np.ndarray:
    """[n_switches, 14] |new chunk's first action - previous chunk's value at that time|."""
    jumps = [np.abs(c['actions'][0] - sample_chunk(p, c['t_start'])) for p, c in zip(chunks, chunks[1:])]
    return np.array(jumps).reshape(-1, 14)


def discontinuity_summary(jumps: np.ndarray) -> dict:
    out = {'switches': int(jumps.shape[0])}
    for i, arm in enumerate(ARMS):
        if jumps.shape[0] == 0:
            out[arm] = None
            continue
        j = jumps[:, 7 * i:7 * i + 6].max(axis=1)
        g = jumps[:, 7 * i + 6]
        out[arm] = {'joints_max_abs_mean': float(j.mean()), 'joints_max_abs_max': float(j.max()),
                    'gripper_mean': float(g.mean()), 'gripper_max': float(g.max())}
    return out


def crossings(t: np.ndarray, x: np.ndarray, threshold: float) -> list[tuple[float, int]]:
    """Times (linear interpolation) where x crosses `threshold`: (+1 opening/rising, -1 closing/falling)."""
    t, x = np.asarray(t, float), np.asarray(x, float)
    above = x > threshold
    out = []
    for k in np.flatnonzero(above[1:] != above[:-1]):
        x0, x1 = x[k], x[k + 1]
        s = (threshold - x0) / (x1 - x0) if x1 != x0 else 0.0
        out.append((float(t[k] + s * (t[k + 1] - t[k])), 1 if x1 > x0 else -1))
    return out


def gripper_timing(t: np.ndarray, recorded: np.ndarray, predicted: np.ndarray, min_range: float = 0.005) -> dict:
    """Open/close events of one gripper: threshold = middle of the recorded command range; each recorded event
    is matched to the nearest unused predicted event of the same direction; error = t_pred - t_rec (s)."""
    rec, pred = np.asarray(recorded, float), np.asarray(predicted, float)
    lo, hi = float(np.min(rec)), float(np.max(rec))
    if hi - lo < min_range:
        return {'threshold': None, 'recorded_events': 0, 'predicted_events': len(crossings(t, pred, (lo + hi) / 2)),
                'matched': 0, 'missed': 0, 'extra': 0, 'errors_s': []}
    thr = (lo + hi) / 2
    r_ev, p_ev = crossings(t, rec, thr), crossings(t, pred, thr)
    used, errors = set(), []
    for tr, dr in r_ev:
        cands = [(abs(tp - tr), i) for i, (tp, dp) in enumerate(p_ev) if dp == dr and i not in used]
        if cands:
            _, i = min(cands)
            used.add(i)
            errors.append(p_ev[i][0] - tr)
    return {'threshold': thr, 'recorded_events': len(r_ev), 'predicted_events': len(p_ev), 'matched': len(errors),
            'missed': len(r_ev) - len(errors), 'extra': len(p_ev) - len(used), 'errors_s': errors}


def ee_positions(q: np.ndarray) -> np.ndarray:
    """[T, 7] arm joints (+gripper) -> [T, 3] flange positions (forward kinematics, arm base frame)."""
    from piper_core.sim.kinematics import fk_frames
    return np.array([fk_frames(qi[:6])[-1][:3, 3] for qi in np.asarray(q, float)]).reshape(-1, 3)


def ee_path(predicted: np.ndarray, recorded: np.ndarray, mask: np.ndarray) -> dict:
    """Per arm: predicted vs recorded end-effector paths over the masked steps."""
    m = np.asarray(mask, bool)
    out = {}
    for i, arm in enumerate(ARMS):
        if not m.any():
            out[arm] = None
            continue
        p = ee_positions(predicted[m, 7 * i:7 * i + 7])
        r = ee_positions(recorded[m, 7 * i:7 * i + 7])
        d = np.linalg.norm(p - r, axis=1)
        out[arm] = {'mean_error_m': float(d.mean()), 'max_error_m': float(d.max()),
                    'final_error_m': float(d[-1]),
                    'predicted_length_m': float(np.linalg.norm(np.diff(p, axis=0), axis=1).sum()),
                    'recorded_length_m': float(np.linalg.norm(np.diff(r, axis=0), axis=1).sum())}
    return out
