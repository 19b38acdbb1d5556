from __future__ import annotations

import numpy as np
import pytest

from models.face.landmarks import (
    FaceDetection,
    FaceImageError,
    FaceLandmarker,
    FaceModelsMissingError,
    FaceROI,
    ssd_anchors,
)
from models.face.testface import draw_face


def _near(p, q, tol):
    return float(np.linalg.norm(np.asarray(p)[:2] - np.asarray(q)[:2])) <= tol


def test_anchors_cover_the_two_grids():
    a = ssd_anchors()
    assert a.shape == (896, 2)
    assert np.allclose(a[0], a[1]) and np.allclose(a[0], [1 / 32, 1 / 32])  # 2 per 16x16 cell
    assert np.allclose(a[512:518], [1 / 16, 1 / 16])  # 6 per 8x8 cell
    assert np.allclose(a[-1], [15 / 16, 15 / 16])


def test_missing_models_name_the_setup_command(tmp_path):
    with pytest.raises(FaceModelsMissingError, match="fetch_models"):
        FaceLandmarker(tmp_path)


def test_detects_the_drawn_face(landmarker):
    f = draw_face()
    dets = landmarker.detect(f.image)
    assert len(dets) == 1
    d = dets[0]
    assert d.score > 0.7
    fh = f.box[3] - f.box[1]
    # The box sits on the face: inside the drawn ellipse (with a margin), around eyes and mouth.
    assert (d.box[:2] > f.box[:2] - 0.1 * fh).all() and (d.box[2:] < f.box[2:] + 0.1 * fh).all()
    for part in (f.eye_r, f.eye_l, f.mouth):
        assert d.box[0] < part[0] < d.box[2] and d.box[1] < part[1] < d.box[3]
    # Keypoint 0 is the subject's right eye, on the image's left.
    assert _near(d.keypoints[0], f.eye_r, 0.05 * fh)
    assert _near(d.keypoints[1], f.eye_l, 0.05 * fh)
    assert _near(d.keypoints[3], f.mouth, 0.06 * fh)


def test_mesh_and_irises_sit_on_the_drawing(landmarker):
    f = draw_face()
    lm = landmarker.landmarks(f.image, landmarker.detect(f.image)[0])
    fh = f.box[3] - f.box[1]
    assert lm.points.shape == (468, 3) and np.isfinite(lm.points).all()
    assert lm.presence > 0.9
    margin = 0.03 * fh
    assert (lm.points[:, :2] > f.box[:2] - margin).all()
    assert (lm.points[:, :2] < f.box[2:] + margin).all()
    tol = 0.04 * fh  # ~ half the drawn eye height
    assert _near((lm.points[159] + lm.points[145]) / 2, f.eye_r, tol)  # right eye, image left
    assert _near((lm.points[386] + lm.points[374]) / 2, f.eye_l, tol)
    assert _near((lm.points[13] + lm.points[14]) / 2, f.mouth, tol)
    assert _near(lm.points[61], f.mouth_corner_r, 2 * tol)
    assert _near(lm.points[291], f.mouth_corner_l, 2 * tol)
    assert _near(lm.points[152], f.chin, 3 * tol)
    assert lm.points[1, 2] < lm.points[152, 2]  # the nose tip is nearer the camera than the chin
    assert lm.iris.shape == (2, 5, 2) and lm.eye_contours.shape == (2, 71, 2)
    assert _near(lm.iris[0, 0], f.eye_r, f.iris_radius * 0.5)
    assert _near(lm.iris[1, 0], f.eye_l, f.iris_radius * 0.5)
    radius = np.linalg.norm(lm.iris[:, 1:] - lm.iris[:, :1], axis=-1)  # [2, 4]
    assert np.allclose(radius, f.iris_radius, rtol=0.35)


def test_rolled_face_gives_a_rotated_roi(landmarker):
    f = draw_face(roll=25.0)
    dets = landmarker.detect(f.image)
    assert len(dets) == 1
    roi = landmarker.roi_from_detection(dets[0])
    assert abs(np.rad2deg(roi.angle) - 25.0) < 6.0
    lm = landmarker.landmarks(f.image, roi)
    fh = f.box[3] - f.box[1]
    assert lm.presence > 0.9
    assert _near(lm.iris[0, 0], f.eye_r, f.iris_radius)
    assert _near(lm.iris[1, 0], f.eye_l, f.iris_radius)
    assert _near((lm.points[13] + lm.points[14]) / 2, f.mouth, 0.05 * fh)


def test_open_mouth_opens_the_lips(landmarker):
    gaps = []
    for mouth_open in (0.0, 1.0):
        f = draw_face(mouth_open=mouth_open)
        lm = landmarker.landmarks(f.image, landmarker.detect(f.image)[0])
        gaps.append(lm.points[14, 1] - lm.points[13, 1])
    assert gaps[1] > gaps[0] + 5.0


