"""Face detection, 468-point face mesh and iris landmarks on CPU, from the classic MediaPipe models.

The three Apache-2.0 TFLite models (BlazeFace short-range detector, face mesh, iris) run with
``ai_edge_litert``'s interpreter; the pre/post-processing of MediaPipe's graphs is re-done here in
numpy + cv2, so mediapipe itself (which pins numpy<2) is not needed. The model files are fetched
at setup time by ``python -m models.face.fetch_models``; nothing is downloaded at run time.

Coordinates are image pixels with x to the right, y down and the origin at the top-left corner of
the top-left pixel (pixel (i, j) covers [i, i+1] x [j, j+1]). Mesh z is in the same pixel scale,
positive away from the camera, relative to the face centre (MediaPipe's relative depth).
"Right"/"left" of eyes are the SUBJECT's: the subject's right eye appears on the image's left.

Pipeline (per MediaPipe's face_landmark_front and iris graphs):
  detect    image -> letterboxed 128x128 in [-1, 1] -> 896 SSD anchors -> sigmoid scores,
            boxes + 6 keypoints -> score >= 0.5 -> weighted NMS (IoU 0.3)
  roi       square, side 1.5x the box, rotated so the eye line (keypoints 0 -> 1) is horizontal
  landmarks roi -> 192x192 in [0, 1] -> 468 x (x, y, z) + face presence (sigmoid)
  iris      per eye a square 2.3x the corner distance (mesh 33/133, 362/263), 64x64 in [0, 1];
            the model knows one eye only, so the subject's left eye is mirrored in and out
  track     the next frame's roi comes from this frame's mesh (its extent along the eye line,
            1.5x); the detector only runs again when the presence score drops below threshold.
            When the face moved within the crop by more than ``recrop`` (a fast head move), the
            mesh is fitted once more in the crop its own points give: the mesh model's pose
            reading depends on where the face sits in the crop, so a crop one frame behind reads
            a moving head's turn short. After a detection the crop is settled the same way over
            the next frames (one extra fit per frame at most), and ``track(settle=True)`` (a
            still face being calibrated) settles it at once. On the default head rendered at 5
            degrees per frame this took pitch down from 0.37x to 0.76x of the angle and yaw
            from 1.19x / 0.78x to 1.04x / 0.94x (docs/motion-space.md, "Known bias")
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from models.face.fetch_models import DEFAULT_DEST, SETUP_COMMAND

__all__ = [
    "FaceDetection",
    "FaceImageError",
    "FaceLandmarker",
    "FaceLandmarks",
    "FaceModelsMissingError",
    "FaceROI",
    "ssd_anchors",
]

DETECTOR_FILE = "face_detection_short_range.tflite"
MESH_FILE = "face_landmark.tflite"
IRIS_FILE = "iris_landmark.tflite"

NUM_MESH = 468
NUM_EYE_CONTOUR = 71
NUM_IRIS = 5

# Mesh landmarks the ROIs are built from.
EYE_OUTER_R, EYE_INNER_R = 33, 133  # subject's right eye (image left): outer, inner corner
EYE_INNER_L, EYE_OUTER_L = 362, 263  # subject's left eye (image right)

# Settling the crop towards its fixed point (after a detection, over the next _SETTLE_PASSES
# frames; with ``track(settle=True)``, up to _SETTLE_PASSES extra fits at once) until it moves
# less than _SETTLE_TOL of its side: the mesh's extent grows with the crop, so the crop rule
# converges slowly (on the default head 185 -> 207 px over ~10 frames), and a neutral captured
# before it settles reads later poses ~2 degrees off. A still face's crop moves ~0.1 % a frame.
_SETTLE_PASSES = 8
_SETTLE_TOL = 0.002
_MAX_SIDE = 1920  # larger images are downscaled (INTER_AREA) before cropping; results scaled back
_MIN_SIDE = 8


class FaceModelsMissingError(FileNotFoundError):
    """The TFLite model files are not installed (run the setup command in the message)."""


class FaceImageError(ValueError):
    """The image array cannot be used (wrong type, shape, dtype, size or values)."""


@dataclass(frozen=True)
class FaceROI:
    """A square crop of the image, rotated by ``angle`` (radians; the crop's x axis in the image
    is (cos angle, sin angle), so a positive angle is a clockwise roll on screen)."""

    cx: float
    cy: float
    size: float  # side in pixels
    angle: float = 0.0

    def affine(self, out: int) -> np.ndarray:
        """[2, 3] map from crop pixel coordinates (0..out, continuous) to image coordinates."""
        k = self.size / out
        c, s = math.cos(self.angle) * k, math.sin(self.angle) * k
        h = out / 2.0
        return np.array([[c, -s, self.cx - c * h + s * h], [s, c, self.cy - s * h - c * h]])

    def scaled(self, f: float) -> FaceROI:
        """The same ROI in an image scaled by ``f``."""
        return FaceROI(self.cx * f, self.cy * f, self.size * f, self.angle)


@dataclass(frozen=True)
class FaceDetection:
    """One BlazeFace detection. Keypoints (subject's): right eye, left eye, nose tip, mouth
    centre, right ear tragion, left ear tragion."""

    box: np.ndarray  # [4] x0, y0, x1, y1 pixels
    score: float
    keypoints: np.ndarray  # [6, 2] pixels

    @property
    def area(self) -> float:
        return float(max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1]))


@dataclass(frozen=True)
class FaceLandmarks:
    """The face mesh of one face, in image pixels."""

    points: np.ndarray  # [468, 3] x, y, z (z in pixel scale, + away from the camera)
    presence: float  # face presence score in [0, 1]
    roi: FaceROI  # the crop the mesh was computed in
    iris: np.ndarray | None = None  # [2, 5, 2] subject's right eye then left; centre first
    eye_contours: np.ndarray | None = None  # [2, 71, 2] same eye order (MediaPipe's eye model)
    # track(): faces the detector found the last time it ran (the largest is tracked);
    # landmarks(): 1 (the caller has the count from detect()).
    num_faces: int = 1
    detected: bool = False  # track(): True when this frame ran the detector


def ssd_anchors() -> np.ndarray:
    """BlazeFace short-range anchor centres ``[896, 2]`` (x, y in [0, 1]).

    MediaPipe's SsdAnchorsCalculator with 4 layers, strides 8, 16, 16, 16, one aspect ratio plus
    the interpolated scale (2 anchors per cell per layer) and fixed anchor size 1: layers with the
    same stride share a grid, giving 16x16x2 + 8x8x6 = 896 anchors, cell-major.
    """
    out = []
    strides = (8, 16, 16, 16)
    i = 0
    while i < len(strides):
        n = 0
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            n += 2
            j += 1
        g = 128 // strides[i]
        ys, xs = np.meshgrid((np.arange(g) + 0.5) / g, (np.arange(g) + 0.5) / g, indexing="ij")
        cells = np.stack([xs.ravel(), ys.ravel()], -1)
        out.append(np.repeat(cells, n, axis=0))
        i = j
    return np.concatenate(out).astype(np.float32)


def _as_rgb(image: object) -> np.ndarray:
    """Validate and convert to a contiguous [H, W, 3] uint8 RGB array."""
    if not isinstance(image, np.ndarray):
        raise FaceImageError(f"image must be a numpy array, got {type(image).__name__}")
    a = image
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise FaceImageError(f"image must be [H, W], [H, W, 1|3|4]; got shape {image.shape}")
    if min(a.shape[:2]) < _MIN_SIDE:
        raise FaceImageError(f"image {a.shape[1]}x{a.shape[0]} is smaller than {_MIN_SIDE} px")
    if a.dtype == np.uint8:
        pass
    elif a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise FaceImageError("float image has NaN or infinite values")
        a = (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)  # floats are read as [0, 1]
    elif a.dtype == np.uint16:
        a = (a >> 8).astype(np.uint8)
    else:
        raise FaceImageError(f"image dtype must be uint8, uint16 or float; got {a.dtype}")
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    elif a.shape[2] == 4:
        a = a[..., :3]  # alpha is dropped: faces are found in the colour
    return np.ascontiguousarray(a)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, dtype=np.float64), -100.0, 100.0)))


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-12)


def _weighted_nms(boxes: np.ndarray, kps: np.ndarray, scores: np.ndarray, thresh: float):
    """MediaPipe's WEIGHTED non-max suppression: each kept detection is the score-weighted mean of
    the candidates overlapping it by more than ``thresh`` (steadier boxes than plain NMS)."""
    order = np.argsort(-scores)
    boxes, kps, scores = boxes[order], kps[order], scores[order]
    remaining = np.ones(len(scores), dtype=bool)
    out = []
    for i in range(len(scores)):
        if not remaining[i]:
            continue
        overlap = remaining & (_iou(boxes[i], boxes) > thresh)
        overlap[i] = True
        w = scores[overlap]
        box = (boxes[overlap] * w[:, None]).sum(0) / w.sum()
        kp = (kps[overlap] * w[:, None, None]).sum(0) / w.sum()
        out.append((box, float(scores[i]), kp))
        remaining &= ~overlap
    return out


class FaceLandmarker:
    """Detects faces and fits the MediaPipe face mesh and irises; tracks one face over frames.

    ``model_dir`` defaults to resources/thirdparty/mediapipe. ``num_threads`` is the TFLite CPU
    thread count. ``iris`` runs the iris model in ``landmarks``/``track`` (two extra small
    inferences). ``recrop``: in ``track``, when the crop the mesh's points give differs from the
    crop it was fitted in by more than this (centre shift or side change, as a fraction of the
    side), the mesh is fitted again in the new crop (once; irises only on the final mesh), and
    after a detection until the crop settles; None never re-crops. Raises
    FaceModelsMissingError when a model file is absent and ImportError naming the package when
    ai_edge_litert is not installed.

    Not thread-safe: one instance per thread (each owns its interpreters and tracking state).
    """

    def __init__(
        self,
        model_dir: str | os.PathLike[str] | None = None,
        *,
        num_threads: int = 2,
        iris: bool = True,
        min_detection_score: float = 0.5,
        min_presence: float = 0.5,
        recrop: float | None = 0.01,
    ) -> None:
        model_dir = Path(model_dir) if model_dir is not None else DEFAULT_DEST
        names = (DETECTOR_FILE, MESH_FILE, IRIS_FILE)
        missing = [n for n in names if not (model_dir / n).is_file()]
        if missing:
            raise FaceModelsMissingError(
                f"face models missing in {model_dir} ({', '.join(missing)}): "
                f"run `{SETUP_COMMAND}` (part of .ci/setup)"
            )
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as e:  # pragma: no cover - dependency declared in pyproject
            raise ImportError("face tracking needs the ai-edge-litert package") from e

        def load(name: str):
            it = Interpreter(model_path=str(model_dir / name), num_threads=num_threads)
            it.allocate_tensors()
            return it

        self.model_dir = model_dir
        self.iris_enabled = iris
        self.min_detection_score = float(min_detection_score)
        self.min_presence = float(min_presence)
        self.recrop = None if recrop is None else float(recrop)
        self._det = load(DETECTOR_FILE)
        self._mesh = load(MESH_FILE)
        self._iris = load(IRIS_FILE)
        self._det_in = self._det.get_input_details()[0]["index"]
        outs = {d["name"]: d["index"] for d in self._det.get_output_details()}
        self._det_reg, self._det_cls = outs["regressors"], outs["classificators"]
        self._mesh_in = self._mesh.get_input_details()[0]["index"]
        outs = {tuple(d["shape"]): d["index"] for d in self._mesh.get_output_details()}
        self._mesh_pts, self._mesh_flag = outs[(1, 1, 1, 1404)], outs[(1, 1, 1, 1)]
        self._iris_in = self._iris.get_input_details()[0]["index"]
        outs = {d["name"]: d["index"] for d in self._iris.get_output_details()}
        self._iris_eye = outs["output_eyes_contours_and_brows"]
        self._iris_iris = outs["output_iris"]
        self._anchors = ssd_anchors()  # [896, 2]
        self.detector_calls = 0  # how often the detector ran (tests, diagnostics)
        self.recrops = 0  # how often track() fitted a mesh a second time (diagnostics)
        self._roi: FaceROI | None = None  # tracking state, in working-image pixels
        self._settle_frames = 0  # frames left in which the crop settles after a detection
        self._shape: tuple[int, int] | None = None
        self._num_faces = 0

    # ----------------------------------------------------------------------------------------
    @staticmethod
    def _working(image: np.ndarray) -> tuple[np.ndarray, float]:
        """Image the models read and its scale from the input (huge inputs are downscaled once)."""
        h, w = image.shape[:2]
        f = min(1.0, _MAX_SIDE / max(h, w))
        if f == 1.0:
            return image, 1.0
        import cv2

        size = (max(1, round(w * f)), max(1, round(h * f)))
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA), size[0] / w

    @staticmethod
    def _crop(image: np.ndarray, roi: FaceROI, out: int) -> np.ndarray:
        """Rotated square crop ``[out, out, 3]`` uint8; outside the image replicates the border."""
        import cv2

        a = roi.affine(out)
        # cv2 samples pixel centres at integer positions: shift both frames by half a pixel.
        m = a.copy()
        m[:, 2] += a[:, :2] @ np.array([0.5, 0.5]) - 0.5
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        if roi.size > 2.5 * out:  # strong downscale: pre-blur so the bilinear taps do not alias
            k = roi.size / out
            corners = np.array([[0, 0], [out, 0], [out, out], [0, out]], dtype=np.float64)
            src = corners @ a[:, :2].T + a[:, 2]
            x, y = np.floor(src.min(0)).astype(int)
            bw, bh = np.ceil(src.max(0)).astype(int) - (x, y)
            x0, y0 = max(0, x), max(0, y)
            x1, y1 = min(image.shape[1], x + bw), min(image.shape[0], y + bh)
            if x1 - x0 >= 2 and y1 - y0 >= 2:
                sub = image[y0:y1, x0:x1]
                small = cv2.resize(
                    sub, (max(1, round((x1 - x0) / k)), max(1, round((y1 - y0) / k))),
                    interpolation=cv2.INTER_AREA,
                )  # fmt: skip
                sx, sy = small.shape[1] / (x1 - x0), small.shape[0] / (y1 - y0)
                s = np.array([[sx, 0, -x0 * sx], [0, sy, -y0 * sy]])
                a2 = s[:, :2] @ a
                a2[:, 2] += s[:, 2]
                m = a2.copy()
                m[:, 2] += a2[:, :2] @ np.array([0.5, 0.5]) - 0.5
                image = small
        return cv2.warpAffine(image, m, (out, out), flags=flags, borderMode=cv2.BORDER_REPLICATE)

    # ----------------------------------------------------------------------------------------
    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        """All faces in ``image`` ([H, W] | [H, W, 1|3|4] uint8 RGB(A) or float in [0, 1]),
        largest first. Empty list when there is none. Raises FaceImageError for a bad array."""
        rgb = _as_rgb(image)
        work, f = self._working(rgb)
        dets = self._detect(work)
        if f != 1.0:
            dets = [FaceDetection(d.box / f, d.score, d.keypoints / f) for d in dets]
        return dets

    def _detect(self, img: np.ndarray) -> list[FaceDetection]:
        import cv2

        self.detector_calls += 1
        h, w = img.shape[:2]
        # Letterbox: fit the long side into 128, centre, pad with black (MediaPipe: keep aspect).
        s = 128.0 / max(h, w)
        nw, nh = max(1, round(w * s)), max(1, round(h * s))
        interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
        small = cv2.resize(img, (nw, nh), interpolation=interp)
        px, py = (128 - nw) // 2, (128 - nh) // 2
        x = np.full((1, 128, 128, 3), -1.0, dtype=np.float32)
        x[0, py : py + nh, px : px + nw] = small.astype(np.float32) * (2.0 / 255.0) - 1.0
        self._det.set_tensor(self._det_in, x)
        self._det.invoke()
        reg = self._det.get_tensor(self._det_reg)[0]  # [896, 16]
        scores = _sigmoid(self._det.get_tensor(self._det_cls)[0, :, 0])  # [896]
        keep = scores >= self.min_detection_score
        if not keep.any():
            return []
        reg, scores, anchors = reg[keep], scores[keep], self._anchors[keep]
        # Offsets are in 128-pixel units relative to the anchor centre; anchors are 1x1.
        ctr = reg[:, 0:2] / 128.0 + anchors
        half = reg[:, 2:4] / 256.0
        boxes = np.concatenate([ctr - half, ctr + half], 1)  # [N, 4] letterbox-normalised
        kps = reg[:, 4:16].reshape(-1, 6, 2) / 128.0 + anchors[:, None, :]
        out = []
        # Letterbox-normalised -> image pixels.
        scale = np.array([128.0 / s, 128.0 / s])
        offset = np.array([px, py]) / s
        for box, score, kp in _weighted_nms(boxes, kps, scores, 0.3):
            b = np.concatenate([box[:2] * scale - offset, box[2:] * scale - offset])
            out.append(FaceDetection(b, score, kp * scale - offset))
        out.sort(key=lambda d: -d.area)
        return out

    # ----------------------------------------------------------------------------------------
    @staticmethod
    def roi_from_detection(det: FaceDetection) -> FaceROI:
        """Crop for the mesh model: the box centre, 1.5x its long side, eye line horizontal."""
        d = det.keypoints[1] - det.keypoints[0]  # subject's right eye -> left eye (image L -> R)
        w, h = det.box[2] - det.box[0], det.box[3] - det.box[1]
        return FaceROI(
            float((det.box[0] + det.box[2]) / 2),
            float((det.box[1] + det.box[3]) / 2),
            float(max(w, h) * 1.5),
            math.atan2(float(d[1]), float(d[0])),
        )

    @staticmethod
    def roi_from_landmarks(points: np.ndarray) -> FaceROI:
        """Crop for the next frame: the mesh's extent in the frame of its eye line, 1.5x, square."""
        pts = np.asarray(points)[:, :2]
        d = pts[EYE_OUTER_L] - pts[EYE_OUTER_R]
        angle = math.atan2(float(d[1]), float(d[0]))
        c, s = math.cos(angle), math.sin(angle)
        local = pts @ np.array([[c, -s], [s, c]])  # rotate by -angle: eye line horizontal
        lo, hi = local.min(0), local.max(0)
        mid = (lo + hi) / 2
        centre = np.array([[c, -s], [s, c]]) @ mid
        return FaceROI(float(centre[0]), float(centre[1]), float((hi - lo).max() * 1.5), angle)

    def landmarks(self, image: np.ndarray, where: FaceDetection | FaceROI) -> FaceLandmarks:
        """The face mesh (and irises, when enabled) of the face at ``where`` — a detection from
        ``detect`` or an ROI. ``presence`` below ``min_presence`` means no face was there (the
        points are then meaningless). Raises FaceImageError for a bad array, TypeError for a bad
        ``where``."""
        rgb = _as_rgb(image)
        if isinstance(where, FaceDetection):
            roi = self.roi_from_detection(where)
        elif isinstance(where, FaceROI):
            roi = where
        else:
            raise TypeError(f"where must be a FaceDetection or FaceROI, got {type(where).__name__}")
        if not (roi.size > 0 and math.isfinite(roi.size)):
            raise ValueError(f"ROI size must be positive, got {roi.size}")
        work, f = self._working(rgb)
        res = self._landmarks(work, roi.scaled(f))
        return _unscale(res, f)

    def _landmarks(self, img: np.ndarray, roi: FaceROI, with_iris: bool = True) -> FaceLandmarks:
        crop = self._crop(img, roi, 192)
        self._mesh.set_tensor(self._mesh_in, (crop.astype(np.float32) * (1.0 / 255.0))[None])
        self._mesh.invoke()
        raw = self._mesh.get_tensor(self._mesh_pts).reshape(NUM_MESH, 3).astype(np.float64)
        presence = float(_sigmoid(self._mesh.get_tensor(self._mesh_flag).reshape(())))
        a = roi.affine(192)
        pts = np.empty((NUM_MESH, 3))
        pts[:, :2] = raw[:, :2] @ a[:, :2].T + a[:, 2]
        pts[:, 2] = raw[:, 2] * (roi.size / 192.0)
        iris = contours = None
        if with_iris and self.iris_enabled and presence >= self.min_presence:
            iris, contours = self._irises(img, pts)
        return FaceLandmarks(pts, presence, roi, iris, contours)

    def _irises(self, img: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Iris [2, 5, 2] and eye contour [2, 71, 2], subject's right eye first."""
        iris = np.empty((2, NUM_IRIS, 2))
        contours = np.empty((2, NUM_EYE_CONTOUR, 2))
        for e, (i0, i1) in enumerate(((EYE_OUTER_R, EYE_INNER_R), (EYE_INNER_L, EYE_OUTER_L))):
            p0, p1 = pts[i0, :2], pts[i1, :2]
            d = p1 - p0
            ctr = (p0 + p1) / 2
            roi = FaceROI(float(ctr[0]), float(ctr[1]), float(np.hypot(*d) * 2.3),
                          math.atan2(float(d[1]), float(d[0])))  # fmt: skip
            crop = self._crop(img, roi, 64)
            mirror = e == 1  # the model was trained on the image-left eye only
            if mirror:
                crop = crop[:, ::-1]
            x = np.ascontiguousarray(crop, dtype=np.float32)[None] * (1.0 / 255.0)
            self._iris.set_tensor(self._iris_in, x)
            self._iris.invoke()
            eye = self._iris.get_tensor(self._iris_eye).reshape(NUM_EYE_CONTOUR, 3)[:, :2]
            iri = self._iris.get_tensor(self._iris_iris).reshape(NUM_IRIS, 3)[:, :2]
            both = np.concatenate([eye, iri]).astype(np.float64)
            if mirror:
                both[:, 0] = 64.0 - both[:, 0]
            a = roi.affine(64)
            both = both @ a[:, :2].T + a[:, 2]
            contours[e], iris[e] = both[:NUM_EYE_CONTOUR], both[NUM_EYE_CONTOUR:]
        return iris, contours

    # ----------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the tracked face: the next ``track`` call runs the detector."""
        self._roi = None
        self._shape = None

    def track(self, frame: np.ndarray, settle: bool = False) -> FaceLandmarks | None:
        """Landmarks of the (largest) face in a video frame, or None when there is no face.

        The crop comes from the previous frame's mesh; the detector runs only on the first frame,
        after a loss (presence < ``min_presence``) or when the frame size changes. When several
        faces are present the largest is tracked; ``num_faces`` reports how many the detector saw
        the last time it ran. The mesh is fitted again in its own crop once when the face moved
        within the crop by more than ``recrop`` (during the 8 frames after a detection, by more
        than 0.2 %); with ``settle`` (a still face being calibrated) until the crop stops moving
        (up to 8 more fits). Raises FaceImageError for a bad array.
        """
        rgb = _as_rgb(frame)
        work, f = self._working(rgb)
        if self._shape != work.shape:
            self._roi = None
            self._shape = work.shape
        if self._roi is not None:
            res = self._track_in(work, self._roi, settle)
            if res is not None:
                return _unscale(replace(res, num_faces=self._num_faces), f)
        # Lost or first frame: detect, and try the largest face once.
        self._roi = None
        dets = self._detect(work)
        self._num_faces = len(dets)
        if not dets:
            return None
        self._settle_frames = _SETTLE_PASSES + 1  # this frame and the next 8
        res = self._track_in(work, self.roi_from_detection(dets[0]), settle)
        if res is None:
            return None
        return _unscale(replace(res, num_faces=len(dets), detected=True), f)

    def _track_in(
        self, work: np.ndarray, roi: FaceROI, settle: bool = False
    ) -> FaceLandmarks | None:
        """The mesh in ``roi`` (fitted again when the face moved within it: see ``recrop`` and
        ``track``) with irises; sets the next frame's ROI. None when no face is present."""
        res = self._landmarks(work, roi, with_iris=False)
        if res.presence < self.min_presence:
            return None
        nxt = self.roi_from_landmarks(res.points)
        passes, tol = 1, self.recrop
        if settle:
            passes, tol = _SETTLE_PASSES, _SETTLE_TOL
        elif self._settle_frames > 0:
            self._settle_frames -= 1
            tol = _SETTLE_TOL
        for _ in range(passes if self.recrop is not None else 0):
            if _roi_change(roi, nxt) <= tol:
                break
            again = self._landmarks(work, nxt, with_iris=False)
            self.recrops += 1
            if again.presence < self.min_presence:
                break
            roi, res, nxt = nxt, again, self.roi_from_landmarks(again.points)
        if self.iris_enabled:
            iris, contours = self._irises(work, res.points)
            res = replace(res, iris=iris, eye_contours=contours)
        self._roi = nxt
        return res


def _roi_change(a: FaceROI, b: FaceROI) -> float:
    """How far crop ``b`` is from ``a``: the larger of the centre shift and the side change, as
    fractions of a's side. The angle is left out: the mesh model reads roll from a crop turned
    a few degrees off about as well as from a level one (rendered head, roll ramp at 2.5 degrees
    per frame: max error 0.4 degrees), while a shifted or scaled crop biases yaw and pitch."""
    shift = math.hypot(b.cx - a.cx, b.cy - a.cy) / a.size
    return max(shift, abs(b.size / a.size - 1.0))


def _unscale(res: FaceLandmarks, f: float) -> FaceLandmarks:
    """A result computed on an image scaled by ``f``, in the original image's pixels."""
    if f == 1.0:
        return res
    g = 1.0 / f
    return replace(
        res,
        points=res.points * g,
        roi=res.roi.scaled(g),
        iris=None if res.iris is None else res.iris * g,
        eye_contours=None if res.eye_contours is None else res.eye_contours * g,
    )
