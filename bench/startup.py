"""Start-up benchmark: time from `aha-wam up sim checkpoint:=...` to the policy being active, cold and warm.

    python bench/startup.py [--checkpoint checkpoints/cpu] [--backend onnxruntime] [--warm-runs 3]

"cold": the checkpoint's inference-artefact cache (<checkpoint>/.artefacts) is removed first, so configure
exports the ONNX graphs; "warm": the cache from the previous start is reused. The time is measured from the
moment the launch command starts to the moment policy_manager publishes state "active" (planner and executor
configured -- checkpoint loaded, graphs loaded, one warm-up inference -- and activated). Prints JSON with every
run, the median of the warm runs and each node's own configure time from its log.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def one_start(checkpoint: str, backend: str, timeout: float = 600.0) -> dict:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import String
    from aha_wam.ros.policy_manager import STATE_TOPIC, state_qos
    log = tempfile.NamedTemporaryFile('w+', prefix='aha_wam_startup_', suffix='.log', delete=False)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('startup_bench', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    state = {}
    node.create_subscription(String, STATE_TOPIC, lambda m: state.update(json.loads(m.data), t=time.monotonic()),
                             state_qos())
    t0 = time.monotonic()
    up = subprocess.Popen([sys.executable, '-m', 'aha_wam.cli', 'up', 'sim', f'checkpoint:={checkpoint}',
                           f'backend:={backend}'], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while time.monotonic() - t0 < timeout and up.poll() is None and state.get('state') not in ('active', 'failed'):
            executor.spin_once(timeout_sec=0.02)
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGINT)
            up.wait(60)
    text = Path(log.name).read_text()
    os.unlink(log.name)
    configured = {m.group(1): float(m.group(2)) for m in re.finditer(r'\[(planner|executor)\].*configured in ([\d.]+) s', text)}
    return {'launch_to_active_s': round(state['t'] - t0, 2) if state.get('state') == 'active' else None,
            'state': state.get('state'), 'configure_s': configured}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--checkpoint', default='checkpoints/cpu')
    p.add_argument('--backend', default='onnxruntime')
    p.add_argument('--warm-runs', type=int, default=3)
    p.add_argument('--discovery-range', default=None, choices=('SUBNET', 'LOCALHOST', 'OFF', 'SYSTEM_DEFAULT'),
                   help='ROS_AUTOMATIC_DISCOVERY_RANGE for the run (default: as in your environment, which is '
                        "what `aha-wam up` gets; a private ROS_DOMAIN_ID keeps the run apart either way)")
    args = p.parse_args()
    os.environ.setdefault('ROS_DOMAIN_ID', str(50 + os.getpid() % 40))
    if args.discovery_range:
        os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = args.discovery_range
    from aha_wam.supervisor import adopt_node_environment
    adopt_node_environment()     # the benchmark's observer discovers the node set as the nodes discover each other
    shutil.rmtree(Path(args.checkpoint) / '.artefacts', ignore_errors=True)
    cold = one_start(args.checkpoint, args.backend)
    warm = [one_start(args.checkpoint, args.backend) for _ in range(args.warm_runs)]
    times = [w['launch_to_active_s'] for w in warm if w['launch_to_active_s'] is not None]
    print(json.dumps({'checkpoint': args.checkpoint, 'backend': args.backend, 'cpus': os.cpu_count(),
                      'discovery_range': os.environ.get('ROS_AUTOMATIC_DISCOVERY_RANGE', '(default: SUBNET)'),
                      'dds_profile': os.environ.get('FASTDDS_DEFAULT_PROFILES_FILE', '(aha-wam up sets the project profile)'),
                      'load_avg_1min': round(os.getloadavg()[0], 2), 'cold': cold, 'warm': warm,
                      'warm_median_launch_to_active_s': float(np.median(times)) if times else None,
                      'target_s': 5.0}, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
