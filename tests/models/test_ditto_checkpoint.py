"""The key-mapping loader for Ditto's ``lmdm_v0.4_hubert.pth``, at full size, on random weights
written in exactly the checkpoint's layout."""

from __future__ import annotations

import pickle

import pytest
import torch
from tiny_models import TINY_DIT

from models.ditto_checkpoint import (
    DittoCheckpointError,
    ditto_state_dict_from_model,
    load_ditto_checkpoint,
    load_mapped_state,
    map_ditto_state_dict,
)
from models.motion_dit import MotionDiT

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def expected_ditto_layout() -> dict[str, tuple[int, ...]]:
    """The checkpoint's keys and shapes, written from the spec (not from MotionDiT):
    seq 80, motion 265, latent 512, feed-forward 1024, 8 decoder layers, condition 1103."""
    D, F, M, C, L = 512, 1024, 265, 1103, 80
    lay: dict[str, tuple[int, ...]] = {
        "null_cond_embed": (1, L, D),
        "null_cond_hidden": (1, D),
        "time_mlp.1.weight": (4 * D, D),
        "time_mlp.1.bias": (4 * D,),
        "to_time_cond.0.weight": (D, 4 * D),
        "to_time_cond.0.bias": (D,),
        "to_time_tokens.0.weight": (2 * D, 4 * D),
        "to_time_tokens.0.bias": (2 * D,),
        "norm_cond.weight": (D,),
        "norm_cond.bias": (D,),
        "input_projection.weight": (D, 2 * M),
        "input_projection.bias": (D,),
        "cond_projection.weight": (D, C),
        "cond_projection.bias": (D,),
        "non_attn_cond_projection.0.weight": (D,),  # LayerNorm
        "non_attn_cond_projection.0.bias": (D,),
        "non_attn_cond_projection.1.weight": (D, D),
        "non_attn_cond_projection.1.bias": (D,),
        "non_attn_cond_projection.3.weight": (D, D),
        "non_attn_cond_projection.3.bias": (D,),
        "final_layer.weight": (M, D),
        "final_layer.bias": (M,),
        "rotary.freqs": (D // 2,),
    }

    def attn(prefix: str) -> None:
        lay[f"{prefix}.in_proj_weight"] = (3 * D, D)
        lay[f"{prefix}.in_proj_bias"] = (3 * D,)
        lay[f"{prefix}.out_proj.weight"] = (D, D)
        lay[f"{prefix}.out_proj.bias"] = (D,)

    def block(p: str, norms: int) -> None:
        lay[f"{p}.linear1.weight"] = (F, D)
        lay[f"{p}.linear1.bias"] = (F,)
        lay[f"{p}.linear2.weight"] = (D, F)
        lay[f"{p}.linear2.bias"] = (D,)
        for n in range(1, norms + 1):
            lay[f"{p}.norm{n}.weight"] = (D,)
            lay[f"{p}.norm{n}.bias"] = (D,)
        lay[f"{p}.rotary.freqs"] = (D // 2,)

    for i in range(2):
        attn(f"cond_encoder.{i}.self_attn")
        block(f"cond_encoder.{i}", 2)
    for i in range(8):
        p = f"seqTransDecoder.stack.{i}"
        attn(f"{p}.self_attn")
        attn(f"{p}.multihead_attn")
        block(p, 3)
        for f in (1, 2, 3):
            lay[f"{p}.film{f}.block.1.weight"] = (2 * D, D)
            lay[f"{p}.film{f}.block.1.bias"] = (2 * D,)
    return lay


def random_state(layout: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    D = 512
    freqs = 1.0 / (10000 ** (torch.arange(0, D, 2).float() / D))
    return {
        k: freqs.clone() if k.endswith("rotary.freqs") else torch.randn(s, generator=g) * 0.02
        for k, s in layout.items()
    }


@pytest.fixture(scope="module")
def full_model() -> MotionDiT:
    torch.manual_seed(0)
    return MotionDiT()


def test_layout_counts():
    lay = expected_ditto_layout()
    weights = [k for k in lay if not k.endswith("rotary.freqs")]
    assert len(weights) == 238
    assert len(lay) == 249  # + rotary.freqs at the top, in 2 encoder and 8 decoder layers
    n = sum(torch.Size(s).numel() for k, s in lay.items() if not k.endswith("rotary.freqs"))
    assert n == 47_788_297


def test_inverse_mapping_reproduces_the_layout(full_model):
    ours = {k: tuple(v.shape) for k, v in ditto_state_dict_from_model(full_model).items()}
    assert ours == expected_ditto_layout()


def test_forward_mapping_is_exact(full_model):
    state = random_state(expected_ditto_layout())
    mapped, dropped = map_ditto_state_dict(state)
    assert len(dropped) == 11 and all(k.endswith("rotary.freqs") for k in dropped)
    assert set(mapped) == set(full_model.state_dict())
    load_mapped_state(full_model, mapped, source="in memory")  # strict: no error
    assert (
        mapped["decoder_layers.7.film3.block.1.weight"]
        is state["seqTransDecoder.stack.7.film3.block.1.weight"]
    )


def test_load_full_size_checkpoint_file(tmp_path):
    """A file in the checkpoint's layout (the 249 entries above plus the 3 schedule buffers of
    Ditto's LMDM wrapper = 252) loads, with every tensor where it belongs."""
    state = random_state(expected_ditto_layout())
    state["alphas_cumprod"] = torch.linspace(1, 0, 1000)
    state["sqrt_recipm1_alphas_cumprod"] = torch.ones(1000)
    state["sqrt_recip1m_alphas_cumprod"] = torch.ones(1000)
    assert len(state) == 252
    path = tmp_path / "lmdm_v0.4_hubert.pth"
    torch.save({"model_state_dict": state}, path)
    model = load_ditto_checkpoint(path)
    cfg = model.config
    assert (cfg.seq_len, cfg.motion_dim, cfg.audio_dim, cfg.latent_dim) == (80, 265, 1024, 512)
    assert (cfg.ff_dim, cfg.num_layers, cfg.num_heads, model.cond_dim) == (1024, 8, 8, 1103)
    assert not model.training
    own = model.state_dict()
    for key, value in state.items():
        if key.endswith("rotary.freqs") or "alphas" in key:
            continue
        ours = key.replace("seqTransDecoder.stack.", "decoder_layers.")
        assert torch.equal(own[ours], value), key


def test_lmdm_wrapper_layout_loads(tmp_path, caplog):
    """Saved from Ditto's LMDM wrapper: the network's 249 entries as ``model.<name>`` beside the
    wrapper's 3 unprefixed schedule buffers. Loads; the buffers are dropped with a note."""
    layout = random_state(expected_ditto_layout())
    state = {f"model.{k}": v for k, v in layout.items()}
    state["alphas_cumprod"] = torch.linspace(1, 0, 1000)
    state["sqrt_recipm1_alphas_cumprod"] = torch.ones(1000)
    state["sqrt_recip1m_alphas_cumprod"] = torch.ones(1000)
    path = tmp_path / "lmdm_wrapper.pth"
    torch.save({"model_state_dict": state}, path)
    with caplog.at_level("INFO", logger="models.ditto_checkpoint"):
        model = load_ditto_checkpoint(path)
    assert "alphas_cumprod" in caplog.text
    assert torch.equal(model.null_cond_embed, layout["null_cond_embed"])
    assert torch.equal(
        model.state_dict()["decoder_layers.7.film3.block.1.weight"],
        layout["seqTransDecoder.stack.7.film3.block.1.weight"],
    )


def test_mixed_prefixes_still_report_real_problems(full_model):
    state = {f"model.{k}": v for k, v in random_state(expected_ditto_layout()).items()}
    state["module.model.null_cond_hidden"] = state.pop("model.null_cond_hidden")  # nested: fine
    del state["model.seqTransDecoder.stack.2.norm1.weight"]
    state["ema_decay"] = torch.ones(1)  # not a known wrapper buffer: unexpected
    state["model.final_layer.weight"] = torch.zeros(264, 512)
    mapped, _ = map_ditto_state_dict(state)
    assert "null_cond_hidden" in mapped
    with pytest.raises(DittoCheckpointError) as err:
        load_mapped_state(full_model, mapped, source="ckpt")
    msg = str(err.value)
    assert "missing keys: decoder_layers.2.norm1.weight" in msg
    assert "unexpected keys: ema_decay" in msg
    assert "final_layer.weight [264, 512] vs model [265, 512]" in msg


def test_prefix_collision_is_an_error():
    with pytest.raises(DittoCheckpointError, match=r"both name 'final_layer\.bias'"):
        map_ditto_state_dict(
            {"final_layer.bias": torch.zeros(2), "model.final_layer.bias": torch.zeros(2)}
        )


def test_tiny_model_round_trip_through_ditto_layout(tmp_path):
    torch.manual_seed(1)
    m = MotionDiT(**TINY_DIT)
    m.eval()
    path = tmp_path / "tiny.pth"
    torch.save({"model_state_dict": ditto_state_dict_from_model(m)}, path)
    back = load_ditto_checkpoint(path, num_heads=4)
    g = torch.Generator().manual_seed(0)
    x, ref = torch.randn(1, 16, 265, generator=g), torch.randn(1, 265, generator=g)
    cond = torch.randn(1, 16, 87, generator=g)
    with torch.no_grad():
        assert torch.equal(m(x, 500, ref, cond), back(x, 500, ref, cond))


def test_dtype_and_prefix_handling(tmp_path):
    torch.manual_seed(2)
    m = MotionDiT(seq_len=8, audio_dim=4, latent_dim=16, ff_dim=32, num_layers=1, num_heads=2)
    half = {f"module.{k}": v.half() for k, v in ditto_state_dict_from_model(m).items()}
    path = tmp_path / "half.pth"
    torch.save({"model_state_dict": half}, path)
    back = load_ditto_checkpoint(path, num_heads=2)
    assert back.final_layer.weight.dtype == torch.float32
    assert torch.equal(back.final_layer.weight, m.final_layer.weight.half().float())
    bf = load_ditto_checkpoint(path, num_heads=2, dtype=torch.bfloat16)
    assert bf.final_layer.weight.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="floating"):
        load_ditto_checkpoint(path, dtype=torch.int32)


def test_mismatches_are_named(full_model):
    state = random_state(expected_ditto_layout())
    del state["seqTransDecoder.stack.3.norm2.bias"]
    state["seqTransDecoder.stack.3.extra.weight"] = torch.zeros(3)
    state["final_layer.weight"] = torch.zeros(264, 512)
    mapped, _ = map_ditto_state_dict(state)
    with pytest.raises(DittoCheckpointError) as err:
        load_mapped_state(full_model, mapped, source="ckpt")
    msg = str(err.value)
    assert "missing keys: decoder_layers.3.norm2.bias" in msg
    assert "unexpected keys: decoder_layers.3.extra.weight" in msg
    assert "final_layer.weight [264, 512] vs model [265, 512]" in msg


def test_integer_tensor_is_rejected():
    torch.manual_seed(3)
    m = MotionDiT(seq_len=8, audio_dim=4, latent_dim=16, ff_dim=32, num_layers=1, num_heads=2)
    mapped, _ = map_ditto_state_dict(ditto_state_dict_from_model(m))
    mapped["final_layer.bias"] = torch.zeros(265, dtype=torch.int64)
    with pytest.raises(DittoCheckpointError, match=r"non-floating tensors: final_layer\.bias"):
        load_mapped_state(m, mapped, source="x")


def test_wrong_rotary_frequencies_are_rejected():
    with pytest.raises(DittoCheckpointError, match="rotary"):
        map_ditto_state_dict({"rotary.freqs": torch.ones(256)})


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_ditto_checkpoint(tmp_path / "nope.pth")

    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    bad = tmp_path / "evil.pth"
    bad.write_bytes(pickle.dumps({"model_state_dict": Evil()}))
    with pytest.raises(DittoCheckpointError, match="weights-only"):
        load_ditto_checkpoint(bad)
    empty = tmp_path / "empty.pth"
    torch.save({"model_state_dict": {}}, empty)
    with pytest.raises(DittoCheckpointError, match="no state dict"):
        load_ditto_checkpoint(empty)
    other = tmp_path / "other.pth"
    torch.save({"model_state_dict": {"w": torch.zeros(2)}}, other)
    with pytest.raises(DittoCheckpointError, match="null_cond_embed"):
        load_ditto_checkpoint(other)
