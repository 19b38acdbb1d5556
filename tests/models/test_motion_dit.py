"""MotionDiT: shapes, config round trip, determinism, guidance, intensity, and the cached
condition path against a straightforward re-implementation of Ditto's forward."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from tiny_models import tiny_dit

from models.motion_dit import MotionDiT, rotary_tables

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def inputs(model: MotionDiT, batch: int = 2, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    c = model.config
    x = torch.randn(batch, c.seq_len, c.motion_dim, generator=g)
    ref = torch.randn(batch, c.motion_dim, generator=g)
    cond = torch.randn(batch, c.seq_len, model.cond_dim, generator=g)
    t = torch.tensor([999, 3])[:batch]
    return x, ref, cond, t


def reference_forward(model, x, ref, cond, t, keep=True):
    """Ditto's MotionDecoder.forward written out directly (rotary on the full token before the
    q/k projections, memory = norm(cat(tokens, time tokens)), torch's own MultiheadAttention)."""
    L, D = x.shape[1], model.config.latent_dim
    freqs = 1.0 / (10000 ** (torch.arange(0, D, 2).float() / D))

    def rot(v):
        ang = torch.arange(v.shape[1]).float()[:, None] * freqs[None]
        ang = ang.repeat_interleave(2, -1)
        v2 = v.reshape(*v.shape[:-1], -1, 2)
        half = torch.stack((-v2[..., 1], v2[..., 0]), -1).reshape(v.shape)
        return v * ang.cos() + half * ang.sin()

    def mha(mod, q, k, v):
        return mod(q, k, v, need_weights=False)[0]

    h = model.input_projection(torch.cat([x, ref[:, None].expand(-1, L, -1)], -1))
    tok = model.cond_projection(cond)
    for layer in model.cond_encoder:
        n = layer.norm1(tok)
        tok = tok + mha(layer.self_attn, rot(n), rot(n), n)
        tok = tok + layer.linear2(F.gelu(layer.linear1(layer.norm2(tok))))
    if not keep:
        tok = model.null_cond_embed.expand_as(tok)
    hidden = model.non_attn_cond_projection(tok.mean(1))
    if not keep:
        hidden = model.null_cond_hidden.expand_as(hidden)
    half = D // 2
    e = torch.exp(torch.arange(half) * -(math.log(10000) / (half - 1)))
    e = t.float()[:, None] * e[None]
    th = model.time_mlp[2](model.time_mlp[1](torch.cat([e.sin(), e.cos()], -1)))
    tc = model.to_time_cond(th) + hidden
    tt = model.to_time_tokens(th).reshape(-1, 2, D)
    mem = model.norm_cond(torch.cat([tok, tt], 1))
    for layer in model.decoder_layers:
        n = layer.norm1(h)
        s, b = layer.film1.block(tc)[:, None].chunk(2, -1)
        h = h + (s + 1) * mha(layer.self_attn, rot(n), rot(n), n) + b
        n = layer.norm2(h)
        s, b = layer.film2.block(tc)[:, None].chunk(2, -1)
        h = h + (s + 1) * mha(layer.multihead_attn, rot(n), rot(mem), mem) + b
        n = layer.norm3(h)
        s, b = layer.film3.block(tc)[:, None].chunk(2, -1)
        h = h + (s + 1) * layer.linear2(F.gelu(layer.linear1(n))) + b
    return model.final_layer(h)


def test_shapes_and_cond_dim():
    m = tiny_dit()
    x, ref, cond, t = inputs(m)
    assert m.cond_dim == 8 + 79
    with torch.no_grad():
        out = m(x, t, ref, cond)
    assert out.shape == (2, 16, 265)
    assert torch.isfinite(out).all()


def test_matches_reference_forward_conditional_and_null():
    m = tiny_dit()
    x, ref, cond, t = inputs(m)
    with torch.no_grad():
        for keep in (True, False):
            ours = m(x, t, ref, cond, keep_cond=keep)
            theirs = reference_forward(m, x, ref, cond, t, keep)
            torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)


def test_cached_condition_equals_forward_at_every_timestep():
    m = tiny_dit()
    x, ref, cond, _ = inputs(m)
    with torch.no_grad():
        enc = m.encode_condition(cond)
        for step in (999, 500, 0):
            t = torch.tensor(step)
            torch.testing.assert_close(
                m.denoise(x, ref, t, enc), m(x, t, ref, cond), rtol=0, atol=0
            )


