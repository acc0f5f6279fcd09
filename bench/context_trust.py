#!/usr/bin/env python3
"""What context trust costs an executor update (`small` config, CPU): prints one JSON document.

    python bench/context_trust.py                    # 120 updates per variant, 10 denoise steps, 1 thread
    python bench/context_trust.py --updates 300 --steps 4

One executor update = context delivery + `policy.act` (image encoding, OVCR, denoising: what the executor node
runs per control tick). The planner publishes a real `small` context through a real shared-memory ring every
10th update (2 Hz planner, 20 Hz executor, the deployed rates). Variants, interleaved update by update so
machine load hits them alike:

  unchecked  the reader as before issue 15: the newest descriptor read directly, no finiteness check, no inbox
  checked    ContextInbox + ContextReader as the executor uses them: every descriptor triaged, proven against the
             segment (trusted segment, session, slot version/sequence/stamp), finiteness checked
  flooded    `checked` while 5 forged descriptors arrive per update (a 100 Hz flood at 20 Hz control)

Besides the side-by-side update medians it times the pieces alone (finiteness check, one read with and without
it, an empty take, a take through a flood), each as a share of the unchecked update median. Weights are
random: latency does not depend on them. Medians; on a shared machine compare side by side, not across runs.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
import uuid

os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')   # before torch loads the OpenMP runtime
import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'src', 'aha_wam'))

from aha_wam.config import get_config  # noqa: E402
from aha_wam.context import ContextInbox, ContextReader, ContextWriter  # noqa: E402
from aha_wam.context import integrity  # noqa: E402
from aha_wam.policy import AhaWamPolicy  # noqa: E402

TARGETS = {'checked_update_overhead_pct_max': 5.0, 'finite_check_pct_of_update_max': 5.0}


def _ms(samples: list[float]) -> dict:
    ms = sorted(s * 1e3 for s in samples)
    p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
    return {'median': round(statistics.median(ms), 4), 'p95': round(p95, 4), 'min': round(ms[0], 4), 'n': len(ms)}


def _time_us(fn, n: int) -> float:
    """Median of n calls, microseconds."""
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return round(statistics.median(out) * 1e6, 2)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--config', default='small')
    ap.add_argument('--updates', type=int, default=120, help='timed updates per variant')
    ap.add_argument('--steps', type=int, default=10, help='denoise steps per update (deployed default 10)')
    ap.add_argument('--threads', type=int, default=1, help='torch threads (the executor node uses 1)')
    ap.add_argument('--refresh-every', type=int, default=10, help='updates per planner refresh (20 Hz / 2 Hz)')
    ap.add_argument('--flood', type=int, default=5, help='forged descriptors per update in the flooded variant')
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = get_config(args.config)
    policy = AhaWamPolicy(cfg).eval()
    if policy.task_table is not None:
        policy.reset(task=0)
    else:
        policy.reset(task=torch.zeros(cfg.task.text_tokens, cfg.task.text_dim))
    image = torch.randint(0, 256, (cfg.encoder.image_height, cfg.encoder.image_width, 3), dtype=torch.uint8)
    proprio = torch.zeros(cfg.executor.action_dim)
    layout = policy.planner.layout
    step = [0]

    def prefill():
        step[0] += 2 * cfg.executor.chunk_size
        return policy.prefill({'image': image, 'step': step[0]})

    with torch.no_grad():
        for _ in range(cfg.memory.max_entries):
            prefill()
        planner_ctx = prefill()
    writer = ContextWriter(layout, 'bench_planner', prefix=f'ahabench{os.getpid()}x{uuid.uuid4().hex[:6]}')
    try:
        unchecked = ContextReader(expected_layout=layout, check_finite=False)
        checked = ContextInbox(ContextReader(expected_layout=layout, transports=('shm', 'cuda_ipc'),
                                             trusted_segments=[writer.segment_name]))
        flooded = ContextInbox(ContextReader(expected_layout=layout, transports=('shm', 'cuda_ipc'),
                                             trusted_segments=[writer.segment_name]), capacity=64)
        for r in (unchecked, checked.reader, flooded.reader):
            r.prepare(layout)
        state = {'desc': None, 'ctx': {}}

        def refresh():
            kv = planner_ctx.kv
            desc = writer.publish(dataclasses.replace(planner_ctx, kv=kv, version=0, session_id=0,
                                                      stamp_ns=time.time_ns()))
            state['desc'] = desc
            checked.put(desc)
            flooded.put(desc)
            state['fresh'] = {'unchecked': desc}

        def junk(i):
            d = state['desc']
            return dataclasses.replace(d, version=d.version + 1 + i % 3, slot=(d.slot + 1 + i) % d.num_slots,
                                       slot_sequence=d.slot_sequence + 2)

        def deliver_unchecked():
            desc = state['fresh'].pop('unchecked', None)
            if desc is not None:
                got = unchecked.read(desc)
                assert got, got
                state['ctx']['unchecked'] = got
            return state['ctx']['unchecked']

        def deliver_checked():
            got = checked.take()
            assert got.context is not None and not got.rejections, got
            return got.context

        def deliver_flooded():
            for i in range(args.flood):
                flooded.put(junk(i))
            got = flooded.take()
            assert got.context is not None and len(got.rejections) == args.flood, got
            return got.context

        variants = {'unchecked': deliver_unchecked, 'checked': deliver_checked, 'flooded': deliver_flooded}
        wall = {k: [] for k in variants}
        cpu = {k: [] for k in variants}
        deliver_ms = {k: [] for k in variants}
        warmup = 10
        with torch.no_grad():
            for u in range(warmup + args.updates):
                if u % args.refresh_every == 0:
                    refresh()
                for name, deliver in variants.items():
                    t0, c0 = time.perf_counter(), time.process_time()
                    ctx = deliver()
                    t1 = time.perf_counter()
                    policy.act(ctx, image, proprio, offset=5, steps=args.steps)
                    if u >= warmup:
                        wall[name].append(time.perf_counter() - t0)
                        cpu[name].append(time.process_time() - c0)
                        deliver_ms[name].append(t1 - t0)
        upd = {k: _ms(v) for k, v in wall.items()}
        base = upd['unchecked']['median']
        cpu_med = {k: statistics.median(v) * 1e3 for k, v in cpu.items()}

        # The pieces alone.
        kv = state['ctx']['unchecked'].kv
        desc = state['desc']
        r_on = ContextReader(expected_layout=layout, cache_redelivery=False)
        r_off = ContextReader(expected_layout=layout, cache_redelivery=False, check_finite=False)
        r_on.prepare(layout)
        r_off.prepare(layout)
        pieces = {
            'all_finite_us': _time_us(lambda: integrity.all_finite(kv), 2000),
            'read_new_descriptor_unchecked_us': _time_us(lambda: r_off.read(desc), 500),
            'read_new_descriptor_checked_us': _time_us(lambda: r_on.read(desc), 500),
            'take_empty_us': _time_us(checked.take, 2000),
        }

        def take_through_flood():
            for i in range(args.flood):
                flooded.put(junk(i))
            flooded.put(desc)
            flooded.take()
        pieces['take_flood_plus_genuine_us'] = _time_us(take_through_flood, 300)
        report = {
            'bench': 'context_trust', 'config': args.config, 'layout': str(layout), 'context_bytes': layout.nbytes,
            'steps': args.steps, 'torch_threads': args.threads, 'refresh_every': args.refresh_every,
            'flood_per_update': args.flood, 'torch': torch.__version__, 'machine': platform.machine(),
            'cpu_count': os.cpu_count(), 'load_average_at_start': [round(x, 2) for x in os.getloadavg()],
            'targets': TARGETS,
            'update_ms': upd,
            'update_cpu_median_ms': {k: round(v, 4) for k, v in cpu_med.items()},
            'delivery_ms': {k: _ms(v) for k, v in deliver_ms.items()},
            # Overhead three ways: the added delivery time per update (precise), and the update medians by CPU
            # time (robust to a loaded machine) and by wall time (what load does to everything).
            'checked_delivery_extra_pct_of_update': round(
                100 * (statistics.median(deliver_ms['checked']) - statistics.median(deliver_ms['unchecked'])) / base
                * 1e3, 4),
            'flooded_delivery_extra_pct_of_update': round(
                100 * (statistics.median(deliver_ms['flooded']) - statistics.median(deliver_ms['unchecked'])) / base
                * 1e3, 4),
            'checked_update_overhead_pct': round(100 * (cpu_med['checked'] - cpu_med['unchecked'])
                                                 / cpu_med['unchecked'], 2),
            'flooded_update_overhead_pct': round(100 * (cpu_med['flooded'] - cpu_med['unchecked'])
                                                 / cpu_med['unchecked'], 2),
            'checked_update_overhead_pct_wall': round(100 * (upd['checked']['median'] - base) / base, 2),
            'pieces_us': pieces,
            'finite_check_pct_of_update': round(100 * pieces['all_finite_us'] / 1e3 / base, 4),
            'checked_read_extra_pct_of_update': round(
                100 * (pieces['read_new_descriptor_checked_us'] - pieces['read_new_descriptor_unchecked_us'])
                / 1e3 / base, 4),
            'note': 'ms / us medians. *_update_overhead_pct compares CPU-time medians of whole updates (the wall '
                    'medians move with machine load); *_delivery_extra_pct_of_update is the added delivery time '
                    'alone; the pieces time each check alone',
        }
        checked.close()
        flooded.close()
        unchecked.close()
    finally:
        writer.close()
    print(json.dumps(report, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
