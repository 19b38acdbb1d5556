"""Draw a crude frontal face with cv2: test and benchmark images without any download.

The classic MediaPipe models find a face and fit their 468-point mesh on such a drawing
(skin-coloured ellipse, brows, white eyes with irises, a nose, red lips, hair, on a background).
``draw_face`` also returns where it drew each part, the ground truth tests compare against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DrawnFace", "draw_face"]


@dataclass(frozen=True)
class DrawnFace:
    """Where the parts of a drawn face are, in image pixels (x right, y down).

    "right"/"left" are the SUBJECT's: the subject's right eye is on the image's left.
    """

    image: np.ndarray  # [H, W, 3] uint8 RGB
    box: np.ndarray  # [4] x0, y0, x1, y1 of the face ellipse
    eye_r: np.ndarray  # [2] centre of the subject's right eye (image left)
    eye_l: np.ndarray  # [2] centre of the subject's left eye (image right)
    iris_radius: float
    nose_tip: np.ndarray  # [2]
    mouth: np.ndarray  # [2] centre of the mouth
    mouth_corner_r: np.ndarray  # [2] subject's right corner (image left)
    mouth_corner_l: np.ndarray  # [2]
    chin: np.ndarray  # [2] bottom of the face ellipse


def _rot(points: np.ndarray, centre: np.ndarray, degrees: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return (np.asarray(points, dtype=np.float64) - centre) @ r.T + centre


def draw_face(
    width: int = 640,
    height: int = 480,
    centre: tuple[float, float] | None = None,
    face_height: float | None = None,
    roll: float = 0.0,
    mouth_open: float = 0.0,
    background: tuple[int, int, int] = (70, 110, 150),
    seed: int = 0,
) -> DrawnFace:
    """A frontal cartoon face, ``face_height`` pixels tall (default 60 % of the image height).

    ``roll`` rotates the face in the image plane (degrees, clockwise on screen as y points down);
    ``mouth_open`` in [0, 1] opens the lips. The background gets mild noise (``seed``) so the
    image is not perfectly flat. Returns a DrawnFace; raises ValueError for a face too small to
    draw (< 20 px) or an image smaller than 16 px.
    """
    import cv2

    if width < 16 or height < 16:
        raise ValueError(f"draw_face: image {width}x{height} is too small")
    c = np.array(centre if centre is not None else (width / 2, height / 2), dtype=np.float64)
    fh = float(face_height if face_height is not None else 0.6 * height)
    if fh < 20:
        raise ValueError(f"draw_face: face height {fh} px is too small")
    rng = np.random.default_rng(seed)
    # Noise from a tiled 64x64 patch: cheap even for 4000x3000 test images.
    tile = np.asarray(background, dtype=np.float64) + rng.normal(0.0, 6.0, size=(64, 64, 3))
    tile = np.clip(tile, 0, 255).astype(np.uint8)
    img = np.tile(tile, (height // 64 + 1, width // 64 + 1, 1))[:height, :width]
    img = np.ascontiguousarray(img)

    u = fh / 2.0  # half the face height: every part is placed in these units
    shift = 8  # sub-pixel precision for cv2 drawing

    def p(x: float, y: float) -> np.ndarray:
        return _rot(c + np.array([x, y]) * u, c, roll)

    def fx(v: np.ndarray) -> tuple[int, int]:
        return (round(v[0] * (1 << shift)), round(v[1] * (1 << shift)))

    def ellipse(ctr, axes, colour, angle=0.0, thickness=-1, start=0, end=360):
        ax = (round(axes[0] * u * (1 << shift)), round(axes[1] * u * (1 << shift)))
        cv2.ellipse(img, fx(ctr), ax, roll + angle, start, end, colour, thickness, cv2.LINE_AA,
                    shift)  # fmt: skip

    skin, dark, lips = (224, 172, 140), (60, 40, 30), (170, 60, 70)
    ellipse(p(0, -0.15), (0.82, 0.75), (50, 35, 25))  # hair behind the top of the head
    ellipse(p(-0.78, 0.0), (0.1, 0.2), (210, 155, 125))  # ears
    ellipse(p(0.78, 0.0), (0.1, 0.2), (210, 155, 125))
    neck = np.array([p(-0.3, 0.7), p(0.3, 0.7), p(0.35, 1.4), p(-0.35, 1.4)])
    cv2.fillConvexPoly(img, (neck * (1 << shift)).astype(np.int32), (205, 150, 120), cv2.LINE_AA,
                       shift)  # fmt: skip
    ellipse(p(0, 0), (0.74, 1.0), skin)  # face
    ellipse(p(0, -0.62), (0.75, 0.42), (50, 35, 25), start=180, end=360)  # hairline
    eye_dx, eye_y, eye_w, eye_h = 0.3, -0.12, 0.16, 0.075
    iris_r = 0.062
    for s in (-1, 1):
        ellipse(p(s * 0.3, -0.33), (0.17, 0.05), dark, angle=-s * 8, start=180, end=360,
                thickness=max(2, int(0.035 * u)))  # brows  # fmt: skip
        ellipse(p(s * eye_dx, eye_y), (eye_w, eye_h), (245, 245, 240))  # eye white
        ellipse(p(s * eye_dx, eye_y), (iris_r, iris_r), (80, 110, 70))  # iris
        ellipse(p(s * eye_dx, eye_y), (0.028, 0.028), (10, 10, 10))  # pupil
        ellipse(p(s * eye_dx, eye_y), (eye_w, eye_h), dark, thickness=max(1, int(0.02 * u)))
    nose = np.array([p(0, -0.1), p(-0.09, 0.2), p(0.0, 0.25), p(0.09, 0.2)])
    cv2.polylines(img, [(nose * (1 << shift)).astype(np.int32)], False, (175, 120, 95),
                  max(1, int(0.025 * u)), cv2.LINE_AA, shift)  # fmt: skip
    ellipse(p(-0.04, 0.23), (0.025, 0.015), (120, 70, 60))  # nostrils
    ellipse(p(0.04, 0.23), (0.025, 0.015), (120, 70, 60))
    mouth_y, mouth_w = 0.5, 0.24
    open_h = 0.1 * float(np.clip(mouth_open, 0.0, 1.0))
    ellipse(p(0, mouth_y - 0.01), (mouth_w, 0.05 + open_h / 2), lips)
    if open_h > 0:
        ellipse(p(0, mouth_y), (mouth_w * 0.8, open_h / 2), (40, 10, 15))
    else:
        cv2.line(img, fx(p(-mouth_w, mouth_y)), fx(p(mouth_w, mouth_y)), (110, 30, 40),
                 max(1, int(0.015 * u)), cv2.LINE_AA, shift)  # fmt: skip

    corners = np.array([[-0.74, -1.0], [0.74, -1.0], [0.74, 1.0], [-0.74, 1.0]])
    box_pts = np.array([p(*q) for q in corners])
    box = np.array([*box_pts.min(0), *box_pts.max(0)])
    return DrawnFace(
        image=img,
        box=box,
        eye_r=p(-eye_dx, eye_y),
        eye_l=p(eye_dx, eye_y),
        iris_radius=iris_r * u,
        nose_tip=p(0.0, 0.25),
        mouth=p(0.0, mouth_y),
        mouth_corner_r=p(-mouth_w, mouth_y),
        mouth_corner_l=p(mouth_w, mouth_y),
        chin=p(0.0, 1.0),
    )
