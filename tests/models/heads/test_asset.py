from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from models.heads import HeadFileError, builtin_head_path, load_head, save_head
from models.heads.asset import HEAD_FILE_KIND

FIELDS = ("means", "quats", "scales", "opacities", "sh", "parts", "keypoints", "kp_to_world",
          "skin_index", "skin_weight", "jaw_weight", "lid_angle", "pose_weight")  # fmt: skip


@pytest.fixture(scope="module")
def small(head):
    """A 3000-Gaussian slice of the default head (saving is then fast)."""
    idx = np.linspace(0, len(head) - 1, 3000).astype(int)
    arrays = {f: getattr(head, f)[idx] for f in FIELDS if f not in ("keypoints", "kp_to_world")}
    return head.replace(**arrays)


def test_round_trip_is_exact(small, tmp_path):
    path = tmp_path / "h.thead"
    save_head(small, path, thumbnail=np.zeros((8, 8, 3), np.uint8))
    back = load_head(path)
    for f in FIELDS:
        a, b = getattr(small, f), getattr(back, f)
        assert a.dtype == b.dtype, f
        np.testing.assert_array_equal(a, b, err_msg=f)
    assert back.name == small.name and back.metadata == small.metadata
    assert back.rig.to_dict() == small.rig.to_dict()
    with zipfile.ZipFile(path) as z:
        assert z.read("thumbnail.png").startswith(b"\x89PNG")
        meta = json.loads(z.read("head.json"))
    assert meta["kind"] == HEAD_FILE_KIND and meta["count"] == 3000


def test_float16_is_close_and_idempotent(small, tmp_path):
    save_head(small, tmp_path / "a.thead", precision="float16", thumbnail=np.zeros((4, 4, 3)))
    a = load_head(tmp_path / "a.thead")
    np.testing.assert_array_equal(a.means, small.means)  # positions stay float32
    np.testing.assert_allclose(a.sh, small.sh, atol=2e-3, rtol=1e-3)
    save_head(a, tmp_path / "b.thead", precision="float16", thumbnail=np.zeros((4, 4, 3)))
    b = load_head(tmp_path / "b.thead")
    np.testing.assert_array_equal(a.sh, b.sh)


def test_default_thumbnail_is_a_picture_of_the_head(small, tmp_path):
    save_head(small, tmp_path / "t.thead")
    with zipfile.ZipFile(tmp_path / "t.thead") as z:
        png = z.read("thumbnail.png")
    assert png.startswith(b"\x89PNG") and len(png) > 2000


def test_atomic_write_leaves_no_temporary_files(small, tmp_path):
    path = tmp_path / "h.thead"
    save_head(small, path, thumbnail=np.zeros((4, 4, 3)))
    save_head(small, path, thumbnail=np.zeros((4, 4, 3)))  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.thead"]
    with pytest.raises(HeadFileError, match="cannot write"):
        save_head(small, tmp_path / "missing" / "h.thead", thumbnail=np.zeros((4, 4, 3)))


def _rewrite(src, dst, drop=(), replace=None):
    """Copy the zip at src to dst, dropping members and replacing some (name -> bytes)."""
    replace = replace or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            if item.filename in drop:
                continue
            zout.writestr(item.filename, replace.get(item.filename, zin.read(item.filename)))


def _npy(a):
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def test_bad_files_raise_head_file_error(small, tmp_path):
    good = tmp_path / "good.thead"
    save_head(small, good, thumbnail=np.zeros((4, 4, 3)))
    data = good.read_bytes()
    cases = {}
    (tmp_path / "trunc.thead").write_bytes(data[: len(data) // 2])
    cases["trunc.thead"] = "truncated|corrupt"
    (tmp_path / "text.thead").write_text("hello")
    cases["text.thead"] = "not a head file"
    _rewrite(good, tmp_path / "nomeans.thead", drop=("means.npy",))
    cases["nomeans.thead"] = "means.npy is missing"
    _rewrite(good, tmp_path / "nojson.thead", drop=("head.json",))
    cases["nojson.thead"] = "head.json is missing"
    _rewrite(
        good, tmp_path / "shape.thead", replace={"quats.npy": _npy(np.zeros((5, 4), np.float32))}
    )
    cases["shape.thead"] = "quats has shape"
    nan = np.array(small.scales)
    nan[7, 1] = np.nan
    _rewrite(good, tmp_path / "nan.thead", replace={"scales.npy": _npy(nan)})
    cases["nan.thead"] = "NaN"
    meta = json.loads(zipfile.ZipFile(good).read("head.json"))
    meta["version"] = 99
    _rewrite(good, tmp_path / "newer.thead", replace={"head.json": json.dumps(meta).encode()})
    cases["newer.thead"] = "version 99"
    meta["version"], meta["kind"] = 1, "something-else"
    _rewrite(good, tmp_path / "kind.thead", replace={"head.json": json.dumps(meta).encode()})
    cases["kind.thead"] = "not a Gaussian head"
    for name, pattern in cases.items():
        with pytest.raises(HeadFileError, match=pattern) as info:
            load_head(tmp_path / name)
        assert "\n" not in str(info.value), name
    with pytest.raises(HeadFileError, match="no such file"):
        load_head(tmp_path / "absent.thead")


def test_shipped_heads_load_and_are_small():
    for name, low, high in (("default", 30_000, 70_000), ("default_high", 120_000, 260_000)):
        path = builtin_head_path(name)
        assert path.stat().st_size < 12e6, name
        h = load_head(path)
        assert low <= len(h) <= high, (name, len(h))