def test_null_condition_ignores_the_condition():
    m = tiny_dit()
    x, ref, cond, t = inputs(m)
    with torch.no_grad():
        a = m(x, t, ref, cond, keep_cond=False)
        b = m(x, t, ref, cond * 5 + 1, keep_cond=False)
        c = m(x, t, ref, cond, keep_cond=True)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_guidance_one_is_the_conditional_prediction_and_g_is_linear():
    m = tiny_dit()
    x, ref, cond, t = inputs(m)
    with torch.no_grad():
        enc, unc = m.encode_condition(cond), m.encode_condition(None, keep=False)
        c = m.denoise(x, ref, t, enc)
        u = m.denoise(x, ref, t, unc.repeat(2))
        assert torch.equal(m.guided_denoise(x, ref, t, enc, unc, 1.0), c)
        g = m.guided_denoise(x, ref, t, enc, unc, 2.5)  # one batched forward of 2B
    torch.testing.assert_close(g, u + 2.5 * (c - u), rtol=1e-4, atol=1e-4)


def test_intensity_hook():
    m = tiny_dit()
    x, ref, cond, t = inputs(m)
    with torch.no_grad():
        base = m(x, t, ref, cond)
        ones = m(x, t, ref, cond, intensity=torch.ones(2, 16))
        half = m(x, t, ref, cond, intensity=torch.full((2, 16), 0.5))
        ramp = m(x, t, ref, cond, intensity=torch.linspace(0, 2, 16))  # [L] broadcasts
    assert torch.equal(base, ones)
    assert not torch.allclose(base, half)
    assert not torch.allclose(half, ramp)
    with pytest.raises(ValueError, match="intensity"):
        m(x, t, ref, cond, intensity=torch.ones(2, 15))


def test_save_and_load_round_trip(tmp_path):
    m = tiny_dit()
    m.save_pretrained(tmp_path / "dit")
    assert (tmp_path / "dit" / "config.json").is_file()
    assert (tmp_path / "dit" / "diffusion_pytorch_model.safetensors").is_file()
    back = MotionDiT.from_pretrained(tmp_path / "dit").eval()
    assert back.config.latent_dim == 32 and back.config.seq_len == 16
    x, ref, cond, t = inputs(m)
    with torch.no_grad():
        assert torch.equal(m(x, t, ref, cond), back(x, t, ref, cond))


def test_seeded_construction_and_inference_are_deterministic():
    a, b = tiny_dit(seed=3), tiny_dit(seed=3)
    x, ref, cond, t = inputs(a)
    with torch.no_grad():
        assert torch.equal(a(x, t, ref, cond), b(x, t, ref, cond))
    assert not torch.equal(tiny_dit(seed=4).final_layer.weight, a.final_layer.weight)


def test_training_condition_dropout_uses_null_embeddings():
    m = tiny_dit(cond_dropout=1.0).train()
    x, ref, cond, t = inputs(m)
    with torch.no_grad():
        dropped = m(x, t, ref, cond)
        m.eval()
        null = m(x, t, ref, cond, keep_cond=False)
    torch.testing.assert_close(dropped, null)


def test_bad_shapes_raise():
    m = tiny_dit()
    x, ref, cond, t = inputs(m)
    with pytest.raises(ValueError, match="cond"):
        m(x, t, ref, cond[..., :-1])
    with pytest.raises(ValueError, match="sample"):
        m(x[:, :-1], t, ref, cond)
    with pytest.raises(ValueError, match="ref_motion"):
        m(x, t, ref[:, :-1], cond)
    with pytest.raises(ValueError, match="divisible"):
        MotionDiT(latent_dim=30, num_heads=4)


def test_bfloat16_runs():
    m = tiny_dit().to(torch.bfloat16)
    x, ref, cond, t = inputs(m)
    with torch.no_grad():
        out = m(x, t, ref, cond)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


def test_rotary_tables_rotate_pairs():
    cos, sin = rotary_tables(5, 8)
    assert cos.shape == (5, 8)
    assert torch.equal(cos[0], torch.ones(8)) and torch.equal(sin[0], torch.zeros(8))
    torch.testing.assert_close(sin[1, :2], torch.full((2,), math.sin(1.0)))


def test_ditto_size_parameter_count():
    # Ditto's LMDM: 47.79M parameters (47,788,297 exactly, rotary frequencies excluded).
    m = MotionDiT()
    assert sum(p.numel() for p in m.parameters()) == 47_788_297
    assert round(sum(p.numel() for p in m.parameters()) / 1e6, 2) == 47.79
    assert m.cond_dim == 1103
