#!/usr/bin/env python3
"""Planner prefill and executor act latency of AhaWamPolicy; prints one JSON document.

    python bench/model_latency.py                      # tiny + small on CPU, 2 then 1 threads, 1/4/10 steps
    python bench/model_latency.py --configs small --repeats 50 --threads 2
    python bench/model_latency.py --configs paper      # bf16 on CUDA (skipped without a GPU)

Weights are random (latency does not depend on them). Prefill is timed in steady state, with the rolling
memory full. `act` includes `prepare` (image encoding, OVCR, context/cross K/V) plus the denoise loop, i.e.
what one executor update costs. `extra_step_ms` = (act@10 - act@1) / 9 is the marginal cost of one more
denoise step; `extra_step_over_first` divides it by act@1 (target <= 0.6 thanks to hoisting). Medians, p95 and
min over `--repeats` interleaved rounds; on a shared machine the numbers are noisy, compare medians (min
approximates an idle machine).

On a shared, oversubscribed CPU, OpenMP worker threads that spin while waiting make 2-thread runs several
times slower than 1-thread runs (measured: act@4 ~10x); this script therefore sets OMP_WAIT_POLICY=PASSIVE
unless the environment already chooses, and by default also reports a 1-thread run.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')   # before torch loads the OpenMP runtime
import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'src', 'aha_wam'))

from aha_wam.config import get_config  # noqa: E402
from aha_wam.policy import AhaWamPolicy  # noqa: E402

TARGETS = {'small_act_4_steps_median_ms_max': 40.0, 'extra_step_over_first_max': 0.6}


def _summary(samples_s: list[float]) -> dict:
    ms = sorted(s * 1e3 for s in samples_s)
    p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
    return {'median': round(statistics.median(ms), 3), 'p95': round(p95, 3), 'min': round(ms[0], 3), 'n': len(ms)}


def _interleaved(fns: dict, repeats: int, warmup: int, sync) -> tuple[dict, dict]:
    """Time every function once per round, round after round, so that load changes on a shared machine hit
    all of them alike (the extra-step ratio compares act@1 with act@10 measured side by side).
    Returns (wall seconds, process CPU seconds) per function; CPU time is what the work costs when the
    process is not waiting for a core (with 1 thread: the latency on an idle core)."""
    wall: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(warmup + repeats):
        for name, fn in fns.items():
            sync()
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            sync()
            if r >= warmup:
                wall[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
    return wall, cpu


def bench_config(name: str, steps_list: list[int], repeats: int, warmup: int, device: torch.device,
                 dtype: torch.dtype) -> dict:
    cfg = get_config(name)
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)        # build directly in the target dtype (paper: 7 B params)
    try:
        with torch.device(device):
            policy = AhaWamPolicy(cfg).eval()
    finally:
        torch.set_default_dtype(previous)
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    enc = cfg.encoder
    image = torch.randint(0, 256, (enc.image_height, enc.image_width, 3), dtype=torch.uint8)
    proprio = torch.zeros(cfg.executor.action_dim)
    if policy.task_table is not None:
        policy.reset(task=0)
    else:
        policy.reset(task=torch.zeros(cfg.task.text_tokens, cfg.task.text_dim))
    step = [0]

    def prefill():
        step[0] += 2 * cfg.executor.chunk_size      # refresh every 2 chunks, as AHA-WAM's eval loop
        return policy.prefill({'image': image, 'step': step[0]})

    for _ in range(cfg.memory.max_entries):
        prefill()                                  # steady state: memory full
    context = prefill()
    fns = {'prefill': prefill, 'prepare': lambda: policy.prepare(context, image, proprio, 5)}
    for steps in steps_list:
        fns[f'act_{steps}'] = (lambda n: lambda: policy.act(context, image, proprio, offset=5, steps=n))(steps)
    with torch.no_grad():
        samples, cpu = _interleaved(fns, repeats, warmup, sync)
    act = {str(n): _summary(samples[f'act_{n}']) for n in steps_list}
    result = {
        'params': sum(p.numel() for p in policy.parameters()),
        'tokens_per_frame': cfg.tokens_per_frame,
        'memory_entries': len(policy.planner.memory),
        'prefill_ms': _summary(samples['prefill']),
        'prepare_ms': _summary(samples['prepare']),
        'act_ms': act,
        'cpu_time_median_ms': {name: round(statistics.median(v) * 1e3, 3) for name, v in cpu.items()},
    }
    if '1' in act and '10' in act:
        extra = (act['10']['median'] - act['1']['median']) / 9.0
        result['extra_step_ms'] = round(extra, 3)
        result['extra_step_over_first'] = round(extra / act['1']['median'], 3)
        c = result['cpu_time_median_ms']
        result['cpu_extra_step_over_first'] = round((c['act_10'] - c['act_1']) / 9.0 / c['act_1'], 3)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--configs', nargs='+', default=None,
                        help='model configs (default: tiny small, plus paper when CUDA is available)')
    parser.add_argument('--steps', nargs='+', type=int, default=[1, 4, 10])
    parser.add_argument('--repeats', type=int, default=40)
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--threads', nargs='+', type=int, default=[2, 1],
                        help='torch intra-op thread counts on CPU, one run each (default: 2 1)')
    args = parser.parse_args(argv)
    cuda = torch.cuda.is_available()
    configs = args.configs or (['tiny', 'small'] + (['paper'] if cuda else []))
    report = {
        'bench': 'model_latency', 'torch': torch.__version__, 'machine': platform.machine(),
        'cpu_count': os.cpu_count(), 'cuda': cuda, 'omp_wait_policy': os.environ.get('OMP_WAIT_POLICY'),
        'load_average_at_start': [round(x, 2) for x in os.getloadavg()],
        'targets': TARGETS, 'note': 'ms; act includes prepare; shared machines make these noisy (see min)',
        'runs': [],
    }
    for i, threads in enumerate(args.threads):
        torch.set_num_threads(threads)
        run = {'cpu_threads': threads, 'results': {}}
        for name in configs:
            if name == 'paper':
                if i > 0:
                    continue                          # GPU timings do not depend on CPU threads
                if not cuda:
                    run['results'][name] = {'skipped': 'paper runs in bf16 on CUDA only; no GPU here'}
                    continue
            device = torch.device('cuda') if name == 'paper' else torch.device('cpu')
            dtype = torch.bfloat16 if name == 'paper' else torch.float32
            entry = bench_config(name, args.steps, args.repeats, args.warmup, device, dtype)
            entry.update({'device': device.type, 'dtype': str(dtype).replace('torch.', '')})
            run['results'][name] = entry
        small = run['results'].get('small', {})
        if 'act_ms' in small and '4' in small['act_ms']:
            run['small_meets_targets'] = (
                small['act_ms']['4']['median'] <= TARGETS['small_act_4_steps_median_ms_max']
                and small.get('extra_step_over_first', 0.0) <= TARGETS['extra_step_over_first_max'])
        report['runs'].append(run)
    report['load_average_at_end'] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
