"""Models: the motion space, audio features, motion generators, face tracking and head rigs.

Qt-free. Importing this package is cheap (numpy only); torch-based modules are imported by their
own module paths when used.
"""

from models.motion_space import (
    CHANNEL_DEFAULTS,
    CHANNEL_GROUPS,
    CHANNEL_INDEX,
    CHANNELS,
    EMOTIONS,
    KEYPOINTS,
    NUM_KEYPOINTS,
    MotionFrames,
    pack_ditto,
    rotation_matrix,
    transform_keypoints,
    unpack_ditto,
)

__all__ = [
    "CHANNELS",
    "CHANNEL_DEFAULTS",
    "CHANNEL_GROUPS",
    "CHANNEL_INDEX",
    "EMOTIONS",
    "KEYPOINTS",
    "NUM_KEYPOINTS",
    "MotionFrames",
    "pack_ditto",
    "rotation_matrix",
    "transform_keypoints",
    "unpack_ditto",
]
