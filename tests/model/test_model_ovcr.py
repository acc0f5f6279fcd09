"""OVCR: exact identity at initialisation, gradients reach the gate and the delta weights, ablation switch."""
import torch

from aha_wam.config import get_config
from aha_wam.models.ovcr import OvcrRouter
from aha_wam.policy import AhaWamPolicy
from _model_support import random_image


def _inputs(cfg, b=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    kv = torch.randn(b, cfg.planner.num_layers, 2, cfg.tokens_per_frame, cfg.attn_width, generator=g)
    obs = torch.randn(b, cfg.encoder.latent_channels, cfg.encoder.latent_height, cfg.encoder.latent_width, generator=g)
    return kv, obs


def test_identity_at_init():
    cfg = get_config('tiny')
    torch.manual_seed(0)
    router = OvcrRouter(cfg)
    kv, obs = _inputs(cfg)
    edited = router(kv, obs)
    assert edited.shape == kv.shape
    assert (edited - kv).abs().max() < 1e-6
    ed = router.editor
    assert torch.all(ed.gate.detach() == -4.0) and not ed.delta_out_weight.any() and not ed.delta_out_bias.any()


def test_gradients_reach_gate_and_delta_weights():
    cfg = get_config('tiny')
    torch.manual_seed(0)
    router = OvcrRouter(cfg)
    kv, obs = _inputs(cfg)
    target = torch.randn_like(kv)
    opt = torch.optim.SGD(router.parameters(), lr=0.5)

    def step():
        opt.zero_grad()
        loss = (router(kv, obs) - target).pow(2).mean()
        loss.backward()
        return loss

    step()
    ed = router.editor
    # At init the zero last layer is the only delta weight with gradient (it gates the others) ...
    assert torch.all(ed.delta_out_weight.grad.abs().sum(dim=(1, 2)) > 0)      # every layer
    opt.step()
    step()
    # ... after one update every part of the editor learns, in every layer: gate, both delta layers,
    # the read/write query projection, and the query encoder.
    assert torch.all(ed.gate.grad.abs() > 0)
    for w in (ed.delta_in_weight, ed.delta_out_weight, ed.query_weight):
        assert torch.all(w.grad.abs().sum(dim=(1, 2)) > 0)
    assert router.query_encoder.queries.grad.abs().sum() > 0
    assert router.query_encoder.obs_proj.fc1.weight.grad.abs().sum() > 0


def test_layers_are_edited_independently():
    """Layer i's output depends only on layer i's K/V (batched implementation, per-layer semantics)."""
    cfg = get_config('tiny')
    torch.manual_seed(0)
    router = OvcrRouter(cfg)
    with torch.no_grad():
        router.editor.delta_out_weight.normal_(0, 0.1)
        router.editor.gate.fill_(0.0)
        kv, obs = _inputs(cfg)
        base = router(kv, obs)
        kv2 = kv.clone()
        kv2[:, 1] += 1.0
        out = router(kv2, obs)
    assert torch.equal(out[:, 0], base[:, 0]) and not torch.allclose(out[:, 1], base[:, 1])
    assert (base - kv).abs().max() > 1e-3


def test_ovcr_can_be_switched_off_and_is_identity_inside_the_policy_at_init():
    on = get_config('tiny')
    off = get_config('tiny', overrides=['ovcr.enabled=false'])
    torch.manual_seed(0)
    p_on = AhaWamPolicy(on).eval()
    torch.manual_seed(0)
    p_off = AhaWamPolicy(off).eval()
    assert p_off.executor.ovcr is None
    # Same seeds -> same non-OVCR weights (OVCR is built last), so with OVCR at identity the chunks agree.
    missing = p_off.load_state_dict(p_on.state_dict(), strict=False)
    assert all(k.startswith('executor.ovcr.') for k in missing.unexpected_keys) and not missing.missing_keys
    with torch.no_grad():
        for p in (p_on, p_off):
            p.executor.head.weight.normal_(0, 0.1)
    p_off.executor.head.load_state_dict(p_on.executor.head.state_dict())
    img = random_image(on)
    outs = []
    for p in (p_on, p_off):
        p.reset(task=0)
        ctx = p.prefill({'image': img, 'step': 0})
        outs.append(p.act(ctx, img, torch.zeros(14), steps=2, noise=torch.ones(16, 14)))
    assert torch.allclose(outs[0], outs[1], atol=1e-5)
