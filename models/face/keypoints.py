"""The 21 motion-space keypoints measured on a MediaPipe 468-point face mesh.

Each keypoint of models.motion_space.KEYPOINTS is the mean of a few mesh landmarks
(``MESH_INDICES``). Right/left are the SUBJECT's, as in the motion space: the subject's right eye
appears on the image's LEFT, and MediaPipe numbers it with the lower indices (33, 133, 159, 145;
the subject's left eye is 263, 362, 386, 374). Every right/left pair below is a mirror pair of
the mesh (checked on a face and its horizontal flip, tests/models/face/test_keypoints.py).

    kp  name            mesh landmarks averaged   where
     0  forehead        151                       mid-forehead, above the glabella
     1  brow_r          105, 52                   mid right brow: upper and lower edge
     2  brow_l          334, 282                  mirror of 1
     3  cheek_r         50, 117                   right cheekbone below the outer eye corner
     4  nose_bridge     168, 6                    nose bridge at eye level
     5  nose_tip        1                         tip of the nose
     6  upper_lip       0, 13                     upper lip red: outer edge and inner edge
     7  cheek_l         280, 346                  mirror of 3
     8  chin            152                       bottom of the chin
     9  jaw_r           58, 172                   right jaw angle, below the ear
    10  jaw_l           288, 397                  mirror of 9
    11  eye_r_upper     159                       right upper lid, centre
    12  philtrum        164                       between nose base and upper lip
    13  eye_r_lower     145                       right lower lid, centre
    14  mouth_corner_r  61                        right mouth corner
    15  eye_l_upper     386                       mirror of 11
    16  eye_l_lower     374                       mirror of 13
    17  lower_lip       14, 17                    lower lip red: inner edge and outer edge
    18  glabella        9                         between the brows
    19  jaw_open        18, 200                   below the lower lip, on the jaw
    20  mouth_corner_l  291                       mirror of 14

The result is in the mesh's units (image pixels for FaceLandmarker output, z in the same
scale); mapping it into the normalised keypoint space of a head is the caller's business.
"""

from __future__ import annotations

import numpy as np

from models.motion_space import KEYPOINTS, NUM_KEYPOINTS

__all__ = ["MESH_INDICES", "MESH_MIRROR_PAIRS", "keypoints_from_landmarks"]

MESH_INDICES: tuple[tuple[int, ...], ...] = (
    (151,),  # 0 forehead
    (105, 52),  # 1 brow_r
    (334, 282),  # 2 brow_l
    (50, 117),  # 3 cheek_r
    (168, 6),  # 4 nose_bridge
    (1,),  # 5 nose_tip
    (0, 13),  # 6 upper_lip
    (280, 346),  # 7 cheek_l
    (152,),  # 8 chin
    (58, 172),  # 9 jaw_r
    (288, 397),  # 10 jaw_l
    (159,),  # 11 eye_r_upper
    (164,),  # 12 philtrum
    (145,),  # 13 eye_r_lower
    (61,),  # 14 mouth_corner_r
    (386,),  # 15 eye_l_upper
    (374,),  # 16 eye_l_lower
    (14, 17),  # 17 lower_lip
    (9,),  # 18 glabella
    (18, 200),  # 19 jaw_open
    (291,),  # 20 mouth_corner_l
)
assert len(MESH_INDICES) == NUM_KEYPOINTS == len(KEYPOINTS)

# (subject's right keypoint, left keypoint): their mesh indices are mirror images.
MESH_MIRROR_PAIRS: tuple[tuple[int, int], ...] = ((1, 2), (3, 7), (9, 10), (11, 15), (13, 16),
                                                  (14, 20))  # fmt: skip

_WEIGHTS = np.zeros((NUM_KEYPOINTS, 468))
for _k, _idx in enumerate(MESH_INDICES):
    _WEIGHTS[_k, list(_idx)] = 1.0 / len(_idx)
_WEIGHTS.setflags(write=False)
del _k, _idx


def keypoints_from_landmarks(points: np.ndarray) -> np.ndarray:
    """The 21 motion-space keypoints ``[..., 21, D]`` of mesh landmarks ``[..., 468, D]``.

    D is 2 or 3 (x, y[, z]); any leading batch shape. Float64 output in the input's units.
    Raises ValueError when the landmark array does not have 468 points of 2 or 3 coordinates.
    """
    p = np.asarray(points, dtype=np.float64)
    if p.ndim < 2 or p.shape[-2] != 468 or p.shape[-1] not in (2, 3):
        raise ValueError(f"face mesh landmarks must be [..., 468, 2|3], got {p.shape}")
    return np.einsum("kn,...nd->...kd", _WEIGHTS, p)
