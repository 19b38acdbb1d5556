"""The 3D viewport (Qt + moderngl): the animated head, live, with orbit/pan/zoom, stereo and
anaglyph preview, level of detail and draggable motion-space keypoints.

The Qt-free parts (camera control, keypoint drag maths, deformation cache, GL composition)
import without Qt; :class:`ViewportWidget` is imported lazily so that ``studio.viewport`` itself
does not pull in PySide6.
"""

from __future__ import annotations

from studio.viewport.camera_control import CameraControl, ViewState
from studio.viewport.gl_scene import VIEW_MODES, view_cameras
from studio.viewport.keypoint_edit import KEYPOINT_AXES, KeypointDrag, exp_limit

__all__ = [
    "KEYPOINT_AXES",
    "VIEW_MODES",
    "CameraControl",
    "KeypointDrag",
    "ViewState",
    "ViewportWidget",
    "exp_limit",
    "view_cameras",
]


def __getattr__(name: str):
    if name == "ViewportWidget":
        from studio.viewport.widget import ViewportWidget

        return ViewportWidget
    raise AttributeError(f"module 'studio.viewport' has no attribute {name!r}")