def test_no_face(landmarker):
    rng = np.random.default_rng(1)
    img = (rng.random((480, 640, 3)) * 60 + 90).astype(np.uint8)
    assert landmarker.detect(img) == []
    lm = landmarker.landmarks(img, FaceROI(320, 240, 300, 0.0))
    assert lm.presence < 0.5
    landmarker.reset()
    assert landmarker.track(img) is None


def test_tracking_reuses_the_roi_and_redetects_after_a_loss(landmarker):
    landmarker.reset()
    calls = landmarker.detector_calls
    results = []
    for i in range(6):  # the face drifts right and rolls a little
        f = draw_face(centre=(300 + 6 * i, 240 + 2 * i), roll=2.0 * i, seed=i)
        lm = landmarker.track(f.image)
        assert lm is not None
        assert _near(lm.iris[0, 0], f.eye_r, f.iris_radius) and lm.detected == (i == 0)
        results.append(lm)
    assert landmarker.detector_calls == calls + 1  # only the first frame ran the detector
    assert results[1].roi != results[2].roi  # the crop follows the face
    empty = np.full((480, 640, 3), 100, np.uint8)
    assert landmarker.track(empty) is None
    assert landmarker.detector_calls == calls + 2  # lost -> re-detect (finds nothing)
    f = draw_face()
    lm = landmarker.track(f.image)
    assert lm is not None and lm.detected and landmarker.detector_calls == calls + 3


def test_several_faces_pick_the_largest(landmarker):
    big = draw_face(640, 480, centre=(200, 240), face_height=260)
    small = draw_face(640, 480, centre=(500, 240), face_height=170)
    img = big.image.copy()
    img[:, 380:] = small.image[:, 380:]
    dets = landmarker.detect(img)
    assert len(dets) == 2 and dets[0].area > dets[1].area
    landmarker.reset()
    lm = landmarker.track(img)
    assert lm is not None and lm.num_faces == 2
    assert _near(lm.iris[0, 0], big.eye_r, big.iris_radius)


@pytest.mark.parametrize("kind", ["gray", "gray1", "rgba", "float", "uint16"])
def test_input_conversions(landmarker, kind):
    f = draw_face()
    img = f.image
    if kind == "gray":
        img = img.mean(-1).astype(np.uint8)
    elif kind == "gray1":
        img = img.mean(-1, keepdims=True).astype(np.uint8)
    elif kind == "rgba":
        img = np.concatenate([img, np.full((*img.shape[:2], 1), 255, np.uint8)], -1)
    elif kind == "float":
        img = img.astype(np.float32) / 255.0
    else:
        img = img.astype(np.uint16) * 257
    dets = landmarker.detect(img)
    assert len(dets) == 1
    lm = landmarker.landmarks(img, dets[0])
    assert lm.presence > 0.5 and _near(lm.iris[0, 0], f.eye_r, f.iris_radius)


@pytest.mark.parametrize("size", [(160, 120), (4000, 3000)])
def test_tiny_and_huge_images(landmarker, size):
    f = draw_face(*size)
    dets = landmarker.detect(f.image)
    assert len(dets) == 1
    lm = landmarker.landmarks(f.image, dets[0])
    fh = f.box[3] - f.box[1]
    assert lm.presence > 0.5
    assert _near((lm.points[159] + lm.points[145]) / 2, f.eye_r, 0.05 * fh)
    assert _near(lm.iris[1, 0], f.eye_l, 0.05 * fh)


@pytest.mark.parametrize(
    "bad",
    [
        [[0, 1], [2, 3]],
        np.zeros(100, np.uint8),
        np.zeros((64, 64, 5), np.uint8),
        np.zeros((64, 64, 3), bool),
        np.full((64, 64, 3), np.nan, np.float32),
        np.zeros((4, 64, 3), np.uint8),
        np.zeros((0, 0, 3), np.uint8),
    ],
)
def test_bad_arrays_raise(landmarker, bad):
    with pytest.raises(FaceImageError):
        landmarker.detect(bad)
    with pytest.raises(FaceImageError):
        landmarker.track(bad)


def test_bad_where_raises(landmarker):
    img = draw_face().image
    with pytest.raises(TypeError):
        landmarker.landmarks(img, (1, 2, 3, 4))
    with pytest.raises(ValueError):
        landmarker.landmarks(img, FaceROI(10, 10, 0.0))


def test_detection_dataclass_area():
    d = FaceDetection(np.array([10.0, 20.0, 30.0, 60.0]), 0.9, np.zeros((6, 2)))
    assert d.area == 800.0


def test_tracking_follows_a_jump_by_redetecting(landmarker):
    a = draw_face(centre=(170, 240), face_height=220)
    b = draw_face(centre=(470, 240), face_height=220)
    landmarker.reset()
    assert landmarker.track(a.image).detected
    lm = landmarker.track(b.image)  # the old crop holds no face: presence drops, re-detect
    assert lm is not None and lm.detected
    assert _near(lm.iris[0, 0], b.eye_r, b.iris_radius)
