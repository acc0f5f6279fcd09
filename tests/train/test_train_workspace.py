"""Training Workspace: exact resume, loss falls, two-process DDP on gloo, checkpoint export."""
import os
import socket

import pytest
import torch

from _train_support import synthetic_cache, synthetic_episode
from aha_wam.train.workspace import Workspace, load_train_config, lr_at


def config(tmp_path, *extra):
    return load_train_config(None, [f'out={tmp_path}', 'model=tiny', 'batch_size=4', 'lr=1e-3', 'warmup_steps=2',
                                    'steps=6', 'val_every=0', 'save_every=0', 'log_every=1', 'progress=false',
                                    'num_threads=1', 'ema_decay=0.9', *extra])


def test_lr_schedule_warms_up_then_decays_by_cosine():
    cfg = load_train_config(None, ['lr=1.0', 'warmup_steps=10', 'steps=110', 'min_lr_ratio=0.1'])
    assert lr_at(0, cfg) == pytest.approx(0.1) and lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(60, cfg) == pytest.approx(0.55) and lr_at(110, cfg) == pytest.approx(0.1)


def test_resume_restores_optimiser_and_rng_state_exactly(tmp_path):
    cache = synthetic_cache(3)
    straight = Workspace(config(tmp_path / 'a'), cache=cache)
    straight.train(steps=5, resume=False)
    interrupted = Workspace(config(tmp_path / 'b'), cache=cache)
    interrupted.train(steps=3, resume=False)          # writes <out>/state at the end, as after an interruption
    resumed = Workspace(config(tmp_path / 'b'), cache=cache)
    assert resumed.load_state() and resumed.step == 3
    # the restored optimiser state equals the interrupted one, tensor for tensor
    a, b = interrupted.optimizer.state_dict(), resumed.optimizer.state_dict()
    assert a['state'].keys() == b['state'].keys()
    for idx in a['state']:
        for name, value in a['state'][idx].items():
            assert torch.equal(value, b['state'][idx][name]), (idx, name)
    for ga, gb in zip(a['param_groups'], b['param_groups']):
        assert {k: (list(v) if isinstance(v, tuple) else v) for k, v in ga.items()} == \
               {k: (list(v) if isinstance(v, tuple) else v) for k, v in gb.items()}
    resumed.train(steps=5)
    for (name, p), q in zip(straight.policy.named_parameters(), resumed.policy.parameters()):
        assert torch.equal(p, q), f'{name} differs after resume'
    for name in straight.ema:
        assert torch.equal(straight.ema[name], resumed.ema[name])
    assert (tmp_path / 'b' / 'checkpoint' / 'model.safetensors').exists()


def test_the_checkpoint_task_table_is_the_cache_table(tmp_path):
    """An imported dataset's task names (after the built-in ones) travel into the checkpoint, whose table is
    what the nodes map task names through; the built-in list alone would send them to the wrong id."""
    from aha_wam.checkpoint import read_provenance
    from aha_wam.data.cache import TrainingCache
    cache = TrainingCache.build([synthetic_episode(80, task='lift_box', seed=0),
                                 synthetic_episode(88, task='fold_towel', seed=1)])
    assert cache.tasks[-1] == 'fold_towel'
    ws = Workspace(config(tmp_path), cache=cache)
    ws.train(steps=1, resume=False)
    assert read_provenance(tmp_path / 'checkpoint')['extra']['tasks'] == list(cache.tasks)


def test_proprio_noise_perturbs_only_the_state_input(tmp_path):
    cache = synthetic_cache(2)
    seen = []
    ws = Workspace(config(tmp_path, 'proprio_noise=0.5', 'steps=1', 'val_fraction=0.0'), cache=cache)
    clean = Workspace(config(tmp_path / 'clean', 'steps=1', 'val_fraction=0.0'), cache=cache)
    for w in (ws, clean):
        w.model.forward = lambda batch, generator=None, w=w: (seen.append(batch) or
                                                              type(w.policy).forward(w.policy, batch, generator))
        w.train(resume=False)
    noisy, ref = seen
    # same windows (same sampler seed), targets untouched, the state moved by about 0.5 of its std
    assert torch.equal(noisy['actions'], ref['actions'])
    std = ws.policy.normalizer.state_std
    z = (noisy['chunk_proprio'] - ref['chunk_proprio']) / std
    assert 0.3 < float(z.std()) < 0.7


def test_negative_proprio_noise_is_refused():
    with pytest.raises(ValueError, match='proprio_noise'):
        load_train_config(None, ['proprio_noise=-0.1'])


def test_loss_falls(tmp_path):
    cache = synthetic_cache(1, length=60)
    ws = Workspace(config(tmp_path, 'steps=60', 'val_fraction=0.0', 'lr=2e-3', 'warmup_steps=5', 'ema_decay=null'),
                   cache=cache)
    ws.train(resume=False)
    losses = [r['loss'] for r in ws.history if 'loss' in r]
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.6 * first, (first, last)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, cache_dir, out_dir, result_dir):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    cfg = load_train_config(None, [f'out={out_dir}', f'cache={cache_dir}', 'model=tiny', 'batch_size=2', 'steps=3',
                                   'val_every=0', 'save_every=0', 'progress=false', 'num_threads=1', 'device=cpu'])
    ws = Workspace(cfg)
    ws.train(resume=False)
    flat = torch.cat([p.detach().flatten() for p in ws.policy.parameters() if p.requires_grad])
    torch.save(flat, os.path.join(result_dir, f'params{rank}.pt'))
    torch.distributed.destroy_process_group()


def test_two_process_ddp_on_gloo(tmp_path):
    import torch.multiprocessing as mp
    synthetic_cache(3).save(tmp_path / 'cache')
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path / 'cache'), str(tmp_path / 'out'), str(tmp_path)),
             nprocs=2, join=True)
    p0, p1 = (torch.load(tmp_path / f'params{r}.pt') for r in (0, 1))
    assert torch.equal(p0, p1)                                    # gradients were averaged: replicas agree
    state = tmp_path / 'out' / 'state'
    assert (state / 'rank0.json').exists() and (state / 'rank1.json').exists()
    assert (tmp_path / 'out' / 'checkpoint' / 'provenance.json').exists()
    # each process drew its own windows (different sampler streams)
    import json
    s0, s1 = (json.loads((state / f'rank{r}.json').read_text())['sampler'] for r in (0, 1))
    assert s0 != s1
