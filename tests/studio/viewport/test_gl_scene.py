"""The viewport's GL composition on a headless EGL context: background, scale, anaglyph."""

from __future__ import annotations

import numpy as np
import pytest

from studio.viewport.camera_control import ViewState
from studio.viewport.gl_scene import (
    BACKGROUND_BOTTOM,
    BACKGROUND_TOP,
    SceneCompositor,
    view_cameras,
)

pytestmark = pytest.mark.gl


def _read(ctx, fbo, w, h):
    return np.frombuffer(fbo.read(components=4), np.uint8).reshape(h, w, 4)[::-1]


def test_background_gradient_and_present(ctx):
    w, h = 64, 48
    comp = SceneCompositor(ctx)
    out = ctx.simple_framebuffer((w, h))
    assert not comp.present(out, w, h)  # nothing cached yet
    comp.render(None, view_cameras(ViewState(), "mono", w, h), "mono", w, h)
    assert comp.present(out, w, h)
    img = _read(ctx, out, w, h).astype(float)
    top, bottom = img[1, 2, :3], img[-2, 2, :3]
    assert np.all(top > bottom)  # lighter at the top
    np.testing.assert_allclose(top, np.array(BACKGROUND_TOP) * 255, atol=8)
    np.testing.assert_allclose(bottom, np.array(BACKGROUND_BOTTOM) * 255, atol=8)
    assert np.all(img[..., 3] == 255)
    comp.release()


def test_reduced_resolution_fills_the_view(ctx):
    w, h = 64, 48
    comp = SceneCompositor(ctx)
    out = ctx.simple_framebuffer((w, h))

    def draw(cam, fbo, vp):
        fbo.use()
        ctx.clear(1.0, 0.0, 0.0, 1.0, viewport=vp)

    views = view_cameras(ViewState(), "mono", 16, 12)
    comp.render(draw, views, "mono", w, h, content=(16, 12))
    comp.present(out, w, h)
    img = _read(ctx, out, w, h)
    assert np.all(img[..., 0] == 255) and np.all(img[..., 1] == 0)  # magnified to the whole view
    with pytest.raises(ValueError, match="content size"):
        comp.render(draw, views, "mono", w, h, content=(w + 1, h))
    comp.release()


