from __future__ import annotations

import numpy as np
import pytest

from models.face.keypoints import MESH_INDICES, MESH_MIRROR_PAIRS, keypoints_from_landmarks
from models.face.testface import draw_face
from models.motion_space import KEYPOINTS

MIDLINE = [k.index for k in KEYPOINTS if not k.name.endswith(("_r", "_l")) and "_r_" not in
           k.name and "_l_" not in k.name]  # fmt: skip


def test_means_of_the_listed_landmarks():
    pts = np.random.default_rng(0).normal(size=(468, 3))
    kp = keypoints_from_landmarks(pts)
    assert kp.shape == (21, 3)
    for k, idx in enumerate(MESH_INDICES):
        assert np.allclose(kp[k], pts[list(idx)].mean(0))
    batch = keypoints_from_landmarks(np.stack([pts, 2 * pts])[:, :, :2])
    assert batch.shape == (2, 21, 2) and np.allclose(batch[1], 2 * kp[:, :2])


@pytest.mark.parametrize("shape", [(468,), (467, 3), (468, 4), (21, 3)])
def test_bad_shapes_raise(shape):
    with pytest.raises(ValueError, match="468"):
        keypoints_from_landmarks(np.zeros(shape))


def test_mirror_pairs_are_mesh_mirror_images(landmarker):
    """A right keypoint on a face is where its left partner lands on the mirrored face."""
    f = draw_face()
    w = f.image.shape[1]
    a = landmarker.landmarks(f.image, landmarker.detect(f.image)[0]).points
    flipped = np.ascontiguousarray(f.image[:, ::-1])
    b = landmarker.landmarks(flipped, landmarker.detect(flipped)[0]).points
    b[:, 0] = w - b[:, 0]
    ka, kb = keypoints_from_landmarks(a), keypoints_from_landmarks(b)
    fh = f.box[3] - f.box[1]
    for right, left in MESH_MIRROR_PAIRS:
        assert np.linalg.norm(ka[right, :2] - kb[left, :2]) < 0.02 * fh, (right, left)
    for k in MIDLINE:
        assert np.linalg.norm(ka[k, :2] - kb[k, :2]) < 0.02 * fh, k


def test_keypoints_sit_where_the_layout_says(landmarker):
    f = draw_face()
    lm = landmarker.landmarks(f.image, landmarker.detect(f.image)[0])
    kp = keypoints_from_landmarks(lm.points)
    cx = (f.box[0] + f.box[2]) / 2
    fh = f.box[3] - f.box[1]
    for right, left in MESH_MIRROR_PAIRS:  # the subject's right is on the image's left
        assert kp[right, 0] < cx - 0.05 * fh < cx + 0.05 * fh < kp[left, 0], (right, left)
    for k in MIDLINE:
        assert abs(kp[k, 0] - cx) < 0.03 * fh, k
    down = [0, 18, 4, 5, 12, 6, 17, 19, 8]  # forehead .. chin, top to bottom
    assert (np.diff(kp[down, 1]) > 0).all()
    assert kp[11, 1] < kp[13, 1] and kp[15, 1] < kp[16, 1]  # upper lid above lower
    assert kp[1, 1] < kp[11, 1] and kp[2, 1] < kp[15, 1]  # brows above the eyes
    assert np.linalg.norm(kp[11, :2] - f.eye_r) < 0.05 * fh
    assert np.linalg.norm(kp[14, :2] - f.mouth_corner_r) < 0.08 * fh
    assert kp[5, 2] == kp[:, 2].min()  # the nose tip is nearest the camera
