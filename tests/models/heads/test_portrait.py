"""Portrait import (models.heads.portrait): keypoints, rig layers, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from models.heads.portrait import PortraitImportError, portrait_head, read_image
from models.heads.preview import orbit_view, render_preview
from models.heads.rig import PART_INDEX
from models.motion_space import CHANNEL_DEFAULTS, CHANNEL_INDEX


@pytest.fixture(scope="module")
def drawn():
    from models.face.testface import draw_face

    return draw_face(640, 480)


@pytest.fixture(scope="module")
def result(landmarker, drawn):
    return portrait_head(drawn.image, landmarker=landmarker, face_px=120)


def _frame(**channels: float) -> np.ndarray:
    v = CHANNEL_DEFAULTS.copy()
    for name, value in channels.items():
        v[CHANNEL_INDEX[name]] = value
    return v


def _view(head, frame, features=None, size=160):
    cam = orbit_view(head.kp_to_world[:3, 3], 0.55)
    return render_preview(head.deform(frame), size, size, camera=cam, fov_deg=28.0,
                          background=(0.0, 0.0, 1.0), features=features)  # fmt: skip


def test_keypoints_in_the_right_regions(result):
    kp = result.head.keypoints  # motion-space RDF units: +x image right, +y down
    eyes_y = kp[[11, 13, 15, 16], 1].mean()
    assert kp[1, 1] < eyes_y and kp[2, 1] < eyes_y  # brows above the eyes
    assert eyes_y < kp[5, 1] < kp[6, 1] < kp[17, 1] < kp[8, 1]  # eyes, nose, lips, chin
    assert kp[11, 0] < 0 < kp[15, 0]  # the subject's right eye is on the image left
    assert kp[14, 0] < kp[6, 0] < kp[20, 0]
    assert kp[3, 0] < 0 < kp[7, 0] and kp[9, 0] < 0 < kp[10, 0]
    assert kp[5, 2] < kp[3, 2]  # the nose tip is nearer the camera than the cheek (z away)
    # Metric frame as the default head: pupils 63 mm apart at eye height.
    centres = result.head.rig.eye_centers
    assert abs(np.linalg.norm(centres[1] - centres[0]) - 0.063) < 0.008
    assert np.all(np.abs(kp) < 1.2)


def test_head_layers_and_rig(result):
    head = result.head
    counts = {name: int((head.parts == PART_INDEX[name]).sum()) for name in PART_INDEX}
    for name in ("skin", "iris_r", "iris_l", "lid_upper_r", "lid_upper_l", "lid_lower_r",
                 "lid_lower_l", "mouth"):  # fmt: skip
        assert counts[name] > 0, name
    assert 10_000 < len(head) < 80_000
    assert np.all(head.lid_angle[head.parts == PART_INDEX["lid_upper_r"]] > 0)
    assert np.all(head.lid_angle[head.parts == PART_INDEX["lid_lower_r"]] < 0)
    lips = head.parts == PART_INDEX["lips"]
    # The lower lip rides on the jaw, the upper lip does not.
    lower = lips & (head.means[:, 1] < head.kp_to_world_points(head.keypoints[17])[1])
    upper = lips & (head.means[:, 1] > head.kp_to_world_points(head.keypoints[6])[1])
    assert head.jaw_weight[lower].mean() > 0.8 and head.jaw_weight[upper].mean() < 0.1
    assert result.matte.shape == result.depth.shape


def test_rest_render_reproduces_the_image_colours(result, drawn):
    img, alpha = _view(result.head, CHANNEL_DEFAULTS)
    assert alpha[80, 80] > 0.99  # the face centre is solid
    skin = np.array([224, 172, 140]) / 255.0
    assert np.abs(img[95, 60] - skin).max() < 0.08  # cheek keeps the drawn skin colour


def test_jaw_open_shows_a_dark_mouth(result):
    head = result.head
    mouth_kp = head.kp_to_world_points(head.keypoints[[6, 17]]).mean(0)
    onehot = np.zeros((len(head), 1), np.float32)
    onehot[head.parts == PART_INDEX["mouth"], 0] = 1.0
    closed, _ = _view(head, CHANNEL_DEFAULTS, onehot)
    opened, _ = _view(head, _frame(exp_19_y=0.08), onehot)
    assert closed.sum() < 0.02 * opened.sum() + 1.0  # hidden at rest
    assert opened.sum() > 20.0  # visible pixels of mouth interior
    rest, _ = _view(head, CHANNEL_DEFAULTS)
    open_img, _ = _view(head, _frame(exp_19_y=0.08))
    # Where the mouth opened, the pixels are much darker than the closed lips and skin were.
    region = opened[..., 0] > 0.5
    assert rest[region].mean() - open_img[region].mean() > 0.2
    assert open_img[region].mean(-1).mean() < 0.3
    assert np.isfinite(mouth_kp).all()


def test_eye_close_covers_the_iris_with_skin(result):
    head = result.head
    iris = np.isin(head.parts, [PART_INDEX["iris_r"], PART_INDEX["iris_l"]])
    onehot = iris.astype(np.float32)[:, None]
    open_vis, _ = _view(head, CHANNEL_DEFAULTS, onehot)
    closed_vis, _ = _view(head, _frame(eye_open_r=0.0, eye_open_l=0.0), onehot)
    assert open_vis.sum() > 10.0
    assert closed_vis.sum() < 0.1 * open_vis.sum()
    # What covers the irises is skin-coloured (the drawn face: pink skin, green irises).
    closed, _ = _view(head, _frame(eye_open_r=0.0, eye_open_l=0.0))
    where = open_vis[..., 0] > 0.5
    colours = closed[where]
    skin = np.array([224, 172, 140]) / 255.0
    assert np.median(np.abs(colours - skin).max(axis=1)) < 0.12


def test_grey_rgba_and_resized_inputs(landmarker, drawn):
    grey = drawn.image.mean(axis=2).astype(np.uint8)
    res = portrait_head(grey, landmarker=landmarker, face_px=60)
    assert len(res.head) > 1000
    rgba = np.dstack([drawn.image, np.full(drawn.image.shape[:2], 255, np.uint8)])
    assert len(portrait_head(rgba, landmarker=landmarker, face_px=60).head) > 1000
    import cv2

    small = cv2.resize(drawn.image, (200, 150), interpolation=cv2.INTER_AREA)
    res = portrait_head(small, landmarker=landmarker, face_px=60)
    assert any("resampled" in n for n in res.notes)


def test_several_faces_take_the_largest(landmarker):
    from models.face.testface import draw_face

    big = draw_face(640, 480, centre=(200, 240), face_height=300).image
    small = draw_face(640, 480, centre=(520, 200), face_height=120).image
    img = big.copy()
    img[120:300, 440:600] = small[110:290, 440:600]
    res = portrait_head(img, landmarker=landmarker, face_px=60)
    assert any("faces found" in n for n in res.notes)
    # The head is built from the large face: its eyes are 63 mm apart at the face's scale.
    assert res.head.metadata["faces_found"] >= 2


def test_bad_input(landmarker, tmp_path):
    with pytest.raises(PortraitImportError, match="no face"):
        portrait_head(np.full((240, 320, 3), 120, np.uint8), landmarker=landmarker)
    with pytest.raises(PortraitImportError, match="too small"):
        portrait_head(np.zeros((20, 20, 3), np.uint8), landmarker=landmarker)
    with pytest.raises(PortraitImportError, match="must be"):
        portrait_head(np.zeros((64, 64, 2), np.uint8), landmarker=landmarker)
    with pytest.raises(PortraitImportError, match="NaN"):
        portrait_head(np.full((64, 64, 3), np.nan, np.float32), landmarker=landmarker)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(PortraitImportError, match="decoded"):
        read_image(bad)
    with pytest.raises(PortraitImportError, match="no such"):
        read_image(tmp_path / "missing.png")
