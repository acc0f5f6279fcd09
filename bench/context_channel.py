"""Benchmark: planner -> executor context latency, shared-memory ring vs inline payload over DDS.

    source scripts/env.sh && python bench/context_channel.py [--configs paper,small] [--small 8,36,2,128,float32]

For each config and transport, a writer process (`aha_wam.ros.context_stub write`) publishes contexts and a
reader process (`... read --verify`) reads them over real DDS (aha_wam_msgs/PlannerContext, reliable, depth 1,
transient local). Latency = reader's wall clock when `ContextReader.read` returned a usable, validated,
private copy of the context minus the wall clock just before `ContextWriter.publish` (same host). It thus
includes: writer copy + checksum, descriptor serialization and DDS delivery, reader copy + checksum, and, for
inline, the payload's serialization/deserialization. Every accepted context is also compared byte for byte
(outside the timed window). The first WARMUP samples are dropped. Prints one JSON document.

Note: the machine is shared (2 cores, other jobs): medians are the figure to quote; p95 shows the noise.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid

PAPER = '30,120,24,128,bfloat16'      # 30 layers x 2 x 120 tokens x 3072, bf16 = 44.2 MB
SMALL = '8,36,2,128,float32'          # 8 layers x 2 x 36 tokens x 256, fp32 = 0.59 MB
WARMUP = 2


def _nbytes(layout: str) -> int:
    parts = layout.split(',')
    itemsize = {'float32': 4, 'float16': 2, 'bfloat16': 2}[parts[4] if len(parts) > 4 else 'float32']
    L, T, H, D = (int(p) for p in parts[:4])
    return L * 2 * T * H * D * itemsize


class _Proc:
    def __init__(self, args, env):
        self.p = subprocess.Popen([sys.executable, '-m', 'aha_wam.ros.context_stub', *args], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.events, self.lines = [], []
        self.t = threading.Thread(target=self._pump, daemon=True)
        self.t.start()

    def _pump(self):
        for line in self.p.stdout:
            self.lines.append(line.rstrip())
            if line.startswith('{'):
                try:
                    self.events.append(json.loads(line))
                except ValueError:
                    pass

    def wait_event(self, name, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for e in self.events:
                if e.get('event') == name:
                    return e
            if self.p.poll() is not None and not self.t.is_alive():
                break
            time.sleep(0.05)
        raise RuntimeError(f'no {name!r} event; output tail:\n' + '\n'.join(self.lines[-30:]))

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
            try:
                self.p.wait(20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.t.join(5)


def run_case(layout: str, transport: str, count: int, period: float, env: dict, prefix: str) -> dict:
    topic = f'/bench/{prefix}/{transport}/context'
    reader = _Proc(['read', '--count', str(count + WARMUP), '--verify', '--quiet', '--layout', layout,
                    '--timeout', str(60 + count * period * 4), '--topic', topic], env)
    # The writer offers twice as many contexts as the reader needs: with KEEP_LAST 1 a descriptor that
    # arrives while the reader is still verifying the previous one may be superseded (as in the real system).
    writer = _Proc(['write', '--transport', transport, '--layout', layout, '--count', str(2 * (count + WARMUP) + 5),
                    '--period', str(period), '--prefix', prefix, '--topic', topic, '--linger', '60'], env)
    try:
        summary = reader.wait_event('summary', timeout=120 + count * period * 4)
    finally:
        writer.stop()
        reader.stop()
    lat = summary['latency_ms']['all'][WARMUP:]
    srt = sorted(lat)
    return {'n': len(lat), 'median_ms': round(statistics.median(lat), 3) if lat else None,
            'p95_ms': round(srt[min(len(srt) - 1, int(round(0.95 * (len(srt) - 1))))], 3) if lat else None,
            'min_ms': round(srt[0], 3) if lat else None, 'bit_exact': summary['inexact'] == 0,
            'rejections': summary['rejections'], 'received': summary['received']}


def in_process_components(layout_text: str, prefix: str, n: int = 20) -> dict:
    """Writer.publish and Reader.read timed in ONE process (no DDS): the copy+checksum floor of the shm
    path under the same machine load, to read the cross-process numbers against."""
    import torch
    from aha_wam.context import ContextReader, ContextWriter, PlannerContext
    from aha_wam.ros.context_stub import parse_layout
    layout = parse_layout(layout_text)
    kv = torch.from_numpy(__import__('numpy').random.default_rng(0).integers(0, 256, layout.nbytes, dtype='uint8')) \
        .view(layout.torch_dtype).reshape(layout.shape)
    pub, rd, com = [], [], []
    with ContextWriter(layout, 'inproc', prefix=prefix) as w, ContextReader() as r:
        r.prepare(layout)
        for _ in range(n + WARMUP):
            t0 = time.perf_counter()
            d = w.publish(PlannerContext(kv=kv, layout=layout, frame_index=0))
            t1 = time.perf_counter()
            assert r.read(d)
            t2 = time.perf_counter()
            pub.append(1e3 * (t1 - t0))
            rd.append(1e3 * (t2 - t1))
            time.sleep(0.02)
        for _ in range(n + WARMUP):                   # zero-copy path: the planner writes into the slot
            out = w.reserve()
            out.copy_(kv)                             # stands in for the model writing its output
            t0 = time.perf_counter()
            d = w.commit(frame_index=0)
            com.append(1e3 * (time.perf_counter() - t0))
            del out
            assert r.read(d)
            time.sleep(0.02)
    return {'commit_after_reserve_median_ms': round(statistics.median(com[WARMUP:]), 3),'publish_median_ms': round(statistics.median(pub[WARMUP:]), 3),
            'read_median_ms': round(statistics.median(rd[WARMUP:]), 3),
            'checksum': {0: 'none', 1: 'crc32', 2: 'crc32_sampled'}[d.checksum_type]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--configs', default='paper,small', help='comma list of: paper, small')
    ap.add_argument('--paper', default=PAPER, help='paper layout L,T,H,D,dtype')
    ap.add_argument('--small', default=SMALL, help='small layout L,T,H,D,dtype')
    ap.add_argument('--count-shm', type=int, default=30)
    ap.add_argument('--count-inline', type=int, default=10)
    ap.add_argument('--period-shm', type=float, default=0.2, help='s between contexts (planner rate)')
    ap.add_argument('--period-inline', type=float, default=0.8, help='s; inline at paper size needs >0.4 s')
    args = ap.parse_args(argv)
    env = dict(os.environ)
    env.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(102, 200)))
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env['PYTHONUNBUFFERED'] = '1'
    prefix = f'ahabench{os.getpid()}x{uuid.uuid4().hex[:4]}'
    layouts = {'paper': args.paper, 'small': args.small}
    results = {}
    for name in args.configs.split(','):
        layout = layouts[name]
        small = _nbytes(layout) < (4 << 20)
        shm = run_case(layout, 'shm', args.count_shm, min(args.period_shm, 0.1) if small else args.period_shm,
                       env, prefix)
        inline = run_case(layout, 'inline', args.count_inline if not small else args.count_shm,
                          0.1 if small else args.period_inline, env, prefix)
        ratio = (inline['median_ms'] / shm['median_ms']) if shm['median_ms'] and inline['median_ms'] else None
        results[name] = {'layout': layout, 'nbytes': _nbytes(layout), 'shm': shm, 'inline_dds': inline,
                         'shm_in_process_components': in_process_components(layout, prefix),
                         'inline_over_shm_median_ratio': round(ratio, 2) if ratio else None}
    leftovers = [n for n in os.listdir('/dev/shm') if n.startswith(prefix)]
    out = {'bench': 'context_channel', 'metric': 'publish -> usable-in-reader latency, ms (separate processes, DDS)',
           'warmup_dropped': WARMUP, 'host': {'python': platform.python_version(), 'cpus': os.cpu_count(),
                                              'loadavg_1m': round(os.getloadavg()[0], 2)},
           'results': results, 'segments_left_in_dev_shm': leftovers}
    if 'paper' in results:
        p = results['paper']
        out['targets'] = {'shm_at_least_20x_faster_than_inline': bool(p['inline_over_shm_median_ratio'] and
                                                                       p['inline_over_shm_median_ratio'] >= 20),
                          'shm_paper_median_le_15ms': bool(p['shm']['median_ms'] is not None and
                                                            p['shm']['median_ms'] <= 15.0)}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
