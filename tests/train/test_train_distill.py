"""Flash distillation: the student's ODE-regression loss falls and its few-step chunks approach the teacher's."""
import torch

from _train_support import synthetic_cache
from aha_wam.config import get_config
from aha_wam.distill import CAPTURE, Distiller, anchor_weights
from aha_wam.policy import AhaWamPolicy
from aha_wam.train.workspace import load_train_config


def test_anchor_weights_favour_the_deployed_grid_starts():
    # 1-step starts at 0; 2-step at 0, 8; 4-step at 0, 4, 8, 12; steps 1 and 2 are captured but start no grid
    assert anchor_weights() == {0: 4.0, 1: 1.0, 2: 1.0, 4: 2.0, 8: 3.0, 12: 2.0}


def test_distillation_loss_falls(tmp_path):
    assert CAPTURE == (0, 1, 2, 4, 8, 12, 16)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    cache = synthetic_cache(2, length=60)
    teacher = AhaWamPolicy(get_config('tiny'))
    with torch.no_grad():        # an untrained head is zero (velocity 0): give the teacher a non-trivial flow
        torch.nn.init.normal_(teacher.executor.head.weight, std=0.3)
    teacher.normalizer.set_stats(cache.stats)
    cfg = load_train_config(None, [f'out={tmp_path}', 'model=tiny', 'batch_size=4', 'steps=40', 'lr=2e-3',
                                   'warmup_steps=4', 'val_every=0', 'val_windows=8', 'log_every=5',
                                   'val_fraction=0.0', 'weight_decay=0.0'])
    d = Distiller(teacher, cfg, cache=cache)
    before = d.validate()
    d.train(progress=False)
    after = d.history[-1]
    assert after['val/loss'] < 0.5 * before['val/loss'], (before, after)
    assert after['val/student1_vs_teacher16'] < before['val/student1_vs_teacher16']
    # the teacher is frozen: only the student's executor changed
    assert all(torch.equal(p, q) for p, q in zip(teacher.planner.parameters(), d.student.planner.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(teacher.executor.parameters(), d.student.executor.parameters()))
    prov = (tmp_path / 'checkpoint' / 'provenance.json').read_text()
    assert '"flash": true' in prov and '"teacher_steps": 16' in prov
