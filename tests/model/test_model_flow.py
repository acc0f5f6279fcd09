"""Flow matching schedule and Euler sampler."""
import pytest
import torch

from aha_wam.models.flow import FlowMatchSchedule, euler_sample, shift_sigma


def test_schedule_shift_weights_and_noising():
    sched = FlowMatchSchedule(shift=5.0)
    sig = sched.inference_sigmas(10)
    assert sig.shape == (11,) and float(sig[0]) == 1.0 and float(sig[-1]) == 0.0
    assert torch.all(sig[1:] < sig[:-1])
    assert torch.allclose(sig[5], torch.tensor(5 * 0.5 / (1 + 4 * 0.5)))         # shift 5 at u = 0.5
    assert abs(float(sched.train_weights.mean()) - 1.0) < 1e-4                      # normalised over the grid
    assert float(sched.train_weights.min()) >= 0.0
    s, w = sched.sample((4, 3), torch.Generator().manual_seed(0))
    assert s.shape == w.shape == (4, 3) and bool(((s > 0) & (s <= 1)).all())
    assert torch.allclose(sched.weight(s), w)
    x0, eps = torch.randn(5), torch.randn(5)
    assert torch.allclose(FlowMatchSchedule.noisy(x0, eps, torch.tensor(0.0)), x0)
    assert torch.allclose(FlowMatchSchedule.noisy(x0, eps, torch.tensor(1.0)), eps)
    uniform = FlowMatchSchedule(weighting='uniform')
    assert bool((uniform.train_weights == 1).all())
    with pytest.raises(ValueError, match='steps'):
        sched.inference_sigmas(0)


@pytest.mark.parametrize('steps', [1, 4, 10])
def test_euler_recovers_a_known_linear_path(steps):
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(16, 14, generator=g), torch.randn(16, 14, generator=g)
    sigmas = FlowMatchSchedule(shift=5.0).inference_sigmas(steps)
    # The exact velocity of the straight path x_s = (1 - s) x0 + s eps ...
    out, states = euler_sample(lambda x, s: eps - x0, eps, sigmas, capture=range(steps + 1))
    assert torch.allclose(out, x0, atol=1e-5)
    for i in range(steps + 1):   # ... and every intermediate state lies on it at sigma_i
        assert torch.allclose(states[i], FlowMatchSchedule.noisy(x0, eps, sigmas[i]), atol=1e-5)
    # A state-dependent field pointing at x0 (the model's view: v = (x - x0) / s) gives the same path.
    out2, _ = euler_sample(lambda x, s: (x - x0) / s, eps, sigmas)
    assert torch.allclose(out2, x0, atol=1e-5)


def test_capture_validates_indices():
    sigmas = shift_sigma(torch.linspace(1, 0, 5), 5.0)
    with pytest.raises(ValueError, match='capture step 7'):
        euler_sample(lambda x, s: x, torch.zeros(2), sigmas, capture=[7])
