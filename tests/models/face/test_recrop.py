"""FaceLandmarker.track's crop: settling after a detection and when calibrating, re-crop on fast
moves (the mesh model reads pose partly from where the face sits in its crop)."""

from __future__ import annotations

import pytest

from models.face.landmarks import FaceLandmarker, FaceROI, _roi_change
from models.face.testface import draw_face


@pytest.fixture
def fl(landmarker):
    landmarker.reset()
    saved = landmarker.recrop
    yield landmarker
    landmarker.recrop = saved
    landmarker.reset()


def test_roi_change_measures_shift_and_size_not_angle():
    a = FaceROI(100.0, 100.0, 200.0, 0.0)
    assert _roi_change(a, FaceROI(104.0, 100.0, 200.0, 0.0)) == pytest.approx(0.02)
    assert _roi_change(a, FaceROI(100.0, 100.0, 203.0, 0.0)) == pytest.approx(0.015)
    assert _roi_change(a, FaceROI(100.0, 100.0, 200.0, 0.2)) == 0.0


def _next_roi(lm) -> FaceROI:
    """The crop the mesh's own points give (the next frame's)."""
    return FaceLandmarker.roi_from_landmarks(lm.points)


def test_fast_move_is_fitted_in_its_own_crop(fl):
    def jump(recrop):
        fl.recrop = recrop
        fl.reset()
        fl.track(draw_face(640, 480, centre=(290, 240)).image, settle=True)
        before = fl.recrops
        lm = fl.track(draw_face(640, 480, centre=(340, 250), seed=1).image)  # ~12 % of the crop
        return lm, fl.recrops - before

    lm, extra = jump(None)
    assert extra == 0 and _roi_change(lm.roi, _next_roi(lm)) > 0.05  # fitted in the stale crop
    lm, extra = jump(0.01)
    assert extra == 1 and _roi_change(lm.roi, _next_roi(lm)) < 0.02
    assert lm.iris is not None and lm.eye_contours is not None  # irises on the final mesh


def test_still_face_is_not_refitted_and_settle_converges(fl):
    frames = [draw_face(640, 480, seed=i % 6).image for i in range(18)]
    lm = fl.track(frames[0], settle=True)
    assert lm.detected and _roi_change(lm.roi, _next_roi(lm)) < 0.01
    for f in frames[1:12]:  # past the frames that settle the crop after the detection
        fl.track(f)
    before = fl.recrops
    for f in frames[12:]:  # settled and still (sensor noise only): no second fit
        fl.track(f)
    assert fl.recrops == before


def test_landmarks_keeps_its_irises(fl):
    f = draw_face(320, 240)
    lm = fl.landmarks(f.image, fl.detect(f.image)[0])
    assert lm.iris is not None and lm.iris.shape == (2, 5, 2)
