"""One-sided surfels on the rigged heads: stored in .thead, carried by deform, marked on the
default head so that back-face culling leaves its image unchanged."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from models.heads import load_head, save_head
from models.heads.procedural import hair_sdf, skin_sdf
from models.heads.rig import PART_INDEX
from models.motion_space import CHANNEL_DEFAULTS, CHANNEL_INDEX


def _without(path, name: str, out) -> None:
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            if item.filename != name:
                dst.writestr(item, src.read(item.filename))


def test_default_head_marks_flat_skin_one_sided(head) -> None:
    f = head.facing
    assert f.dtype == np.int8 and set(np.unique(f)) <= {0, 1}
    skin = head.parts == PART_INDEX["skin"]
    assert (f[skin] != 0).mean() > 0.5  # most of the skin
    for part in ("brow", "lid_upper_r", "lash_l", "mouth", "teeth_upper", "tongue",
                 "sclera_r", "iris_l", "highlight_r"):  # fmt: skip
        assert not f[head.parts == PART_INDEX[part]].any(), part
    # the hair shell only where it is flat (most of it is grooved: two-sided)
    hair = head.parts == PART_INDEX["hair"]
    assert 0.05 < (f[hair] != 0).mean() < 0.6
    # the outward normal facing * R[:, 2] is the surface SDF's outward normal
    from renderers.gaussians import facing_normals

    for sdf, part in ((skin_sdf, skin), (hair_sdf, hair)):
        sel = np.flatnonzero(part & (f != 0))[::7]
        n = facing_normals(head.quats[sel], f[sel]).astype(np.float64)
        p = head.means[sel].astype(np.float64)
        eps = 1e-4
        g = np.stack([(sdf(p + eps * e) - sdf(p - eps * e)) / (2 * eps) for e in np.eye(3)], 1)
        g /= np.linalg.norm(g, axis=1, keepdims=True)
        assert np.median(np.sum(n * g, axis=1)) > 0.99


def test_thead_round_trip_and_old_files(head, tmp_path) -> None:
    path = tmp_path / "h.thead"
    save_head(head, path, thumbnail=np.zeros((4, 4, 3)))
    assert np.array_equal(load_head(path).facing, head.facing)
    old = tmp_path / "old.thead"
    _without(path, "facing.npy", old)  # a file written before facing existed
    loaded = load_head(old)
    assert loaded.facing.shape == (len(head),) and not loaded.facing.any()


def test_thead_rejects_bad_facing(head, tmp_path) -> None:
    from models.heads import HeadFileError

    path = tmp_path / "h.thead"
    save_head(head, path, thumbnail=np.zeros((4, 4, 3)))
    bad = tmp_path / "bad.thead"
    _without(path, "facing.npy", bad)
    buf = io.BytesIO()
    np.save(buf, np.full(len(head), 3, np.int8))
    with zipfile.ZipFile(bad, "a") as z:
        z.writestr("facing.npy", buf.getvalue())
    with pytest.raises(HeadFileError, match="facing"):
        load_head(bad)


def test_deform_carries_facing(head) -> None:
    frame = CHANNEL_DEFAULTS.copy()
    frame[CHANNEL_INDEX["yaw"]] = 25.0
    assert head.deform(frame).facing is head.facing
    assert head.rest.facing is head.facing


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10.0 * np.log10(1.0 / max(np.mean((a - b) ** 2), 1e-12)))


@pytest.mark.gl
def test_default_head_culled_render_matches_unculled(head) -> None:
    from renderers.camera import Camera
    from renderers.gaussians import GaussianCloud, backfacing
    from renderers.gl_context import GLUnavailableError, create_offscreen_context
    from renderers.gl_splats import GaussianSplatRenderer

    try:
        ctx = create_offscreen_context()
    except GLUnavailableError as exc:
        pytest.skip(f"no headless EGL OpenGL context: {exc}")
    r = GaussianSplatRenderer(ctx)
    try:
        jaw = CHANNEL_DEFAULTS.copy()
        jaw[CHANNEL_INDEX["exp_19_y"]] = 0.1  # wide open: the mouth corners stretch
        jaw[CHANNEL_INDEX["eye_open_r"]] = 0.0
        for frame, views in (
            (CHANNEL_DEFAULTS, ((0, 0), (90, 0), (180, 0), (20, 50))),
            (jaw, ((35, 5), (-15, -40))),
        ):
            a = head.deform(frame)
            cloud = GaussianCloud(a.means, a.quats, a.scales, a.opacities, a.sh, facing=a.facing)
            r.upload(cloud)
            for yaw, pitch in views:
                cam = Camera.orbit((0, -0.03, 0), 0.55, yaw, pitch, 30.0, 192, 192)
                r.backface_culling = False
                full = r.render(cam, background=(1.0, 1.0, 1.0))
                r.backface_culling = True
                culled = r.render(cam, background=(1.0, 1.0, 1.0))
                assert backfacing(cloud, cam.position).mean() > 0.04
                assert _psnr(full, culled) >= 40.0, (yaw, pitch)
    finally:
        r.release()
        ctx.release()
