"""Closed-loop benchmark over real ROS: `aha-wam up sim` (simulator, streamer, planner, executor as separate
processes) with a `small` policy on this machine; prints JSON.

    python bench/closed_loop_ros.py [--checkpoint DIR] [--seconds 30] [--backend onnxruntime] [--steps 10]

Measured from the executor's own ExecutorStatus stream (every update publishes one):
  * executor update rate (Hz) over the steady window;
  * end-to-end latency: image capture stamp -> trajectory publish (status header stamp), p50 / p95 (ms);
  * context age at use (ms) distribution, the context transport and rejected contexts.
Without --checkpoint an UNTRAINED small policy is used (its action statistics keep chunks mid-range), which
is enough for timing: the cost of an update does not depend on the weights. Targets (issue 6): >= 20 Hz,
end-to-end p95 <= 80 ms.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np


def untrained_small(directory: str) -> str:
    import torch
    from aha_wam.checkpoint import save_checkpoint
    from aha_wam.config import get_config
    from aha_wam.policy import AhaWamPolicy
    from aha_wam.runtime.safety import PIPER_LOWER, PIPER_UPPER
    torch.manual_seed(0)
    policy = AhaWamPolicy(get_config('small'))
    mid = np.tile((PIPER_LOWER + PIPER_UPPER) / 2, 2)
    policy.normalizer.set_stats({'state_mean': mid, 'state_std': np.ones(14), 'action_mean': mid,
                                 'action_std': np.full(14, 1e-3)})
    return str(save_checkpoint(policy, os.path.join(directory, 'small_untrained'), data='untrained (benchmark)'))


def stamp_s(stamp) -> float:
    return stamp.sec + 1e-9 * stamp.nanosec


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--checkpoint', default='')
    parser.add_argument('--seconds', type=float, default=30.0, help='steady measurement window, s')
    parser.add_argument('--backend', default='onnxruntime')
    parser.add_argument('--steps', type=int, default=10)
    parser.add_argument('--transport', default='shm')
    parser.add_argument('--camera-rate', type=float, default=30.0, help='simulated ego camera rate, Hz')
    args = parser.parse_args()

    os.environ.setdefault('ROS_DOMAIN_ID', str(50 + os.getpid() % 40))
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    import rclpy
    from aha_wam_msgs.msg import ExecutorStatus

    tmp = tempfile.TemporaryDirectory(prefix='aha_wam_bench_')
    checkpoint = args.checkpoint or untrained_small(tmp.name)
    warmup = 20.0
    up = subprocess.Popen([sys.executable, '-m', 'aha_wam.cli', 'up', 'sim', f'checkpoint:={checkpoint}',
                           f'backend:={args.backend}', f'denoise_steps:={args.steps}',
                           f'transport:={args.transport}', f'camera_rate:={args.camera_rate}', '--duration', str(warmup + args.seconds + 5)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    rclpy.init()
    node = rclpy.create_node('closed_loop_bench')
    status: list[tuple[float, ExecutorStatus]] = []
    node.create_subscription(ExecutorStatus, '/aha_wam/executor/status',
                             lambda m: status.append((time.monotonic(), m)), 200)
    load_start = os.getloadavg()[0]
    try:
        t_end = None
        while up.poll() is None:
            rclpy.spin_once(node, timeout_sec=0.05)
            running = [m for _, m in status if m.context_version > 0]
            if t_end is None and running:
                t_end = time.monotonic() + 3.0 + args.seconds      # 3 s settle after the first context
            if t_end is not None and time.monotonic() > t_end:
                break
    finally:
        node.destroy_node()
        rclpy.shutdown()
        up.send_signal(2)
        log, _ = up.communicate(timeout=60)
    first = next((t for t, m in status if m.context_version > 0), None)
    if first is None:
        print(json.dumps({'ok': False, 'error': 'executor never ran on a context', 'log_tail': log[-3000:]}))
        return 1
    window = [(t, m) for t, m in status if t >= first + 3.0]
    span = window[-1][0] - window[0][0]
    chunks = [m for _, m in window if m.trajectory_start.sec or m.trajectory_start.nanosec]
    e2e = np.array([(stamp_s(m.header.stamp) - stamp_s(m.observation_stamp)) * 1e3 for m in chunks])
    age = np.array([m.context_age_ms for _, m in window if m.context_age_ms >= 0])
    total = np.array([m.total_ms for _, m in window])
    pct = lambda a, qs: [round(float(v), 1) for v in np.percentile(a, qs)] if len(a) else None
    result = {
        'ok': True,
        'machine': {'cpu': platform.processor() or platform.machine(), 'cores': os.cpu_count(),
                    'load_avg_start': round(load_start, 2), 'python': platform.python_version()},
        'checkpoint': checkpoint if args.checkpoint else 'untrained small (timing only)',
        'backend': args.backend, 'denoise_steps': args.steps, 'transport': args.transport,
        'camera_rate_hz': args.camera_rate,
        'window_s': round(span, 1),
        'executor_rate_hz': round((len(window) - 1) / span, 2),
        'chunk_rate_hz': round(len(chunks) / span, 2),
        'e2e_image_to_trajectory_ms_p50_p95': pct(e2e, [50, 95]),
        'update_ms_p50_p95': pct(total, [50, 95]),
        'context_age_ms_p5_p50_p95_max': pct(age, [5, 50, 95, 100]),
        'holding_fraction': round(float(np.mean([m.holding for _, m in window])), 3),
        'context_rejections': int(sum(bool(m.fault_flags & 4) for _, m in window)),
        'targets': {'rate_hz_min': 20.0, 'e2e_p95_ms_max': 80.0},
    }
    # 20 Hz within the 0.5 % a 30 s window's edges can cost (one update).
    result['meets_targets'] = bool(result['executor_rate_hz'] >= 19.9 and len(e2e)
                                   and result['e2e_image_to_trajectory_ms_p50_p95'][1] <= 80.0)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
