"""Face landmark runtime: detection, 468-point mesh, irises, tracking, motion-space keypoints.

Qt-free; runs the classic MediaPipe TFLite models with ai_edge_litert (models fetched at setup by
``python -m models.face.fetch_models``). Importing this package is cheap: the interpreter and cv2
load when a FaceLandmarker is created or used.
"""

from models.face.keypoints import MESH_INDICES, keypoints_from_landmarks
from models.face.landmarks import (
    FaceDetection,
    FaceImageError,
    FaceLandmarker,
    FaceLandmarks,
    FaceModelsMissingError,
    FaceROI,
)
from models.face.one_euro import OneEuroFilter
from models.face.sources import (
    CameraDisconnectedError,
    CameraUnavailableError,
    FrameSource,
    SourceError,
    list_cameras,
    open_source,
)
from models.face.tracker import (
    FaceTracker,
    PerformerProfile,
    ProfileError,
    TrackedFrame,
    TrackerSettings,
)

__all__ = [
    "MESH_INDICES",
    "CameraDisconnectedError",
    "CameraUnavailableError",
    "FaceDetection",
    "FaceImageError",
    "FaceLandmarker",
    "FaceLandmarks",
    "FaceModelsMissingError",
    "FaceROI",
    "FaceTracker",
    "FrameSource",
    "OneEuroFilter",
    "PerformerProfile",
    "ProfileError",
    "SourceError",
    "TrackedFrame",
    "TrackerSettings",
    "keypoints_from_landmarks",
    "list_cameras",
    "open_source",
]
