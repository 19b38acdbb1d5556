"""Without OpenGL the viewport paints a message and the studio keeps working (no display needed)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest

from studio.demo import build_demo_project
from studio.ui.controller import StudioController


def test_without_gl_a_message_is_shown(qtbot, monkeypatch):
    from studio.viewport import widget as widget_mod

    monkeypatch.setattr(widget_mod, "gl_unavailable_reason", lambda: "no driver here")
    ctrl = StudioController(build_demo_project())
    vp = widget_mod.ViewportWidget(ctrl)
    qtbot.addWidget(vp)
    vp.resize(320, 200)
    vp.show()
    assert not vp.gl_available
    assert "no driver here" in vp.gl_error
    assert vp.grab_frame().isNull()
    # Everything else keeps working: frames, modes, keypoints, navigation state, head loading.
    ctrl.set_frame(30)
    vp.set_view_mode("anaglyph")
    vp.toggle_keypoints()
    qtbot.waitUntil(lambda: vp.head_ready, timeout=30_000)
    vp.frame_head()
    assert vp.head is not None and vp.representation == "gaussian"
    img = vp.grab().toImage()  # the painted message, not a blank widget
    colors = {img.pixel(x, y) for x in range(0, 320, 4) for y in range(0, 200, 4)}
    assert len(colors) > 2
    with pytest.raises(ValueError, match="view mode"):
        vp.set_view_mode("hologram")
