from __future__ import annotations

import numpy as np
import pytest
import torch

from models.intensity import (
    IntensityStudent,
    IntensityTeacher,
    dilate_loss,
    distillation_loss,
    intensity_loss,
    intensity_targets,
    soft_dtw,
)
from models.motion_space import CHANNEL_DEFAULTS, CHANNEL_INDEX, channel_name

TINY = dict(audio_dim=8, hidden_dim=16, num_layers=2, num_heads=2, attn_radius=3, ff_mult=2)


def tiny(cls, seed: int = 0):
    torch.manual_seed(seed)
    return cls(**TINY).eval()


def batch(B: int = 2, T: int = 12, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    audio = torch.randn(B, T, 8, generator=g)
    v_h = torch.rand(B, T, generator=g) * 2
    v_f = torch.rand(B, T, generator=g) * 2
    return audio, v_h, v_f


def test_shapes_and_determinism() -> None:
    audio, v_h, v_f = batch()
    t, s = tiny(IntensityTeacher), tiny(IntensityStudent)
    out_t, out_s = t(audio, v_h, v_f), s(audio)
    for out in (out_t, out_s):
        assert out.intensity.shape == (2, 12)
        assert len(out.logits) == 2 and out.logits[0].shape == (2, 2, 12, 7)
        assert torch.all(out.intensity >= -0.2785)  # Swish's minimum
    # Band cells outside the sequence are masked, and teacher and student agree on which.
    assert torch.equal(torch.isinf(out_t.logits[0]), torch.isinf(out_s.logits[0]))
    assert torch.equal(t(audio, v_h, v_f).intensity, out_t.intensity)
    assert torch.equal(tiny(IntensityStudent)(audio).intensity, out_s.intensity)
    # Any length works (local attention), and frames only see their neighbourhood.
    y = s.predict(torch.randn(40, 8).numpy())
    assert y.shape == (40,) and y.dtype == np.float32 and np.all(y >= 0)
    with pytest.raises(ValueError, match="audio features"):
        s(torch.randn(2, 12, 9))
    with pytest.raises(ValueError, match="v_h"):
        t(audio, v_h[:, :5], v_f)


def test_locality() -> None:
    s = tiny(IntensityStudent)
    a = torch.randn(1, 60, 8)
    b = a.clone()
    b[0, 50:] += 5.0
    ya, yb = s(a).intensity, s(b).intensity
    # Receptive field: audio window 2 + motion convs 2 * 2 + radius 3 per layer (2 layers) + 2.
    assert torch.allclose(ya[0, :30], yb[0, :30])
    assert not torch.allclose(ya[0, 45:], yb[0, 45:])


@pytest.mark.parametrize("cls", [IntensityTeacher, IntensityStudent])
def test_save_load_round_trip(tmp_path, cls) -> None:
    m = tiny(cls, seed=3)
    m.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "config.json").is_file()
    assert (tmp_path / "m" / "diffusion_pytorch_model.safetensors").is_file()
    m2 = cls.from_pretrained(tmp_path / "m").eval()
    assert m2.config.hidden_dim == 16 and m2.config.attn_radius == 3
    audio, v_h, v_f = batch()
    args = (audio, v_h, v_f) if cls is IntensityTeacher else (audio,)
    assert torch.equal(m(*args).intensity, m2(*args).intensity)


def test_soft_dtw_matches_reference() -> None:
    def ref(c: np.ndarray, g: float) -> float:
        n, m = c.shape
        r = np.full((n + 1, m + 1), np.inf)
        r[0, 0] = 0.0
        for i in range(1, n + 1):
            for j in range(1, m + 1):
                z = -np.array([r[i - 1, j - 1], r[i - 1, j], r[i, j - 1]]) / g
                mx = z.max()
                r[i, j] = c[i - 1, j - 1] - g * (mx + np.log(np.exp(z - mx).sum()))
        return r[n, m]

    c = torch.rand(2, 4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    got = soft_dtw(c, 0.1)
    for b in range(2):
        assert got[b].item() == pytest.approx(ref(c[b].numpy(), 0.1), rel=1e-9)


def test_dilate_temporal_term_sees_shifts() -> None:
    t = torch.zeros(1, 20)
    t[0, 8:11] = 1.0
    near, far = torch.roll(t, 1, dims=1), torch.roll(t, 5, dims=1)
    _, s_near, tmp_near = dilate_loss(near, t, gamma=0.01)
    _, s_far, tmp_far = dilate_loss(far, t, gamma=0.01)
    assert tmp_far > tmp_near > 0  # the time distortion grows with the shift
    assert abs(s_far - s_near) < 0.05  # while the shape (DTW) barely cares
    assert intensity_loss(t, t, t) < intensity_loss(far, t, t)


def test_one_distillation_step_reduces_the_loss() -> None:
    audio, v_h, v_f = batch(B=2, T=16)
    teacher = tiny(IntensityTeacher, seed=0)
    student = tiny(IntensityStudent, seed=1).train()
    with torch.no_grad():
        t_out = teacher(audio, v_h, v_f)
    opt = torch.optim.Adam(student.parameters(), lr=3e-3)

    def loss() -> torch.Tensor:
        return distillation_loss(student(audio), t_out, v_h, v_f, last_layers=2)[0]

    before = loss()
    opt.zero_grad()
    before.backward()
    opt.step()
    after = loss()
    assert torch.isfinite(before) and after.item() < before.item()
    # The teacher trains on eq. (1) alone.
    teacher.train()
    opt_t = torch.optim.Adam(teacher.parameters(), lr=3e-3)
    l0 = intensity_loss(teacher(audio, v_h, v_f).intensity, v_h, v_f)
    opt_t.zero_grad()
    l0.backward()
    opt_t.step()
    assert intensity_loss(teacher(audio, v_h, v_f).intensity, v_h, v_f) < l0


def test_intensity_targets() -> None:
    T = 50
    v = np.tile(CHANNEL_DEFAULTS, (T, 1))
    v[25:, CHANNEL_INDEX["yaw"]] = np.linspace(0, 20, T - 25)  # the head turns in the 2nd half
    v[:25, CHANNEL_INDEX[channel_name(1, 1)]] = 0.01 * np.sin(np.arange(25))  # brows move first
    v_h, v_f = intensity_targets(v)
    assert v_h.shape == v_f.shape == (T,) and v_h.dtype == np.float32
    assert v_h[:20].max() < 0.05 and v_h[30:].min() > 0.5
    assert v_f[:20].min() > 0.5 and v_f[32:].max() < 0.05
    assert v_h.mean() == pytest.approx(1.0, rel=1e-5) and v_f.mean() == pytest.approx(1.0, rel=1e-5)
    raw_h, _ = intensity_targets(v, normalize=False, smooth=0)
    # 20 degrees over 24 frames at the nose tip's lever arm (about 0.61 units).
    assert raw_h[30] == pytest.approx(np.deg2rad(20 / 24) * 0.614, rel=0.05)
    # Lips alone (speech) do not count as expression motion.
    lips = np.tile(CHANNEL_DEFAULTS, (T, 1))
    lips[:, CHANNEL_INDEX[channel_name(19, 1)]] = 0.05 * np.abs(np.sin(np.arange(T)))
    assert intensity_targets(lips, normalize=False)[1].max() == 0.0
    with pytest.raises(ValueError):
        intensity_targets(v[:, :10])
