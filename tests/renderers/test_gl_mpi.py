"""GL MPI renderer against renderers.reference.render_mpi_reference."""

from __future__ import annotations

import numpy as np
import pytest

from renderers.camera import Camera, StereoRig
from renderers.mpi import MPI, ImPortraitMPI, head_mpi_depths
from renderers.reference import render_mpi_reference

pytestmark = pytest.mark.gl


@pytest.fixture
def renderer(ctx):
    from renderers.gl_mpi import MPIRenderer

    r = MPIRenderer(ctx)
    yield r
    r.release()


def random_mpi(seed: int, d: int = 8, h: int = 96, w: int = 112, sparse: bool = False) -> MPI:
    rng = np.random.default_rng(seed)
    rgba = rng.uniform(0.0, 1.0, (d, h, w, 4)).astype(np.float32)
    if sparse:  # each plane holds one blob: most cells are empty
        jj, ii = np.meshgrid(np.arange(w), np.arange(h))
        for p in range(d):
            cx, cy = rng.uniform(20, w - 20), rng.uniform(20, h - 20)
            rgba[p, ..., 3] *= ((jj - cx) ** 2 + (ii - cy) ** 2 < 15.0**2).astype(np.float32)
    else:
        rgba[..., 3] *= rng.uniform(size=(d, h, w)) < 0.6
    ref = Camera.orbit((0.0, 0.0, 0.0), 1.0, yaw_deg=3.0, fov_y_deg=30.0, width=w, height=h)
    return MPI(rgba, head_mpi_depths(1.0, d), ref)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10.0 * np.log10(1.0 / max(np.mean((a - b) ** 2), 1e-12)))


@pytest.mark.parametrize("sparse", [False, True])
def test_mono_matches_reference(renderer, sparse: bool) -> None:
    mpi = random_mpi(0, sparse=sparse)
    renderer.upload(mpi)
    bg = (0.1, 0.2, 0.3)
    for cam in (
        mpi.camera.with_size(128, 128),
        Camera.orbit(
            distance=1.05, yaw_deg=8.0, pitch_deg=-4.0, fov_y_deg=34.0, width=128, height=128
        ),
    ):
        img = renderer.render([cam], background=bg)
        assert img.shape == (1, 128, 128, 4)
        assert psnr(img[0], render_mpi_reference(mpi, cam, background=bg)) >= 35.0


def test_stereo_matches_reference(renderer) -> None:
    mpi = random_mpi(1)
    renderer.upload(mpi)
    center = Camera.orbit(distance=1.0, fov_y_deg=30.0, width=128, height=128)
    pair = StereoRig(0.063, 1.0).cameras(center)
    img = renderer.render(pair)
    for i, cam in enumerate(pair):
        assert psnr(img[i], render_mpi_reference(mpi, cam)) >= 35.0


def test_empty_cells_are_skipped_and_im_portrait_layout(renderer) -> None:
    sparse = random_mpi(2, sparse=True)
    renderer.upload(sparse)
    full_cells = sparse.num_planes * 3 * 4  # 96x112 texels in 32-texel cells
    assert 0 < renderer.num_quads < full_cells / 2
    rng = np.random.default_rng(3)
    h, w, d = 64, 64, 6
    ref = Camera.orbit(distance=1.0, fov_y_deg=30.0, width=w, height=h)
    imp = ImPortraitMPI(
        rng.uniform(size=(h, w, 3)),
        rng.uniform(size=(h, w, 3)),
        rng.uniform(size=(d, h, w)),
        head_mpi_depths(1.0, d),
        ref,
    )
    renderer.upload(imp)
    cam = Camera.orbit(distance=1.0, yaw_deg=-6.0, fov_y_deg=30.0, width=64, height=64)
    assert psnr(renderer.render(cam)[0], render_mpi_reference(imp, cam)) >= 35.0


def test_draw_before_upload_raises(renderer, ctx) -> None:
    fb = ctx.framebuffer(color_attachments=[ctx.renderbuffer((8, 8), 4)])
    with pytest.raises(RuntimeError, match="before upload"):
        renderer.draw(Camera.orbit(width=8, height=8), fb)
    fb.release()


def test_uint8_planes_render_as_their_float_values_and_reuse_the_texture(renderer) -> None:
    """A rigged MPI head hands its uint8 planes over as they are (no float copy per frame)."""
    mpi = random_mpi(4, sparse=True)
    planes8 = np.round(mpi.rgba * 255.0).astype(np.uint8)
    mpi8 = MPI(planes8, mpi.depths, mpi.camera)
    assert mpi8.rgba is planes8  # contiguous uint8: kept, not copied
    np.testing.assert_allclose(mpi8.float_rgba(), planes8 / 255.0, atol=1e-7)
    prem = mpi8.premultiplied_uint8()
    want = np.round(planes8[..., :3] * (planes8[..., 3:] / 255.0))
    assert np.abs(prem[..., :3] - want).max() <= 1 and np.array_equal(prem[..., 3], planes8[..., 3])
    cam = Camera.orbit(distance=1.05, yaw_deg=6.0, fov_y_deg=34.0, width=128, height=128)
    renderer.upload(MPI(mpi8.float_rgba(), mpi.depths, mpi.camera))
    texture = renderer._texture
    from_float = renderer.render(cam)[0]
    renderer.upload(mpi8)
    assert renderer._texture is texture  # same size: written in place, not re-allocated
    assert psnr(renderer.render(cam)[0], from_float) >= 50.0
    assert psnr(renderer.render(cam)[0], render_mpi_reference(mpi8, cam)) >= 35.0
    moved = MPI(np.roll(planes8, 17, axis=2), mpi.depths, mpi.camera)
    renderer.upload(moved)  # new content in the reused texture, and new cells
    assert psnr(renderer.render(cam)[0], render_mpi_reference(moved, cam)) >= 35.0


@pytest.mark.parametrize("cell", [32, 8, 7, 5])
def test_occupied_cells_match_a_dilated_alpha(cell: int) -> None:
    """The border-sliver shortcut equals "any alpha within one texel of the cell"."""
    from renderers.gl_mpi import _occupied_cells

    rng = np.random.default_rng(cell)
    for _ in range(10):
        d, h, w = int(rng.integers(1, 4)), int(rng.integers(5, 130)), int(rng.integers(5, 130))
        alpha = np.zeros((d, h, w), bool)
        alpha[rng.integers(0, d, 25), rng.integers(0, h, 25), rng.integers(0, w, 25)] = True
        pad = np.pad(alpha, ((0, 0), (1, 1), (1, 1)))
        dil = np.zeros_like(alpha)
        for dy in range(3):
            for dx in range(3):
                dil |= pad[:, dy : dy + h, dx : dx + w]
        ny, nx = -(-h // cell), -(-w // cell)
        want = np.zeros((d, ny, nx), bool)
        for y in range(ny):
            for x in range(nx):
                want[:, y, x] = dil[:, y * cell : (y + 1) * cell, x * cell : (x + 1) * cell].any(
                    axis=(1, 2)
                )
        np.testing.assert_array_equal(_occupied_cells(alpha, cell, ny, nx), want)