def test_anaglyph_takes_red_from_left_and_cyan_from_right(ctx):
    w, h = 32, 32
    comp = SceneCompositor(ctx)
    out = ctx.simple_framebuffer((w, h))
    colors = iter([(1.0, 1.0, 1.0), (0.0, 0.2, 0.6)])  # left eye white, right eye blue-ish

    def draw(cam, fbo, vp):
        fbo.use()
        ctx.clear(*next(colors), 1.0, viewport=vp)

    views = view_cameras(ViewState(), "anaglyph", w, h, ipd=0.063, convergence=0.6)
    assert views[0][0].position[0] < views[1][0].position[0]  # left eye first
    comp.render(draw, views, "anaglyph", w, h)
    comp.present(out, w, h)
    px = _read(ctx, out, w, h)[h // 2, w // 2].astype(int)
    np.testing.assert_allclose(px[:3], [255, 51, 153], atol=2)
    comp.release()


def test_back_layers_are_presented_only_when_swapped(ctx):
    """A scene built in the back layers (a progressively refined frame) never shows before
    swap_back; then it replaces the cached reduced-resolution scene at full resolution."""
    w, h = 32, 24
    comp = SceneCompositor(ctx)
    out = ctx.simple_framebuffer((w, h))

    def fill(rgb):
        def draw(cam, fbo, vp):
            fbo.use()
            ctx.clear(*rgb, 1.0, viewport=vp)

        return draw

    comp.render(fill((1.0, 0.0, 0.0)), view_cameras(ViewState(), "mono", 8, 6), "mono", w, h,
                content=(8, 6))  # fmt: skip
    full = view_cameras(ViewState(), "mono", w, h)
    fbos = comp.begin_back(full, "mono", w, h)
    assert len(fbos) == 1
    fbos[0].use()
    ctx.clear(0.0, 0.0, 1.0, 1.0, viewport=(0, 0, w // 2, h))  # half of it "drawn" so far
    comp.present(out, w, h)
    assert np.all(_read(ctx, out, w, h)[..., 0] == 255)  # still the cached scene
    assert comp.swap_back()
    comp.present(out, w, h)
    img = _read(ctx, out, w, h)
    assert np.all(img[:, : w // 2, 2] == 255) and np.all(img[:, : w // 2, 0] == 0)
    assert not comp.swap_back()  # nothing new built
    # A render() in between abandons a back scene.
    comp.begin_back(full, "mono", w, h)
    comp.render(None, full, "mono", w, h)
    assert not comp.swap_back()
    comp.release()


@pytest.mark.parametrize("mode", ["mono", "sbs", "anaglyph"])
@pytest.mark.parametrize("content", [(64, 48), (17, 13)])
def test_cpu_composition_matches_the_shaders(ctx, mode, content):
    """cpu_magnify (a software GL: read back, OpenCV resize, copy) presents what the shaders
    present, to rounding: the same bilinear magnification clamped to the drawn part, the same
    anaglyph; a full-resolution mono/side-by-side scene is copied unchanged."""
    w, h = 64, 48
    cw, ch = content
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, (ch, cw, 4), dtype=np.uint8) for _ in range(2)]
    for img in noise:
        img[..., 3] = 255  # scene layers are opaque (background first, "over" on top)

    def draw(cam, fbo, vp):  # a random image per layer (eye), written into its viewport
        img = noise[next(layer)] if mode == "anaglyph" else noise[0]
        x, y, vw, vh = vp
        part = np.ascontiguousarray(img[y : y + vh, x : x + vw])
        fbo.color_attachments[0].write(part, viewport=(x, y, vw, vh))

    results = []
    for cpu in (False, True):
        comp = SceneCompositor(ctx, cpu_magnify=cpu)
        layer = iter(range(2))
        views = view_cameras(ViewState(), mode, cw, ch)
        comp.render(draw, views, mode, w, h, content=(cw, ch))
        out = ctx.simple_framebuffer((w, h))
        assert comp.present(out, w, h)
        assert comp.present(out, w, h)  # again: the cached composition
        results.append(_read(ctx, out, w, h).astype(int))
        comp.release()
    shader, cpu_img = results
    assert np.all(cpu_img[..., 3] == 255)
    diff = np.abs(shader[..., :3] - cpu_img[..., :3])
    assert diff.max() <= 3, diff.max()
    if (cw, ch) == (w, h) and mode != "anaglyph":
        # a plain copy of the layer
        np.testing.assert_array_equal(cpu_img[::-1][..., :3], noise[0][..., :3])


@pytest.mark.parametrize("mode", ["mono", "sbs", "anaglyph"])
@pytest.mark.parametrize("content", [(64, 48), (23, 17)])
def test_cpu_scenes_match_the_gl_composition(ctx, mode, content):
    """A CPU scene (render_cpu: premultiplied head images, row 0 at the top, composed over the
    read-back background on the CPU, magnified, flipped) presents what the GL path presents
    for the same images blended over its background: same orientation, placement per eye,
    anaglyph mix and bilinear magnification, to rounding."""
    import moderngl

    from renderers.gl_context import load_shader

    w, h = 64, 48
    cw, ch = content
    rng = np.random.default_rng(1)

    def premultiplied(vw, vh):
        img = rng.integers(0, 256, (vh, vw, 4), dtype=np.uint8)
        img[: vh // 3, :, 3] = 255  # opaque at the top, transparent at the bottom
        img[-(vh // 3) :, :, 3] = 0
        img[..., :3] = (img[..., :3].astype(np.uint16) * img[..., 3:] // 255).astype(np.uint8)
        return img

    views = view_cameras(ViewState(), mode, cw, ch)
    images = [premultiplied(cam.width, cam.height) for cam, _vp in views]
    prog = ctx.program(
        vertex_shader=load_shader("cpu_splats_blit.vert"),
        fragment_shader=load_shader("cpu_splats_blit.frag"),
    )
    vao = ctx.vertex_array(prog, [])
    index = iter(range(len(images)))

    def draw(cam, fbo, vp):  # the CPU renderer's own blend into a GL scene layer
        img = images[next(index)]
        tex = ctx.texture((img.shape[1], img.shape[0]), 4, img.tobytes())
        tex.filter = (moderngl.NEAREST, moderngl.NEAREST)
        fbo.use()
        ctx.viewport = ctx.scissor = vp
        ctx.enable(moderngl.BLEND)
        ctx.blend_func = (moderngl.ONE, moderngl.ONE_MINUS_SRC_ALPHA)
        tex.use(0)
        prog["u_image"].value = 0
        prog["u_viewport"].value = (vp[0], vp[1], img.shape[1], img.shape[0])
        vao.render(moderngl.TRIANGLES, vertices=3)
        ctx.scissor = None
        ctx.disable(moderngl.BLEND)
        tex.release()

    cpu_index = iter(range(len(images)))

    def render(cam, out):  # the CPU renderer's images, as render_rgba8 writes them
        out[...] = images[next(cpu_index)]

    results = []
    for cpu_scene in (False, True):
        comp = SceneCompositor(ctx, cpu_magnify=True)
        if cpu_scene:
            comp.render_cpu(render, views, mode, w, h, content=(cw, ch))
            assert comp.cpu_scene
        else:
            comp.render(draw, views, mode, w, h, content=(cw, ch))
        out = ctx.simple_framebuffer((w, h))
        assert comp.present(out, w, h)
        assert comp.present(out, w, h)  # again: the cached frame
        results.append(_read(ctx, out, w, h).astype(int))
        if cpu_scene:  # read_scene gives the composed frame (bottom row first)
            raw = np.frombuffer(comp.read_scene(0), np.uint8).reshape(h, w, 4)[::-1]
            np.testing.assert_array_equal(raw[..., :3], results[-1][..., :3])
        comp.release()
    vao.release()
    prog.release()
    gl_img, cpu_img = results
    assert np.all(cpu_img[..., 3] == 255)
    diff = np.abs(gl_img[..., :3] - cpu_img[..., :3])
    if mode == "sbs" and cw % 2:
        # An odd content width leaves one column between the eyes that the GL path never
        # draws (stale texels); the CPU scene has background there. Compare the rest.
        seam = w * (cw // 2) // cw
        diff[:, seam - 3 : seam + 4] = 0
    # At a reduced size the CPU scene's background is the full-size one resampled, not drawn
    # at the content size: its glow (per eye in sbs) sits a fraction of a texel apart.
    assert diff.max() <= (3 if (cw, ch) == (w, h) else 8), diff.max()
    assert diff.mean() < 1.0
    if (cw, ch) == (w, h) and mode == "mono":  # the top third is the opaque image, unflipped
        np.testing.assert_array_equal(cpu_img[: h // 3, :, :3], images[0][: h // 3, :, :3])


def test_compose_cpu_checks_its_inputs():
    from studio.viewport.gl_scene import compose_cpu

    bg = np.zeros((8, 8, 4), np.uint8)
    bg[..., 3] = 255
    np.testing.assert_array_equal(compose_cpu([], bg, "mono"), bg)
    with pytest.raises(ValueError, match="does not fit"):
        compose_cpu([(np.zeros((8, 9, 4), np.uint8), (0, 0, 8, 8))], bg, "mono")
    with pytest.raises(ValueError, match="unknown view mode"):
        compose_cpu([], bg, "stereo")
